"""Speech fixtures (espeak-ng, see scripts/make_speech_fixtures.py) and checks on transcripts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from pipelines import audio
from tests.audio_factory import sine_mix

SPEECH = Path(__file__).parent / "fixtures" / "speech"
TRANSCRIPTS: dict[str, str] = json.loads((SPEECH / "transcripts.json").read_text())
WER_BOUND = 0.10
"""tiny.en measured 0.00 (weather, numbers) and 0.06 (story) on these fixtures."""


def speech_path(name: str) -> Path:
    return SPEECH / f"{name}.wav"


def song_with_vocals(name: str, rate: int = 44100, bed_level: float = 0.15) -> bytes:
    """A speech fixture over a generated instrumental bed, as a stereo 192 kbit/s MP3."""
    voice = audio.decode(speech_path(name), sample_rate=rate, channels=2)
    bed = sine_mix(voice.shape[-1] / rate + 2.0, rate, channels=2, seed=9) * bed_level
    mix = bed.copy()
    start = rate  # the voice enters after one second of music
    mix[:, start : start + voice.shape[-1]] += voice
    return audio.encode(np.clip(mix, -1, 1), rate, format="mp3", mp3_bitrate=192)


def check_transcript_shape(transcript: dict[str, Any], duration: float) -> None:
    """Segment times increase and stay inside the audio; words sit inside their segment."""
    last_end = 0.0
    for segment in transcript["segments"]:
        assert last_end - 0.02 <= segment["start"] <= segment["end"] <= duration + 0.05
        last_end = segment["end"]
        for word in segment["words"]:
            assert segment["start"] - 0.02 <= word["start"] <= word["end"] <= segment["end"] + 0.02

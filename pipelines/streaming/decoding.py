"""The contract between a streaming session and a (remote, stateless) transcriber.

A session asks for one decode at a time with a `DecodeRequest`; whatever runs
the model answers with `DecodedSegment`s whose times are relative to the start
of the request's audio. `decode_with_model` is the in-process implementation a
Transcriber deployment wraps.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np

from pipelines.streaming.degenerate import degenerate_reason

if TYPE_CHECKING:
    from faster_whisper import WhisperModel
    from faster_whisper.transcribe import Segment

SAMPLE_RATE = 16_000
"""Sample rate of every array a session holds or sends (Whisper's rate)."""

_MAX_TOKENS = 224
"""Whisper's limit on new tokens for one 30 s window (half its 448-token context)."""


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
    """One decoded segment (roughly a sentence) with its words and decoder scores."""

    start: float
    end: float
    text: str
    words: tuple[DecodedWord, ...] = ()
    avg_logprob: float | None = None
    """Mean token log-probability (None when the decoder does not report it)."""
    no_speech_prob: float | None = None
    """The model's probability that the window held no speech."""

    @property
    def degenerate(self) -> str | None:
        """Why this segment is a degenerate decode (a loop, noise), or None."""
        return degenerate_reason(
            self.text, avg_logprob=self.avg_logprob, no_speech_prob=self.no_speech_prob
        )


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


@dataclass(frozen=True)
class DecodeOptions:
    """How a live window is decoded (the same for every window of a session)."""

    beam_size: int = 5
    """Beam search as for file jobs: greedy decoding of short windows mangles
    the first words of an utterance ("Seven silver" → "7-0") and loops more."""
    fallback_temperatures: tuple[float, ...] = (0.2, 0.4, 0.6, 0.8)
    """Retried hotter (Whisper's fallback) when a decode without prompt is degenerate."""
    tokens_per_second: float = 8.0
    """At most this many tokens per second of window (fast speech needs about 5):
    a loop stops there instead of running to Whisper's 448-token limit, which
    would hold the Transcriber for seconds."""


def decode_with_model(
    model: WhisperModel, request: DecodeRequest, options: DecodeOptions | None = None
) -> list[DecodedSegment]:
    """Decode one window with a faster-whisper model, guarded against degenerate output.

    The first attempt runs at temperature 0 (reproducible, so two decodes of a
    growing window stay comparable) with the session's ``prompt``. When a segment
    is degenerate (a repetition loop, text over noise: `degenerate_reason`), it
    is retried without the prompt (which may carry the loop's seed), then with
    Whisper's temperature fallback. Whatever is still degenerate is cut off with
    everything after it, so a session never sees it. Previous-text conditioning
    is off because the session supplies the context itself; the built-in VAD
    filter is off because the session already skips silence.
    """
    options = options or DecodeOptions()
    first = _decode(model, request, options, request.prompt, (0.0,))
    return guard_decode(model, request, first, options)


def guard_decode(
    model: WhisperModel,
    request: DecodeRequest,
    first: list[DecodedSegment],
    options: DecodeOptions | None = None,
) -> list[DecodedSegment]:
    """The retries of `decode_with_model` after its first attempt gave ``first``.

    Split out so that a batched first attempt (``pipelines.streaming.batch``)
    ends exactly as a single decode would.
    """
    options = options or DecodeOptions()
    sound = sound_prefix(first)
    if len(sound) == len(first):
        return first
    attempts: list[tuple[str | None, tuple[float, ...]]] = []
    if request.prompt:
        attempts.append((None, (0.0,)))
    if options.fallback_temperatures:
        attempts.append((None, options.fallback_temperatures))
    best = sound
    for prompt, temperatures in attempts:
        segments = _decode(model, request, options, prompt, temperatures)
        sound = sound_prefix(segments)
        if len(sound) == len(segments):
            return segments
        if len(sound) > len(best):
            best = sound
    return best


def max_new_tokens(request: DecodeRequest, options: DecodeOptions) -> int:
    """The token budget of one window (see `DecodeOptions.tokens_per_second`)."""
    return min(_MAX_TOKENS, 16 + math.ceil(options.tokens_per_second * request.duration))


def sound_prefix(segments: Sequence[DecodedSegment]) -> list[DecodedSegment]:
    """The segments before the first degenerate one."""
    sound: list[DecodedSegment] = []
    for segment in segments:
        if segment.degenerate is not None:
            break
        sound.append(segment)
    return sound


def _decode(
    model: WhisperModel,
    request: DecodeRequest,
    options: DecodeOptions,
    prompt: str | None,
    temperatures: tuple[float, ...],
) -> list[DecodedSegment]:
    segments, _ = model.transcribe(
        request.audio,
        language=request.language,
        task="transcribe",
        beam_size=options.beam_size,
        temperature=list(temperatures) if len(temperatures) > 1 else temperatures[0],
        word_timestamps=True,
        condition_on_previous_text=False,
        initial_prompt=prompt or None,
        vad_filter=False,
        max_new_tokens=max_new_tokens(request, options),
    )
    return [to_decoded(segment) for segment in segments]


def to_decoded(segment: Segment) -> DecodedSegment:
    return DecodedSegment(
        start=float(segment.start),
        end=float(segment.end),
        text=segment.text,
        words=tuple(
            DecodedWord(w.word, float(w.start), float(w.end), float(w.probability))
            for w in segment.words or ()
        ),
        avg_logprob=float(segment.avg_logprob),
        no_speech_prob=float(segment.no_speech_prob),
    )

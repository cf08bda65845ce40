"""The live transcription policy for one WebSocket session.

The session holds the audio window and the agreement state; every decode is a
stateless `DecodeRequest` the caller sends wherever the model runs. The loop a
caller drives::

    session.feed(samples)
    if session.needs_decode():
        request = session.prepare()
        events = session.apply(transcribe(request))

and on an explicit finalize: ``request = session.finalize()``, then, when it is
not None, ``session.apply_final(transcribe(request))``. One request is in flight
at a time; when a decode fails, `StreamingSession.cancel` drops it.

The window is the audio since the last trim point: it still holds the audio of
words committed since then (Whisper transcribes better with the sentence's
start in view); text committed before the window goes in the prompt. The window
is trimmed at the end of a committed segment once it grows past
``trim_seconds`` (whisper_streaming's "segment" trimming), and right after an
utterance ends.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial as bind

import numpy as np

from pipelines.streaming.agreement import LocalAgreement
from pipelines.streaming.decoding import (
    SAMPLE_RATE,
    DecodedSegment,
    DecodedWord,
    DecodeRequest,
    sound_prefix,
)
from pipelines.streaming.degenerate import degenerate_reason
from pipelines.streaming.protocol import ServerEvent, final, partial
from pipelines.streaming.vad import VadConfig, has_speech

__all__ = ["LocalAgreement", "SessionConfig", "SpeechDetector", "StreamingSession"]

SpeechDetector = Callable[[np.ndarray, int], bool]
"""``(audio, after) -> bool``: does speech in 16 kHz ``audio`` reach past sample ``after``?"""

# Client frames rarely add up to exact seconds (a resampler holds back a few
# samples), so a chunk a few ms short of min_chunk_seconds still counts.
_SLACK = SAMPLE_RATE // 50


@dataclass(frozen=True)
class SessionConfig:
    """Tunables of one streaming session."""

    language: str | None = None
    """Language code passed to every decode; None lets the model detect it."""
    interim_results: bool = True
    """Emit ``partial`` messages for the unconfirmed tail."""
    min_chunk_seconds: float = 1.0
    """Fresh audio needed before the next decode (or silence check)."""
    min_commit_seconds: float = 3.0
    """Windows shorter than this commit nothing: with so little context Whisper
    can repeat the same wrong words twice (e.g. at the start of an utterance)."""
    trim_seconds: float = 15.0
    """Past this window length, trim at the end of the last committed segment."""
    max_window_seconds: float = 25.0
    """Hard bound (below Whisper's 30 s): past it, the tail is committed and cut."""
    prompt_chars: int = 200
    """How much committed text (from before the window) goes in the prompt."""
    vad: VadConfig | None = field(default_factory=VadConfig)
    """Silero settings; None treats all audio as speech."""
    vad_context_seconds: float = 0.5
    """Already-checked audio shown to the VAD before the fresh part."""
    keep_silence_seconds: float = 0.5
    """Silence kept at the head of the window after dropping a silent stretch."""


class StreamingSession:
    """LocalAgreement-2 streaming over stateless decodes, with VAD gating."""

    def __init__(
        self, config: SessionConfig | None = None, *, detect_speech: SpeechDetector | None = None
    ) -> None:
        """``detect_speech`` defaults to Silero with ``config.vad`` (all speech when None)."""
        self.config = config or SessionConfig()
        self._detect_speech = detect_speech or _detector(self.config.vad)
        self._agreement = LocalAgreement()
        self._buffer = np.zeros(0, dtype=np.float32)
        self._fed: list[np.ndarray] = []  # joined onto _buffer only when read
        self._offset = 0  # absolute sample index of _buffer[0]
        self._end = 0  # absolute sample index just past the last sample fed
        self._checked = 0  # audio before this sample was decoded or found silent
        self._flush_next = False
        self._inflight: DecodeRequest | None = None
        self._history: list[DecodedWord] = []
        self._last_partial: str | None = None

    @property
    def stream_seconds(self) -> float:
        """Seconds of audio fed so far."""
        return self._end / SAMPLE_RATE

    @property
    def window_seconds(self) -> float:
        """Length of the current window (what the next decode would send)."""
        return (self._end - self._offset) / SAMPLE_RATE

    @property
    def in_flight(self) -> bool:
        """A request was prepared and its result not applied yet."""
        return self._inflight is not None

    def feed(self, samples: np.ndarray) -> None:
        """Append 16 kHz mono float32 audio (any length, including empty)."""
        chunk = np.asarray(samples, dtype=np.float32).reshape(-1)
        # Frames arrive every few ms; joining them once per decode avoids
        # copying the whole window on every frame.
        self._fed.append(chunk)
        self._end += len(chunk)

    def needs_decode(self) -> bool:
        """Whether a decode should run now (cheap; runs the VAD on fresh audio only).

        Fresh audio without speech is never decoded: it is dropped from the
        window, or, when an utterance was in progress, ends it with a flush decode.
        """
        if self._inflight is not None:
            return False
        if self._flush_next:
            return True
        if self._end - self._checked < self._seconds(self.config.min_chunk_seconds) - _SLACK:
            return False
        if self._fresh_has_speech():
            return True
        self._checked = self._end
        if self._agreement.tail:
            self._flush_next = True
            return True
        self._trim_to(self._end - self._seconds(self.config.keep_silence_seconds))
        return False

    def prepare(self) -> DecodeRequest:
        """The request for the decode `needs_decode` asked for."""
        return self._request(flush=self._flush_next)

    def apply(self, segments: Sequence[DecodedSegment]) -> list[ServerEvent]:
        """Apply the result of the in-flight request; return messages to send."""
        request = self._take_inflight()
        # Whatever decoded them, degenerate segments (loops, text over noise)
        # are neither committed nor shown: the next decode tries that audio again.
        segments = sound_prefix(segments)
        words = _absolute_words(segments, request)
        if request.flush:
            committed = self._agreement.flush(words)
            self._trim_to(round(request.end * SAMPLE_RATE))
        else:
            trusted = request.duration >= self.config.min_commit_seconds
            committed = self._agreement.insert(words, commit=trusted)
            committed += self._bound_window(segments, request)
        return self._events(committed)

    def finalize(self) -> DecodeRequest | None:
        """Flush request for everything heard, or None when nothing is pending.

        Wait for any in-flight decode first. With None, the session has
        already reset; otherwise `apply_final` does.
        """
        if self._inflight is not None:
            raise RuntimeError("finalize() while a decode is in flight; apply it first")
        pending = self._agreement.tail or (self._end > self._checked and self._fresh_has_speech())
        if pending:
            return self._request(flush=True)
        self._agreement.reset()
        self._checked = self._end
        self._trim_to(self._end)
        return None

    def apply_final(self, segments: Sequence[DecodedSegment]) -> list[ServerEvent]:
        """Apply the result of `finalize`'s request: everything left becomes final."""
        if self._inflight is None or not self._inflight.flush:
            raise RuntimeError("apply_final() without a request from finalize()")
        return self.apply(segments)

    def cancel(self) -> None:
        """Forget the in-flight request (the decode failed); its audio stays in the
        window, so the next decode covers it."""
        self._inflight = None

    def _window(self) -> np.ndarray:
        if self._fed:
            self._buffer = np.concatenate([self._buffer, *self._fed])
            self._fed = []
        return self._buffer

    def _seconds(self, seconds: float) -> int:
        return round(seconds * SAMPLE_RATE)

    def _request(self, *, flush: bool) -> DecodeRequest:
        if self._inflight is not None:
            raise RuntimeError("a decode is already in flight")
        self._inflight = DecodeRequest(
            audio=self._window().copy(),
            offset=self._offset / SAMPLE_RATE,
            prompt=self._prompt(),
            language=self.config.language,
            flush=flush,
        )
        self._flush_next = False
        self._checked = self._end
        return self._inflight

    def _take_inflight(self) -> DecodeRequest:
        if self._inflight is None:
            raise RuntimeError("apply() without a prepared request")
        request, self._inflight = self._inflight, None
        return request

    def _fresh_has_speech(self) -> bool:
        start = max(self._offset, self._checked - self._seconds(self.config.vad_context_seconds))
        audio = self._window()[start - self._offset :]
        return self._detect_speech(audio, self._checked - start)

    def _trim_to(self, sample: int) -> None:
        cut = min(max(sample, self._offset), self._end) - self._offset
        self._buffer = self._window()[cut:]
        self._offset += cut
        self._agreement.forget_before(self._offset / SAMPLE_RATE)

    def _bound_window(
        self, segments: Sequence[DecodedSegment], request: DecodeRequest
    ) -> list[DecodedWord]:
        if self.window_seconds > self.config.trim_seconds:
            self._trim_at_segment_end(segments, request.offset)
        if self.window_seconds <= self.config.max_window_seconds:
            return []
        # No committed segment end to cut at: give up on agreement for this stretch.
        forced = self._agreement.flush()
        cut = max(self._agreement.committed_end, request.end - self.config.min_chunk_seconds)
        self._trim_to(self._seconds(cut))
        return forced

    def _trim_at_segment_end(self, segments: Sequence[DecodedSegment], offset: float) -> None:
        # The last segment may still be growing; earlier ends are sentence breaks.
        ends = [offset + s.end for s in segments[:-1]]
        cuts = [end for end in ends if end <= self._agreement.committed_end]
        if cuts:
            self._trim_to(self._seconds(max(cuts)))

    def _prompt(self) -> str | None:
        start = self._offset / SAMPLE_RATE
        text = "".join(w.word for w in self._history if w.end <= start).strip()
        if len(text) > self.config.prompt_chars:
            text = text[-self.config.prompt_chars :]
            text = text.split(" ", 1)[-1]  # no half word at the cut
        if degenerate_reason(text) is not None:
            return None  # a loop in the prompt seeds the same loop again
        return text or None

    def _events(self, committed: list[DecodedWord]) -> list[ServerEvent]:
        events = []
        if committed:
            self._history = (self._history + committed)[-200:]
            text = "".join(w.word for w in committed).strip()
            events.append(final(text, committed[0].start, committed[-1].end, committed))
        tail = self._agreement.tail
        text = "".join(w.word for w in tail).strip()
        if self.config.interim_results and text and (committed or text != self._last_partial):
            events.append(partial(text, tail[0].start, tail[-1].end))
        self._last_partial = text or None
        return events


def _detector(vad: VadConfig | None) -> SpeechDetector:
    if vad is None:
        return lambda audio, after: True
    return bind(has_speech, config=vad)


def _absolute_words(
    segments: Sequence[DecodedSegment], request: DecodeRequest
) -> list[DecodedWord]:
    words = [w.shifted(request.offset) for segment in segments for w in segment.words]
    # Whisper sometimes stamps the last word past the audio it was given.
    return [w if w.end <= request.end else _clip(w, request.end) for w in words]


def _clip(word: DecodedWord, end: float) -> DecodedWord:
    return DecodedWord(word.word, min(word.start, end), end, word.probability)

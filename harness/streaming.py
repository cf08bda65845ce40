"""Run a live session synchronously over a whole recording, for tests and benchmarks."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np

from pipelines.streaming.decoding import (
    SAMPLE_RATE,
    DecodedSegment,
    DecodeRequest,
    Transcribe,
)
from pipelines.streaming.policy import StreamingSession
from pipelines.streaming.protocol import ServerEvent


@dataclass
class StreamRun:
    """What a simulated stream produced, with the stream time of each message."""

    events: list[tuple[float, ServerEvent]] = field(default_factory=list)
    """(seconds of audio fed when the message was emitted, message)."""
    decode_calls: int = 0
    decoded_seconds: float = 0.0
    """Audio sent to the model in total (windows overlap, so > stream length)."""
    transcribe_seconds: float = 0.0
    """Wall time spent inside the transcribe callable."""
    longest_window: float = 0.0
    """Longest window sent in one request (seconds)."""

    @property
    def finals(self) -> list[ServerEvent]:
        """The ``final`` messages in order."""
        return [e for _, e in self.events if e["type"] == "final"]

    @property
    def partials(self) -> list[ServerEvent]:
        """The ``partial`` messages in order."""
        return [e for _, e in self.events if e["type"] == "partial"]

    @property
    def final_delays(self) -> list[float]:
        """Per final: seconds of audio fed between its end and its emission."""
        return [at - e["end"] for at, e in self.events if e["type"] == "final"]

    @property
    def text(self) -> str:
        """All final text joined with spaces."""
        return " ".join(e["text"] for e in self.finals)


def split_audio(audio: np.ndarray, chunk_seconds: float) -> Iterator[np.ndarray]:
    """Cut 16 kHz audio into chunks of ``chunk_seconds`` (the last may be shorter)."""
    step = max(1, round(chunk_seconds * SAMPLE_RATE))
    for start in range(0, len(audio), step):
        yield audio[start : start + step]


def drive(
    session: StreamingSession,
    transcribe: Transcribe,
    chunks: np.ndarray | Iterable[np.ndarray],
    chunk_seconds: float = 0.5,
    *,
    finalize: bool = True,
) -> StreamRun:
    """Feed ``chunks`` (or a whole array cut every ``chunk_seconds``) and decode
    whenever the session asks, as a transcriber faster than real time would."""
    if isinstance(chunks, np.ndarray):
        chunks = split_audio(chunks, chunk_seconds)
    run = StreamRun()
    for chunk in chunks:
        session.feed(chunk)
        if session.needs_decode():
            _record(run, session, session.apply(_call(run, transcribe, session.prepare())))
    request = session.finalize() if finalize else None
    if request is not None:
        _record(run, session, session.apply_final(_call(run, transcribe, request)))
    return run


DecodeCost = Callable[[DecodeRequest, float], float]
"""``(request, measured wall seconds) -> seconds the decode takes in the simulation``."""


def drive_paced(
    session: StreamingSession,
    transcribe: Transcribe,
    chunks: Iterable[np.ndarray],
    chunk_seconds: float,
    *,
    cost: DecodeCost | None = None,
) -> StreamRun:
    """Like `drive`, but frames arrive every ``chunk_seconds`` of stream time while
    each decode takes its own (measured, or ``cost``) time, as on a live socket.

    Frames that arrive during a decode are fed before its result is applied
    (the ingress does the same), so windows grow by as much audio as the
    decodes let pass: slow decodes mean fewer, longer steps. Ends with a finalize.
    """
    run = StreamRun()
    clock, busy_until = 0.0, 0.0
    pending: tuple[DecodeRequest, list[DecodedSegment]] | None = None
    for chunk in chunks:
        clock += len(chunk) / SAMPLE_RATE if chunk_seconds <= 0 else chunk_seconds
        if pending is not None and clock >= busy_until:
            _record(run, session, session.apply(pending[1]))
            pending = None
        session.feed(chunk)
        if pending is None and session.needs_decode():
            request = session.prepare()
            began = run.transcribe_seconds
            segments = _call(run, transcribe, request)
            took = run.transcribe_seconds - began
            busy_until = clock + (took if cost is None else cost(request, took))
            pending = (request, segments)
    if pending is not None:
        _record(run, session, session.apply(pending[1]))
    flush = session.finalize()
    if flush is not None:
        _record(run, session, session.apply_final(_call(run, transcribe, flush)))
    return run


def _call(run: StreamRun, transcribe: Transcribe, request: DecodeRequest) -> list[DecodedSegment]:
    began = time.perf_counter()
    segments = list(transcribe(request))
    run.transcribe_seconds += time.perf_counter() - began
    run.decode_calls += 1
    run.decoded_seconds += request.duration
    run.longest_window = max(run.longest_window, request.duration)
    return segments


def _record(run: StreamRun, session: StreamingSession, events: list[ServerEvent]) -> None:
    run.events.extend((session.stream_seconds, event) for event in events)

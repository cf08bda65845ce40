"""Which body runs a job of each kind: one dispatch shared by every job runner."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from pipelines.jobs.inputs import FileBody
from pipelines.jobs.params import SeparationParams
from pipelines.jobs.records import JobRecord
from pipelines.jobs.runner import JobContext
from pipelines.jobs.separation import SeparationEngine, separate
from pipelines.jobs.transcription import SegmentStream, TranscriptionParams, transcribe_file
from pipelines.lyrics import LyricsParams, lyrics


def separation_model_of(record: JobRecord) -> str | None:
    """The Demucs model a job needs, if any (so the runner can prepare its engine)."""
    if record.kind == "separation":
        return str(record.params["model"])
    if record.kind == "lyrics":
        return str(record.params["separation_model"])
    return None


def job_body(
    record: JobRecord,
    engine: SeparationEngine | None,
    stream_for: Callable[[str], SegmentStream],
    max_seconds: float,
) -> FileBody:
    """The body for ``record``'s kind, bound to its parameters."""
    if record.kind == "separation":
        sep = SeparationParams.model_validate(record.params)
        assert engine is not None

        async def run_separation(ctx: JobContext, source: Path) -> None:
            await separate(ctx, engine, sep, source, source.parent, max_seconds)

        return run_separation
    if record.kind == "transcription":
        tra = TranscriptionParams.model_validate(record.params)
        stream = stream_for(str(tra.model))

        async def run_transcription(ctx: JobContext, source: Path) -> None:
            await transcribe_file(ctx, stream, source, tra, max_seconds, source.parent)

        return run_transcription
    lyr = LyricsParams.model_validate(record.params)
    assert engine is not None
    lyrics_stream = stream_for(str(lyr.model))

    async def run_lyrics(ctx: JobContext, source: Path) -> None:
        await lyrics(ctx, engine, lyrics_stream, source, source.parent, lyr, max_seconds)

    return run_lyrics

"""Transcription jobs: decode to 16 kHz mono, stream segments from a Transcriber,
write the transcript as JSON, SRT, VTT and TXT.

The model call is injected (``SegmentStream``): a remote streaming call in the
service, an in-process generator in tests.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from pipelines import audio, subtitles
from pipelines.jobs.context import JobContext
from pipelines.transcription import SAMPLE_RATE, Segment, TranscribeOptions, Transcript

SegmentStream = Callable[[np.ndarray, TranscribeOptions], AsyncIterator[dict[str, Any]]]
"""(16 kHz mono audio, options) -> {"meta": ...} then {"segment": ...}s."""


class TranscriptionParams(BaseModel):
    """What a client may ask of a transcription job (DESIGN.md §2)."""

    model_config = ConfigDict(extra="forbid")

    model: str | None = Field(default=None, description="Whisper model; the default when unset.")
    language: str | None = Field(default=None, description="Language code; unset: detect it.")
    task: Literal["transcribe", "translate"] = "transcribe"
    word_timestamps: bool = Field(default=True, description="Per-word timings in the JSON.")
    vad: bool = Field(default=False, description="Skip silence with Silero VAD first.")
    prompt: str | None = Field(default=None, max_length=1000, description="Initial prompt.")

    def options(self) -> TranscribeOptions:
        """What this request asks of the model: the one typed object that travels from
        the route to the Transcriber (``InvalidRequest`` for a bad language or task)."""
        return TranscribeOptions(
            language=None if self.language in (None, "", "auto") else self.language,
            task=self.task,
            word_timestamps=self.word_timestamps,
            vad=self.vad,
            initial_prompt=self.prompt,
        )


async def collect_transcript(
    items: AsyncIterator[dict[str, Any]],
    on_progress: Callable[[float], Awaitable[None]] | None = None,
) -> Transcript:
    """Assemble a streamed transcription, reporting progress as segments arrive."""
    meta: dict[str, Any] = {}
    segments: list[Segment] = []
    async for item in items:
        if "meta" in item:
            meta = item["meta"]
            continue
        segment = Segment.from_dict(item["segment"])
        segments.append(segment)
        if on_progress is not None and meta.get("duration"):
            await on_progress(min(1.0, segment.end / meta["duration"]))
    return Transcript.from_segments(
        segments,
        language=meta.get("language", ""),
        language_probability=meta.get("language_probability", 0.0),
        duration=meta.get("duration", 0.0),
        task=meta.get("task", "transcribe"),
    )


def decode_speech(
    source: audio.AudioSource, max_seconds: float, scratch: Path | None = None
) -> np.ndarray:
    """16 kHz mono float32, 1-D: what Whisper takes.

    Decoded block by block, each downmixed on its own. With a ``scratch`` folder the
    blocks go to a file there first and come back as one array, so a long track
    never costs more memory than its 16 kHz mono samples.
    """
    blocks = audio.decode_blocks(
        source, sample_rate=SAMPLE_RATE, channels=1, max_duration=max_seconds
    )
    if scratch is None:
        return np.concatenate([block[0] for block in blocks])
    with tempfile.TemporaryFile(dir=scratch, prefix="speech-") as file:
        for block in blocks:
            file.write(np.ascontiguousarray(block[0], dtype=np.float32).tobytes())
        file.seek(0)
        return np.fromfile(file, dtype=np.float32)


async def transcribe_audio(
    ctx: JobContext, stream: SegmentStream, speech: np.ndarray, params: TranscriptionParams
) -> Transcript:
    transcript = await collect_transcript(stream(speech, params.options()), ctx.progress)
    ctx.record.info.update(
        language=transcript.language,
        language_probability=round(transcript.language_probability, 4),
        duration=transcript.duration,
    )
    return transcript


TRANSCRIPT_FILES: dict[str, tuple[Callable[[Transcript], str], str]] = {
    "json": (lambda t: json.dumps(t.to_dict(), ensure_ascii=False), "application/json"),
    "srt": (subtitles.to_srt, "application/x-subrip"),
    "vtt": (subtitles.to_vtt, "text/vtt"),
    "txt": (subtitles.to_txt, "text/plain; charset=utf-8"),
    "lrc": (subtitles.to_lrc, "text/plain; charset=utf-8"),
}


async def write_transcript(
    ctx: JobContext,
    transcript: Transcript,
    stem: str,
    formats: tuple[str, ...] = ("json", "srt", "vtt", "txt"),
) -> None:
    """``{stem}.json`` (segments with words) and the subtitle files asked for."""
    for ext in formats:
        render, content_type = TRANSCRIPT_FILES[ext]
        text = render(transcript)
        output = await ctx.write_output(ext, f"{stem}.{ext}", text.encode(), content_type)
        ctx.record.outputs.append(output)


async def transcribe_file(
    ctx: JobContext,
    stream: SegmentStream,
    source: audio.AudioSource,
    params: TranscriptionParams,
    max_seconds: float,
    scratch: Path | None = None,
) -> None:
    """The body of a transcription job (``scratch``: the job's scratch folder)."""
    with ctx.timed("decode"):
        speech = await asyncio.to_thread(decode_speech, source, max_seconds, scratch)
    transcript = await transcribe_audio(ctx, stream, speech, params)
    await write_transcript(ctx, transcript, "transcript")

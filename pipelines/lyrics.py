"""Lyrics: separate the vocals, transcribe them with word timings, write LRC and SRT.

One job, one progress bar: separation fills the first 70 %, transcription the rest.
"""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from pipelines.jobs.context import JobContext
from pipelines.jobs.params import SeparationParams
from pipelines.jobs.separation import SeparationEngine, separate
from pipelines.jobs.transcription import (
    SegmentStream,
    TranscriptionParams,
    decode_speech,
    transcribe_audio,
    write_transcript,
)

SEPARATION_SHARE = 0.7


class LyricsParams(BaseModel):
    """What a client may ask of a lyrics job."""

    model_config = ConfigDict(extra="forbid")

    separation_model: str | None = Field(default=None, description="Demucs model for vocals.")
    model: str | None = Field(default=None, description="Whisper model for the lyrics.")
    language: str | None = Field(default=None, description="Language code; unset: detect it.")
    format: Literal["wav", "flac", "mp3"] = Field(default="wav", description="Stem format.")
    shifts: int = Field(default=1, ge=0, description="Demucs shifts for the vocal split.")
    vad: bool = Field(default=True, description="Skip silent stretches of the vocal stem.")

    def separation(self) -> SeparationParams:
        return SeparationParams(
            model=self.separation_model, two_stems="vocals", format=self.format, shifts=self.shifts
        )

    def transcription(self) -> TranscriptionParams:
        return TranscriptionParams(
            model=self.model, language=self.language, word_timestamps=True, vad=self.vad
        )


async def lyrics(
    ctx: JobContext,
    engine: SeparationEngine,
    stream: SegmentStream,
    source: Path,
    folder: Path,
    params: LyricsParams,
    max_seconds: float,
) -> None:
    """The body of a lyrics job: vocals + instrumental stems, lyrics.lrc/.srt/.json.

    The vocals are transcribed from their float scratch copy (before clipping and
    encoding), through a 32-bit float WAV in ``folder``.
    """
    with ctx.stage(0.0, SEPARATION_SHARE):
        stems = await separate(
            ctx, engine, params.separation(), source, folder, max_seconds, keep=("vocals",)
        )
    _rename(ctx, "no_vocals", "instrumental")
    vocals = folder / "vocals-float.wav"
    rate = engine.separator.samplerate
    with ctx.timed("decode"):
        await asyncio.to_thread(stems.write_float_wav, "vocals", vocals, rate)
        speech = await asyncio.to_thread(decode_speech, vocals, max_seconds, folder)
    vocals.unlink()
    with ctx.stage(SEPARATION_SHARE, 1.0):
        transcript = await transcribe_audio(ctx, stream, speech, params.transcription())
    await write_transcript(ctx, transcript, "lyrics", formats=("lrc", "srt", "json"))


def _rename(ctx: JobContext, old: str, new: str) -> None:
    ctx.record.outputs = [
        dataclasses.replace(o, name=new) if o.name == old else o for o in ctx.record.outputs
    ]

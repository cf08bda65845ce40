"""The kinds of job, and the scratch disk each takes."""

from __future__ import annotations

from enum import StrEnum

from pipelines.errors import UnknownJobKind
from pipelines.jobs.params import SeparationParams
from pipelines.jobs.scratch import FLOAT_BYTES, ScratchCost, separation_cost
from pipelines.jobs.transcription import TranscriptionParams
from pipelines.lyrics import LyricsParams
from pipelines.transcription import SAMPLE_RATE


class JobKind(StrEnum):
    """What a job does; stored in its record as ``kind``."""

    SEPARATION = "separation"
    TRANSCRIPTION = "transcription"
    LYRICS = "lyrics"

    @classmethod
    def of(cls, kind: str) -> JobKind:
        """The kind named ``kind``; :class:`UnknownJobKind` for anything else."""
        try:
            return cls(kind)
        except ValueError:
            raise UnknownJobKind(
                f"Unknown job kind {kind!r}; known: {', '.join(k.value for k in cls)}.",
                details={"kind": kind},
            ) from None


SPEECH_COST = ScratchCost(SAMPLE_RATE * FLOAT_BYTES)
"""A transcription keeps its 16 kHz mono float track on disk while decoding."""


def scratch_cost(
    params: SeparationParams | TranscriptionParams | LyricsParams,
    sample_rate: int,
    channels: int,
    sources: int,
) -> ScratchCost:
    """Scratch bytes per second of audio for a job (``sample_rate``, ``channels`` and
    ``sources``: those of its Demucs model; ignored for transcriptions)."""
    if isinstance(params, SeparationParams):
        stems = 2 if params.two_stems else len(params.stems or range(sources))
        return separation_cost(
            sample_rate, channels, stems, params.format, params.bit_depth, params.mp3_bitrate
        )
    if isinstance(params, LyricsParams):
        sep = params.separation()
        cost = separation_cost(
            sample_rate, channels, 2, sep.format, sep.bit_depth, sep.mp3_bitrate, keep_float=1
        )
        # the vocals as a float WAV, then as 16 kHz speech
        extra = sample_rate * channels * FLOAT_BYTES + SPEECH_COST.per_second
        return ScratchCost(cost.per_second + extra)
    return SPEECH_COST

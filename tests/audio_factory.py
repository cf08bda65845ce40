"""Synthetic audio for tests: ``harness.audio``, which the benchmarks share."""

from __future__ import annotations

from harness.audio import (
    OPUS_RATE,
    UPLOAD_FORMATS,
    encode_upload,
    flac_declaring,
    random_bytes,
    sine_mix,
    streaming_wav,
    tone,
    truncated,
    unseekable,
    video_with_audio,
    video_without_audio,
    wav_header_with_garbage,
    write_audio,
)

__all__ = [
    "OPUS_RATE",
    "UPLOAD_FORMATS",
    "encode_upload",
    "flac_declaring",
    "random_bytes",
    "sine_mix",
    "streaming_wav",
    "tone",
    "truncated",
    "unseekable",
    "video_with_audio",
    "video_without_audio",
    "wav_header_with_garbage",
    "write_audio",
]

"""Audio in and out: probe, decode, encode and clip, all in process with PyAV.

Decoding follows what Demucs does when it reads a track (FFmpeg resamples in
the source channel layout, then :func:`convert_channels` applies Demucs'
channel rules), so a decoded track is the array ``demucs`` itself would get.
Every FFmpeg failure on input becomes :class:`~pipelines.errors.UnsupportedAudio`
in this module and nowhere else.

Sources are bytes, a path (streamed from disk, never read whole) or a binary
file object (rewound first when seekable).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import BinaryIO, Literal, TypeAlias

import av
import numpy as np

from pipelines import _audio_codecs as codecs
from pipelines.errors import AudioTooLong, InvalidRequest, UnsupportedAudio

__all__ = [
    "FORMATS",
    "MP3_BITRATES",
    "AudioInfo",
    "AudioSource",
    "BitDepth",
    "ClipMode",
    "FormatName",
    "OutputFormat",
    "check_output",
    "clip",
    "content_type",
    "convert_channels",
    "decode",
    "decode_blocks",
    "encode",
    "encode_file",
    "extension",
    "interleave",
    "probe",
]

interleave = codecs.interleave

AudioSource: TypeAlias = bytes | str | os.PathLike[str] | BinaryIO
FormatName = Literal["wav", "flac", "mp3"]
BitDepth = Literal[16, 24, 32]
ClipMode = Literal["rescale", "clamp", "none"]

# MPEG-1 Layer III bitrates (kbps), the ones LAME encodes without rounding.
MP3_BITRATES = (32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320)
# Encoder priming and padding (mp3, aac) and resampler rounding make decoded
# audio a few tens of ms longer than a file's real length; not worth a 413.
DURATION_TOLERANCE = 0.1


@dataclass(frozen=True)
class AudioInfo:
    """What the headers say about a file's first audio stream."""

    duration: float  # seconds; 0.0 when the container does not declare it
    sample_rate: int
    channels: int
    codec: str  # FFmpeg codec name, e.g. "mp3", "aac", "pcm_s16le"
    container: str  # FFmpeg demuxer name, e.g. "wav", "mov,mp4,m4a,3gp,3g2,mj2"


@dataclass(frozen=True)
class OutputFormat:
    """A format stems can be written in."""

    name: FormatName
    extension: str
    content_type: str


FORMATS: dict[str, OutputFormat] = {
    "wav": OutputFormat("wav", "wav", "audio/wav"),
    "flac": OutputFormat("flac", "flac", "audio/flac"),
    "mp3": OutputFormat("mp3", "mp3", "audio/mpeg"),
}

_PCM_ENCODERS: dict[tuple[str, int], codecs.Encoder] = {
    ("wav", 16): codecs.Encoder("pcm_s16le", "wav", "s16", bits=16),
    ("wav", 24): codecs.Encoder("pcm_s24le", "wav", "s32", bits=24),
    ("wav", 32): codecs.Encoder("pcm_f32le", "wav", "flt"),
    ("flac", 16): codecs.Encoder("flac", "flac", "s16", bits=16),
    ("flac", 24): codecs.Encoder("flac", "flac", "s32", bits=24),
}
_MP3_ENCODER = codecs.Encoder("libmp3lame", "mp3", "fltp", saturate=True)
_MP3_RATES = frozenset(av.Codec("libmp3lame", "w").audio_rates or ())


def content_type(format: str) -> str:
    """The MIME type of ``format`` (``"mp3"`` → ``"audio/mpeg"``)."""
    return _output_format(format).content_type


def extension(format: str) -> str:
    """The file extension (no dot) for ``format``."""
    return _output_format(format).extension


def _output_format(format: str) -> OutputFormat:
    try:
        return FORMATS[format]
    except KeyError:
        raise InvalidRequest(
            f"Unknown output format {format!r}; choose one of {', '.join(FORMATS)}.",
            details={"field": "format"},
        ) from None


def probe(source: AudioSource) -> AudioInfo:
    """Read the headers of ``source`` and check that its first samples decode.

    Raises :class:`UnsupportedAudio` when FFmpeg cannot open it (or it is not in
    an accepted container), it has no audio stream, more channels than accepted,
    or no finite samples where the audio starts. ``duration`` is 0.0 when the
    container does not declare one.
    """
    with codecs.open_audio(source) as (container, stream):
        info = AudioInfo(
            duration=codecs.declared_duration(container, stream),
            sample_rate=stream.codec_context.sample_rate,
            channels=stream.codec_context.channels,
            codec=stream.codec_context.codec.canonical_name,
            container=container.format.name,
        )
        _check_first_samples(codecs.decoded_blocks(container, stream, info.sample_rate))
    return info


def _check_first_samples(blocks: Iterator[np.ndarray]) -> None:
    """The first decoded block exists and holds only finite samples."""
    first = next(blocks, None)
    if first is None:
        raise UnsupportedAudio("The file contains no audio samples.")
    _check_finite(first)


def _check_finite(block: np.ndarray) -> None:
    if not np.isfinite(block).all():  # float formats can carry them; no model can
        raise UnsupportedAudio("The audio holds NaN or infinite samples.")


def decode(
    source: AudioSource,
    *,
    sample_rate: int,
    channels: int,
    max_duration: float | None = None,
) -> np.ndarray:
    """Decode the first audio stream of ``source`` to float32 ``(channels, samples)``.

    The whole track in memory: for short clips. Long inputs go through
    :func:`decode_blocks`, which takes the same arguments and checks.
    """
    blocks = list(
        decode_blocks(source, sample_rate=sample_rate, channels=channels, max_duration=max_duration)
    )
    return np.concatenate(blocks, axis=1)


def decode_blocks(
    source: AudioSource,
    *,
    sample_rate: int,
    channels: int,
    max_duration: float | None = None,
) -> Iterator[np.ndarray]:
    """Decode the first audio stream of ``source`` as float32 ``(channels, n)`` blocks.

    Resampled to ``sample_rate`` by FFmpeg's resampler, then converted to
    ``channels`` with Demucs' rules (:func:`convert_channels`) block by block, so
    only one block is ever held. Raises :class:`UnsupportedAudio` for anything
    undecodable (also when it holds no samples) and :class:`AudioTooLong` past
    ``max_duration`` seconds: from the headers before decoding, and again while
    decoding, since headers can understate the length.
    """
    if sample_rate < 1 or channels < 1:
        raise ValueError(f"bad decode target: {sample_rate} Hz, {channels} channels")
    limit = math.inf if max_duration is None else max_duration
    with codecs.open_audio(source) as (container, stream):
        _check_duration(codecs.declared_duration(container, stream), limit)
        blocks = codecs.decoded_blocks(container, stream, sample_rate)
        for block in _checked_blocks(blocks, sample_rate, limit):
            yield convert_channels(block, channels)


def _check_duration(duration: float, max_duration: float) -> None:
    if duration > max_duration + DURATION_TOLERANCE:
        raise _too_long(f"The audio lasts {duration:.1f} s", duration, max_duration)


def _too_long(what: str, duration: float, max_duration: float) -> AudioTooLong:
    return AudioTooLong(
        f"{what}; the limit is {max_duration:g} s.",
        details={"duration": round(duration, 3), "max_duration": max_duration},
    )


def _checked_blocks(
    blocks: Iterable[np.ndarray], sample_rate: int, max_duration: float
) -> Iterator[np.ndarray]:
    limit = (max_duration + DURATION_TOLERANCE) * sample_rate
    total = 0
    for block in blocks:
        _check_finite(block)
        total += block.shape[1]
        if total > limit:
            # Stop here: a file that understates its length may hold hours more.
            seconds = total / sample_rate
            message = f"The audio lasts more than {seconds:.1f} s"
            raise _too_long(message, seconds, max_duration)
        yield block
    if total == 0:
        raise UnsupportedAudio("The file contains no audio samples.")


def convert_channels(wav: np.ndarray, channels: int) -> np.ndarray:
    """Convert ``(C, T)`` audio to ``channels`` channels as Demucs does.

    Mono target: mean of all channels. Mono source: repeated. More source
    channels than asked: the first ``channels``. Fewer (but not mono): refused.
    """
    source = wav.shape[0]
    if source == channels:
        return wav
    if channels == 1:
        return wav.mean(axis=0, keepdims=True, dtype=wav.dtype)
    if source == 1:
        return np.repeat(wav, channels, axis=0)
    if source > channels:
        return np.ascontiguousarray(wav[:channels])
    raise UnsupportedAudio(
        f"The audio has {source} channels; {channels} are needed.",
        details={"channels": source},
    )


def clip(wav: np.ndarray, mode: ClipMode) -> np.ndarray:
    """Keep ``wav`` out of clipping as Demucs' ``prevent_clip`` does.

    ``rescale`` divides by ``max(1.01 * max|wav|, 1)``; ``clamp`` limits to
    [-0.99, 0.99]; ``none`` returns ``wav`` unchanged.
    """
    if mode == "none":
        return wav
    if mode == "clamp":
        return np.clip(wav, -0.99, 0.99)
    if mode == "rescale":
        peak = np.abs(wav).max() if wav.size else 0.0
        return wav / max(1.01 * peak, 1)
    raise InvalidRequest(
        f"Unknown clip mode {mode!r}; choose rescale, clamp or none.",
        details={"field": "clip"},
    )


def encode(
    wav: np.ndarray,
    sample_rate: int,
    *,
    format: FormatName = "wav",
    bit_depth: BitDepth = 16,
    mp3_bitrate: int = 320,
) -> bytes:
    """Encode float ``(channels, samples)`` audio as a complete file in memory.

    wav: 16-bit, 24-bit integer PCM or 32-bit float (``bit_depth=32``, values
    kept as they are, so a decode gives back the very same floats). flac: 16
    or 24-bit (32 is refused: FLAC has no float samples). mp3: LAME at
    ``mp3_bitrate`` kbps, one of :data:`MP3_BITRATES`; ``bit_depth`` is
    ignored. Integer formats and mp3 saturate samples outside [-1, 1].
    Raises :class:`InvalidRequest` for parameters the format cannot take.
    """
    if wav.ndim != 2 or wav.shape[0] < 1:
        raise ValueError(f"expected (channels, samples) audio, got shape {wav.shape}")
    encoder, bit_rate = _encoder(_output_format(format).name, bit_depth, mp3_bitrate)
    _check_encodable(encoder, wav.shape[0], sample_rate)
    return codecs.encode(wav.astype(np.float32, copy=False), sample_rate, encoder, bit_rate)


def encode_file(
    blocks: Iterable[np.ndarray],
    target: str | os.PathLike[str],
    sample_rate: int,
    channels: int,
    *,
    format: FormatName = "wav",
    bit_depth: BitDepth = 16,
    mp3_bitrate: int = 320,
) -> None:
    """Encode float ``(channels, n)`` blocks, in order, into the file ``target``.

    The same options and bytes as :func:`encode`, with one block in memory at a time.
    """
    encoder, bit_rate = _encoder(_output_format(format).name, bit_depth, mp3_bitrate)
    _check_encodable(encoder, channels, sample_rate)
    floats = (block.astype(np.float32, copy=False) for block in blocks)
    codecs.encode_blocks(floats, os.fspath(target), channels, sample_rate, encoder, bit_rate)


def check_output(format: str, bit_depth: int, mp3_bitrate: int) -> None:
    """Raise :class:`InvalidRequest` unless :func:`encode` takes these options."""
    _encoder(_output_format(format).name, bit_depth, mp3_bitrate)


def _encoder(
    format: FormatName, bit_depth: int, mp3_bitrate: int
) -> tuple[codecs.Encoder, int | None]:
    if format == "mp3":
        if mp3_bitrate not in MP3_BITRATES:
            raise InvalidRequest(
                f"mp3_bitrate must be one of {', '.join(map(str, MP3_BITRATES))} (kbps).",
                details={"field": "mp3_bitrate"},
            )
        return _MP3_ENCODER, mp3_bitrate * 1000
    encoder = _PCM_ENCODERS.get((format, bit_depth))
    if encoder is None:
        depths = "16, 24 or 32 (float)" if format == "wav" else "16 or 24"
        raise InvalidRequest(
            f"bit_depth {bit_depth} is not available for {format}; use {depths}.",
            details={"field": "bit_depth"},
        )
    return encoder, None


def _check_encodable(encoder: codecs.Encoder, channels: int, sample_rate: int) -> None:
    if encoder.codec != _MP3_ENCODER.codec:
        if not 1 <= channels <= 8 or sample_rate < 1:
            raise InvalidRequest(f"Cannot encode {channels} channels at {sample_rate} Hz.")
        return
    if channels > 2 or sample_rate not in _MP3_RATES:
        raise InvalidRequest(
            f"mp3 takes 1 or 2 channels at {', '.join(map(str, sorted(_MP3_RATES)))} Hz.",
            details={"channels": channels, "sample_rate": sample_rate},
        )

"""Synthetic audio files, good and broken, for tests of every tier and the benchmarks.

Plain functions (no fixtures): signals as float32 ``(channels, samples)`` arrays,
files as bytes (optionally also written to a path).
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any, BinaryIO

import av
import numpy as np

from pipelines.audio import FORMATS, encode, encode_file

# format -> (muxer, encoder, sample format, encoder options), for the formats
# users upload but the service never writes.
UPLOAD_FORMATS: dict[str, tuple[str, str, str, dict[str, str]]] = {
    "m4a": ("ipod", "aac", "fltp", {}),
    "aac": ("adts", "aac", "fltp", {}),
    "ogg": ("ogg", "vorbis", "fltp", {"strict": "experimental"}),
    "opus": ("ogg", "libopus", "flt", {}),
}
OPUS_RATE = 48000  # Opus encodes at 48 kHz (or 24/16/12/8), never 44.1 kHz

_TONES_HZ = (110.0, 220.0, 329.63, 440.0, 659.26, 880.0)


def sine_mix(
    duration: float, sample_rate: int = 44100, channels: int = 2, seed: int = 0
) -> np.ndarray:
    """A few tones plus a little noise, peaking below 0.7; each channel differs."""
    rng = np.random.default_rng(seed)
    t = np.arange(round(duration * sample_rate)) / sample_rate
    rows = []
    for _ in range(channels):
        amplitudes = rng.uniform(0.02, 0.1, len(_TONES_HZ))
        phases = rng.uniform(0, 2 * np.pi, len(_TONES_HZ))
        row = sum(
            a * np.sin(2 * np.pi * f * t + p)
            for a, f, p in zip(amplitudes, _TONES_HZ, phases, strict=True)
        )
        rows.append(row + rng.normal(0, 0.01, t.size))
    return np.asarray(rows, dtype=np.float32).reshape(channels, t.size)


def tone(
    frequency: float,
    duration: float,
    sample_rate: int = 44100,
    channels: int = 1,
    amplitude: float = 0.5,
) -> np.ndarray:
    """One pure sine, the same on every channel."""
    t = np.arange(round(duration * sample_rate)) / sample_rate
    row = amplitude * np.sin(2 * np.pi * frequency * t)
    return np.tile(row.astype(np.float32), (channels, 1))


def write_audio(
    path: str | os.PathLike[str] | None,
    wav: np.ndarray,
    sample_rate: int,
    format: str,
    **kwargs: Any,
) -> bytes:
    """Encode ``wav`` as ``format``; also write it to ``path`` when given.

    wav, flac and mp3 go through :func:`pipelines.audio.encode` (``kwargs`` are
    its options); m4a, aac, ogg (vorbis) and opus use PyAV's encoders.
    """
    if format in FORMATS:
        data = encode(wav, sample_rate, format=format, **kwargs)  # type: ignore[arg-type]
    else:
        data = encode_upload(wav, sample_rate, format)
    return _written(path, data)


def encode_upload(wav: np.ndarray, sample_rate: int, format: str) -> bytes:
    """Encode one of :data:`UPLOAD_FORMATS`; opus is resampled to 48 kHz."""
    muxer, codec, sample_format, options = UPLOAD_FORMATS[format]
    rate = OPUS_RATE if codec == "libopus" else sample_rate
    buffer = io.BytesIO()
    with av.open(buffer, "w", format=muxer) as container:
        stream = _audio_stream(container, wav.shape[0], codec, sample_format, rate, options)
        _encode_audio(container, stream, wav, sample_rate)
    return buffer.getvalue()


def video_with_audio(
    path: str | os.PathLike[str] | None, wav: np.ndarray, sample_rate: int
) -> bytes:
    """An mp4 with a small mpeg4 video stream first, then an aac audio stream."""
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as container:
        video = _video_stream(container)
        audio = _audio_stream(container, wav.shape[0], "aac", "fltp", sample_rate, {})
        _encode_video(container, video, wav.shape[1] / sample_rate)
        _encode_audio(container, audio, wav, sample_rate)
    return _written(path, buffer.getvalue())


def video_without_audio(path: str | os.PathLike[str] | None = None) -> bytes:
    """An mp4 holding one second of mpeg4 video and no audio stream at all."""
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as container:
        _encode_video(container, _video_stream(container), 1.0)
    return _written(path, buffer.getvalue())


def _written(path: str | os.PathLike[str] | None, data: bytes) -> bytes:
    if path is not None:
        with open(path, "wb") as file:
            file.write(data)
    return data


def _audio_stream(
    container: Any,
    channels: int,
    codec: str,
    sample_format: str,
    rate: int,
    options: dict[str, str],
) -> Any:
    stream = container.add_stream(codec, rate=rate, options=options)
    stream.layout = "mono" if channels == 1 else "stereo"
    stream.format = sample_format
    return stream


def _encode_audio(container: Any, stream: Any, wav: np.ndarray, sample_rate: int) -> None:
    layout = "mono" if wav.shape[0] == 1 else "stereo"
    for start in range(0, wav.shape[1], 4096):
        chunk = np.ascontiguousarray(wav[:, start : start + 4096], dtype=np.float32)
        frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout=layout)
        frame.sample_rate, frame.pts = sample_rate, start
        frame.time_base = Fraction(1, sample_rate)
        container.mux(stream.encode(frame))
    container.mux(stream.encode(None))


def _video_stream(container: Any, fps: int = 10) -> Any:
    stream = container.add_stream("mpeg4", rate=fps)
    stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
    return stream


def _encode_video(container: Any, stream: Any, duration: float) -> None:
    fps = int(stream.codec_context.framerate)
    for index in range(max(1, round(duration * fps))):
        pixels = np.full((48, 64, 3), (index * 20) % 256, dtype=np.uint8)
        frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
        frame.pts = index
        container.mux(stream.encode(frame))
    container.mux(stream.encode(None))


def random_bytes(n: int, seed: int = 0) -> bytes:
    """``n`` bytes of noise: no container FFmpeg knows."""
    return np.random.default_rng(seed).bytes(n)


def truncated(data: bytes, size: int | None = None) -> bytes:
    """The first ``size`` bytes of ``data`` (half of it by default)."""
    return data[: len(data) // 2 if size is None else size]


def wav_header_with_garbage(n: int = 4096, seed: int = 0) -> bytes:
    """A RIFF/WAVE signature followed by noise instead of ``fmt``/``data`` chunks."""
    body = b"WAVE" + random_bytes(n, seed)
    return b"RIFF" + len(body).to_bytes(4, "little") + body


def flac_declaring(wav: np.ndarray, sample_rate: int, declared: float) -> bytes:
    """A 16-bit flac of ``wav`` whose STREAMINFO claims it lasts ``declared`` s.

    Every frame is still there; STREAMINFO has no checksum, so only decoding
    to the end shows a length the header understates.
    """
    data = bytearray(encode(wav, sample_rate, format="flac", bit_depth=16))
    # "fLaC", a 4-byte block header, then STREAMINFO; its bytes 10..17 pack
    # rate (20 bits), channels (3), bits per sample (5), total samples (36).
    fields = int.from_bytes(data[18:26], "big")
    low36 = (1 << 36) - 1
    fields = (fields & ~low36) | round(declared * sample_rate)
    data[18:26] = fields.to_bytes(8, "big")
    return bytes(data)


def streaming_wav(wav: np.ndarray, sample_rate: int) -> bytes:
    """A 16-bit wav with unknown sizes (0xFFFFFFFF), as written to a pipe."""
    data = bytearray(encode(wav, sample_rate, format="wav", bit_depth=16))
    data[4:8] = b"\xff\xff\xff\xff"
    at = data.index(b"data")
    data[at + 4 : at + 8] = b"\xff\xff\xff\xff"
    return bytes(data)


def unseekable(data: bytes) -> BinaryIO:
    """A forward-only reader of ``data``, like a request body still arriving."""
    return io.BufferedReader(_ForwardOnly(data))


class _ForwardOnly(io.RawIOBase):
    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        chunk = self._data.read(len(buffer))
        buffer[: len(chunk)] = chunk
        return len(chunk)


def long_song(minutes: float, path: Path, sample_rate: int = 44100) -> Path:
    """A stereo chord progression with a little noise, as 16-bit WAV at ``path``,
    written 10 s at a time (an hour never sits in memory)."""

    def blocks() -> Iterator[np.ndarray]:
        rng = np.random.default_rng(0)
        block = 10 * sample_rate
        for first in range(0, int(minutes * 60 * sample_rate), block):
            t = (first + np.arange(block)) / sample_rate
            root = 110 * 2 ** ((first // block) % 12 / 12)
            mono = sum(0.15 * np.sin(2 * np.pi * root * k * t) for k in (1, 1.25, 1.5, 2))
            noise = 0.02 * rng.standard_normal((2, block))
            yield (np.stack([mono, 0.8 * mono]) + noise).astype(np.float32)

    encode_file(blocks(), path, sample_rate, 2, format="wav", bit_depth=16)
    return path

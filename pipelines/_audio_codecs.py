"""PyAV plumbing behind :mod:`pipelines.audio`.

Opening inputs (FFmpeg errors become :class:`UnsupportedAudio` here and nowhere
else), decoding through FFmpeg's resampler, and encoding with FFmpeg's encoders
and muxers into memory.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from fractions import Fraction
from typing import IO, Any

import av
import numpy as np
from av.audio.frame import AudioFrame
from av.audio.stream import AudioStream
from av.container import InputContainer

from pipelines.errors import UnsupportedAudio

# Undecodable packets are skipped, as the ffmpeg command line (which Demucs
# reads audio with) does; a truncated last packet or a stray glitch should not
# cost the whole file. Past this allowance the file is corrupt, not glitchy.
CORRUPT_PACKETS_ALLOWED = 2
CORRUPT_FRACTION_ALLOWED = 0.05
# Above the fastest real converters (768 kHz): a corrupt or hostile header, which
# FFmpeg's resampler would try to allocate filters for.
MAX_SAMPLE_RATE = 768_000
# More channels than any music or speech format carries (7.1 is 8): each source
# channel is decoded and resampled before the downmix, so a file declaring 64
# or 255 channels would cost that many times the memory of a stereo one.
MAX_CHANNELS = 8
# Decoded frames hold a few thousand samples; they are joined into blocks of about
# 1.5 s, so what each block costs in numpy (checks, statistics, writes) is paid on
# a few hundred blocks per track instead of thousands.
DECODE_BLOCK = 1 << 16
# The demuxers FFmpeg may pick for an input: the audio and video containers people
# send. Playlists (hls), scripts (concat), session descriptions (sdp) and the
# like open other files or sockets, so they are left out. FFmpeg matches each
# name against the demuxer's list of names ("mov" stands for mov,mp4,m4a,...).
ACCEPTED_CONTAINERS = (
    "wav", "w64", "aiff", "caf", "flac", "mp3", "aac", "ac3", "eac3", "ogg", "matroska",
    "mov", "asf", "avi", "au", "amr", "wv", "ape", "tta", "dsf", "mpegts",
)  # fmt: skip
ACCEPTED_FORMATS_TEXT = "wav, aiff, flac, mp3, aac, ogg/opus, m4a/mp4/mov, webm/mkv, wma"
# Input is only ever the bytes handed over: no demuxer may open a nested file, URL or
# socket ("none" names no protocol, so every nested open is refused).
_OPEN_OPTIONS = {
    "format_whitelist": ",".join(ACCEPTED_CONTAINERS),
    "protocol_whitelist": "none",
}
# Samples per channel handed to an encoder at a time: bounds the extra memory
# used for quantised copies of a long track.
ENCODE_BLOCK = 1 << 16
# No "Lavf" encoder tags: the same samples always give the same bytes.
_BITEXACT = {"fflags": "+bitexact"}


@dataclass(frozen=True)
class Encoder:
    """How one output format is produced with FFmpeg."""

    codec: str
    container: str
    sample_format: str
    bits: int | None = None  # integer PCM width; None keeps floats
    saturate: bool = False  # clip floats to [-1, 1] (integer PCM always does)


@contextmanager
def open_audio(source: Any) -> Iterator[tuple[InputContainer, AudioStream]]:
    """Open ``source`` and its first audio stream.

    Only the containers of :data:`ACCEPTED_CONTAINERS` are opened, and none may open
    anything but ``source``. FFmpeg errors raised inside the ``with`` block, while
    opening or decoding, surface as :class:`UnsupportedAudio`.
    """
    with ExitStack() as stack:
        file = _readable(source, stack)
        container = stack.enter_context(_open(file))
        try:
            yield container, first_audio_stream(container)
        except av.FFmpegError as exc:
            reason = exc.strerror or str(exc)
            raise UnsupportedAudio(f"Failed to decode audio: {reason}.") from exc


def _open(file: IO[bytes]) -> InputContainer:
    try:
        return av.open(file, "r", metadata_errors="replace", options=_OPEN_OPTIONS)
    except av.ArgumentError as exc:
        # What FFmpeg answers for a demuxer outside the allowlist.
        raise UnsupportedAudio(
            f"Failed to decode audio: the file is not in an accepted format "
            f"({ACCEPTED_FORMATS_TEXT}).",
        ) from exc
    except av.FFmpegError as exc:
        reason = exc.strerror or str(exc)
        raise UnsupportedAudio(f"Failed to decode audio: {reason}.") from exc


def _readable(source: Any, stack: ExitStack) -> IO[bytes]:
    if isinstance(source, bytes | bytearray | memoryview):
        return io.BytesIO(source)
    if isinstance(source, str | os.PathLike):
        # Opened here rather than by FFmpeg so a path is only ever a local
        # file, never an FFmpeg protocol URL ("concat:", "http:" ...).
        return stack.enter_context(open(source, "rb"))
    if getattr(source, "seekable", lambda: False)():
        source.seek(0)
    return source


def first_audio_stream(container: InputContainer) -> AudioStream:
    """The first audio stream, checked to declare channels and a sample rate."""
    if not container.streams.audio:
        raise UnsupportedAudio(
            "The file has no audio stream.",
            details={"container": container.format.name},
        )
    stream = container.streams.audio[0]
    rate, channels = stream.codec_context.sample_rate, stream.codec_context.channels
    if channels < 1 or not 1 <= rate <= MAX_SAMPLE_RATE:
        raise UnsupportedAudio(
            "The audio stream declares no channels or an impossible sample rate.",
            details={"channels": channels, "sample_rate": rate},
        )
    check_channels(channels)
    return stream


def check_channels(channels: int) -> None:
    """Refuse more than :data:`MAX_CHANNELS` source channels."""
    if channels > MAX_CHANNELS:
        raise UnsupportedAudio(
            f"The audio has {channels} channels; at most {MAX_CHANNELS} are accepted.",
            details={"channels": channels, "max_channels": MAX_CHANNELS},
        )


def declared_duration(container: InputContainer, stream: AudioStream) -> float:
    """Seconds the headers declare for ``stream``; 0.0 when they do not say."""
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration and container.duration > 0:
        return container.duration / av.time_base
    return 0.0


def decoded_blocks(
    container: InputContainer, stream: AudioStream, sample_rate: int
) -> Iterator[np.ndarray]:
    """Yield float32 ``(channels, n)`` blocks at ``sample_rate`` in the source layout,
    each of at least :data:`DECODE_BLOCK` samples but the last."""
    held: list[np.ndarray] = []
    count = 0
    for block in _resampled(container, stream, sample_rate):
        held.append(block)
        count += block.shape[1]
        if count >= DECODE_BLOCK:
            yield np.concatenate(held, axis=1)
            held, count = [], 0
    if held:
        yield np.concatenate(held, axis=1)


def _resampled(
    container: InputContainer, stream: AudioStream, sample_rate: int
) -> Iterator[np.ndarray]:
    """The decoded frames resampled, one array per frame."""
    resampler = _Resampler(sample_rate)
    for frame in _decoded_frames(container, stream):
        yield from resampler.push(frame)
    yield from resampler.flush()


def _decoded_frames(container: InputContainer, stream: AudioStream) -> Iterator[AudioFrame]:
    packets = failures = 0
    for packet in container.demux(stream):
        packets += 1
        try:
            frames = stream.decode(packet)
        except av.FFmpegError:
            failures += 1
            continue
        yield from frames
    if failures > CORRUPT_PACKETS_ALLOWED + CORRUPT_FRACTION_ALLOWED * packets:
        raise UnsupportedAudio(
            "Failed to decode audio: the stream is corrupt.",
            details={"corrupt_packets": failures, "packets": packets},
        )


class _Resampler:
    """FFmpeg's resampler to float32 at one rate, keeping the source layout.

    Rebuilt when the input changes format mid-stream (chained or concatenated
    files), which a single PyAV resampler refuses.
    """

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self._inner: av.AudioResampler | None = None
        self._source: tuple[str, str, int] | None = None
        self._channels: int | None = None

    def push(self, frame: AudioFrame) -> Iterator[np.ndarray]:
        source = (frame.format.name, frame.layout.name, frame.sample_rate)
        if source != self._source:
            yield from self.flush()
            self._start(frame, source)
        yield from self._run(frame)

    def flush(self) -> Iterator[np.ndarray]:
        yield from self._run(None)
        self._inner, self._source = None, None

    def _start(self, frame: AudioFrame, source: tuple[str, str, int]) -> None:
        channels = frame.layout.nb_channels
        check_channels(channels)  # frames can disagree with the stream's header
        if self._channels is not None and channels != self._channels:
            raise UnsupportedAudio("The number of audio channels changes mid-stream.")
        self._channels, self._source = channels, source
        self._inner = av.AudioResampler(format="flt", rate=self.rate)

    def _run(self, frame: AudioFrame | None) -> Iterator[np.ndarray]:
        if self._inner is None:
            return
        for out in self._inner.resample(frame):
            # A pass-through resampler hands back its input, None when flushed.
            if out is not None and out.samples:
                # Packed samples, split here: PyAV miscounts the planes of a planar
                # frame with 8 or more channels and reads past them (a segfault).
                yield out.to_ndarray().reshape(out.samples, -1).T


def encode(
    samples: np.ndarray, sample_rate: int, encoder: Encoder, bit_rate: int | None = None
) -> bytes:
    """Encode float32 ``(channels, n)`` samples into an in-memory file."""
    buffer = io.BytesIO()
    blocks = (samples[:, i : i + ENCODE_BLOCK] for i in range(0, samples.shape[1], ENCODE_BLOCK))
    encode_blocks(blocks, buffer, samples.shape[0], sample_rate, encoder, bit_rate)
    return buffer.getvalue()


def encode_blocks(
    blocks: Iterable[np.ndarray],
    target: Any,
    channels: int,
    sample_rate: int,
    encoder: Encoder,
    bit_rate: int | None = None,
) -> None:
    """Encode float32 ``(channels, n)`` blocks, in order, into ``target`` (a path or a
    seekable binary file): one block in memory at a time."""
    with av.open(target, "w", format=encoder.container, container_options=_BITEXACT) as container:
        stream = container.add_stream(encoder.codec, rate=sample_rate)
        assert isinstance(stream, AudioStream)
        stream.layout = _layout(channels)
        stream.format = encoder.sample_format
        if bit_rate is not None:
            stream.codec_context.bit_rate = bit_rate
        container.start_encoding()  # headers even when there are no samples
        position = 0
        for block in blocks:
            for frame in _frames(block, sample_rate, encoder, position):
                container.mux(stream.encode(frame))
            position += block.shape[1]
        container.mux(stream.encode(None))


def _layout(channels: int) -> str:
    return {1: "mono", 2: "stereo"}.get(channels, f"{channels} channels")


def _frames(
    samples: np.ndarray, sample_rate: int, encoder: Encoder, first: int = 0
) -> Iterator[AudioFrame]:
    layout = _layout(samples.shape[0])
    for start in range(0, samples.shape[1], ENCODE_BLOCK):
        block = to_pcm(samples[:, start : start + ENCODE_BLOCK], encoder)
        if not encoder.sample_format.endswith("p"):  # packed: interleaved, one plane
            block = interleave(block).reshape(1, -1)
        frame = AudioFrame.from_ndarray(
            np.ascontiguousarray(block), format=encoder.sample_format, layout=layout
        )
        frame.sample_rate, frame.pts = sample_rate, first + start
        frame.time_base = Fraction(1, sample_rate)
        yield frame


def interleave(samples: np.ndarray) -> np.ndarray:
    """``(channels, n)`` samples as a C-contiguous ``(n, channels)`` array (frames in turn).

    Free when ``samples`` is already a view of interleaved memory; otherwise a copy
    built channel by channel, which numpy does several times faster than a
    transposing copy (``np.ascontiguousarray(samples.T)``).
    """
    if samples.T.flags.c_contiguous:
        return samples.T
    return np.stack(tuple(samples), axis=-1)


def to_pcm(block: np.ndarray, encoder: Encoder) -> np.ndarray:
    """Float samples as the encoder takes them; integer PCM saturates, never wraps.

    Integers follow Demucs' writers: scale by ``2**(bits-1) - 1`` and truncate;
    24-bit samples ride in the top bits of an int32, as FFmpeg expects.
    """
    if encoder.bits is None:
        return np.clip(block, -1.0, 1.0) if encoder.saturate else block
    full_scale = 2 ** (encoder.bits - 1) - 1
    ints = (np.clip(block, -1.0, 1.0) * full_scale).astype(np.int32)
    return ints.astype(np.int16) if encoder.bits == 16 else ints << 8

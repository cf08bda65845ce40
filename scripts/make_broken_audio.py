"""Write a corpus of broken, hostile and odd audio files into a directory.

Run: ``.venv/bin/python -m scripts.make_broken_audio DIR`` (from the repository root).
Tests call :func:`write_corpus` into a temporary directory, so no binaries are committed.
Every file is small (the largest, ``oversized.wav``, is ``--oversized-mb``) and the
set is made in about a second.
"""

from __future__ import annotations

import argparse
import io
import struct
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from harness.audio import (
    random_bytes,
    sine_mix,
    truncated,
    video_without_audio,
    wav_header_with_garbage,
)
from pipelines.audio import encode

RATE = 44100
ONE_HOUR = 3600.0


def wav_header(
    *, channels: int, rate: int, bits: int = 16, data_bytes: int, fmt_tag: int = 1
) -> bytes:
    """A canonical 44-byte RIFF/WAVE header; the sizes and fields say whatever they are told."""
    block_align = channels * bits // 8
    fmt = struct.pack(
        "<HHIIHH", fmt_tag, channels, rate, rate * block_align & 0xFFFFFFFF, block_align, bits
    )
    riff_size = min(4 + 8 + len(fmt) + 8 + data_bytes, 0xFFFFFFFF)
    return (
        b"RIFF"
        + struct.pack("<I", riff_size)
        + b"WAVE"
        + b"fmt "
        + struct.pack("<I", len(fmt))
        + fmt
        + b"data"
        + struct.pack("<I", min(data_bytes, 0xFFFFFFFF))
    )


def pcm16(seconds: float, channels: int = 2, rate: int = RATE) -> bytes:
    """Interleaved 16-bit samples of a quiet sine mix."""
    wav = sine_mix(seconds, rate, channels=channels, seed=3)
    return (np.clip(wav.T, -1, 1) * 32767).astype("<i2").tobytes()


def small_mp3(seconds: float = 2.0) -> bytes:
    return encode(sine_mix(seconds, RATE), RATE, format="mp3", mp3_bitrate=128)


def silent_flac(seconds: float, rate: int = 8000, block: int = 1 << 16) -> bytes:
    """``seconds`` of mono digital silence as 16-bit FLAC, encoded block by block.

    FLAC stores constant blocks in a few bytes, so an hour is about 100 kB.
    """
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="flac") as container:
        stream = container.add_stream("flac", rate=rate)
        stream.layout, stream.format = "mono", "s16"
        zeros = np.zeros((1, block), dtype=np.int16)
        total = round(seconds * rate)
        for start in range(0, total, block):
            n = min(block, total - start)
            frame = av.AudioFrame.from_ndarray(zeros[:, :n], format="s16", layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = rate, start, Fraction(1, rate)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return buffer.getvalue()


def flac_claiming(data: bytes, samples: int) -> bytes:
    """``data`` (a FLAC file) with STREAMINFO's 36-bit total-samples field set to ``samples``."""
    patched = bytearray(data)
    fields = int.from_bytes(patched[18:26], "big")
    low36 = (1 << 36) - 1
    patched[18:26] = ((fields & ~low36) | samples).to_bytes(8, "big")
    return bytes(patched)


def id3_tag(declared: int, body: bytes = b"") -> bytes:
    """An ID3v2.4 header whose (syncsafe) size says ``declared`` bytes, then ``body``."""
    size = bytes((declared >> shift) & 0x7F for shift in (21, 14, 7, 0))
    return b"ID3\x04\x00\x00" + size + body


def png_image() -> bytes:
    """A real 64x48 PNG."""
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="image2pipe") as container:
        stream = container.add_stream("png", rate=1)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "rgb24"
        pixels = np.full((48, 64, 3), 200, dtype=np.uint8)
        container.mux(stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")))
        container.mux(stream.encode(None))
    return buffer.getvalue()


def float_wav_with_nan(seconds: float = 1.0) -> bytes:
    """A 32-bit float WAV (format tag 3) whose samples are NaN and infinities."""
    samples = np.full((round(seconds * RATE), 2), np.nan, dtype="<f4")
    samples[::3] = np.inf
    samples[1::3] = -np.inf
    data = samples.tobytes()
    return wav_header(channels=2, rate=RATE, bits=32, data_bytes=len(data), fmt_tag=3) + data


def _wav(channels: int, rate: int, *, declared: int | None = None, seconds: float = 1.0) -> bytes:
    data = pcm16(seconds, channels=max(channels, 1))
    size = len(data) if declared is None else declared
    return wav_header(channels=channels, rate=rate, data_bytes=size) + data


CORPUS: dict[str, Callable[[], bytes]] = {
    "zero_length.wav": lambda: b"",
    "random_noise.mp3": lambda: random_bytes(20_000, seed=1),
    "text_file.wav": lambda: b"This is not audio, just a text file with a .wav name.\n" * 50,
    "riff_header_then_garbage.wav": lambda: wav_header_with_garbage(8192, seed=2),
    "pcm_header_then_nothing.wav": lambda: wav_header(channels=2, rate=RATE, data_bytes=0),
    "truncated_mid_frame.mp3": lambda: truncated(small_mp3(), 700),
    "truncated_half.mp3": lambda: truncated(small_mp3()),
    "wav_declaring_4gb.wav": lambda: _wav(2, RATE, declared=0xFFFFFFF0),
    "wav_declaring_one_hour.wav": lambda: _wav(2, RATE, declared=int(ONE_HOUR * RATE * 4)),
    "wav_huge_sample_rate.wav": lambda: _wav(2, 0x7FFFFFFF),
    "wav_zero_sample_rate.wav": lambda: _wav(2, 0),
    "wav_zero_channels.wav": lambda: _wav(0, RATE),
    "wav_eight_channels.wav": lambda: _wav(8, RATE, seconds=0.5),
    "float_wav_nan.wav": float_wav_with_nan,
    "silence_one_hour.flac": lambda: silent_flac(ONE_HOUR),
    "one_hour_claiming_ten_seconds.flac": lambda: flac_claiming(silent_flac(ONE_HOUR), 80_000),
    "two_seconds_claiming_one_hour.flac": lambda: flac_claiming(silent_flac(2.0), 8000 * 3600),
    "video_without_audio.mp4": lambda: video_without_audio(None),
    "id3_declaring_256mb.mp3": lambda: id3_tag(0x0FFFFFFF) + small_mp3(),
    "id3_only.mp3": lambda: id3_tag(4096, bytes(4096)),
    "png_then_mp3.mp3": lambda: png_image() + small_mp3(),
    "opus_64_channels.opus": lambda: opus_many_channels(64),
}
"""File name → maker. Names say what each file is; the extension is what a client would send."""


def opus_many_channels(channels: int = 64, seconds: float = 1.0) -> bytes:
    """Silent Opus in ``channels`` channels (mapping family 255): a few kB that would
    decode to ``channels`` full-rate float tracks (a channel bomb)."""
    rate, frame = 48000, 960
    layout = av.AudioLayout(f"{channels} channels")
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="ogg") as container:
        stream = container.add_stream("libopus", rate=rate, options={"mapping_family": "255"})
        stream.layout, stream.format = layout, "flt"
        silence = np.zeros((1, frame * channels), dtype=np.float32)
        for index in range(round(seconds * rate / frame)):
            chunk = av.AudioFrame.from_ndarray(silence, format="flt", layout=layout)
            chunk.sample_rate, chunk.pts = rate, index * frame
            chunk.time_base = Fraction(1, rate)
            container.mux(stream.encode(chunk))
        container.mux(stream.encode(None))
    return buffer.getvalue()


SDP = (
    b"v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=stream\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    b"m=audio 5004 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
)
"""A session description: FFmpeg's sdp demuxer would bind the UDP port and wait."""


def hostile(directory: Path) -> dict[str, bytes]:
    """Files that make FFmpeg open something else: a file beside them, or the network.

    ``server_side/secret.mp3`` stands for a file on the server that no client may read;
    each of these names it (or a loopback address) from inside an innocent-looking upload.
    """
    secret = directory / "server_side" / "secret.mp3"
    secret.parent.mkdir(parents=True, exist_ok=True)
    secret.write_bytes(small_mp3())
    segment = "#EXTINF:2.0,\n{}\n"
    playlist = "#EXTM3U\n#EXT-X-TARGETDURATION:2\n{}#EXT-X-ENDLIST\n"
    return {
        "playlist_server_file.m3u8": playlist.format(segment.format(secret.as_uri())).encode(),
        "playlist_loopback_http.m3u8": playlist.format(
            segment.format("http://127.0.0.1:9/secret.mp3")
        ).encode(),
        "playlist_named_song.mp3": playlist.format(segment.format(secret.as_uri())).encode(),
        "concat_script.wav": f"ffconcat version 1.0\nfile '{secret}'\n".encode(),
        "session_description.wav": SDP,
    }


def oversized_wav(megabytes: float) -> bytes:
    """A well-formed WAV of noise, ``megabytes`` long: honest, just too big to upload."""
    data = random_bytes(int(megabytes * 1024 * 1024) // 4 * 4, seed=4)
    return wav_header(channels=2, rate=RATE, data_bytes=len(data)) + data


def write_corpus(directory: Path, *, oversized_mb: float = 9.0) -> dict[str, Path]:
    """Write every file of :data:`CORPUS`, the :func:`hostile` files and ``oversized.wav``
    into ``directory`` (the hostile files' target lands in ``directory/server_side``)."""
    directory.mkdir(parents=True, exist_ok=True)
    contents = {name: make() for name, make in CORPUS.items()}
    contents |= hostile(directory)
    contents["oversized.wav"] = oversized_wav(oversized_mb)
    paths = {}
    for name, data in contents.items():
        paths[name] = directory / name
        paths[name].write_bytes(data)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", type=Path)
    parser.add_argument("--oversized-mb", type=float, default=9.0)
    args = parser.parse_args()
    for name, path in write_corpus(args.directory, oversized_mb=args.oversized_mb).items():
        print(f"{path.stat().st_size:>12,}  {name}")


if __name__ == "__main__":
    main()

"""Stems on local disk: written a stretch at a time, then encoded a block at a time.

The streaming stitch hands on finished stretches of every source; :class:`StemScratch`
denormalises them, keeps the stems a job asked for (``two_stems=x`` gives ``x`` and
``no_x``, the sum of the others, computed per stretch), appends them to one float32
file per stem and tracks each stem's peak, which the ``rescale`` clip mode needs
before the first sample can be written out.
"""

from __future__ import annotations

import shutil
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from pipelines import audio
from pipelines.jobs.params import SeparationParams
from pipelines.separation import Normalisation, denormalise
from pipelines.separation.track import ScratchTrack

Array = npt.NDArray[np.float32]
ENCODE_BLOCK = 1 << 18
"""Samples per channel read back for encoding at a time (about 2 MB of stereo)."""
ZIP_CHUNK = 1 << 20
"""Bytes copied into the ZIP at a time."""


def stem_names(sources: list[str], params: SeparationParams) -> list[str]:
    """The stems a job writes, in output order."""
    if params.two_stems is not None:
        return [params.two_stems, f"no_{params.two_stems}"]
    return list(params.stems or sources)


@dataclass
class StemScratch:
    """One float32 scratch file per requested stem, filled in track order."""

    folder: Path
    sources: list[str]
    params: SeparationParams
    channels: int
    norm: Normalisation
    tracks: dict[str, ScratchTrack] = field(init=False)
    peaks: dict[str, np.float32] = field(init=False)

    def __post_init__(self) -> None:
        names = stem_names(self.sources, self.params)
        self.tracks = {n: ScratchTrack(self.folder / f"stem-{n}.f32", self.channels) for n in names}
        self.peaks = dict.fromkeys(names, np.float32(0.0))
        for track in self.tracks.values():
            track.path.write_bytes(b"")

    def append(self, stretch: Array) -> None:
        """Add the next ``(sources, channels, n)`` stretch of the normalised estimate."""
        if stretch.shape[-1] == 0:
            return
        stems = denormalise(stretch, self.norm)
        for name, samples in self._select(stems).items():
            track = self.tracks[name]
            with track.path.open("ab") as file:
                file.write(audio.interleave(samples.astype(np.float32, copy=False)).tobytes())
            track.length += samples.shape[-1]
            self.peaks[name] = max(self.peaks[name], np.abs(samples).max())

    def _select(self, stems: Array) -> dict[str, Array]:
        two = self.params.two_stems
        if two is not None:
            index = self.sources.index(two)
            rest = [stems[i] for i in range(len(self.sources)) if i != index]
            return {two: stems[index], f"no_{two}": np.sum(rest, axis=0)}
        return {name: stems[self.sources.index(name)] for name in self.tracks}

    def encode(self, name: str, target: Path, sample_rate: int, drop: bool = True) -> Path:
        """Encode the stem into ``target`` in the job's format, a block at a time;
        ``drop``: remove its float copy afterwards."""
        params = self.params
        audio.encode_file(
            _clipped(self.tracks[name], self.peaks[name], params.clip),
            target,
            sample_rate,
            self.channels,
            format=params.format,
            bit_depth=params.bit_depth,
            mp3_bitrate=params.mp3_bitrate,
        )
        if drop:
            self.tracks[name].path.unlink()
        return target

    def write_float_wav(self, name: str, target: Path, sample_rate: int) -> Path:
        """The stem as it came out of the model (no clipping), as a 32-bit float WAV."""
        blocks = self.tracks[name].blocks(ENCODE_BLOCK)
        audio.encode_file(blocks, target, sample_rate, self.channels, format="wav", bit_depth=32)
        return target


def _clipped(track: ScratchTrack, peak: np.float32, mode: audio.ClipMode) -> Iterator[Array]:
    # ``rescale`` divides the whole stem by one factor, as ``audio.clip`` does on a
    # whole array (float32 arithmetic, as there); the tracked peak gives that factor
    # before the first block.
    scale: Any = max(1.01 * peak, 1)
    for block in track.blocks(ENCODE_BLOCK):
        if mode == "rescale":
            yield block / scale
        else:
            yield audio.clip(block, mode)


def write_zip(target: Path, files: list[Path]) -> Path:
    """A stored (not deflated) ZIP of ``files``, copied from disk in chunks.

    Audio barely compresses (a 60 s 4-stem WAV set shrank 6 % for a second of CPU
    taken from the model on a small machine).
    """
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for path in files:
            entry = zipfile.ZipInfo.from_file(path, path.name)
            # ``ZipFile.write`` copies 8 KiB at a time, slower by half on stems of 100 MB.
            with path.open("rb") as source, archive.open(entry, "w") as sink:
                shutil.copyfileobj(source, sink, ZIP_CHUNK)
    return target

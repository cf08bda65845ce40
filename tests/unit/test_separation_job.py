"""The streaming separation job equals ``apply_model`` and the whole-track computation."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import torch
from demucs.apply import apply_model
from demucs.pretrained import get_model

from harness.models import save_bag, save_random_htdemucs
from pipelines import audio
from pipelines.jobs import JobRecord, JobStore, SeparationParams, new_job_id
from pipelines.jobs.context import JobContext
from pipelines.jobs.separation import SeparationEngine, separate
from pipelines.separation import BatchOutput, Separator, WindowBatch, load_model, timed_batch
from pipelines.separation.normalise import normalise
from pipelines.separation.runner import separate as separate_in_memory
from pipelines.separation.track import RunningStats, ScratchTrack
from pipelines.storage import LocalStorage
from pipelines.storage.signing import UrlSigner
from tests.unit.test_separation import SR, TINY

pytestmark = pytest.mark.unit

Array = npt.NDArray[np.float32]


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread() -> Any:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("models")
    save_random_htdemucs(root, "tiny_a", seed=1, **TINY)
    save_random_htdemucs(root, "tiny_b", seed=2, **TINY)
    save_bag(root, "tiny_bag", ["tiny_a", "tiny_b"], weights=[[1, 0.5, 0, 2], [0.25, 1, 1, 3]])
    return root


def engine_for(separator: Separator, max_inflight: int = 2, batch: int = 2) -> SeparationEngine:
    async def forward(batch: WindowBatch) -> BatchOutput:
        return timed_batch(separator.models[batch.sub_model], batch.windows)

    return SeparationEngine(separator, forward, batch_size=batch, max_inflight=max_inflight)


def song(length: int, seed: int = 0) -> Array:
    rng = np.random.default_rng(seed)
    return (0.3 * rng.standard_normal((2, length)) + 0.02).astype(np.float32)


async def _run_job(
    tmp_path: Path, separator: Separator, wav: Array, params: SeparationParams, seed: int
) -> tuple[dict[str, Array], JobRecord, Path]:
    """Run the job body on ``wav`` (as a float WAV) and decode every stem it uploaded."""
    storage = LocalStorage(tmp_path / "store", UrlSigner(b"k" * 32), 60)
    record = JobRecord(
        new_job_id(), "separation", "me", params.model_dump(), {}, info={"seed": seed}
    )
    folder = tmp_path / "scratch"
    folder.mkdir()
    source = folder / "input.wav"
    source.write_bytes(audio.encode(wav, separator.samplerate, format="wav", bit_depth=32))
    ctx = JobContext(JobStore(storage), record)
    await separate(ctx, engine_for(separator), params, source, folder, max_seconds=3600)
    stems = {
        o.name: audio.decode(storage.path(o.key), sample_rate=separator.samplerate, channels=2)
        for o in record.outputs
    }
    return stems, record, folder


def run_job(
    tmp_path: Path, separator: Separator, wav: Array, params: SeparationParams, seed: int
) -> tuple[dict[str, Array], JobRecord, Path]:
    return asyncio.run(_run_job(tmp_path, separator, wav, params, seed))


def apply_model_reference(
    model: Any, wav: Array, *, shifts: int, overlap: float, seed: int
) -> Array:
    """demucs' own normalised separation, as ``demucs.api.Separator`` runs it."""
    ref = torch.from_numpy(wav).mean(0)
    mean, std = ref.mean(), ref.std() + 1e-8
    mix = (torch.from_numpy(wav) - mean) / std
    state = random.getstate()
    random.seed(seed)
    try:
        with torch.no_grad():
            out = apply_model(model, mix[None], shifts=shifts, split=True, overlap=overlap)
    finally:
        random.setstate(state)
    result: Array = (out[0] * std + mean).numpy()
    return result


@pytest.mark.parametrize(("shifts", "overlap"), [(1, 0.37), (2, 0.25)])
def test_bag_with_shifts_equals_apply_model(
    tmp_path: Path, repo: Path, shifts: int, overlap: float
) -> None:
    bag = load_model("tiny_bag", repo)
    wav = song(3 * SR + 1234, seed=shifts)
    params = SeparationParams(
        model="tiny_bag", format="wav", bit_depth=32, clip="none", shifts=shifts, overlap=overlap
    )
    stems, record, folder = run_job(tmp_path, bag, wav, params, seed=11)
    expected = apply_model_reference(
        get_model("tiny_bag", repo), wav, shifts=shifts, overlap=overlap, seed=11
    )
    assert np.abs(expected).max() > 1e-2
    for k, name in enumerate(bag.sources):
        np.testing.assert_allclose(stems[name], expected[k], rtol=0, atol=1e-4)
    assert record.info["windows"] > 0
    assert sorted(p.name for p in folder.iterdir()) == ["input.wav"]  # scratch given back
    assert {"decode", "forward", "queue_wait", "stitch", "encode", "upload"} <= set(record.timings)


def test_two_stems_and_rescale_equal_the_whole_track_computation(
    tmp_path: Path, repo: Path
) -> None:
    single = load_model("tiny_a", repo)
    wav = 20.0 * song(2 * SR + 77, seed=3)  # loud: rescale has to act
    params = SeparationParams(
        model="tiny_a", two_stems="vocals", format="wav", bit_depth=32, clip="rescale", shifts=1
    )
    stems, _, _ = run_job(tmp_path, single, wav, params, seed=5)
    whole = separate_in_memory(single, wav, overlap=0.25, shifts=1, seed=5)
    vocals = whole[3]
    rest = np.sum([whole[i] for i in range(3)], axis=0)
    np.testing.assert_allclose(stems["vocals"], audio.clip(vocals, "rescale"), rtol=0, atol=1e-6)
    np.testing.assert_allclose(stems["no_vocals"], audio.clip(rest, "rescale"), rtol=0, atol=1e-6)
    assert np.abs(rest).max() > 1  # the rescale was not a no-op


def test_three_minute_track_equals_the_whole_track_computation(tmp_path: Path, repo: Path) -> None:
    """3 minutes: the stems the whole-track computation (the job before streaming)
    wrote, within float32 rounding."""
    single = load_model("tiny_a", repo)
    wav = song(SR * 180, seed=9)
    params = SeparationParams(model="tiny_a", format="wav", bit_depth=32, shifts=0)
    stems, record, _ = run_job(tmp_path, single, wav, params, seed=2)
    whole = separate_in_memory(single, wav, overlap=0.25, shifts=0, seed=2, batch_size=2)
    assert record.info["duration"] == 180
    for k, name in enumerate(single.sources):
        np.testing.assert_allclose(stems[name], audio.clip(whole[k], "rescale"), rtol=0, atol=1e-6)


def test_stems_upload_in_order_and_a_failed_upload_fails_the_job_as_itself(
    tmp_path: Path, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    single = load_model("tiny_a", repo)
    params = SeparationParams(model="tiny_a", format="wav", bit_depth=16)
    _, record, _ = run_job(tmp_path / "ok", single, song(SR), params, seed=0)
    assert [o.name for o in record.outputs] == single.sources  # encoded two at a time
    assert record.archive is not None and record.archive.filename == "stems.zip"

    real = JobContext.write_output_file

    async def failing(self: JobContext, name: str, *args: Any) -> Any:
        if name == "bass":
            raise OSError("No space left on device")
        return await real(self, name, *args)

    monkeypatch.setattr(JobContext, "write_output_file", failing)
    with pytest.raises(OSError, match="No space left"):
        run_job(tmp_path / "full", single, song(SR), params, seed=0)


def test_running_stats_equal_whole_track_normalisation() -> None:
    wav = song(100_003, seed=4) + 0.1
    stats = RunningStats()
    for first in range(0, wav.shape[-1], 4096):
        stats.add(wav[:, first : first + 4096])
    streamed = stats.normalisation()
    _, whole = normalise(wav)
    assert streamed.mean == pytest.approx(whole.mean, rel=1e-12)
    assert streamed.std == pytest.approx(whole.std, rel=1e-12)
    assert np.float32(streamed.mean) == np.float32(whole.mean)
    assert np.float32(streamed.scale) == np.float32(whole.scale)


def test_scratch_track_windows_are_the_normalised_track_with_zero_padding(
    tmp_path: Path,
) -> None:
    wav = song(5000, seed=1)
    normed, norm = normalise(wav)
    track = ScratchTrack.write(
        tmp_path / "t.f32", 2, (wav[:, i : i + 999] for i in range(0, 5000, 999))
    )
    assert track.length == 5000
    for first, length in [(-300, 1000), (0, 5000), (4500, 1000), (-10, 6000), (1234, 1)]:
        expected = np.zeros((2, length), np.float32)
        lo, hi = max(0, first), min(5000, first + length)
        expected[:, lo - first : hi - first] = normed[:, lo:hi]
        np.testing.assert_array_equal(track.window(first, length, norm), expected)

"""A DemucsWorker's passes: calls of several jobs share them; where they run."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
import torch

from pipelines.separation import (
    BatchKey,
    BatchOutput,
    PassReport,
    WindowBatch,
    WindowBatcher,
    run_batch,
    timed_batch,
)
from pipelines.separation.device import Precision, SimulatedDevice, TorchDevice
from tests.unit.test_separation import SR, tiny_htdemucs

pytestmark = pytest.mark.unit


def windows(count: int, seed: int, length: int = 64) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((count, 2, length)).astype(np.float32)


class HeldDevice:
    """A fake forward pass (sources = window x 1, x 2) that waits for ``release``."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.passes: list[int] = []

    async def __call__(self, key: BatchKey, stacked: np.ndarray) -> BatchOutput:
        self.passes.append(len(stacked))
        await self.release.wait()
        return BatchOutput(np.stack([stacked, 2 * stacked], axis=1), 0.5)


def test_waiting_calls_of_several_jobs_share_a_pass_and_get_their_own_outputs() -> None:
    async def scenario() -> None:
        device = HeldDevice()
        reports: list[PassReport] = []
        batcher = WindowBatcher(device, max_windows=5, wait_s=0, on_pass=reports.append)
        calls = [WindowBatch(f"job-{i % 3}", 0, windows(1 + i % 2, seed=i)) for i in range(7)]
        first = asyncio.create_task(batcher.run("m", calls[0]))
        await asyncio.sleep(0.01)  # the first pass now holds the device
        rest = [asyncio.create_task(batcher.run("m", call)) for call in calls[1:]]
        await asyncio.sleep(0.01)
        device.release.set()
        results = await asyncio.gather(first, *rest)
        for call, result in zip(calls, results, strict=True):
            expected = np.stack([call.windows, 2 * call.windows], axis=1)
            np.testing.assert_array_equal(result.outputs, expected)
            assert result.forward_seconds == 0.5
        # 1 alone, then the 9 windows that waited in passes of at most 5, in arrival order.
        assert device.passes == [1, 5, 4]
        assert [r.calls for r in reports] == [1, 3, 3]
        assert batcher.shared_passes == 2 and batcher.passes == 3 and batcher.windows == 10
        assert all(r.jobs > 1 for r in reports[1:])
        assert all(wait >= 0 for r in reports for wait in r.waits)

    asyncio.run(scenario())


def test_a_job_with_many_calls_waiting_shares_each_pass_with_the_others() -> None:
    """One job's calls all arrive before another's: the passes still take turns."""

    async def scenario() -> None:
        device = HeldDevice()
        batcher = WindowBatcher(device, max_windows=4, wait_s=0)
        first = asyncio.create_task(batcher.run("m", WindowBatch("job-a", 0, windows(2, 0))))
        await asyncio.sleep(0.01)  # the first pass now holds the device
        calls = [WindowBatch("job-a", 0, windows(2, seed=i)) for i in range(1, 4)]
        calls += [WindowBatch("job-b", 0, windows(2, seed=i)) for i in range(4, 6)]
        rest = [asyncio.create_task(batcher.run("m", call)) for call in calls]
        await asyncio.sleep(0.01)
        device.release.set()
        results = await asyncio.gather(first, *rest)
        for call, result in zip(calls, results[1:], strict=True):
            np.testing.assert_array_equal(result.outputs[:, 1], 2 * call.windows)
        assert device.passes == [2, 4, 4, 2]
        assert batcher.shared_passes == 2  # a+b, a+b, then a's last call alone

    asyncio.run(scenario())


def test_calls_for_other_models_or_shapes_never_share_a_pass() -> None:
    async def scenario() -> None:
        device = HeldDevice()
        device.release.set()
        batcher = WindowBatcher(device, max_windows=16, wait_s=0.01)
        calls = [
            ("a", WindowBatch("j1", 0, windows(2, 1))),
            ("a", WindowBatch("j2", 1, windows(2, 2))),  # another sub-model
            ("b", WindowBatch("j3", 0, windows(2, 3))),  # another model
            ("a", WindowBatch("j4", 0, windows(2, 4, length=32))),  # another window length
            ("a", WindowBatch("j5", 0, windows(2, 5))),  # joins j1
        ]
        results = await asyncio.gather(*(batcher.run(model, call) for model, call in calls))
        assert sorted(device.passes) == [2, 2, 2, 4]
        assert batcher.shared_passes == 1
        for (_, call), result in zip(calls, results, strict=True):
            np.testing.assert_array_equal(result.outputs[:, 0], call.windows)

    asyncio.run(scenario())


def test_a_failed_pass_fails_every_call_in_it() -> None:
    async def broken(key: BatchKey, stacked: np.ndarray) -> BatchOutput:
        await asyncio.sleep(0.01)
        raise RuntimeError("device lost")

    async def scenario() -> None:
        batcher = WindowBatcher(broken, max_windows=8, wait_s=0.005)
        calls = [batcher.run("m", WindowBatch(f"j{i}", 0, windows(1, i))) for i in range(3)]
        results = await asyncio.gather(*calls, return_exceptions=True)
        assert all(isinstance(r, RuntimeError) and str(r) == "device lost" for r in results)

    asyncio.run(scenario())


def test_a_shared_pass_of_a_real_htdemucs_equals_each_jobs_own_pass() -> None:
    """HTDemucs normalises per window: a window's output does not depend on its batch."""
    model = tiny_htdemucs(3)
    length = int(model.segment * SR)

    async def forward(key: BatchKey, stacked: np.ndarray) -> BatchOutput:
        return timed_batch(model, stacked)

    async def scenario() -> list[BatchOutput]:
        batcher = WindowBatcher(forward, max_windows=8, wait_s=0.02)
        calls = [
            WindowBatch(f"job-{i}", 0, windows(1 + i, seed=10 + i, length=length)) for i in range(3)
        ]
        results = await asyncio.gather(*(batcher.run("tiny", call) for call in calls))
        assert batcher.shared_passes == 1 and batcher.passes == 1
        for call, result in zip(calls, results, strict=True):
            alone = run_batch(model, call.windows)
            np.testing.assert_allclose(result.outputs, alone, rtol=0, atol=1e-5)
        return results

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        asyncio.run(scenario())
    finally:
        torch.set_num_threads(threads)


def test_torch_device_passes_equal_run_batch_and_bf16_stays_close() -> None:
    model = tiny_htdemucs(4)
    batch = windows(2, seed=20, length=int(model.segment * SR))
    expected = run_batch(model, batch)
    fp32 = TorchDevice("cpu")
    staged = fp32.stage(batch)
    np.testing.assert_array_equal(fp32.fetch(fp32.forward(model, staged)), expected)
    bf16 = TorchDevice("cpu", Precision.BF16)
    reduced = bf16.fetch(bf16.forward(model, bf16.stage(batch)))
    assert reduced.dtype == np.float32 and reduced.shape == expected.shape
    assert np.isfinite(reduced).all()
    assert 0 < np.abs(reduced - expected).max() <= 0.05 * np.abs(expected).max()


def test_simulated_device_returns_zeros_shaped_like_the_model_output() -> None:
    model = tiny_htdemucs(4)
    device = SimulatedDevice(fixed_s=0.0, per_window_s=0.001)
    output = device.fetch(device.forward(model, device.stage(windows(3, seed=1, length=80))))
    assert output.shape == (3, len(model.sources), 2, 80) and not output.any()
    assert device.name == "cpu" and device.label == "simulated" and device.pass_windows == 8


def test_passes_share_by_default_on_an_accelerator_only() -> None:
    """On the CPU a bigger pass is no faster per window and only needs more memory."""
    assert TorchDevice("cpu").pass_windows == 1


def test_the_config_file_app_builder_refuses_a_simulated_device() -> None:
    from deployments.app import build_app

    args = {"separation": {"simulated_device": {"fixed_s": 0.01, "per_window_s": 0.01}}}
    with pytest.raises(ValueError, match="simulated_device is for benchmarks"):
        build_app(args)

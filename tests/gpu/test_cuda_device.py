"""The DemucsWorker's CUDA path: staged copies, cuDNN autotuning, precisions.

Runs only where torch sees a CUDA device (``bench/gpu.sh`` machines); elsewhere each
test is skipped with the reason.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipelines.separation import run_batch
from pipelines.separation.device import Precision, TorchDevice
from tests.unit.test_separation import SR, tiny_htdemucs

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def test_fp32_on_cuda_equals_the_cpu_pass() -> None:
    model = tiny_htdemucs(5)
    length = int(model.segment * SR)
    windows = np.random.default_rng(0).standard_normal((4, 2, length)).astype(np.float32)
    expected = run_batch(model, windows)
    device = TorchDevice("cuda")
    cuda_model = tiny_htdemucs(5).to("cuda")
    for _ in range(2):  # the second pass runs on the kernels cuDNN picked
        output = device.fetch(device.forward(cuda_model, device.stage(windows)))
        np.testing.assert_allclose(output, expected, rtol=0, atol=1e-4)


@pytest.mark.parametrize("precision", [Precision.TF32, Precision.BF16, Precision.FP16])
def test_reduced_precisions_stay_close_to_fp32(precision: Precision) -> None:
    model = tiny_htdemucs(5).to("cuda")
    length = int(model.segment * SR)
    windows = np.random.default_rng(1).standard_normal((2, 2, length)).astype(np.float32)
    exact = TorchDevice("cuda")
    reference = exact.fetch(exact.forward(model, exact.stage(windows)))
    device = TorchDevice("cuda", precision)
    output = device.fetch(device.forward(model, device.stage(windows)))
    assert output.dtype == np.float32 and np.isfinite(output).all()
    assert np.abs(output - reference).max() <= 0.05 * np.abs(reference).max()

"""Where a DemucsWorker's forward passes run: a torch device, or a simulated one.

A pass goes through three steps, so that only the middle one holds the device:
``stage`` copies the windows to the device (on CUDA: from pinned host memory, on a
copy stream, without blocking), ``forward`` runs the model, ``fetch`` copies the
outputs back (on CUDA: into pinned memory, without blocking the next pass). The
worker stages the next pass while the current one computes.

:class:`SimulatedDevice` stands in for an accelerator when measuring how the system
scales: its forward pass holds the device for ``fixed_s + per_window_s * B`` seconds
without using the CPU and returns zeros of the right shape. It never backs a
correctness claim.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol, cast

import numpy as np
import numpy.typing as npt
import torch

__all__ = ["Precision", "SimulatedDevice", "TorchDevice", "WindowDevice", "release_free_memory"]


class Precision(StrEnum):
    """Arithmetic of the forward pass. Only ``fp32`` reproduces Demucs to 1e-4."""

    FP32 = "fp32"
    TF32 = "tf32"
    """fp32 tensors, TensorFloat-32 matrix products and convolutions (CUDA only)."""
    BF16 = "bf16"
    FP16 = "fp16"


_AUTOCAST = {Precision.BF16: torch.bfloat16, Precision.FP16: torch.float16}


class WindowDevice(Protocol):
    """What runs a pass of windows (B, channels, length) → (B, sources, channels, length)."""

    @property
    def name(self) -> str:
        """The torch device the models live on."""
        ...

    @property
    def label(self) -> str:
        """What the replica reports as its device."""
        ...

    @property
    def pass_windows(self) -> int:
        """Windows per pass by default: more where a bigger pass computes faster per window."""
        ...

    def stage(self, windows: npt.NDArray[np.float32]) -> Any:
        """Start moving the windows to the device."""
        ...

    def forward(self, model: torch.nn.Module, staged: Any) -> Any:
        """Run the model on staged windows (the only step that holds the device)."""
        ...

    def fetch(self, output: Any) -> npt.NDArray[np.float32]:
        """The outputs as float32 on the host."""
        ...


@dataclass
class _Staged:
    tensor: torch.Tensor
    ready: Any = None  # a CUDA event once the copy has landed


@dataclass
class TorchDevice:
    """A torch device (``cpu`` or ``cuda``) at a given precision.

    On CUDA: cuDNN picks the fastest kernels for the fixed window shapes
    (``cudnn.benchmark``), TF32 is allowed only at ``tf32`` precision, and ``bf16`` /
    ``fp16`` run under autocast (the STFTs stay in float32).
    """

    name: str = "cpu"
    precision: Precision = Precision.FP32
    _copies: Any = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.precision = Precision(self.precision)
        if not self.cuda:
            return
        tf32 = self.precision is Precision.TF32
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32
        self._copies = torch.cuda.Stream()

    @property
    def cuda(self) -> bool:
        return self.name.startswith("cuda")

    @property
    def label(self) -> str:
        return self.name if self.precision is Precision.FP32 else f"{self.name} ({self.precision})"

    @property
    def pass_windows(self) -> int:
        return 8 if self.cuda else 1

    def stage(self, windows: npt.NDArray[np.float32]) -> _Staged:
        # torch warns on read-only arrays (e.g. ones deserialised from the object store).
        array = np.ascontiguousarray(windows, dtype=np.float32)
        if not array.flags.writeable:
            array = array.copy()
        host = torch.from_numpy(array)
        if not self.cuda:
            return _Staged(host)
        with torch.cuda.stream(self._copies):
            tensor = host.pin_memory().to(self.name, non_blocking=True)
            ready = torch.cuda.Event()
            ready.record(self._copies)
        return _Staged(tensor, ready)

    def forward(self, model: torch.nn.Module, staged: _Staged) -> torch.Tensor:
        """The output on the device; on CUDA, returns once it is computed (so the pass
        time is the device's, and the next pass starts on an idle device)."""
        if staged.ready is not None:
            torch.cuda.current_stream().wait_event(staged.ready)
        with torch.inference_mode():
            dtype = _AUTOCAST.get(self.precision)
            if dtype is None:
                output = model(staged.tensor).float()
            else:
                with torch.autocast(device_type="cuda" if self.cuda else "cpu", dtype=dtype):
                    output = model(staged.tensor).float()
        if self.cuda:
            torch.cuda.current_stream().synchronize()
        return output

    def fetch(self, output: torch.Tensor) -> npt.NDArray[np.float32]:
        if not self.cuda:
            result: npt.NDArray[np.float32] = output.numpy()
            return result
        host = torch.empty(output.shape, dtype=torch.float32, pin_memory=True)
        with torch.cuda.stream(self._copies):  # off the compute stream: the next pass runs
            host.copy_(output, non_blocking=True)
            done = torch.cuda.Event()
            done.record(self._copies)
        done.synchronize()
        copied: npt.NDArray[np.float32] = host.numpy()
        return copied


@dataclass(frozen=True)
class _Shape:
    shape: tuple[int, ...]


@dataclass(frozen=True)
class SimulatedDevice:
    """An accelerator that takes ``fixed_s + per_window_s * B`` seconds per pass.

    The pass sleeps (no CPU) and its output is zeros shaped like the model's; every
    other part of the service (routing, object store, coordinator, storage) is real.
    """

    fixed_s: float
    per_window_s: float
    name: str = "cpu"
    label: str = "simulated"
    pass_windows: int = 8

    def stage(self, windows: npt.NDArray[np.float32]) -> tuple[int, ...]:
        return tuple(windows.shape)

    def forward(self, model: torch.nn.Module, staged: tuple[int, ...]) -> _Shape:
        batch, channels, length = staged
        time.sleep(self.fixed_s + self.per_window_s * batch)
        sources = cast("list[str]", model.sources)
        return _Shape((batch, len(sources), channels, length))

    def fetch(self, output: _Shape) -> npt.NDArray[np.float32]:
        return np.zeros(output.shape, dtype=np.float32)


def _malloc_trim() -> Any:
    name = ctypes.util.find_library("c")
    libc = ctypes.CDLL(name) if name else None
    return getattr(libc, "malloc_trim", None)


_TRIM = _malloc_trim()


def release_free_memory() -> None:
    """Give the pages the C allocator holds free back to the system (glibc's
    ``malloc_trim``; elsewhere nothing to do). A forward pass frees hundreds of MB of
    activations at once; without this they stay in the process until reused."""
    if _TRIM is not None:
        _TRIM(0)

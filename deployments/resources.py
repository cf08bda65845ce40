"""What a replica was actually given: GPUs, threads."""

from __future__ import annotations

from typing import TYPE_CHECKING

import ray

from config import SeparationArgs

if TYPE_CHECKING:
    from pipelines.separation.device import WindowDevice


def gpu_assigned() -> bool:
    """True when Ray gave this replica (a fraction of) a GPU.

    Ray also sets CUDA_VISIBLE_DEVICES for logical GPUs on CPU-only machines, so
    callers must still ask torch or CTranslate2 whether a device really exists.
    """
    return bool(ray.get_gpu_ids())


def torch_device() -> str:
    import torch

    return "cuda" if gpu_assigned() and torch.cuda.is_available() else "cpu"


def set_torch_threads(threads: int) -> None:
    """Use exactly the CPU share the replica reserved (a deliberate choice, not OMP's)."""
    import torch

    torch.set_num_threads(threads)


def window_device(args: SeparationArgs) -> WindowDevice:
    """Where this DemucsWorker runs its passes: the simulated device when configured,
    else CUDA when Ray gave the replica a GPU that torch sees, else the CPU."""
    from pipelines.separation.device import Precision, SimulatedDevice, TorchDevice

    if args.simulated_device is not None:
        return SimulatedDevice(args.simulated_device.fixed_s, args.simulated_device.per_window_s)
    return TorchDevice(torch_device(), Precision(args.precision))

"""What a replica was actually given: GPUs, threads."""

from __future__ import annotations

import ray


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

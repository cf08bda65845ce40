"""DemucsWorker: the forward pass on batches of windows, nothing else.

GPU replicas never decode, encode or upload; the coordinator sends fixed-shape
windows and gets model outputs back through the object store.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import numpy as np
import ray
from ray import serve

from config import SeparationArgs
from deployments.health import ModelHealth
from deployments.metrics import WINDOWS, WINDOWS_PER_BATCH
from deployments.resources import set_torch_threads, torch_device
from pipelines.probes import probe_separator
from pipelines.separation import BatchOutput, Separator, load_model, timed_batch

log = logging.getLogger(__name__)


class DemucsWorker:
    """Holds Demucs models (LRU-multiplexed by name) and runs them."""

    def __init__(self, args: SeparationArgs, threads: int) -> None:
        set_torch_threads(threads)
        self.device = torch_device()
        self._windows = 0
        self._health = ModelHealth(lambda separator: probe_separator(separator, self.device))
        self._repo = Path(args.model_repo) if args.model_repo else None
        log.info("DemucsWorker on %s with %d threads", self.device, threads)

        # A plain function, not a bound method: Serve keeps its LRU cache on the callable.
        async def load(name: str) -> Separator:
            separator = await asyncio.to_thread(load_model, name, self._repo)
            return separator.to(self.device)

        self._models = serve.multiplexed(max_num_models_per_replica=args.max_models_per_replica)(
            load
        )

    async def forward(self, sub_model: int, batch: np.ndarray) -> BatchOutput:
        """Model output (B, sources, channels, length) for windows (B, channels, length),
        with the seconds the forward pass took (the coordinator tells queueing from compute)."""
        separator = await self._models(serve.get_multiplexed_model_id())
        model = separator.models[sub_model]
        # One forward pass at a time: the device is the bottleneck, and a second
        # concurrent call only gets its inputs delivered while this one computes.
        async with self._health.exclusive(separator):
            output = await asyncio.to_thread(timed_batch, model, batch, self.device)
            self._health.progress()
        self._windows += len(batch)
        WINDOWS_PER_BATCH.observe(len(batch))
        WINDOWS.inc(len(batch))
        return output

    async def check_health(self) -> None:
        """Serve's health check: the last model used still runs on this device."""
        await self._health.check()

    def stats(self) -> dict[str, object]:
        """Which replica this is, what it was given, and how much it has done."""
        import torch

        return {
            "replica": serve.get_replica_context().replica_id.unique_id,
            "device": self.device,
            "node_id": ray.get_runtime_context().get_node_id(),
            "gpu_ids": [str(g) for g in ray.get_gpu_ids()],
            "threads": torch.get_num_threads(),
            "windows": self._windows,
        }

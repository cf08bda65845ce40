"""DemucsWorker: the forward pass on batches of windows, nothing else.

GPU replicas never decode, encode or upload; coordinators send fixed-shape windows
and get model outputs back through the object store. Calls of any job that wait while
a forward pass runs share the next one (``separation.max_windows_per_pass``).

Every forward pass (the health probe's too) runs on one thread of its own, and the C
allocator hands back what a pass freed once it ends: a pass's working set is then
allocated in one arena and released, so the worker's memory is one pass's worth however
long the tracks are (with passes on whichever executor thread was free, each thread's
arena kept its own high-water mark, and the peak crept up with the number of passes).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import ray
from ray import serve

from config import SeparationArgs
from deployments.health import ModelHealth
from deployments.metrics import record_pass
from deployments.resources import set_torch_threads, window_device
from pipelines.probes import probe_separator
from pipelines.separation import (
    BatchKey,
    BatchOutput,
    Separator,
    WindowBatch,
    WindowBatcher,
    load_model,
)
from pipelines.separation.device import release_free_memory

log = logging.getLogger(__name__)


class DemucsWorker:
    """Holds Demucs models (LRU-multiplexed by name) and runs them."""

    def __init__(self, args: SeparationArgs, threads: int) -> None:
        set_torch_threads(threads)
        self.device = window_device(args)
        self._windows = 0
        self._forward_thread = ThreadPoolExecutor(1, thread_name_prefix="forward")
        self._health = ModelHealth(self._probe)
        self._repo = Path(args.model_repo) if args.model_repo else None
        log.info("DemucsWorker on %s with %d threads", self.device.label, threads)

        # A plain function, not a bound method: Serve keeps its LRU cache on the callable.
        async def load(name: str) -> Separator:
            separator = await asyncio.to_thread(load_model, name, self._repo)
            return separator.to(self.device.name)

        self._models = serve.multiplexed(max_num_models_per_replica=args.max_models_per_replica)(
            load
        )
        self._batcher = WindowBatcher(
            self._pass,
            max_windows=args.max_windows_per_pass or self.device.pass_windows,
            wait_s=args.batch_wait_ms / 1000,
            on_pass=record_pass,
        )

    async def forward(self, batch: WindowBatch) -> BatchOutput:
        """Model output (B, sources, channels, length) for the windows (B, channels, length),
        with the seconds their forward pass took (the coordinator tells queueing from
        compute). Other jobs' windows may share the pass; the outputs are this call's."""
        output = await self._batcher.run(serve.get_multiplexed_model_id(), batch)
        self._windows += len(batch.windows)
        return output

    async def _pass(self, key: BatchKey, windows: np.ndarray) -> BatchOutput:
        separator = await self._models(key.model)
        model = separator.models[key.sub_model]
        staged = await asyncio.to_thread(self.device.stage, windows)
        # One forward pass at a time: the device is the bottleneck; calls that arrive
        # meanwhile wait in the batcher and go through the next pass together, and the
        # next pass's windows are staged while this one computes.
        async with self._health.exclusive(separator):
            started = time.perf_counter()
            output = await asyncio.get_running_loop().run_in_executor(
                self._forward_thread, self.device.forward, model, staged
            )
            seconds = time.perf_counter() - started
        fetched = await asyncio.to_thread(self.device.fetch, output)
        del staged, output
        await asyncio.to_thread(release_free_memory)
        return BatchOutput(fetched, seconds)

    def _probe(self, separator: Separator) -> None:
        """The health probe: a pass like the others, on the forward thread."""
        self._forward_thread.submit(probe_separator, separator, self.device.name).result()
        release_free_memory()

    async def check_health(self) -> None:
        """Serve's health check: the last model used still runs on this device."""
        await self._health.check()

    def stats(self) -> dict[str, object]:
        """Which replica this is, what it was given, and how much it has done."""
        import torch

        return {
            "replica": serve.get_replica_context().replica_id.unique_id,
            "device": self.device.label,
            "node_id": ray.get_runtime_context().get_node_id(),
            "gpu_ids": [str(g) for g in ray.get_gpu_ids()],
            "threads": torch.get_num_threads(),
            "openmp_threads": int(os.environ.get("OMP_NUM_THREADS", "0")),
            "glibc_tunables": os.environ.get("GLIBC_TUNABLES", ""),
            "windows": self._windows,
            "passes": self._batcher.passes,
            "shared_passes": self._batcher.shared_passes,
        }

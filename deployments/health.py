"""Serve ``check_health`` for model replicas: the model answers, or the replica is restarted.

Serve calls ``check_health`` every ``health_check_period_s`` (10 s) and restarts a
replica whose check raises or outlasts ``health_check_timeout_s`` (30 s). A replica
that only reported "alive" would stay in rotation with a dead GPU, so:

- while a call runs, the replica is healthy as long as the call makes progress
  (a forward pass returns, a segment is decoded) at least every ``stuck_after_s``;
- when idle, the last model used runs a probe (``pipelines.probes``) in one of the
  same slots as requests, within ``timeout_s``, once it has not answered for
  ``probe_every_s``; a call that returned counts as an answer, so a replica with
  traffic is never probed. A probe may take at most ``probe_share`` of an idle
  replica's time: on a CPU a separator's probe is a whole model window (3-4 s of
  two cores for htdemucs), which every 30 s would take a tenth of the machine from
  whatever runs beside it; it then runs every few minutes instead.

Calls hold one of ``slots`` (the model's workers) through a `PriorityGate`: a live
window waiting for a slot goes before any waiting file work.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractContextManager, asynccontextmanager, contextmanager
from typing import Any

from pipelines.scheduling import Lane, PriorityGate

STUCK_AFTER_S = 300.0
PROBE_EVERY_S = 30.0
PROBE_TIMEOUT_S = 20.0
PROBE_SHARE = 0.02


class ModelUnhealthy(RuntimeError):
    """The replica's model did not answer; Serve replaces the replica."""


class ModelHealth:
    """The model's slots, the time of the last progress in them, and the probe."""

    def __init__(
        self,
        probe: Callable[[Any], None],
        *,
        stuck_after_s: float = STUCK_AFTER_S,
        probe_every_s: float = PROBE_EVERY_S,
        timeout_s: float = PROBE_TIMEOUT_S,
        probe_share: float = PROBE_SHARE,
        slots: int = 1,
    ) -> None:
        self.gate = PriorityGate(slots)
        self._probe = probe
        self._stuck_after = stuck_after_s
        self._probe_every = probe_every_s
        self._timeout = timeout_s
        self._share = probe_share
        self._progress = time.monotonic()
        self._answered = time.monotonic()  # the model last returned: a call or a probe
        self._probe_interval = probe_every_s
        self._model: weakref.ref[Any] | None = None

    @asynccontextmanager
    async def exclusive(
        self, model: Any, lane: Lane = Lane.FILE, ticket: int | None = None
    ) -> AsyncIterator[None]:
        """Hold one of the model's slots; the model is remembered (weakly) for probes.

        Hold it only around a call into the model, never across a ``yield`` to a
        caller, so that a slow consumer does not keep others waiting.
        """
        async with self.gate.hold(lane, ticket):
            self._model = weakref.ref(model)
            self.progress()
            yield
            self.progress()
            self._answered = time.monotonic()

    def slot_for_threads(
        self, model: Any, lane: Lane = Lane.FILE
    ) -> Callable[[bool], AbstractContextManager[None]]:
        """`exclusive` for one caller's code in a worker thread (it waits there).

        ``hold(True)`` queues anew; ``hold(False)`` keeps the caller's place from its
        last ``hold(True)``, so the later steps of work it started go first. Call this
        on the event loop; ``hold`` may then be used from any other thread.
        """
        loop = asyncio.get_running_loop()
        ticket = self.gate.ticket()

        @contextmanager
        def hold(anew: bool) -> Iterator[None]:
            nonlocal ticket
            if anew:
                ticket = self.gate.ticket()
            slot = self.exclusive(model, lane, ticket)
            asyncio.run_coroutine_threadsafe(slot.__aenter__(), loop).result()
            try:
                yield
            finally:
                asyncio.run_coroutine_threadsafe(slot.__aexit__(None, None, None), loop).result()

        return hold

    def progress(self) -> None:
        """A unit of work finished (a batch, a segment)."""
        self._progress = time.monotonic()

    async def check(self) -> None:
        """Raise ``ModelUnhealthy`` when the model is stuck or fails its probe."""
        now = time.monotonic()
        if self.gate.busy:
            if now - self._progress > self._stuck_after:
                raise ModelUnhealthy(
                    f"no progress for {now - self._progress:.0f} s on the running call"
                )
            return
        model = self._model() if self._model is not None else None
        if model is None or now - self._answered < self._probe_interval:
            return
        async with self.gate.hold(Lane.FILE):
            started = time.monotonic()
            try:
                await asyncio.wait_for(asyncio.to_thread(self._probe, model), self._timeout)
            except TimeoutError:
                raise ModelUnhealthy(f"the model probe took over {self._timeout:.0f} s") from None
            except Exception as exc:
                raise ModelUnhealthy(f"the model probe failed: {exc}") from exc
            self._answered = time.monotonic()
            took = self._answered - started
            self._probe_interval = max(self._probe_every, took / self._share)

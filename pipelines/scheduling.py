"""Sharing one model between callers: priority slots and a micro-batcher (asyncio, no Ray).

`PriorityGate` hands out a model's slots (its CTranslate2 workers): a waiter of a
more urgent lane always goes first, so a live window waits for at most the file
window already running, never for a queue of file work. `MicroBatcher` gathers
items that arrive while a batch runs and sends them as the next batch, so
concurrent live sessions share one batched decode.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable, Sequence
from contextlib import asynccontextmanager
from enum import IntEnum
from typing import Generic, TypeVar

__all__ = ["Lane", "MicroBatcher", "PriorityGate"]

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")
R = TypeVar("R")
_Entry = tuple[T, asyncio.Future[R]]


class Lane(IntEnum):
    """Who waits for a slot; lower goes first."""

    LIVE = 0
    FILE = 1


class PriorityGate:
    """``slots`` concurrent holders; waiters leave by lane, then by ticket.

    A waiter's ticket is drawn when it queues, unless it brings one drawn earlier
    (`ticket`): the next step of work that already started then goes before work
    that queued after it started.
    """

    def __init__(self, slots: int = 1) -> None:
        if slots < 1:
            raise ValueError("a gate needs at least one slot")
        self.slots = slots
        self._held = 0
        self._waiting: list[tuple[int, int, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    @property
    def busy(self) -> bool:
        """Some slot is held."""
        return self._held > 0

    @property
    def waiting(self) -> int:
        """Callers queued for a slot."""
        return sum(1 for *_, future in self._waiting if not future.done())

    def ticket(self) -> int:
        """A place in the queue, to bring to several `hold` calls in turn."""
        return next(self._order)

    @asynccontextmanager
    async def hold(self, lane: Lane = Lane.FILE, ticket: int | None = None) -> AsyncIterator[None]:
        """Hold one slot for the block (lane, then ticket, decide who goes first when
        it is freed)."""
        await self._acquire(lane, ticket)
        try:
            yield
        finally:
            self._release()

    async def _acquire(self, lane: Lane, ticket: int | None) -> None:
        if self._held < self.slots and not self.waiting:
            self._held += 1
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queued = next(self._order)
        place = queued if ticket is None else ticket
        heapq.heappush(self._waiting, (int(lane), place, queued, future))
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self._release()  # granted just as it was cancelled: pass it on
            raise

    def _release(self) -> None:
        while self._waiting:
            *_, future = heapq.heappop(self._waiting)
            if not future.done():
                future.set_result(None)  # the slot passes on, still held
                return
        self._held -= 1


class MicroBatcher(Generic[K, T, R]):
    """Calls ``run(key, items)`` with every item of one key waiting when it is free.

    One batch per key runs at a time; items submitted meanwhile form the next one,
    up to ``max_batch`` in total ``size`` (an item larger than that goes alone).
    Waiting items are taken in arrival order or, given ``group``, one of each group in
    turn (the group of the oldest waiting item first): a caller with many items waiting
    never keeps another caller's out of the next batch. ``wait_s`` lets items that
    arrive together join. A failed batch fails each of its items with the same error.
    """

    def __init__(
        self,
        run: Callable[[K, list[T]], Awaitable[Sequence[R]]],
        *,
        max_batch: int = 8,
        wait_s: float = 0.005,
        size: Callable[[T], int] = lambda _: 1,
        group: Callable[[T], Hashable] | None = None,
    ) -> None:
        self._run = run
        self._max_batch = max_batch
        self._wait_s = wait_s
        self._size = size
        self._group = group
        self._queues: dict[K, list[_Entry[T, R]]] = {}
        self._runners: dict[K, asyncio.Task[None]] = {}
        self.batch_sizes: list[int] = []
        """Sizes of the batches run so far (the last 1000)."""

    async def submit(self, key: K, item: T) -> R:
        """The result for ``item``, decoded in a batch with others of the same key."""
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queues.setdefault(key, []).append((item, future))
        if key not in self._runners:
            self._runners[key] = asyncio.create_task(self._drain(key))
        return await future

    async def _drain(self, key: K) -> None:
        try:
            await asyncio.sleep(self._wait_s)
            while queue := [entry for entry in self._queues.get(key, []) if not entry[1].done()]:
                batch = self._next_batch(queue)
                taken = {id(entry) for entry in batch}
                self._queues[key] = [entry for entry in queue if id(entry) not in taken]
                await self._one(key, batch)
        finally:
            self._runners.pop(key, None)
            for _, future in self._queues.pop(key, []):
                future.cancel()  # only left when the runner itself was cancelled

    def _next_batch(self, queue: list[_Entry[T, R]]) -> list[_Entry[T, R]]:
        """The waiting items that go next (at least one), in turn by group if grouped."""
        batch: list[_Entry[T, R]] = []
        total = 0
        for entry in self._in_turn(queue):
            total += self._size(entry[0])
            if batch and total > self._max_batch:
                break
            batch.append(entry)
        return batch

    def _in_turn(self, queue: list[_Entry[T, R]]) -> list[_Entry[T, R]]:
        if self._group is None:
            return queue
        groups: dict[Hashable, list[_Entry[T, R]]] = {}
        for entry in queue:
            groups.setdefault(self._group(entry[0]), []).append(entry)
        rounds = itertools.zip_longest(*groups.values())
        return [entry for turn in rounds for entry in turn if entry is not None]

    async def _one(self, key: K, batch: list[_Entry[T, R]]) -> None:
        self.batch_sizes = [*self.batch_sizes[-999:], len(batch)]
        try:
            results = await self._run(key, [item for item, _ in batch])
        except Exception as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        except BaseException:
            for _, future in batch:
                future.cancel()
            raise
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)

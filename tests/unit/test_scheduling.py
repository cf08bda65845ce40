"""Priority slots and the micro-batcher that share a Transcriber's model (no Ray)."""

from __future__ import annotations

import asyncio

import pytest

from pipelines.scheduling import Lane, MicroBatcher, PriorityGate

pytestmark = pytest.mark.unit


async def _holder(gate: PriorityGate, lane: Lane, name: str, log: list[str], hold: float) -> None:
    async with gate.hold(lane):
        log.append(name)
        await asyncio.sleep(hold)


def test_a_live_waiter_goes_before_file_work_queued_earlier() -> None:
    async def scenario() -> list[str]:
        gate, log = PriorityGate(1), []
        running = asyncio.create_task(_holder(gate, Lane.FILE, "file-1", log, 0.05))
        await asyncio.sleep(0)  # file-1 holds the only slot
        queued = [
            asyncio.create_task(_holder(gate, Lane.FILE, "file-2", log, 0.01)),
            asyncio.create_task(_holder(gate, Lane.FILE, "file-3", log, 0.01)),
        ]
        await asyncio.sleep(0.01)
        live = asyncio.create_task(_holder(gate, Lane.LIVE, "live", log, 0.01))
        await asyncio.gather(running, *queued, live)
        return log

    assert asyncio.run(scenario()) == ["file-1", "live", "file-2", "file-3"]


def test_an_earlier_ticket_goes_before_waiters_that_queued_after_it_was_drawn() -> None:
    async def scenario() -> list[str]:
        gate = PriorityGate(1)
        log: list[str] = []
        started = gate.ticket()  # a caller's work began here
        first = asyncio.create_task(_holder(gate, Lane.FILE, "first", log, 0.02))
        await asyncio.sleep(0.005)
        newer = asyncio.create_task(_holder(gate, Lane.FILE, "newer", log, 0.0))
        await asyncio.sleep(0.005)

        async def next_step() -> None:
            async with gate.hold(Lane.FILE, started):
                log.append("next step")

        await asyncio.gather(first, newer, next_step())
        return log

    assert asyncio.run(scenario()) == ["first", "next step", "newer"]


def test_slots_bound_how_many_hold_at_once() -> None:
    async def scenario() -> int:
        gate, peak, inside = PriorityGate(2), 0, 0

        async def one() -> None:
            nonlocal peak, inside
            async with gate.hold():
                inside += 1
                peak = max(peak, inside)
                await asyncio.sleep(0.01)
                inside -= 1

        await asyncio.gather(*(one() for _ in range(6)))
        assert not gate.busy and gate.waiting == 0
        return peak

    assert asyncio.run(scenario()) == 2


def test_a_cancelled_waiter_does_not_keep_a_slot() -> None:
    async def scenario() -> list[str]:
        gate, log = PriorityGate(1), []
        first = asyncio.create_task(_holder(gate, Lane.FILE, "first", log, 0.03))
        await asyncio.sleep(0)
        gone = asyncio.create_task(_holder(gate, Lane.LIVE, "gone", log, 0.01))
        later = asyncio.create_task(_holder(gate, Lane.FILE, "later", log, 0.01))
        await asyncio.sleep(0.01)
        gone.cancel()
        await asyncio.gather(first, later)
        assert not gate.busy
        return log

    assert asyncio.run(scenario()) == ["first", "later"]


def test_items_that_arrive_together_share_a_batch_and_later_ones_the_next() -> None:
    batches: list[list[int]] = []

    async def run(key: str, items: list[int]) -> list[int]:
        batches.append(items)
        await asyncio.sleep(0.02)
        return [item * 10 for item in items]

    async def scenario() -> list[int]:
        batcher: MicroBatcher[str, int, int] = MicroBatcher(run, max_batch=3, wait_s=0.005)
        first = [asyncio.create_task(batcher.submit("m", i)) for i in range(4)]
        await asyncio.sleep(0.01)  # the first batch is running
        second = [asyncio.create_task(batcher.submit("m", i)) for i in (7, 8)]
        return list(await asyncio.gather(*first, *second))

    assert asyncio.run(scenario()) == [0, 10, 20, 30, 70, 80]
    assert batches == [[0, 1, 2], [3, 7, 8]]


def test_grouped_items_take_turns_so_one_caller_cannot_fill_every_batch() -> None:
    batches: list[list[str]] = []

    async def run(key: str, items: list[str]) -> list[str]:
        batches.append(items)
        await asyncio.sleep(0.01)
        return items

    async def scenario() -> list[str]:
        batcher: MicroBatcher[str, str, str] = MicroBatcher(
            run, max_batch=2, wait_s=0.005, group=lambda item: item[0]
        )
        items = ["a1", "a2", "a3", "a4", "b1", "b2", "c1"]  # a's all arrive first
        return list(await asyncio.gather(*(batcher.submit("m", i) for i in items)))

    assert asyncio.run(scenario()) == ["a1", "a2", "a3", "a4", "b1", "b2", "c1"]
    assert batches == [["a1", "b1"], ["a2", "b2"], ["a3", "c1"], ["a4"]]


def test_keys_never_share_a_batch_and_a_failure_reaches_each_item() -> None:
    async def run(key: str, items: list[int]) -> list[int]:
        if key == "broken":
            raise RuntimeError("model failed")
        return items

    async def scenario() -> None:
        batcher: MicroBatcher[str, int, int] = MicroBatcher(run)
        good = batcher.submit("ok", 1)
        bad = [batcher.submit("broken", i) for i in (2, 3)]
        results = await asyncio.gather(good, *bad, return_exceptions=True)
        assert results[0] == 1
        assert all(isinstance(r, RuntimeError) for r in results[1:])
        assert sorted(batcher.batch_sizes) == [1, 2]

    asyncio.run(scenario())

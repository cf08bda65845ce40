"""Models loaded in the background, each with a state the API can report.

A replica never blocks its start on a download: a model is fetched when it is first
asked for (or preloaded in the background), and until then ``/readyz`` says it is
``loading``. A model that cannot be fetched (no network, no such weights) is
``failed`` with the reason; requests for it are refused at once with
``model_unavailable`` instead of each one waiting on the network again, and the load
is tried again after ``retry_seconds``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Generic, TypeVar

from pipelines.errors import ModelLoading, ModelUnavailable, StemscribeError

__all__ = ["ModelCatalog", "ModelState", "raise_if_failed", "raise_unless_ready", "unavailable"]

T = TypeVar("T")
log = logging.getLogger(__name__)


class ModelState(StrEnum):
    NOT_LOADED = "not_loaded"
    LOADING = "loading"
    READY = "ready"
    FAILED = "failed"


@dataclass
class _Entry(Generic[T]):
    state: ModelState = ModelState.NOT_LOADED
    value: T | None = None
    error: ModelUnavailable | None = None
    failed_at: float = 0.0
    task: asyncio.Task[None] | None = None


class ModelCatalog(Generic[T]):
    """Loads models by name with ``load``; at most one load of a name at a time.

    ``keep`` False: a loaded model is handed out once and then dropped here, for
    callers that cache models themselves (Serve's multiplexing LRU); the state stays
    ``ready``.
    """

    def __init__(
        self,
        load: Callable[[str], Awaitable[T]],
        *,
        retry_seconds: float = 60.0,
        keep: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._load = load
        self._retry = retry_seconds
        self._keep = keep
        self._clock = clock
        self._entries: dict[str, _Entry[T]] = {}

    def start(self, name: str) -> None:
        """Begin loading ``name`` in the background unless it is loaded, loading, or
        failed less than ``retry_seconds`` ago. Needs a running event loop."""
        entry = self._entries.setdefault(name, _Entry())
        if entry.state == ModelState.LOADING or (
            entry.state == ModelState.READY and entry.value is not None
        ):
            return
        if entry.state == ModelState.FAILED and self._clock() - entry.failed_at < self._retry:
            return
        entry.state, entry.error = ModelState.LOADING, None
        entry.task = asyncio.get_running_loop().create_task(self._run(name, entry))

    async def get(self, name: str, wait: float | None = None) -> T:
        """The model, loading it if needed; waits at most ``wait`` seconds (None: until
        the load ends).

        Raises:
            ModelUnavailable: the load failed (now or less than ``retry_seconds`` ago).
            ModelLoading: still loading after ``wait`` seconds.
        """
        self.start(name)
        entry = self._entries[name]
        if entry.state == ModelState.LOADING and entry.task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(entry.task), wait)
            except TimeoutError:
                raise ModelLoading(
                    f"Model {name!r} is still loading (its weights may be downloading); "
                    "retry in a moment.",
                    details={"model": name, "retry_after_seconds": 10},
                ) from None
        return self._take(name, entry)

    def _take(self, name: str, entry: _Entry[T]) -> T:
        if entry.state == ModelState.FAILED and entry.error is not None:
            raise entry.error
        if entry.value is None:  # handed out already by a catalog that does not keep
            raise ModelLoading(f"Model {name!r} is loading again.", details={"model": name})
        value = entry.value
        if not self._keep:
            entry.value = None
        return value

    async def _run(self, name: str, entry: _Entry[T]) -> None:
        try:
            entry.value = await self._load(name)
            entry.state = ModelState.READY
        except Exception as exc:
            entry.error = _unavailable(name, exc)
            entry.state, entry.failed_at = ModelState.FAILED, self._clock()
            log.warning("%s (tried again after %g s)", entry.error.message, self._retry)

    def state(self, name: str) -> ModelState:
        entry = self._entries.get(name)
        return entry.state if entry else ModelState.NOT_LOADED

    def describe(self, names: list[str]) -> dict[str, dict[str, Any]]:
        """``{name: {"status", "error"?}}`` for ``names`` (never asked for: not_loaded)."""
        out: dict[str, dict[str, Any]] = {}
        for name in names:
            out[name] = {"status": self.state(name).value}
            entry = self._entries.get(name)
            if entry is not None and entry.state == ModelState.FAILED and entry.error:
                out[name]["error"] = entry.error.details.get("reason", entry.error.message)
        return out

    def peek(self, name: str) -> T | None:
        """The loaded model without taking it, or None."""
        entry = self._entries.get(name)
        return entry.value if entry else None

    async def close(self) -> None:
        """Cancel loads still running (tests, replica shutdown)."""
        for entry in self._entries.values():
            if entry.task is not None and not entry.task.done():
                entry.task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await entry.task


def _unavailable(name: str, exc: Exception) -> ModelUnavailable:
    """Any load failure as ``ModelUnavailable``: the model is enabled, so it is the
    deployment, not the request, that is at fault."""
    if isinstance(exc, StemscribeError):
        reason = str(exc.details.get("reason") or exc.message)
    else:
        reason = f"{type(exc).__name__}: {exc}"
    return unavailable(name, reason)


def unavailable(name: str, reason: str) -> ModelUnavailable:
    """The error for a model that could not be loaded, naming it and why."""
    sentence = f"Model {name!r} is unavailable: {reason.rstrip('.')}."
    return ModelUnavailable(sentence, details={"model": name, "reason": reason})


def raise_if_failed(states: dict[str, dict[str, Any]], model: str) -> None:
    """``ModelUnavailable`` when ``states`` (from `ModelCatalog.describe`) say ``model``
    failed to load."""
    state = states.get(model, {})
    if state.get("status") == ModelState.FAILED:
        raise unavailable(model, str(state.get("error") or "it failed to load"))


def raise_unless_ready(states: dict[str, dict[str, Any]], model: str) -> None:
    """`raise_if_failed`, and ``ModelLoading`` while ``model`` is not loaded yet."""
    raise_if_failed(states, model)
    if states.get(model, {}).get("status") != ModelState.READY:
        raise ModelLoading(
            f"Model {model!r} is still loading (its weights may be downloading); "
            "retry in a moment.",
            details={"model": model, "retry_after_seconds": 10},
        )

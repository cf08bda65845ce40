"""Delivering a finished job's callback: bounded retries with backoff, every attempt
recorded in the job record.

Runs under the job's lease, after the final record is written (``JobRunner``). The
record is saved after each attempt and heartbeats while waiting, so when the replica
dies mid-way the reaper hands the job out again and the next holder continues from
the attempts already made. Delivery is at least once: an attempt whose answer was not
recorded before a crash is made again, with the same ``webhook-id``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from config import JobsArgs, Settings
from pipelines.jobs.callbacks import CallbackAttempt, CallbackState, message_id
from pipelines.jobs.context import JobContext
from pipelines.jobs.records import JobRecord
from pipelines.webhooks import DeliveryResult, WebhookSecret, WebhookSender

log = logging.getLogger(__name__)


class Notifier(Protocol):
    """Sends one signed message (``pipelines.webhooks.WebhookSender``)."""

    async def send(self, url: str, msg_id: str, body: bytes) -> DeliveryResult: ...


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long a callback is tried."""

    max_attempts: int
    backoff: float
    """Seconds before the second attempt; doubled before each later one."""
    max_backoff: float

    def delay(self, attempts_made: int) -> float:
        """Seconds between attempt ``attempts_made`` and the next."""
        return min(self.backoff * 2 ** (attempts_made - 1), self.max_backoff)


@dataclass(frozen=True)
class CallbackDelivery:
    """What a job runner delivers callbacks with; ``notifier`` None: no secret is set."""

    notifier: Notifier | None
    policy: RetryPolicy


def callback_delivery(settings: Settings, args: JobsArgs) -> CallbackDelivery:
    """Signed callbacks as the settings and app args shape them (no sender without a
    secret: the API refuses such jobs, so none should be owed)."""
    key = settings.webhook_key()
    sender = None
    if key is not None:
        timeout = args.callback_timeout_seconds
        sender = WebhookSender(
            WebhookSecret(key), timeout=timeout, allow_private=settings.allow_private_urls
        )
    policy = RetryPolicy(
        args.callback_attempts, args.callback_backoff_seconds, args.callback_max_backoff_seconds
    )
    return CallbackDelivery(sender, policy)


def payload(record: JobRecord) -> bytes:
    """The message body: what happened to which job (URLs come from ``GET /v1/jobs/{id}``)."""
    finished = datetime.fromtimestamp(record.finished_at or time.time(), UTC)
    data = {
        "job_id": record.job_id,
        "kind": record.kind,
        "status": record.status.value,
        "error": record.error,
        "cached": record.cached_from is not None,
        "finished_at": finished.isoformat().replace("+00:00", "Z"),
    }
    message = {"type": f"job.{record.status.value}", "timestamp": data["finished_at"], "data": data}
    return json.dumps(message, sort_keys=True).encode()


async def deliver(ctx: JobContext, delivery: CallbackDelivery, heartbeat: float) -> None:
    """Try the record's pending callback until it is delivered, refused or out of tries."""
    callback = ctx.record.callback
    assert callback is not None and ctx.record.status.finished
    policy = delivery.policy
    while callback.pending:
        made = len(callback.attempts)
        if made >= policy.max_attempts or delivery.notifier is None:
            callback.state = CallbackState.FAILED
            break
        if made:
            await _wait_until(ctx, callback.attempts[-1].at + policy.delay(made), heartbeat)
        body = payload(ctx.record)
        result = await delivery.notifier.send(callback.url, message_id(ctx.job_id), body)
        callback.attempts.append(CallbackAttempt(time.time(), result.status_code, result.error))
        if result.ok:
            callback.state = CallbackState.DELIVERED
        elif not result.retryable:
            callback.state = CallbackState.FAILED
        else:
            log.info("job %s: callback attempt %d failed (%s)", ctx.job_id, made + 1, result)
            await ctx.save(renew=True)
    await ctx.save(renew=True)
    tries = len(callback.attempts)
    log.info("job %s: callback %s after %d attempts", ctx.job_id, callback.state.value, tries)


async def _wait_until(ctx: JobContext, moment: float, heartbeat: float) -> None:
    """Sleep until ``moment``, keeping the record's heartbeat (and the lease) fresh."""
    while (left := moment - time.time()) > 0:
        await asyncio.sleep(min(left, heartbeat))
        if moment - time.time() > 0:
            await ctx.save()

"""Signed callbacks: the Standard Webhooks signature, the secret's form, and the
delivery loop (retries, backoff, giving up, resuming after a crash). No network."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from pathlib import Path

import pytest
from standardwebhooks import Webhook

from config import JobsArgs, Settings
from pipelines.jobs import JobRecord, JobStatus, JobStore, new_job_id
from pipelines.jobs.callbacks import Callback, CallbackAttempt, CallbackState, message_id
from pipelines.jobs.context import JobContext
from pipelines.jobs.delivery import CallbackDelivery, RetryPolicy, callback_delivery, deliver
from pipelines.jobs.janitor import Janitor
from pipelines.jobs.recovery import RecoveryPolicy, run_exclusively
from pipelines.storage import LocalStorage
from pipelines.storage.signing import UrlSigner
from pipelines.webhooks import DeliveryResult, WebhookSecret

pytestmark = pytest.mark.unit

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
QUICK = RetryPolicy(max_attempts=4, backoff=0.01, max_backoff=0.02)


def key_of(secret: str) -> bytes:
    key = Settings(webhook_secret=secret).webhook_key()
    assert key is not None
    return key


def test_signature_matches_the_standard_webhooks_vector() -> None:
    # The example message of the Standard Webhooks specification and its signature.
    secret = WebhookSecret(key_of(SECRET))
    body = b'{"test": 2432232314}'
    signature = secret.sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body)
    assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_the_reference_library_verifies_a_fresh_signature() -> None:
    secret = WebhookSecret(key_of(SECRET))
    body = json.dumps({"type": "job.succeeded"}).encode()
    now = int(time.time())
    headers = {
        "webhook-id": "msg_1",
        "webhook-timestamp": str(now),
        "webhook-signature": secret.sign("msg_1", now, body),
    }
    assert Webhook(SECRET).verify(body, headers) == {"type": "job.succeeded"}
    tampered = body.replace(b"succeeded", b"failed")
    with pytest.raises(Exception, match="No matching signature"):
        Webhook(SECRET).verify(tampered, headers)


@pytest.mark.parametrize(
    "secret, why",
    [
        ("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "must start with whsec_"),
        ("whsec_not base64!", "followed by base64"),
        ("whsec_" + base64.b64encode(b"short").decode(), "at least 16 bytes"),
    ],
)
def test_a_malformed_secret_is_refused_without_quoting_it(secret: str, why: str) -> None:
    with pytest.raises(ValueError, match=why) as info:
        Settings(webhook_secret=secret)
    assert secret not in str(info.value)


def test_backoff_doubles_up_to_its_cap() -> None:
    policy = RetryPolicy(max_attempts=8, backoff=2.0, max_backoff=10.0)
    assert [policy.delay(n) for n in range(1, 6)] == [2.0, 4.0, 8.0, 10.0, 10.0]


def test_no_secret_means_no_sender() -> None:
    assert callback_delivery(Settings(), JobsArgs()).notifier is None
    assert callback_delivery(Settings(webhook_secret=SECRET), JobsArgs()).notifier is not None


class Receiver:
    """Answers each send with the next scripted result; records what it was sent."""

    def __init__(self, *results: DeliveryResult) -> None:
        self.results = list(results)
        self.sent: list[tuple[str, str, bytes]] = []

    async def send(self, url: str, msg_id: str, body: bytes) -> DeliveryResult:
        self.sent.append((url, msg_id, body))
        return self.results.pop(0)


@pytest.fixture
def store(tmp_path: Path) -> JobStore:
    return JobStore(LocalStorage(tmp_path, UrlSigner(b"k" * 32), 60))


def finished(store: JobStore, callback: Callback) -> JobRecord:
    record = JobRecord(new_job_id(), "separation", "acme", {}, {}, callback=callback)
    record.status, record.finished_at = JobStatus.SUCCEEDED, time.time()
    store.save(record)
    return record


def run_delivery(store: JobStore, record: JobRecord, receiver: Receiver) -> JobRecord:
    ctx = JobContext(store, record)
    asyncio.run(deliver(ctx, CallbackDelivery(receiver, QUICK), heartbeat=0.01))
    return store.get(record.job_id)


def test_a_server_error_is_retried_until_delivered(store: JobStore) -> None:
    record = finished(store, Callback("https://hooks.example.com/x"))
    receiver = Receiver(
        DeliveryResult(500), DeliveryResult(error="ConnectError"), DeliveryResult(204)
    )
    saved = run_delivery(store, record, receiver)
    assert saved.callback is not None and saved.callback.state is CallbackState.DELIVERED
    assert [a.status_code for a in saved.callback.attempts] == [500, None, 204]
    assert saved.callback.attempts[1].error == "ConnectError"
    ids = {msg_id for _, msg_id, _ in receiver.sent}
    assert ids == {message_id(record.job_id)}  # one message, however many attempts
    body = json.loads(receiver.sent[0][2])
    assert body["type"] == "job.succeeded" and body["data"]["job_id"] == record.job_id


def test_a_refusal_is_not_retried(store: JobStore) -> None:
    record = finished(store, Callback("https://hooks.example.com/x"))
    saved = run_delivery(store, record, Receiver(DeliveryResult(401)))
    assert saved.callback is not None and saved.callback.state is CallbackState.FAILED
    assert len(saved.callback.attempts) == 1


def test_delivery_gives_up_after_its_attempts(store: JobStore) -> None:
    record = finished(store, Callback("https://hooks.example.com/x"))
    saved = run_delivery(store, record, Receiver(*[DeliveryResult(503)] * QUICK.max_attempts))
    assert saved.callback is not None and saved.callback.state is CallbackState.FAILED
    assert len(saved.callback.attempts) == QUICK.max_attempts


def test_a_resumed_delivery_continues_from_the_recorded_attempts(store: JobStore) -> None:
    """As after a crash: two attempts on record, so two are left of four."""
    earlier = [CallbackAttempt(time.time() - 5, 500), CallbackAttempt(time.time() - 1, 502)]
    record = finished(store, Callback("https://hooks.example.com/x", attempts=earlier))
    receiver = Receiver(DeliveryResult(500), DeliveryResult(200))
    saved = run_delivery(store, record, receiver)
    assert saved.callback is not None and saved.callback.state is CallbackState.DELIVERED
    assert len(receiver.sent) == 2 and len(saved.callback.attempts) == 4


def test_an_owed_callback_keeps_a_finished_job_in_the_reapers_view(store: JobStore) -> None:
    owed = finished(store, Callback("https://hooks.example.com/x"))
    owed.heartbeat_at = time.time() - 120
    store.save(owed)
    done = finished(store, Callback("https://hooks.example.com/y", CallbackState.DELIVERED))
    janitor = Janitor(store, stale_after=60, retention=None)
    assert janitor.stale_jobs(time.time()) == [owed.job_id]
    assert done.job_id not in janitor.stale_jobs(time.time())


def test_run_exclusively_delivers_for_a_finished_job(store: JobStore) -> None:
    """The reaper's call for a finished job that owes its callback: delivered, not re-run."""
    record = finished(store, Callback("https://hooks.example.com/x"))
    receiver = Receiver(DeliveryResult(200))
    runs: list[str] = []

    async def run(rec: JobRecord, lease: object) -> JobRecord:
        runs.append(rec.job_id)
        return rec

    async def send(rec: JobRecord, lease: object) -> JobRecord:
        await deliver(JobContext(store, rec), CallbackDelivery(receiver, QUICK), 0.01)
        return rec

    policy = RecoveryPolicy(stale_after=60.0, max_attempts=2)
    status = asyncio.run(run_exclusively(store, record.job_id, "me", policy, run, send))
    assert status is JobStatus.SUCCEEDED and runs == []
    saved = store.get(record.job_id)
    assert saved.callback is not None and saved.callback.state is CallbackState.DELIVERED
    # Once delivered there is nothing left to do: a second call claims nothing.
    asyncio.run(run_exclusively(store, record.job_id, "me", policy, run, send))
    assert len(receiver.sent) == 1


def test_a_callback_may_not_outlast_the_staleness_it_heartbeats_against() -> None:
    with pytest.raises(ValueError, match="callback_timeout_seconds"):
        JobsArgs(stale_after_seconds=15, reaper_interval_seconds=5)
    assert (
        JobsArgs(stale_after_seconds=15, callback_timeout_seconds=5).callback_timeout_seconds == 5
    )

"""A job's callback survives the death of the coordinator that was delivering it."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from standardwebhooks import Webhook

from tests.faults.conftest import WEBHOOK_SECRET, FaultApp
from tests.receiver import Receiver

pytestmark = pytest.mark.faults


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as running:
        yield running


def test_callback_delivered_after_its_coordinator_is_killed(
    app: FaultApp, client: httpx.Client, receiver: Receiver
) -> None:
    """The receiver fails the first attempts; the replica retrying them is killed; once
    the lease runs out the reaper hands the job to another replica, which delivers."""
    receiver.default = 503
    job_id = app.submit(client, 2.0, callback_url=receiver.url)
    view = app.poll(client, job_id, lambda v: bool(v["callback"]["attempts"]))
    assert view["status"] == "succeeded" and view["callback"]["state"] == "pending"
    holder = app.lease(job_id).owner
    app.kill(holder)
    receiver.default = 204
    done = app.poll(client, job_id, lambda v: v["callback"]["state"] != "pending")
    assert done["callback"]["state"] == "delivered", done["callback"]
    codes = [a["status_code"] for a in done["callback"]["attempts"]]
    assert len(codes) >= 2 and set(codes[:-1]) == {503} and codes[-1] == 204
    assert app.lease(job_id).owner != holder
    headers, body = receiver.received[-1]
    message = Webhook(WEBHOOK_SECRET).verify(body, headers)
    assert message["data"]["job_id"] == job_id and headers["webhook-id"] == f"msg_{job_id}"

"""Admission of new jobs: one `Admission` per request, from arrival to the 202.

In order: ``Idempotency-Key`` replay and the tenant's cap on unfinished jobs (before
the body is read, so a replay or a refusal costs no upload), the parsed request
(``submission.py``), its parameters checked against the served models
(``validation.py``), the callback's address, the input probed and stored
(``intake.py``), the result cache, the key bound, the ``queued`` record saved and
handed to the workers.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from fastapi import Request
from fastapi.responses import JSONResponse

from deployments.api.errors import TooManyJobs
from deployments.api.services import AppServices, Owner, Services
from deployments.api.submission import JobRequest, read_job_request
from deployments.api.validation import validate
from deployments.api.views import present
from pipelines.errors import IdempotencyConflict, InvalidRequest, NotFound
from pipelines.fetch import check_url
from pipelines.jobs import JobRecord, new_job_id
from pipelines.jobs.active import ActiveJobs
from pipelines.jobs.cache import ResultCache, cache_key, repeat
from pipelines.jobs.callbacks import Callback
from pipelines.jobs.idempotency import IdempotencyKeys, IdempotentJob
from pipelines.webhooks import CALLBACK_FIELD

IDEMPOTENCY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
_KEY_SYNTAX = re.compile(r"[\x21-\x7e]{1,255}")
CLAIM_GRACE_SECONDS = 60.0
"""A binding whose job has no record yet is a request still in flight for this long."""
RECORD_WAIT_SECONDS = 5.0
TOO_MANY_JOBS_RETRY_SECONDS = 30


Reader = Callable[[], Awaitable[JobRequest]]
"""Reads a job request's body (nothing stored yet)."""


@dataclass
class Admission:
    """A job request's way in, for ``request`` acting for ``owner``."""

    request: Request
    services: Services
    owner: str

    async def accept(self, kind: str, read: Reader | None = None) -> JSONResponse:
        """The 202 with the new job (or the earlier one of a repeated key).

        ``read`` parses the body (default: a ``/v1`` multipart or JSON job request).
        """
        if (replay := await self.replay(kind)) is not None:
            return replay
        job = await (read() if read else read_job_request(self.request, self.services))
        return await self.admit(job, kind)

    async def replay(self, kind: str) -> JSONResponse | None:
        """The earlier job of a repeated ``Idempotency-Key``; else None once the cap allows.

        Raises ``TooManyJobs`` (429) when the tenant already has its cap of unfinished jobs.
        """
        key = _idempotency_key(self.request)
        if key is not None:
            entry = await asyncio.to_thread(_keys(self.services).lookup, self.owner, key)
            if entry is not None and (
                replay := await _replay(self.request, self.services, entry, kind, self.owner)
            ):
                return replay
        limit = self.services.args.limits.max_active_jobs_per_tenant
        if limit:
            active = await asyncio.to_thread(ActiveJobs(self.services.jobs).count, self.owner)
            if active >= limit:
                raise TooManyJobs(
                    f"You have {active} unfinished jobs, the most allowed at once; "
                    "submit more when one finishes (or cancel one).",
                    details={"limit": limit, "retry_after_seconds": TOO_MANY_JOBS_RETRY_SECONDS},
                )
        return None

    async def admit(self, job: JobRequest, kind: str) -> JSONResponse:
        """Validate, store the input, write the ``queued`` record, hand the job over: 202.

        With an ``Idempotency-Key`` that another request claimed first, its job instead.
        A request the result cache answers is saved already ``succeeded`` (nothing to
        run); it is still handed over when it owes a callback, which the coordinator
        delivers.
        """
        request, services = self.request, self.services
        use_cache = job.cache and services.args.jobs.result_cache
        try:
            checked = await validate(services, kind, job.params)
            callback = await _checked_callback(services, job.callback_url)
            source = await job.store_input(services, self.owner, checked.cost, digest=use_cache)
        finally:
            await job.close()
        record = JobRecord(
            job_id=new_job_id(),
            kind=kind,
            owner=self.owner,
            params=checked.params,
            input=source,
            info=checked.info,
            callback=callback,
        )
        if use_cache:
            record = await _from_cache(services, record)
        if (earlier := await _claim(request, services, record)) is not None:
            return earlier
        await asyncio.to_thread(services.jobs.save, record)
        if record.cached_from is None:
            await _accepted(services, record)
        if record.cached_from is None or record.callback_pending:
            await services.launcher.submit(kind, record.job_id)
        return JSONResponse(present(request, services, record), status_code=202)


def job_admission(request: Request, services: AppServices, owner: Owner) -> Admission:
    """The `Admission` of a job route's request (a FastAPI dependency)."""
    return Admission(request, services, owner)


def _idempotency_key(request: Request) -> str | None:
    """The request's ``Idempotency-Key`` (1-255 visible ASCII characters), if any."""
    key = request.headers.get(IDEMPOTENCY_HEADER)
    if key is None:
        return None
    if not _KEY_SYNTAX.fullmatch(key):
        raise InvalidRequest(
            f"{IDEMPOTENCY_HEADER} must be 1-255 visible ASCII characters (a UUID works).",
            details={"field": IDEMPOTENCY_HEADER},
        )
    return key


async def _checked_callback(services: Services, url: str | None) -> Callback | None:
    """The job's callback, its address checked like ``input.url`` (400 when refused)."""
    if url is None:
        return None
    if services.settings.webhook_secret is None:
        raise InvalidRequest(
            f"{CALLBACK_FIELD} needs a signing secret on the server "
            "(STEMSCRIBE_WEBHOOK_SECRET), and none is set.",
            details={"field": CALLBACK_FIELD},
        )
    allow = services.settings.allow_private_urls
    await asyncio.to_thread(check_url, url, allow_private=allow, field=CALLBACK_FIELD)
    return Callback(url)


async def _from_cache(services: Services, record: JobRecord) -> JobRecord:
    """``record`` keyed for the result cache, and answered by the tenant's earlier
    identical job when there is one (a new record, already ``succeeded``)."""
    digest = str(record.input["sha256"])
    record.cache_key = cache_key(record.owner, record.kind, digest, record.params)
    earlier = await asyncio.to_thread(
        _result_cache(services).lookup, record.owner, record.cache_key
    )
    return record if earlier is None else repeat(earlier, record)


def _result_cache(services: Services) -> ResultCache:
    return ResultCache(services.jobs, services.args.jobs.retention_seconds)


async def _claim(request: Request, services: Services, record: JobRecord) -> JSONResponse | None:
    """Bind the request's ``Idempotency-Key`` to ``record`` before it is saved.

    None: go on with ``record``. A response: another request with the same key won,
    and this is its job (``record`` is dropped).
    """
    key = _idempotency_key(request)
    if key is None:
        return None
    ours = IdempotentJob(record.job_id, record.kind, time.time())

    def stale(entry: IdempotentJob) -> bool:
        return _gone(services, entry, record.owner)

    holder = await asyncio.to_thread(_keys(services).claim, record.owner, key, ours, stale)
    if holder.job_id == record.job_id:
        return None
    return await _replay(request, services, holder, record.kind, record.owner)


async def _accepted(services: Services, record: JobRecord) -> None:
    """Count the saved job against its tenant's cap until it finishes."""
    await asyncio.to_thread(ActiveJobs(services.jobs).add, record.owner, record.job_id)


async def _replay(
    request: Request, services: Services, entry: IdempotentJob, kind: str, owner: str
) -> JSONResponse | None:
    """The bound job's view, as when it was created; None when that job is gone."""
    if entry.kind != kind:
        raise IdempotencyConflict(
            f"This {IDEMPOTENCY_HEADER} already created a {entry.kind} job; "
            "use a new key for a new request.",
            details={"job_id": entry.job_id},
        )
    deadline = time.monotonic() + RECORD_WAIT_SECONDS
    while True:
        try:
            record = await asyncio.to_thread(services.jobs.get, entry.job_id, owner)
            break
        except NotFound:
            if time.time() - entry.created_at > CLAIM_GRACE_SECONDS:
                return None  # deleted since: the key is free again
            if time.monotonic() > deadline:
                raise IdempotencyConflict(
                    f"A request with this {IDEMPOTENCY_HEADER} is still being accepted; "
                    "retry in a moment.",
                    details={"retry_after_seconds": 1},
                ) from None
            await asyncio.sleep(0.1)
    view = present(request, services, record)
    return JSONResponse(view, status_code=202, headers={REPLAYED_HEADER: "true"})


def _gone(services: Services, entry: IdempotentJob, owner: str) -> bool:
    """Whether a binding may be replaced: its job was deleted (or never saved)."""
    if time.time() - entry.created_at <= CLAIM_GRACE_SECONDS:
        return False
    try:
        services.jobs.get(entry.job_id, owner)
    except NotFound:
        return True
    return False


def _keys(services: Services) -> IdempotencyKeys:
    return IdempotencyKeys(services.jobs.storage)

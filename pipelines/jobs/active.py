"""Which jobs of a tenant may still be unfinished: a small index beside the records.

Counting a tenant's queued and running jobs from the records alone means reading
every record in the store on each submission. Instead, accepting a job writes an
empty marker ``active/{tenant}/{job_id}``; counting lists the tenant's markers and
reads only those jobs' records, dropping the markers of jobs that finished or are
gone. The cost of a count is one listing plus one read per unfinished job, bounded
by the per-tenant cap, and job runners need not know the index exists.

Two submissions counted at the same moment can both pass, so a tenant may briefly
hold one job over its cap; the cap bounds load, it is not an invariant.
"""

from __future__ import annotations

import hashlib

from pipelines.errors import NotFound
from pipelines.jobs.records import JobStore

PREFIX = "active/"


def tenant_hash(owner: str) -> str:
    """A storage-safe, fixed-length name for a tenant in object keys."""
    return hashlib.sha256(owner.encode()).hexdigest()[:32]


class ActiveJobs:
    """Markers of accepted jobs, per tenant, over the job store's storage."""

    def __init__(self, jobs: JobStore) -> None:
        self._jobs = jobs

    def add(self, owner: str, job_id: str) -> None:
        """Mark ``job_id`` as unfinished (call once its record is saved)."""
        self._jobs.storage.put(self._key(owner, job_id), b"", "text/plain")

    def count(self, owner: str) -> int:
        """Unfinished jobs of ``owner``; stale markers are removed on the way."""
        storage = self._jobs.storage
        unfinished = 0
        for marker in list(storage.list(self._key(owner, ""))):
            job_id = marker.key.rsplit("/", 1)[-1]
            try:
                finished = self._jobs.get(job_id, owner).status.finished
            except NotFound:
                finished = True
            if finished:
                storage.delete(marker.key)
            else:
                unfinished += 1
        return unfinished

    @staticmethod
    def _key(owner: str, job_id: str) -> str:
        return f"{PREFIX}{tenant_hash(owner)}/{job_id}"

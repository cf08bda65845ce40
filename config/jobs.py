"""``JobsArgs``: how interrupted jobs are recovered and how long finished ones are kept."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator


class JobsArgs(BaseModel):
    """The reaper and the sweeper, run by every JobCoordinator replica."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    stale_after_seconds: float = Field(
        default=90.0,
        ge=1.0,
        description="A running job whose heartbeat is older than this (or a queued job "
        "accepted this long ago that never started) is run again by the reaper. It is also "
        "the lifetime of a job's lease; running jobs heartbeat every quarter of it. Keep "
        "it above the storage retry budget (STEMSCRIBE_STORAGE_RETRY_SECONDS).",
    )
    max_attempts: int = Field(
        default=3,
        ge=1,
        description="Starts a job gets; a job interrupted this many times (its replica "
        "died, or storage stayed away) is marked failed with `job_abandoned`.",
    )
    reaper_interval_seconds: float = Field(
        default=15.0, gt=0, description="How often each coordinator replica looks for stale jobs."
    )
    retention_hours: float | None = Field(
        default=168.0,
        gt=0,
        description="Finished jobs (record and outputs) and uploads older than this are "
        "deleted. Null keeps everything (then set S3 lifecycle rules instead).",
    )
    sweep_interval_seconds: float = Field(
        default=900.0, gt=0, description="How often each coordinator replica sweeps."
    )
    result_cache: bool = Field(
        default=True,
        description="Answer a request whose input bytes, kind, model and parameters (seed "
        "included) match an earlier succeeded job of the same tenant with that job's "
        "outputs, as a new job marked `cached: true` (a request opts out with "
        "`cache: false`). False: every request runs.",
    )
    callback_attempts: int = Field(
        default=8,
        ge=1,
        le=20,
        description="POSTs a job's callback_url gets at most before its delivery is "
        "marked failed (retried after network errors, 5xx, 408, 425 and 429).",
    )
    callback_backoff_seconds: float = Field(
        default=2.0,
        gt=0,
        description="Wait before the second callback attempt; doubled before each later "
        "one, up to callback_max_backoff_seconds.",
    )
    callback_max_backoff_seconds: float = Field(
        default=120.0, gt=0, description="Longest wait between two callback attempts."
    )
    callback_timeout_seconds: float = Field(
        default=10.0, gt=0, le=60, description="How long one callback POST may take."
    )

    @model_validator(mode="after")
    def _reaper_faster_than_staleness(self) -> JobsArgs:
        if self.reaper_interval_seconds > self.stale_after_seconds:
            raise ValueError(
                f"jobs.reaper_interval_seconds ({self.reaper_interval_seconds}) must not "
                f"exceed jobs.stale_after_seconds ({self.stale_after_seconds}); lower it"
            )
        if self.callback_timeout_seconds * 2 > self.stale_after_seconds:
            raise ValueError(
                f"jobs.callback_timeout_seconds ({self.callback_timeout_seconds}) must be at "
                f"most half of jobs.stale_after_seconds ({self.stale_after_seconds}): a "
                "delivery waiting on a slow receiver must not look interrupted"
            )
        return self

    @property
    def retention_seconds(self) -> float | None:
        return None if self.retention_hours is None else self.retention_hours * 3600

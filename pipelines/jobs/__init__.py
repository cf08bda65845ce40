"""Jobs: durable records, parameters, and the runners that carry a job to its end."""

from pipelines.jobs.params import SeparationParams
from pipelines.jobs.records import (
    JobRecord,
    JobStatus,
    JobStore,
    OutputFile,
    new_job_id,
    output_key,
)

__all__ = [
    "JobRecord",
    "JobStatus",
    "JobStore",
    "OutputFile",
    "SeparationParams",
    "new_job_id",
    "output_key",
]

"""``AppArgs``: the deployment shape, read from the ``args`` of ``serve_config.yaml``.

Every invalid combination raises a ``ValueError`` that says what to change, so
``build_app`` fails before anything is deployed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from config.compat import CompatArgs
from config.jobs import JobsArgs
from config.models import SeparationArgs, StreamingArgs, TranscriptionArgs
from config.quantity import parse_bytes

# Ray's built-in resources: requested through num_cpus and num_gpus, never by name.
_RESERVED_RESOURCES = frozenset({"CPU", "GPU"})


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AutoscalingArgs(_Strict):
    """Serve autoscaling for one deployment (replicas follow ongoing requests)."""

    min_replicas: int = Field(default=1, ge=0, description="Replicas kept even when idle.")
    max_replicas: int = Field(default=1, ge=1, description="Upper bound on replicas.")
    initial_replicas: int | None = Field(default=None, ge=0, description="Replicas at start.")
    target_ongoing_requests: float = Field(
        default=2.0, gt=0, description="Ongoing requests per replica the autoscaler aims for."
    )
    upscale_delay_s: float = Field(default=10.0, ge=0, description="Wait before adding replicas.")
    downscale_delay_s: float = Field(
        default=300.0, ge=0, description="Wait before removing replicas (models are slow to load)."
    )

    @model_validator(mode="after")
    def _bounds(self) -> AutoscalingArgs:
        if self.max_replicas < self.min_replicas:
            raise ValueError(
                f"autoscaling.max_replicas ({self.max_replicas}) must be >= "
                f"min_replicas ({self.min_replicas})"
            )
        return self


MODEL_ENV = {
    # glibc's malloc asks for transparent huge pages for what it maps and grows.
    # Model computations allocate big blocks anew on every call (a Demucs forward
    # pass its activations, CTranslate2 its buffers); blocks that large come straight
    # from the system, and in 4 KB pages a htdemucs window took about 480 000 page
    # faults and a 15 s Whisper decode about 70 000, a tenth to a fifth of their time.
    # Only for the replicas that run models, where the gain was measured.
    "GLIBC_TUNABLES": "glibc.malloc.hugetlb=1",
}
"""Environment of the replicas that run models (DemucsWorker, Transcriber), set before
their libraries load."""


class DeploymentArgs(_Strict):
    """Resources and limits of one Serve deployment."""

    num_replicas: int = Field(default=1, ge=1, description="Fixed replica count (no autoscaling).")
    autoscaling: AutoscalingArgs | None = Field(
        default=None, description="Autoscaling; when set, num_replicas is ignored."
    )
    num_cpus: float = Field(default=1.0, ge=0, description="Logical CPUs reserved per replica.")
    num_gpus: float = Field(
        default=0.0,
        ge=0,
        description="GPU per replica: a fraction in (0, 1] packs replicas on one GPU, "
        "or whole GPUs.",
    )
    num_gpus_if_available: float = Field(
        default=0.0,
        ge=0,
        description="GPU per replica used instead of num_gpus (when that is 0) if the cluster "
        "has GPUs when the app is built, so one config serves CPU and GPU machines.",
    )
    resources: dict[str, float] = Field(
        default_factory=dict,
        description="Custom Ray resources per replica, e.g. {cpu_pool: 1} to keep it on the "
        "nodes that declare cpu_pool (ray start --resources). CPUs and GPUs go in num_cpus "
        "and num_gpus.",
    )
    memory: int | None = Field(
        default=None,
        gt=0,
        description="Heap memory reserved per replica (Ray's memory resource), in bytes or "
        "with a unit: 6Gi, 512Mi, 2GB. Ray places a replica only where that much is free, "
        "so replicas are packed by memory as well as CPUs. Unset: no reservation.",
    )
    threads: int | None = Field(
        default=None,
        ge=1,
        description="Compute threads per replica (torch / CTranslate2), and the size of its "
        "OpenMP pool (OMP_NUM_THREADS, which Ray would otherwise set to num_cpus). "
        "Unset: the CPUs reserved (num_cpus, at least 1), so replicas never oversubscribe.",
    )
    max_ongoing_requests: int = Field(default=8, ge=1, description="Concurrent calls per replica.")
    max_queued_requests: int = Field(
        default=256,
        ge=-1,
        description="Calls waiting per caller before Serve rejects them (-1: unbounded).",
    )
    graceful_shutdown_timeout_s: float | None = Field(
        default=None,
        ge=0,
        description="Seconds a replica being stopped (redeploy, downscale) may spend finishing "
        "its calls before it is killed; unset: Serve's default (20). Jobs cut off are run "
        "again by the reaper.",
    )

    @field_validator("memory", mode="before")
    @classmethod
    def _memory_bytes(cls, value: object) -> object:
        return None if value is None else parse_bytes(value)

    @model_validator(mode="after")
    def _gpu_fraction(self) -> DeploymentArgs:
        for field, value in (
            ("num_gpus", self.num_gpus),
            ("num_gpus_if_available", self.num_gpus_if_available),
        ):
            if value > 1 and not float(value).is_integer():
                raise ValueError(
                    f"{field}={value}: use a fraction in (0, 1] or a whole number of GPUs"
                )
        return self

    @model_validator(mode="after")
    def _custom_resources(self) -> DeploymentArgs:
        for name, quantity in self.resources.items():
            if name in _RESERVED_RESOURCES:
                raise ValueError(
                    f"resources.{name}: set num_cpus / num_gpus instead "
                    "(resources is for custom resources such as cpu_pool)"
                )
            if not name.strip():
                raise ValueError("resources: a resource name must not be empty")
            if quantity < 0:
                raise ValueError(f"resources.{name}={quantity}: use a quantity >= 0")
        return self

    @property
    def compute_threads(self) -> int:
        """Threads the replica's model should use: explicit, else its CPU share."""
        return self.threads or max(1, int(self.num_cpus))

    def serve_options(self, env: Mapping[str, str] | None = None) -> dict[str, Any]:
        """Options for ``serve.deployment(...)``: the one place config meets Serve.

        ``env``: environment variables for the replicas besides ``OMP_NUM_THREADS``.
        CTranslate2's OpenMP pool is sized when the library loads, before the replica's
        code runs; a pool other than its compute threads changes how its reductions
        split, and so its numbers (a Whisper decode can take another round).
        """
        env_vars = {**(env or {}), "OMP_NUM_THREADS": str(self.compute_threads)}
        actor: dict[str, Any] = {
            "num_cpus": self.num_cpus,
            "runtime_env": {"env_vars": env_vars},
        }
        if self.num_gpus:
            actor["num_gpus"] = self.num_gpus
        if self.resources:
            actor["resources"] = dict(self.resources)
        if self.memory is not None:
            actor["memory"] = self.memory
        options: dict[str, Any] = {
            "ray_actor_options": actor,
            "max_ongoing_requests": self.max_ongoing_requests,
            "max_queued_requests": self.max_queued_requests,
        }
        if self.graceful_shutdown_timeout_s is not None:
            options["graceful_shutdown_timeout_s"] = self.graceful_shutdown_timeout_s
        if self.autoscaling is None:
            options["num_replicas"] = self.num_replicas
        else:
            options["autoscaling_config"] = self.autoscaling.model_dump(exclude_none=True)
        return options


class LimitsArgs(_Strict):
    """What a single request may ask of the service."""

    max_upload_mb: float = Field(default=200.0, gt=0, description="Largest accepted input file.")
    max_audio_seconds: float = Field(
        default=14400.0,
        gt=0,
        description="Longest accepted audio (checked before and while decoding). Jobs "
        "stream through local scratch disk, so memory does not grow with length; the "
        "scratch disk's free space is what bounds a job (checked before it is accepted).",
    )
    max_url_download_seconds: float = Field(
        default=60.0, gt=0, description="Time allowed to fetch an input given by URL."
    )
    requests_per_minute: int = Field(
        default=1200,
        ge=0,
        description="Sustained API requests per tenant and per ingress replica (a token "
        "bucket holding one minute's worth, so short bursts pass); over it: 429 with "
        "Retry-After. File downloads are not counted. 0: unlimited.",
    )
    max_active_jobs_per_tenant: int = Field(
        default=32,
        ge=0,
        description="Queued plus running jobs a tenant may have at once; one more is "
        "refused with 429 too_many_jobs. 0: unlimited.",
    )


class AppArgs(_Strict):
    """The whole application shape; the ``args`` of the Serve application."""

    ingress: DeploymentArgs = Field(
        default_factory=lambda: DeploymentArgs(num_cpus=0.5, max_ongoing_requests=200),
        description="HTTP/WebSocket ingress (CPU).",
    )
    coordinator: DeploymentArgs = Field(
        default_factory=lambda: DeploymentArgs(num_cpus=1.0, max_ongoing_requests=4),
        description="JobCoordinator (its max_ongoing_requests = jobs run at once): "
        "decode, plan, overlap-add, encode, upload (CPU).",
    )
    demucs_worker: DeploymentArgs = Field(
        default_factory=lambda: DeploymentArgs(
            num_cpus=1.0, num_gpus_if_available=0.5, max_ongoing_requests=16
        ),
        description="DemucsWorker: the model forward pass on batches of windows (GPU); its "
        "max_ongoing_requests are calls waiting to share a pass (separation.max_windows_per_pass).",
    )
    transcriber: DeploymentArgs = Field(
        default_factory=lambda: DeploymentArgs(
            num_cpus=1.0, num_gpus_if_available=0.25, max_ongoing_requests=4
        ),
        description="Transcriber: faster-whisper (GPU).",
    )
    separation: SeparationArgs = Field(default_factory=SeparationArgs)
    transcription: TranscriptionArgs = Field(default_factory=TranscriptionArgs)
    limits: LimitsArgs = Field(default_factory=LimitsArgs)
    streaming: StreamingArgs = Field(
        default_factory=StreamingArgs, description="Live transcription sessions (WebSocket)."
    )
    jobs: JobsArgs = Field(
        default_factory=JobsArgs,
        description="Recovery of interrupted jobs (reaper, leases) and retention (sweeper).",
    )
    compat: CompatArgs = Field(
        default_factory=CompatArgs,
        description="Routes and Socket.IO namespaces of the servers stemscribe replaces.",
    )
    fit_to_cluster: bool = Field(
        default=True,
        description="When the app is built, shrink the replicas' logical CPUs (num_cpus) to "
        "what the cluster has, so a small machine places every replica. Turn off where nodes "
        "join on demand (an autoscaling cluster): there, asking for more than is up is how "
        "new nodes are requested.",
    )


def parse_app_args(raw: dict[str, Any] | AppArgs | None) -> AppArgs:
    """Validate raw YAML args; the error names every offending field and what to change."""
    if isinstance(raw, AppArgs):
        return raw
    try:
        return AppArgs.model_validate(raw or {})
    except ValidationError as exc:
        problems = "\n".join(
            f"  - {'.'.join(str(p) for p in e['loc']) or '(args)'}: {e['msg']}"
            for e in exc.errors()
        )
        raise ValueError(f"Invalid stemscribe application args:\n{problems}") from None

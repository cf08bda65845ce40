"""Which models a deployment serves, and how it runs them."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class SimulatedDeviceArgs(BaseModel):
    """A stand-in accelerator for scale-out benchmarks (bench/scaleout.py), never deployed:
    each forward pass of B windows sleeps ``fixed_s + per_window_s * B`` seconds and
    returns zeros of the right shape."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    fixed_s: float = Field(ge=0, le=60, description="Seconds of every pass.")
    per_window_s: float = Field(ge=0, le=60, description="Seconds added per window.")


class SeparationArgs(BaseModel):
    """Demucs models and how a track is fanned out over workers."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    models: list[str] = Field(
        default_factory=lambda: ["htdemucs"],
        min_length=1,
        description="Enabled Demucs models: pretrained names (htdemucs, htdemucs_ft, htdemucs_6s, "
        "mdx_extra...), names in model_repo, or the offline demucs_unittest.",
    )
    default_model: str = Field(
        default="htdemucs", description="Model used when a request names none."
    )
    model_repo: str | None = Field(
        default=None,
        description="Local model repo directory (demucs --repo layout: <sig>.th, <bag>.yaml). "
        "Relative paths are taken from the working directory of the replicas.",
    )
    window_batch_size: int = Field(
        default=1, ge=1, le=64, description="Windows per DemucsWorker call (GPU batch)."
    )
    max_inflight_batches: int = Field(
        default=8, ge=1, description="Concurrent DemucsWorker calls one job keeps in flight."
    )
    max_windows_per_pass: int | None = Field(
        default=None,
        ge=1,
        le=256,
        description="Most windows a DemucsWorker runs in one forward pass. Calls that wait "
        "while a pass runs (of any job, same model and window shape) go through the next "
        "pass together, up to this many windows; 1 turns this cross-job batching off. Unset: "
        "8 on a GPU, 1 on the CPU (a bigger pass computes no faster there and needs more "
        "memory).",
    )
    precision: Literal["fp32", "tf32", "bf16", "fp16"] = Field(
        default="fp32",
        description="Forward-pass arithmetic on CUDA: fp32 (equals Demucs to 1e-4), tf32 "
        "(TensorFloat-32 products), or bf16/fp16 under autocast; see docs/BENCHMARKS.md for "
        "their difference from fp32.",
    )
    simulated_device: SimulatedDeviceArgs | None = Field(
        default=None,
        description="Benchmarks only (refused by the app builder that serve_config.yaml "
        "uses): DemucsWorkers sleep instead of computing.",
    )
    batch_wait_ms: float = Field(
        default=2.0,
        ge=0,
        le=1000,
        description="How long a DemucsWorker waits for more calls before an idle pass starts.",
    )
    max_models_per_replica: int = Field(
        default=2, ge=1, description="Models a DemucsWorker replica keeps loaded (LRU)."
    )
    max_shifts: int = Field(default=10, ge=0, description="Largest `shifts` a request may ask for.")

    @model_validator(mode="after")
    def _default_enabled(self) -> SeparationArgs:
        if self.default_model not in self.models:
            raise ValueError(
                f"separation.default_model {self.default_model!r} is not in separation.models "
                f"{self.models}; add it there or pick one of them"
            )
        return self


class TranscriptionArgs(BaseModel):
    """faster-whisper models served by the Transcriber."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    models: dict[str, str] = Field(
        default_factory=lambda: {"large-v3": "large-v3"},
        min_length=1,
        description="Public model name -> source: a faster-whisper name (tiny, base, small, "
        "large-v3, distil-large-v3...), a local CTranslate2 directory, or "
        "package:<module>/<subdir> for a model shipped inside an installed package.",
    )
    default_model: str = Field(
        default="large-v3", description="Model used when a request names none (and for whisper-1)."
    )
    cpu_default_model: str | None = Field(
        default=None,
        description="Default model instead of default_model when the cluster has no GPU when "
        "the app is built (a large model is slow on CPUs); unset: default_model everywhere.",
    )
    compute_type: str | None = Field(
        default=None,
        description="CTranslate2 compute type; unset: float16 on CUDA, int8 on CPU.",
    )
    max_models_per_replica: int = Field(
        default=1, ge=1, description="Models a Transcriber replica keeps loaded (LRU)."
    )
    workers: int = Field(
        default=2,
        ge=1,
        le=16,
        description="Decodes a Transcriber replica runs at once (CTranslate2 workers of each "
        "model; workers on one device share the weights). Each worker may use all the "
        "replica's threads, so a lone decode is as fast as with one worker; on 2 CPU cores, "
        "2 workers x 2 threads gave the best throughput for concurrent requests "
        "(docs/BENCHMARKS.md).",
    )
    file_batch_size: int = Field(
        default=0,
        ge=0,
        le=64,
        description="Windows of one file decoded together by faster-whisper's "
        "BatchedInferencePipeline, which cuts the audio at pauses with Silero VAD and does "
        "not condition a window on the text before it; 0: window after window, as "
        "faster-whisper's transcribe does, so the text equals a plain faster-whisper "
        "decode. Worth it for long files with pauses (tiny.en on 2 CPU cores: 1.4x the speed "
        "on 5 minutes; docs/BENCHMARKS.md has its WER against window-by-window).",
    )
    live_batch_size: int = Field(
        default=8,
        ge=1,
        description="Most live-session windows decoded together in one batched encode and "
        "generate; windows that arrive while a batch runs form the next one.",
    )
    live_batch_wait_ms: float = Field(
        default=5.0,
        ge=0,
        description="How long the first window of a live batch waits for others to join.",
    )

    @model_validator(mode="after")
    def _default_enabled(self) -> TranscriptionArgs:
        for field in ("default_model", "cpu_default_model"):
            name = getattr(self, field)
            if name is not None and name not in self.models:
                raise ValueError(
                    f"transcription.{field} {name!r} is not one of "
                    f"transcription.models {sorted(self.models)}"
                )
        return self


class StreamingArgs(BaseModel):
    """Live transcription over WebSocket: limits of one Ingress replica and its sessions."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_sessions: int = Field(
        default=64,
        ge=1,
        description="Open live sessions per Ingress replica; one more is accepted, told "
        "`too_many_sessions` and closed with 1013 (try again later). Each session holds one "
        "of the replica's ingress.max_ongoing_requests, so keep this below it.",
    )
    max_sessions_per_tenant: int = Field(
        default=16,
        ge=0,
        description="Open live sessions one tenant may hold on an Ingress replica (0: no cap "
        "beyond max_sessions), so one tenant cannot take every slot; one more is told "
        "`too_many_sessions` and closed with 1013.",
    )
    max_session_seconds: float = Field(
        default=3600.0,
        gt=0,
        description="Wall-clock lifetime of a session (it holds a slot however little audio it "
        "sends). At the limit everything heard is finalized, then `session_too_long` and "
        "close 1000.",
    )
    idle_timeout_seconds: float = Field(
        default=30.0,
        gt=0,
        description="A session with no frame (audio, control or keepalive) for this long is "
        "finalized, told `idle_timeout` and closed with 1000.",
    )
    max_frame_bytes: int = Field(
        default=1 << 20,
        ge=1024,
        le=16 << 20,
        description="Largest audio payload of one frame (after base64 decoding); a bigger "
        "frame gets a `frame_too_large` error and the session goes on. The Serve proxy "
        "refuses messages over 16 MiB anyway.",
    )
    max_backlog_seconds: float = Field(
        default=5.0,
        gt=0,
        description="Audio a session buffers beyond its in-flight decode before it stops "
        "reading the socket until that decode returns: frames sent faster than the "
        "Transcriber keeps up wait in the proxy and the network instead of growing the next "
        "window without bound. Real-time clients reach it only on an overloaded Transcriber.",
    )
    min_finalize_interval_seconds: float = Field(
        default=1.0,
        ge=0,
        description="Least time between two forced decodes (`finalize`) of one session, so "
        "finalize spam cannot crowd other sessions off a Transcriber. A finalize sooner than "
        "that waits; one followed by another finalize or a close already queued is merged "
        "into it (the later one flushes everything the earlier one would have). 0: no limit.",
    )
    decode_timeout_seconds: float = Field(
        default=60.0, gt=0, description="A Transcriber call slower than this counts as failed."
    )
    max_decode_failures: int = Field(
        default=3,
        ge=1,
        description="Consecutive failed Transcriber calls before the session gives up "
        "(`transcriber_unavailable`, close 1011); each failure before that is an error "
        "message and its audio is retried with the next decode.",
    )

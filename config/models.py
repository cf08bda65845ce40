"""Which models a deployment serves, and how it runs them."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator


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
    compute_type: str | None = Field(
        default=None,
        description="CTranslate2 compute type; unset: float16 on CUDA, int8 on CPU.",
    )
    max_models_per_replica: int = Field(
        default=1, ge=1, description="Models a Transcriber replica keeps loaded (LRU)."
    )

    @model_validator(mode="after")
    def _default_enabled(self) -> TranscriptionArgs:
        if self.default_model not in self.models:
            raise ValueError(
                f"transcription.default_model {self.default_model!r} is not one of "
                f"transcription.models {sorted(self.models)}"
            )
        return self

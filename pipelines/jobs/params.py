"""Request parameters of each job kind, validated once at the API boundary."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from pipelines import audio
from pipelines.errors import InvalidRequest, UnknownModel, UnknownStem


class SeparationParams(BaseModel):
    """What a client may ask of a separation (DESIGN.md §2)."""

    model_config = ConfigDict(extra="forbid")

    model: str | None = Field(default=None, description="Demucs model; the default when unset.")
    stems: list[str] | None = Field(default=None, description="Subset of the model's stems.")
    two_stems: str | None = Field(default=None, description="One stem and its complement.")
    format: Literal["wav", "flac", "mp3"] = "wav"
    bit_depth: Literal[16, 24, 32] = Field(default=16, description="wav: 16, 24 or 32 (float).")
    mp3_bitrate: int = Field(default=320, ge=32, le=320, description="kbit/s for mp3.")
    shifts: int = Field(
        default=1, ge=0, description="Random time shifts averaged (Demucs' -shifts)."
    )
    overlap: float = Field(default=0.25, ge=0.0, le=0.9, description="Window overlap.")
    clip: Literal["rescale", "clamp", "none"] = "rescale"
    seed: int | None = Field(default=None, description="Seed for the shift offsets.")

    @model_validator(mode="after")
    def _one_selection(self) -> SeparationParams:
        if self.stems is not None and self.two_stems is not None:
            raise ValueError("give either stems or two_stems, not both")
        if self.stems is not None and not self.stems:
            raise ValueError("stems must name at least one stem")
        return self

    def check_against(self, models: dict[str, list[str]], max_shifts: int) -> None:
        """Raise a 400-class error when the model or a stem does not exist."""
        assert self.model is not None, "resolve the default model first"
        if self.model not in models:
            raise UnknownModel(
                f"Unknown model {self.model!r}; available: {', '.join(sorted(models))}.",
                details={"available": sorted(models)},
            )
        sources = models[self.model]
        wanted = self.stems or ([self.two_stems] if self.two_stems else [])
        missing = [s for s in wanted if s not in sources]
        if missing:
            raise UnknownStem(
                f"Model {self.model!r} has no stem {missing[0]!r}; "
                f"its stems: {', '.join(sources)}.",
                details={"stems": sources},
            )
        audio.check_output(self.format, self.bit_depth, self.mp3_bitrate)  # not after the work
        if self.shifts > max_shifts:
            raise InvalidRequest(
                f"shifts must be at most {max_shifts}.", details={"field": "shifts"}
            )

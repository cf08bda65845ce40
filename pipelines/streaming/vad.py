"""Speech detection with the Silero VAD bundled in faster-whisper."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipelines.streaming.decoding import SAMPLE_RATE


@dataclass(frozen=True)
class VadConfig:
    """Silero settings for deciding whether fresh audio holds speech."""

    threshold: float = 0.5
    """Speech probability above which a 32 ms frame counts as speech."""
    min_speech_ms: int = 150
    """Shorter bursts (clicks, breaths) do not count as speech."""
    min_silence_ms: int = 300
    """A gap must last this long to split two speech regions."""
    speech_pad_ms: int = 100
    """Padding Silero adds around each speech region."""


def has_speech(audio: np.ndarray, after: int = 0, config: VadConfig | None = None) -> bool:
    """Whether ``audio`` (16 kHz mono float32) holds speech ending past sample ``after``.

    ``after`` lets the caller pass some already-checked context before the fresh
    audio (Silero needs a little history to see an onset) while counting only
    speech that reaches into the fresh part.
    """
    config = config or VadConfig()
    if len(audio) == 0:
        return False
    # Imported here: the model loads lazily and only sessions that stream need it.
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    options = VadOptions(
        threshold=config.threshold,
        min_speech_duration_ms=config.min_speech_ms,
        min_silence_duration_ms=config.min_silence_ms,
        speech_pad_ms=config.speech_pad_ms,
    )
    regions = get_speech_timestamps(audio, options, sampling_rate=SAMPLE_RATE)
    pad = config.speech_pad_ms * SAMPLE_RATE // 1000
    return any(region["end"] > after + pad for region in regions)

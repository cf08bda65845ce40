"""The cheapest real call into each model: what a replica's health check runs.

A probe goes through the same code and device as a request, so a model whose
device has failed (a wedged CUDA context, lost GPU memory) raises or hangs here
instead of answering ``healthy`` while every request fails.
"""

from __future__ import annotations

from typing import Any

import numpy as np

WHISPER_SAMPLE_RATE = 16000


def probe_separator(separator: Any, device: str) -> None:
    """Silence through the first sub-model of a ``Separator``; raises if the output is
    wrong."""
    # Imported here: the Transcriber's process never needs torch for its probe.
    from pipelines.separation import run_batch
    from pipelines.separation.geometry import valid_length_of

    model = separator.models[0]
    # A tenth of a second, as the model wants it shaped: HTDemucs pads any input to
    # its training length, older models run on the short input itself.
    length = valid_length_of(model, separator.samplerate // 10)
    window = np.zeros((1, separator.audio_channels, length), dtype=np.float32)
    output = run_batch(model, window, device)
    if output.shape[:2] != (1, len(separator.sources)) or not np.isfinite(output).all():
        raise RuntimeError(f"model {separator.name!r} answered a probe with {output.shape}")


def probe_whisper(model: Any) -> None:
    """The encoder on one second of silence (one 30-second mel window)."""
    from faster_whisper.audio import pad_or_trim

    features = model.feature_extractor(np.zeros(WHISPER_SAMPLE_RATE, dtype=np.float32))
    model.encode(pad_or_trim(features))

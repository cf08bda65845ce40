"""Streaming resampling to 16 kHz that keeps its filter state across chunks."""

from __future__ import annotations

import av
import numpy as np

from pipelines.streaming.decoding import SAMPLE_RATE


class Resampler:
    """Converts mono float32 audio at ``rate`` to 16 kHz, chunk by chunk.

    libswresample keeps the filter history between calls, so splitting the
    input anywhere gives the same output as resampling it whole (no clicks at
    chunk seams). A few samples stay inside the filter until `flush`.
    """

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self._swr = (
            None
            if rate == SAMPLE_RATE
            else av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
        )

    def resample(self, samples: np.ndarray) -> np.ndarray:
        """Resample the next chunk; returns what the filter can emit so far."""
        if self._swr is None or len(samples) == 0:
            return samples.astype(np.float32, copy=False)
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(samples, dtype=np.float32).reshape(1, -1),
            format="flt",
            layout="mono",
        )
        frame.sample_rate = self.rate
        return _join(self._swr.resample(frame))

    def flush(self) -> np.ndarray:
        """Drain the filter (end of input); the next chunk starts a fresh filter."""
        if self._swr is None:
            return np.zeros(0, dtype=np.float32)
        tail = _join(self._swr.resample(None))
        self._swr = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
        return tail


def _join(frames: list[av.AudioFrame]) -> np.ndarray:
    if not frames:
        return np.zeros(0, dtype=np.float32)
    return np.concatenate([f.to_ndarray().reshape(-1) for f in frames]).astype(np.float32)

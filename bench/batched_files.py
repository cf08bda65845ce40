"""faster-whisper's batched pipeline against window-by-window decoding of one long file.

What ``transcription.file_batch_size`` changes: the same model and decode options
(tiny.en, beam 5, temperature 0), one long file of the spoken fixtures with pauses,
decoded window after window (faster-whisper's ``transcribe``, the default) and by
``BatchedInferencePipeline`` (VAD chunks, ``--batch`` windows per call). Reports both
times and the batched text's WER against the window-by-window text and both against
the fixtures' reference transcripts.

    .venv/bin/python bench/batched_files.py [--minutes 5] [--batch 8] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import machine, publish
from bench.transcription import CLIPS, RATE, SPEECH, TINY_EN
from evaluation.wer import word_error_rate
from pipelines import audio
from pipelines.transcription import TranscribeOptions, Transcript, load_whisper, transcribe


def long_speech(minutes: float) -> tuple[np.ndarray, str]:
    """Whole fixture clips with 1 s pauses until ``minutes`` long, and what they say."""
    references = json.loads((SPEECH / "transcripts.json").read_text())
    pause = np.zeros(RATE, np.float32)
    clips = {n: audio.decode(SPEECH / f"{n}.wav", sample_rate=RATE, channels=1)[0] for n in CLIPS}
    parts: list[np.ndarray] = []
    said: list[str] = []
    while sum(len(p) for p in parts) < minutes * 60 * RATE:
        for name in CLIPS:
            parts += [clips[name], pause]
            said.append(references[name])
    return np.concatenate(parts), " ".join(said)


def timed(call: Callable[[], Transcript]) -> tuple[Transcript, float]:
    start = time.perf_counter()
    result = call()
    return result, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    opts = parser.parse_args()
    wave, reference = long_speech(opts.minutes)
    model = load_whisper(TINY_EN, device="cpu", cpu_threads=opts.threads)
    transcribe(model, wave[: 10 * RATE])  # warm-up
    window = TranscribeOptions(temperature=0.0)
    batched = TranscribeOptions(temperature=0.0, batch_size=opts.batch)
    one, one_s = timed(lambda: transcribe(model, wave, window))
    many, many_s = timed(lambda: transcribe(model, wave, batched))
    minutes = len(wave) / RATE / 60
    body = f"""## Long files: batched pipeline vs window by window

tiny.en (CTranslate2 int8, CPU, {opts.threads} threads), {minutes:.1f} minutes of the spoken
fixtures with 1 s pauses, beam 5, temperature 0 on both sides. Window by window is
faster-whisper's `transcribe` (the default, `transcription.file_batch_size: 0`, each window
conditioned on the text before it); batched is its `BatchedInferencePipeline` with
`batch_size={opts.batch}` (`transcription.file_batch_size: {opts.batch}`: Silero VAD cuts the
audio at pauses, no window is conditioned on earlier text).

| decode | seconds | WER against window by window | WER against the reference |
|---|---|---|---|
| window by window | {one_s:.2f} | - | {word_error_rate(reference, one.text):.3f} |
| batched ({opts.batch}) | {many_s:.2f} ({one_s / many_s:.2f}× the speed) | {word_error_rate(one.text, many.text):.3f} | {word_error_rate(reference, many.text):.3f} |

Machine: {machine()}
Command: `.venv/bin/python bench/batched_files.py --minutes {opts.minutes:g} --batch {opts.batch} --threads {opts.threads}`
"""
    publish("batched_files", body)


if __name__ == "__main__":
    main()

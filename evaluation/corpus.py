"""A synthetic speech corpus: espeak-ng voices and speeds, pauses, music under speech.

Needs Debian's ``espeak-ng`` and ``sox`` (``scripts/install-system-deps.sh``).
Every recording is made from a `Recording` spec, so a corpus is reproducible
from its list of specs alone.
"""

from __future__ import annotations

import subprocess
import tempfile
from dataclasses import dataclass
from itertools import cycle, islice
from pathlib import Path

import numpy as np

__all__ = ["SENTENCES", "Recording", "make_corpus", "read_wav", "synthesize"]

SENTENCES: tuple[str, ...] = (
    "Seven silver bicycles waited patiently, leaning against the old brick wall.",
    "The orchestra rehearsed a difficult symphony until midnight.",
    "Fresh oranges and lemons were stacked beside the market stall.",
    "Our train to the coast leaves at half past nine tomorrow morning.",
    "She painted the kitchen a pale shade of green last summer.",
    "Twelve students finished the chemistry exam before lunch.",
    "The museum opens a new exhibition about ancient ships in April.",
    "Please remember to water the tomatoes while I am away.",
    "A strong wind knocked over the ladder in the garden.",
    "The pilot announced that we would land twenty minutes early.",
    "My grandfather keeps his old letters in a wooden box.",
    "The library will be closed on Monday for repairs.",
    "Heavy rain flooded the narrow streets near the harbour.",
    "He ordered a bowl of soup and a slice of warm bread.",
    "The committee approved the budget after a long debate.",
    "Bright lanterns were hanging from every window of the village.",
    "The engineer explained how the bridge would carry heavy trucks.",
    "Nobody expected the little dog to win the first prize.",
    "We counted forty three birds on the frozen lake.",
    "The doctor asked him to rest for at least two weeks.",
    "A quiet river runs behind the school and into the forest.",
    "They moved the piano upstairs with the help of four neighbours.",
    "The bakery sells cinnamon rolls every Saturday morning.",
    "Thick fog delayed every flight leaving the airport tonight.",
    "The children built a castle of sand near the water.",
    "Her brother repairs clocks in a small shop downtown.",
    "The farmers hope for sunshine before the harvest begins.",
    "An old map showed a secret path through the mountains.",
    "The teacher wrote three difficult questions on the board.",
    "Soft music was playing in the hotel lobby all evening.",
)
"""Plain sentences none of the test fixtures use."""


@dataclass(frozen=True)
class Recording:
    """How to make one recording: what is said, by which voice, over what."""

    sentences: tuple[str, ...]
    voice: str = "en-us"
    """espeak-ng voice name."""
    speed: int = 150
    """espeak-ng words per minute."""
    pause_seconds: float = 0.0
    """Silence between sentences (espeak-ng's own sentence gap comes on top)."""
    sample_rate: int = 16_000
    """Rate of the samples a client would send."""
    music_db: float | None = None
    """Level of a synthesised music bed under the speech (dB relative to full
    scale), or None for speech alone."""
    lead_seconds: float = 0.3
    """Silence before the first word (a microphone opens before anyone speaks)."""

    @property
    def text(self) -> str:
        """What is said, as one reference transcript."""
        return " ".join(self.sentences)


def read_wav(path: Path) -> np.ndarray:
    """Mono float32 samples of a 16-bit WAV (first channel)."""
    import wave

    with wave.open(str(path)) as file:
        pcm = np.frombuffer(file.readframes(file.getnframes()), "<i2")
        pcm = pcm.reshape(-1, file.getnchannels())[:, 0]
    return pcm.astype(np.float32) / 32768


def synthesize(recording: Recording) -> np.ndarray:
    """Mono float32 audio at ``recording.sample_rate``."""
    rate = recording.sample_rate
    with tempfile.TemporaryDirectory() as tmp:
        parts = [np.zeros(round(recording.lead_seconds * rate), np.float32)]
        for index, sentence in enumerate(recording.sentences):
            if index:
                parts.append(np.zeros(round(recording.pause_seconds * rate), np.float32))
            parts.append(_speak(sentence, recording, Path(tmp) / f"s{index}.wav"))
        parts.append(np.zeros(rate // 2, np.float32))
        speech = np.concatenate(parts)
        if recording.music_db is not None:
            bed = _music(len(speech) / rate, rate, Path(tmp) / "bed.wav")[: len(speech)]
            speech = (speech + bed * 10 ** (recording.music_db / 20)).astype(np.float32)
    return np.clip(speech, -1.0, 1.0).astype(np.float32)


def make_corpus(count: int, sentences_per_recording: int = 3) -> list[Recording]:
    """``count`` recordings that vary voice, speed, pauses, sample rate and music."""
    voices = ("en-us", "en-gb", "en-us+f3", "en-gb-x-rp", "en+m3", "en-029")
    speeds = (150, 175, 130, 190)
    pauses = (0.0, 1.2, 0.4, 2.0)
    rates = (16_000, 44_100, 48_000)
    music: tuple[float | None, ...] = (None, None, -24.0, -20.0)
    pool = cycle(SENTENCES)
    return [
        Recording(
            sentences=tuple(islice(pool, sentences_per_recording)),
            voice=voices[i % len(voices)],
            speed=speeds[i % len(speeds)],
            pause_seconds=pauses[(i // 2) % len(pauses)],
            sample_rate=rates[i % len(rates)],
            music_db=music[(i // 3) % len(music)],
        )
        for i in range(count)
    ]


def _speak(sentence: str, recording: Recording, target: Path) -> np.ndarray:
    raw = target.with_suffix(".raw.wav")
    speak = ["espeak-ng", "-v", recording.voice, "-s", str(recording.speed), "-w", str(raw)]
    subprocess.run([*speak, sentence], check=True, capture_output=True)
    convert = ["sox", str(raw), "-r", str(recording.sample_rate), "-c", "1", "-b", "16"]
    subprocess.run([*convert, str(target)], check=True, capture_output=True)
    return read_wav(target)


def _music(seconds: float, rate: int, target: Path) -> np.ndarray:
    """A four-note chord with tremolo (sox synth) and a plucked arpeggio (peak 1.0)."""
    raw = target.with_suffix(".raw")
    chord = ["synth", f"{seconds + 0.5:.2f}", "sine", "110", "sine", "165", "sine", "220"]
    command = ["sox", "-n", "-r", str(rate), "-c", "4", "-b", "16", "-e", "signed", "-t", "raw"]
    subprocess.run(
        [*command, str(raw), *chord, "sine", "277", "tremolo", "3", "50"],
        check=True,
        capture_output=True,
    )
    bed = np.frombuffer(raw.read_bytes(), "<i2").reshape(-1, 4).mean(axis=1) / 32768
    beat = round(rate * 0.25)
    notes = (330.0, 440.0, 554.0, 660.0)
    t = np.arange(beat) / rate
    envelope = np.exp(-t * 12)
    for index, start in enumerate(range(0, len(bed) - beat, beat)):
        tone = np.sin(2 * np.pi * notes[index % len(notes)] * t) * envelope
        bed[start : start + beat] += 0.5 * tone
    return (bed / max(1e-6, float(np.max(np.abs(bed))))).astype(np.float32)

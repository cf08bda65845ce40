"""Synthesise the speech fixtures used by the transcription tests.

Run: ``.venv/bin/python scripts/make_speech_fixtures.py [NAME...]`` (needs Debian's ``espeak-ng``
and ``sox``).
Writes 16 kHz mono 16-bit WAVs and a ``transcripts.json`` of what each one says
into ``tests/fixtures/speech/``. The outputs are committed so tests need no synthesis,
but they can always be rebuilt from this script.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "speech"
RATE = 16000

FIXTURES: dict[str, str] = {
    "weather": "The weather today is sunny with a light breeze from the west.",
    "numbers": "Please send the report to the finance team before Friday afternoon.",
    "story": (
        "Once upon a time there was a little village near the mountains. "
        "Every morning the baker opened his shop and sold fresh bread to the farmers. "
        "One day a traveller arrived with a map of a hidden lake. "
        "The children followed him into the forest and found clear blue water."
    ),
    # Greedy decoding once looped on this one when streamed ("7-0 .0.0.0.0…").
    "bicycles": (
        "Seven silver bicycles waited patiently, leaning against the old brick wall. "
        "The orchestra rehearsed a difficult symphony until midnight. "
        "Fresh oranges and lemons were stacked beside the market stall."
    ),
}


def speak(text: str, target: Path, voice: str = "en-us", speed: int = 150) -> None:
    """Speak ``text`` with espeak-ng into ``target`` as 16 kHz mono 16-bit WAV."""
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "speech.wav"
        cmd = ["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(raw), text]
        subprocess.run(cmd, check=True, capture_output=True)
        convert = ["sox", str(raw), "-r", str(RATE), "-c", "1", "-b", "16", str(target)]
        subprocess.run(convert, check=True, capture_output=True)


def main(names: list[str]) -> None:
    """Make the fixtures named (all of them when none are)."""
    OUT.mkdir(parents=True, exist_ok=True)
    for name, text in FIXTURES.items():
        if names and name not in names:
            continue
        speak(text, OUT / f"{name}.wav")
        print(f"{name}.wav")
    (OUT / "transcripts.json").write_text(json.dumps(FIXTURES, indent=2) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])

"""The light client: installed alone into an empty virtualenv, used against the served app."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import srt

from evaluation.wer import word_error_rate
from pipelines import audio
from tests.audio_factory import sine_mix
from tests.speech import TRANSCRIPTS, WER_BOUND, speech_path

pytestmark = [pytest.mark.serve, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "ray", "demucs", "faster_whisper", "ctranslate2", "numpy", "av")
"""What the server needs and the client must not pull in (numpy and PyAV come only
with the ``stream`` extra)."""


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv with ``pip install clients/python`` and nothing else."""
    work = tmp_path_factory.mktemp("client-venv")
    source = work / "src"  # a copy, so the build leaves nothing in the checkout
    shutil.copytree(ROOT / "clients" / "python", source, ignore=shutil.ignore_patterns(
        "build", "*.egg-info", "__pycache__"))  # fmt: skip
    subprocess.run([sys.executable, "-m", "venv", str(work / "venv")], check=True, timeout=300)
    pip = [str(work / "venv" / "bin" / "python"), "-m", "pip", "install", "-q", str(source)]
    run = subprocess.run(pip, capture_output=True, text=True, timeout=480, env=clean_env())
    assert run.returncode == 0, run.stderr[-3000:]
    return work / "venv"


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without this checkout on the path and without stemscribe settings."""
    drop = ("PYTHONPATH", "VIRTUAL_ENV")
    env = {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("STEMSCRIBE")}
    return env | extra


def stemscribe(venv: Path, url: str, cwd: Path, *args: str | Path) -> str:
    command = [str(venv / "bin" / "stemscribe"), *map(str, args)]
    env = clean_env(STEMSCRIBE_URL=url)
    run = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    return run.stdout


def test_the_client_installs_without_the_server_stack(venv: Path, tmp_path: Path) -> None:
    probe = (
        "import importlib.util as u, json; print(json.dumps({m: bool(u.find_spec(m)) for m in %r}))"
    )
    python = str(venv / "bin" / "python")
    found = subprocess.run(
        [python, "-c", probe % (HEAVY,)], capture_output=True, text=True, env=clean_env(),
        cwd=tmp_path, check=True,
    )  # fmt: skip
    assert json.loads(found.stdout) == dict.fromkeys(HEAVY, False)
    where = subprocess.run(
        [python, "-c", "import stemscribe_client; print(stemscribe_client.__file__)"],
        capture_output=True, text=True, env=clean_env(), cwd=tmp_path, check=True,
    )  # fmt: skip
    assert where.stdout.startswith(str(venv))  # the installed copy, not the checkout


def test_models_separate_and_transcribe(venv: Path, served: str, tmp_path: Path) -> None:
    catalogue = json.loads(stemscribe(venv, served, tmp_path, "models", "--json"))
    assert catalogue["transcription"]["default"] == "tiny.en"
    table = stemscribe(venv, served, tmp_path, "models")
    assert "tiny_htdemucs *" in table and "tiny.en *" in table

    song = tmp_path / "song.wav"
    song.write_bytes(audio.encode(sine_mix(3.0, 44100, seed=5), 44100, format="wav"))
    stemscribe(venv, served, tmp_path, "separate", song, "--two-stems", "vocals", "-q")
    stems = sorted(p.name for p in (tmp_path / "song").iterdir())
    assert stems == ["no_vocals.wav", "vocals.wav"]
    for stem in (tmp_path / "song").iterdir():
        assert abs(audio.probe(stem.read_bytes()).duration - 3.0) < 0.01

    talk = tmp_path / "weather.wav"
    shutil.copy(speech_path("weather"), talk)
    stemscribe(venv, served, tmp_path, "transcribe", talk, "--format", "srt", "-q")
    text = " ".join(cue.content for cue in srt.parse((tmp_path / "weather.srt").read_text()))
    assert word_error_rate(TRANSCRIPTS["weather"], text) <= WER_BOUND

"""The shipped offline config, served by ``serve run``, used over plain HTTP."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import httpx
import pytest

from pipelines import audio
from tests.audio_factory import sine_mix
from tests.e2e.conftest import ROOT
from tests.serving import follow_job

pytestmark = pytest.mark.e2e


def test_separation_with_local_storage(offline_app: tuple[str, Path]) -> None:
    base, data_dir = offline_app
    song = audio.encode(sine_mix(4.0, 44100), 44100, format="mp3", mp3_bitrate=192)
    with httpx.Client(base_url=base, timeout=60) as client:
        models = client.get("/v1/models").json()["separation"]
        assert models["default"] == "demucs_unittest"
        response = client.post(
            "/v1/separations", files={"file": ("song.mp3", song)}, data={"format": "flac"}
        )
        assert response.status_code == 202, response.text
        done = follow_job(client, response.json())
        assert done["status"] == "succeeded", done["error"]
        link = done["result"]["outputs"]["vocals"]
        assert link["url"].startswith(f"{base}/v1/files/")
        payload = client.get(link["url"]).content
        assert audio.probe(payload).codec == "flac"
        record = data_dir / "jobs" / done["job_id"] / "job.json"
        assert json.loads(record.read_text())["status"] == "succeeded"


def readme_walkthrough() -> str:
    text = (ROOT / "README.md").read_text()
    match = re.search(r"<!-- walkthrough -->\s*```bash\n(.*?)```", text, re.S)
    assert match, "README.md lost its curl walk-through block"
    return match.group(1)


def test_readme_walkthrough_runs_as_written(offline_app: tuple[str, Path], tmp_path: Path) -> None:
    base, _ = offline_app
    song = tmp_path / "song.mp3"
    song.write_bytes(audio.encode(sine_mix(3.0, 44100), 44100, format="mp3"))
    env = {**os.environ, "STEMSCRIBE_URL": base}
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", readme_walkthrough()],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert (tmp_path / "stems.zip").stat().st_size > 0
    assert (tmp_path / "vocals.wav").stat().st_size > 0

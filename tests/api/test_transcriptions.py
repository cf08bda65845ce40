"""Transcription and lyrics jobs, and the OpenAI-compatible endpoints, in process."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest
import srt
from starlette.testclient import TestClient

from evaluation.wer import word_error_rate
from pipelines import audio
from tests.serving import follow_job
from tests.speech import (
    TRANSCRIPTS,
    WER_BOUND,
    check_transcript_shape,
    song_with_vocals,
    speech_path,
)

pytestmark = pytest.mark.api


def submit(client: TestClient, path: str, data: bytes, **fields: Any) -> dict[str, Any]:
    form = {k: str(v) for k, v in fields.items()}
    response = client.post(path, files={"file": ("in.wav", data)}, data=form)
    assert response.status_code == 202, response.text
    return dict(response.json())


def test_transcription_job_outputs_agree(client: TestClient) -> None:
    data = speech_path("weather").read_bytes()
    done = follow_job(client, submit(client, "/v1/transcriptions", data))
    assert done["status"] == "succeeded", done["error"]
    assert done["result"]["language"] == "en" and done["result"]["model"] == "tiny.en"
    outputs = done["result"]["outputs"]
    assert set(outputs) == {"json", "srt", "vtt", "txt"}
    transcript = json.loads(client.get(outputs["json"]["url"]).content)
    assert word_error_rate(TRANSCRIPTS["weather"], transcript["text"]) <= WER_BOUND
    check_transcript_shape(transcript, audio.probe(data).duration)
    assert all(segment["words"] for segment in transcript["segments"])
    cues = list(srt.parse(client.get(outputs["srt"]["url"]).text))
    assert (
        " ".join(c.content.replace("\n", " ") for c in cues).split() == transcript["text"].split()
    )
    assert client.get(outputs["txt"]["url"]).text.split() == transcript["text"].split()
    assert client.get(outputs["vtt"]["url"]).text.startswith("WEBVTT")


def test_transcription_rejects_other_languages_for_english_model(client: TestClient) -> None:
    data = speech_path("weather").read_bytes()
    response = client.post(
        "/v1/transcriptions", files={"file": ("a.wav", data)}, data={"language": "de"}
    )
    assert response.status_code == 400 and "English-only" in response.json()["error"]["message"]


def test_unknown_transcription_model(client: TestClient) -> None:
    data = speech_path("weather").read_bytes()
    response = client.post(
        "/v1/transcriptions", files={"file": ("a.wav", data)}, data={"model": "huge-v9"}
    )
    body = response.json()["error"]
    assert response.status_code == 400 and body["code"] == "unknown_model"
    assert body["details"]["available"] == ["tiny.en"]


def test_lyrics_job_yields_stems_and_timed_lyrics(client: TestClient) -> None:
    data = song_with_vocals("story")
    duration = audio.probe(data).duration
    done = follow_job(client, submit(client, "/v1/lyrics", data))
    assert done["status"] == "succeeded", done["error"]
    outputs = done["result"]["outputs"]
    assert set(outputs) == {"vocals", "instrumental", "lrc", "srt", "json"}
    progress = done["_progress_seen"]
    assert progress == sorted(progress) and progress[-1] == 1.0
    assert any(0.0 < p <= 0.7 for p in progress), progress  # the separation stage's share
    transcript = json.loads(client.get(outputs["json"]["url"]).content)
    check_transcript_shape(transcript, duration)
    stem = audio.probe(client.get(outputs["vocals"]["url"]).content)
    assert abs(stem.duration - duration) < 0.05
    cues = list(srt.parse(client.get(outputs["srt"]["url"]).text))
    assert all(
        0 <= c.start.total_seconds() <= c.end.total_seconds() <= duration + 0.05 for c in cues
    )
    lrc = client.get(outputs["lrc"]["url"]).text
    stamps = [_lrc_seconds(line[1:9]) for line in lrc.splitlines() if line.startswith("[")]
    assert stamps == sorted(stamps) and all(0 <= s <= duration for s in stamps)


def _lrc_seconds(stamp: str) -> float:
    minutes, seconds = stamp.split(":")
    return int(minutes) * 60 + float(seconds)


@pytest.fixture(scope="module")
def oai(client: TestClient) -> openai.OpenAI:
    return openai.OpenAI(base_url="http://testserver/v1", api_key="unused", http_client=client)


def test_openai_client_transcribes(oai: openai.OpenAI) -> None:
    with speech_path("weather").open("rb") as file:
        result = oai.audio.transcriptions.create(model="whisper-1", file=file)
    assert word_error_rate(TRANSCRIPTS["weather"], result.text) <= WER_BOUND


def test_openai_error_shape(oai: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        oai.audio.transcriptions.create(model="whisper-1", file=("bad.wav", b"not audio" * 100))
    body: Any = caught.value.body
    assert body["type"] == "invalid_request_error" and body["code"] == "unsupported_audio"

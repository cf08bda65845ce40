"""Transcription on the real Serve app: the official openai client, jobs, lyrics."""

from __future__ import annotations

import json
from typing import Any

import httpx
import openai
import pytest
import srt
import webvtt

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

pytestmark = pytest.mark.serve


@pytest.fixture(scope="module")
def oai(served: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{served}/v1", api_key="unused", max_retries=0)


def create(oai: openai.OpenAI, name: str = "weather", **kwargs: Any) -> Any:
    with speech_path(name).open("rb") as file:
        return oai.audio.transcriptions.create(model="whisper-1", file=file, **kwargs)


def test_every_response_format(oai: openai.OpenAI, tmp_path: Any) -> None:
    reference = TRANSCRIPTS["weather"]
    assert word_error_rate(reference, create(oai).text) <= WER_BOUND
    text = create(oai, response_format="text")
    assert isinstance(text, str) and word_error_rate(reference, text) <= WER_BOUND
    cues = list(srt.parse(create(oai, response_format="srt")))
    assert word_error_rate(reference, " ".join(c.content for c in cues)) <= WER_BOUND
    vtt_path = tmp_path / "a.vtt"
    vtt_path.write_text(create(oai, response_format="vtt"))
    captions = webvtt.read(str(vtt_path))
    assert word_error_rate(reference, " ".join(c.text for c in captions)) <= WER_BOUND
    verbose = create(oai, response_format="verbose_json", timestamp_granularities=["word"])
    assert verbose.language == "english" and verbose.duration == pytest.approx(3.49, abs=0.5)
    assert verbose.words and all(w.start <= w.end for w in verbose.words)
    assert [w.start for w in verbose.words] == sorted(w.start for w in verbose.words)


# The openai client marks its translations API deprecated; the endpoint is still OpenAI's.
@pytest.mark.filterwarnings("ignore:deprecated:DeprecationWarning")
def test_translation(oai: openai.OpenAI) -> None:
    with speech_path("numbers").open("rb") as file:
        result = oai.audio.translations.create(model="whisper-1", file=file)
    assert word_error_rate(TRANSCRIPTS["numbers"], result.text) <= WER_BOUND


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"file": ("bad.mp3", b"\x00garbage" * 500)}, "unsupported_audio"),
        ({"response_format": "docx"}, "invalid_request"),
        ({"model": "whisper-99"}, "unknown_model"),
    ],
)
def test_errors_reach_the_client_as_its_exceptions(
    oai: openai.OpenAI, kwargs: dict[str, Any], code: str
) -> None:
    call: dict[str, Any] = {"model": "whisper-1", "file": speech_path("weather").read_bytes()}
    call.update(kwargs)
    with pytest.raises(openai.BadRequestError) as caught:
        oai.audio.transcriptions.create(**call)
    body: Any = caught.value.body
    assert body["code"] == code and body["type"] == "invalid_request_error"


def test_transcription_job(served: str) -> None:
    data = speech_path("story").read_bytes()
    with httpx.Client(base_url=served, timeout=60) as client:
        response = client.post("/v1/transcriptions", files={"file": ("story.wav", data)})
        assert response.status_code == 202, response.text
        done = follow_job(client, response.json())
        assert done["status"] == "succeeded", done["error"]
        transcript = json.loads(httpx.get(done["result"]["outputs"]["json"]["url"]).content)
    assert transcript["language"] == "en"
    assert word_error_rate(TRANSCRIPTS["story"], transcript["text"]) <= WER_BOUND
    check_transcript_shape(transcript, audio.probe(data).duration)
    progress = done["_progress_seen"]
    assert progress == sorted(progress) and progress[-1] == 1.0


def test_lyrics_job(served: str) -> None:
    data = song_with_vocals("weather")
    duration = audio.probe(data).duration
    with httpx.Client(base_url=served, timeout=60) as client:
        form = {"separation_model": "demucs_unittest"}
        response = client.post("/v1/lyrics", files={"file": ("song.mp3", data)}, data=form)
        assert response.status_code == 202, response.text
        done = follow_job(client, response.json())
    assert done["status"] == "succeeded", done["error"]
    outputs = done["result"]["outputs"]
    assert set(outputs) == {"vocals", "instrumental", "lrc", "srt", "json"}
    transcript = json.loads(httpx.get(outputs["json"]["url"]).content)
    check_transcript_shape(transcript, duration)
    cues = list(srt.parse(httpx.get(outputs["srt"]["url"]).text))
    assert all(c.end.total_seconds() <= duration + 0.05 for c in cues)

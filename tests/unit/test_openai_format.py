"""OpenAI-compatible response bodies, checked with the official ``openai`` client."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import openai
import pytest
from openai.types.audio import Transcription, TranscriptionVerbose, TranslationVerbose

from pipelines.errors import InvalidRequest
from pipelines.openai_format import RESPONSE_FORMATS, openai_error, render, verbose_json
from pipelines.subtitles import to_srt, to_vtt
from pipelines.transcription import Segment, Task, Transcript, Word

pytestmark = pytest.mark.unit


def make_transcript(task: Task = "transcribe") -> Transcript:
    words = [Word(" Hello", 0.0, 0.4, 0.9), Word(" world.", 0.4, 0.9, 0.8)]
    segments = [
        Segment(0, 0.0, 0.9, " Hello world.", words, -0.2, 0.01, 0.8, 0.0, 0, [50364, 2425]),
        Segment(
            1,
            1.5,
            2.0,
            " Bye.",
            [Word(" Bye.", 1.5, 2.0, 0.7)],
            -0.3,
            0.02,
            0.5,
            0.2,
            0,
            [1],
        ),
    ]
    return Transcript.from_segments(
        segments, language="en", language_probability=0.98, duration=2.5, task=task
    )


def mock_client(answer: Callable[[httpx.Request], httpx.Response]) -> openai.OpenAI:
    """An official client whose HTTP transport is ``answer``."""
    http = httpx.Client(transport=httpx.MockTransport(answer))
    # The client accepts an httpx.Client whatever HTTP library its stubs name.
    return openai.OpenAI(
        api_key="test",
        base_url="http://stemscribe.test/v1",
        http_client=http,  # type: ignore[arg-type]
    )


def create(response_format: str, granularities: list[str] | None = None) -> Any:
    """Render the sample transcript and read it back through ``transcriptions.create``."""
    body, media_type = render(make_transcript(), response_format, granularities or [])
    content = json.dumps(body) if isinstance(body, dict) else body
    request: dict[str, Any] = {"response_format": response_format}
    if granularities:
        request["timestamp_granularities"] = granularities

    def answer(_: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=content, headers={"content-type": media_type})

    with mock_client(answer) as client:
        return client.audio.transcriptions.create(
            file=("a.wav", b"RIFF"), model="tiny.en", **request
        )


def test_json_is_just_the_text() -> None:
    body, media_type = render(make_transcript(), "json", [])
    assert (body, media_type) == ({"text": "Hello world. Bye."}, "application/json")
    result = create("json")
    assert isinstance(result, Transcription) and result.text == "Hello world. Bye."


@pytest.mark.parametrize(
    ("response_format", "expected"),
    [
        ("text", "Hello world. Bye.\n"),
        ("srt", to_srt(make_transcript())),
        ("vtt", to_vtt(make_transcript())),
    ],
)
def test_text_formats_reach_the_client_unchanged(response_format: str, expected: str) -> None:
    body, media_type = render(make_transcript(), response_format, [])
    assert body == expected and media_type.startswith("text/")
    assert create(response_format) == expected


def test_verbose_json_validates_as_the_openai_model() -> None:
    body, media_type = render(make_transcript(), "verbose_json", ["segment"])
    assert media_type == "application/json"
    assert isinstance(body, dict) and "words" not in body
    verbose = TranscriptionVerbose.model_validate(body)
    assert (verbose.language, verbose.duration, verbose.text) == (
        "english",
        2.5,
        "Hello world. Bye.",
    )
    assert verbose.segments is not None
    assert [(s.id, s.start, s.end, s.text) for s in verbose.segments] == [
        (0, 0.0, 0.9, " Hello world."),
        (1, 1.5, 2.0, " Bye."),
    ]
    assert verbose.segments[1].temperature == 0.2 and verbose.segments[0].tokens == [
        50364,
        2425,
    ]
    assert body["task"] == "transcribe"


def test_words_only_with_word_granularity() -> None:
    result = create("verbose_json", ["word", "segment"])
    assert isinstance(result, TranscriptionVerbose)
    assert result.words is not None and result.segments is not None
    assert [(w.word, w.start, w.end) for w in result.words] == [
        ("Hello", 0.0, 0.4),
        ("world.", 0.4, 0.9),
        ("Bye.", 1.5, 2.0),
    ]
    assert create("verbose_json", ["segment"]).words is None
    assert "words" in verbose_json(make_transcript(), words=True)


def test_translation_reports_english() -> None:
    transcript = make_transcript(task="translate")
    transcript = Transcript(**{**transcript.__dict__, "language": "fr"})
    body, _ = render(transcript, "verbose_json", [])
    assert isinstance(body, dict) and body["task"] == "translate"
    assert TranslationVerbose.model_validate(body).language == "english"


def test_unknown_language_codes_pass_through() -> None:
    transcript = Transcript(**{**make_transcript().__dict__, "language": "xx"})
    assert verbose_json(transcript)["language"] == "xx"


def test_unsupported_format_names_the_valid_ones() -> None:
    with pytest.raises(InvalidRequest) as caught:
        render(make_transcript(), "docx", [])
    assert all(name in caught.value.message for name in RESPONSE_FORMATS)


@pytest.mark.parametrize("granularities", [["sentence"], "char"])
def test_unknown_granularity_is_refused(granularities) -> None:
    with pytest.raises(InvalidRequest, match="segment and/or word"):
        render(make_transcript(), "verbose_json", granularities)


def test_a_single_granularity_string_is_accepted() -> None:
    body, _ = render(make_transcript(), "verbose_json", "word")
    assert isinstance(body, dict) and len(body["words"]) == 3


def test_error_shape_is_what_the_client_reads() -> None:
    error = openai_error("File is not audio.", "invalid_request_error", param="file")
    assert error == {
        "error": {
            "message": "File is not audio.",
            "type": "invalid_request_error",
            "param": "file",
            "code": None,
        }
    }
    client = mock_client(lambda _: httpx.Response(400, json=error))
    with client, pytest.raises(openai.BadRequestError) as caught:
        client.audio.transcriptions.create(file=("a.wav", b"RIFF"), model="tiny.en")
    assert (caught.value.type, caught.value.param) == ("invalid_request_error", "file")
    assert caught.value.message.endswith("File is not audio.")

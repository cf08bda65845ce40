"""Client frames → events, server message builders, query parameters, resampling."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest

from pipelines.errors import InvalidRequest, StemscribeError
from pipelines.streaming import (
    AudioChunk,
    AudioFormat,
    Close,
    DecodedWord,
    Finalize,
    FrameDecoder,
    KeepAlive,
    ProtocolError,
    Resampler,
    StreamParams,
    closed,
    error,
    final,
    parse_stream_params,
    partial,
    ready,
)

pytestmark = pytest.mark.unit

S16 = AudioFormat("pcm_s16le", 16_000)


def ramp_s16(n: int = 1600) -> bytes:
    return (np.arange(n, dtype=np.int64) * 37 % 65536 - 32768).astype("<i2").tobytes()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def sine(rate: int, seconds: float, hz: float = 440.0) -> np.ndarray:
    t = np.arange(round(rate * seconds)) / rate
    return (0.5 * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def only_audio(events: list) -> np.ndarray:
    chunks = [e.samples for e in events if isinstance(e, AudioChunk)]
    return np.concatenate(chunks) if chunks else np.zeros(0, np.float32)


# --- query parameters ---------------------------------------------------------


def test_params_defaults() -> None:
    assert parse_stream_params({}) == StreamParams()
    assert StreamParams().audio_format == AudioFormat("pcm_s16le", 16_000, 1)


def test_params_parse_every_field() -> None:
    params = parse_stream_params(
        {
            "model": "tiny.en",
            "language": "EN",
            "sample_rate": "48000",
            "encoding": "f32le",
            "interim_results": "false",
            "token": "ignored",
        }
    )
    assert params == StreamParams("tiny.en", "en", 48_000, "f32le", False)
    assert params.audio_format.bytes_per_sample == 4


def test_params_auto_language_is_detection() -> None:
    assert parse_stream_params({"language": "auto"}).language is None


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("model", "tiny en"),
        ("language", "english"),
        ("sample_rate", "fast"),
        ("sample_rate", "1000"),
        ("sample_rate", "384000"),
        ("encoding", "mp3"),
        ("interim_results", "maybe"),
    ],
)
def test_params_reject_bad_values(field: str, value: str) -> None:
    with pytest.raises(InvalidRequest) as raised:
        parse_stream_params({field: value})
    assert raised.value.code == "invalid_request"
    assert raised.value.details == {"field": field}


# --- client frames --------------------------------------------------------------


def test_binary_s16le_becomes_float_samples() -> None:
    data = np.array([0, 16384, -32768, 32767], dtype="<i2").tobytes()
    [chunk] = FrameDecoder(S16).decode(data)
    assert isinstance(chunk, AudioChunk)
    assert chunk.samples.dtype == np.float32
    np.testing.assert_allclose(chunk.samples, [0.0, 0.5, -1.0, 32767 / 32768])


def test_binary_f32le_at_16k_passes_through() -> None:
    samples = np.linspace(-1, 1, 800, dtype=np.float32)
    events = FrameDecoder(AudioFormat("f32le", 16_000)).decode(samples.astype("<f4").tobytes())
    np.testing.assert_array_equal(only_audio(events), samples)


def test_json_and_seed_framings_equal_binary() -> None:
    data = ramp_s16()
    binary = only_audio(FrameDecoder(S16).decode(data))
    typed = only_audio(FrameDecoder(S16).decode(json.dumps({"type": "audio", "audio": b64(data)})))
    seed_frame = {
        "event": "audio",
        "payload": {"data": b64(data), "mimeType": "audio/pcm;rate=16000"},
    }
    seed = only_audio(FrameDecoder(S16).decode(json.dumps(seed_frame)))
    np.testing.assert_array_equal(binary, typed)
    np.testing.assert_array_equal(binary, seed)


def test_seed_framing_respects_its_rate() -> None:
    data = (sine(8_000, 1.0) * 32767).astype("<i2").tobytes()
    frame = {
        "event": "audio",
        "payload": {"data": b64(data), "mimeType": "audio/pcm; rate=8000"},
    }
    decoder = FrameDecoder(S16)
    samples = only_audio(decoder.decode(json.dumps(frame)) + decoder.decode('{"event":"finish"}'))
    assert len(samples) == 16_000
    np.testing.assert_allclose(samples[200:-200], sine(16_000, 1.0)[200:-200], atol=2e-3)


@pytest.mark.parametrize(
    ("text", "event"),
    [
        ('{"type":"finalize"}', Finalize()),
        ('{"type":"close"}', Close()),
        ('{"type":"keepalive"}', KeepAlive()),
        ('{"event":"finish"}', Close()),
    ],
)
def test_control_messages(text: str, event: object) -> None:
    assert FrameDecoder(S16).decode(text) == [event]


def test_finalize_first_drains_the_resampler() -> None:
    decoder = FrameDecoder(AudioFormat("f32le", 48_000))
    audio = sine(48_000, 0.5)
    head = only_audio(decoder.decode(audio.astype("<f4").tobytes()))
    events = decoder.decode('{"type":"finalize"}')
    assert isinstance(events[0], AudioChunk) and events[-1] == Finalize()
    assert len(head) + len(events[0].samples) == 8_000


MALFORMED = [
    (b"\x00\x01\x02", S16, "invalid_audio"),
    (b"\x00" * 6, AudioFormat("f32le", 16_000), "invalid_audio"),
    (
        np.array([np.nan], "<f4").tobytes(),
        AudioFormat("f32le", 16_000),
        "invalid_audio",
    ),
    (b"\x00" * 4096, S16, "frame_too_large"),
    ("not json", S16, "invalid_json"),
    ("[1, 2]", S16, "invalid_message"),
    ('{"type":"shout"}', S16, "unknown_message_type"),
    ('{"hello":"world"}', S16, "unknown_message_type"),
    ('{"type":"audio","audio":"@@not base64@@"}', S16, "invalid_base64"),
    ('{"type":"audio","audio":123}', S16, "invalid_message"),
    ('{"type":"audio","audio":"' + b64(b"\x00" * 4096) + '"}', S16, "frame_too_large"),
    ('{"event":"audio","payload":"x"}', S16, "invalid_message"),
    (
        '{"event":"audio","payload":{"data":"AAA=","mimeType":"audio/ogg"}}',
        S16,
        "unsupported_format",
    ),
    (
        '{"event":"audio","payload":{"data":"AAA=","mimeType":"audio/pcm;rate=x"}}',
        S16,
        "unsupported_format",
    ),
    ("x" * 10_000, S16, "frame_too_large"),
]


@pytest.mark.parametrize(("frame", "fmt", "code"), MALFORMED)
def test_malformed_frames_raise_protocol_error(
    frame: bytes | str, fmt: AudioFormat, code: str
) -> None:
    decoder = FrameDecoder(fmt, max_frame_bytes=2048)
    with pytest.raises(ProtocolError) as raised:
        decoder.decode(frame)
    assert raised.value.code == code
    assert isinstance(raised.value, StemscribeError) and raised.value.message
    # The session survives: the next good frame decodes.
    assert decoder.decode('{"type":"keepalive"}') == [KeepAlive()]


def test_protocol_error_serialises_with_its_code() -> None:
    assert ProtocolError("invalid_json", "bad").to_dict() == {
        "code": "invalid_json",
        "message": "bad",
        "details": {},
    }


# --- resampling -------------------------------------------------------------------


@pytest.mark.parametrize("rate", [8_000, 22_050, 44_100, 48_000])
def test_resampler_is_chunk_invariant(rate: int) -> None:
    audio = sine(rate, 1.0) + sine(rate, 1.0, 3_000.0) * 0.3
    whole = Resampler(rate)
    expected = np.concatenate([whole.resample(audio), whole.flush()])
    chunked = Resampler(rate)
    sizes = np.random.default_rng(rate).integers(1, 3_000, size=len(audio))
    bounds = np.cumsum(sizes)
    pieces = np.split(audio, bounds[bounds < len(audio)])
    got = np.concatenate([chunked.resample(p) for p in pieces] + [chunked.flush()])
    np.testing.assert_array_equal(got, expected)
    assert abs(len(got) - 16_000) <= 1


def test_resampler_keeps_the_signal() -> None:
    resampler = Resampler(48_000)
    out = np.concatenate([resampler.resample(sine(48_000, 1.0)), resampler.flush()])
    np.testing.assert_allclose(out[100:-100], sine(16_000, 1.0)[100:-100], atol=1e-3)


def test_resampler_at_16k_is_identity() -> None:
    audio = sine(16_000, 0.1)
    resampler = Resampler(16_000)
    np.testing.assert_array_equal(resampler.resample(audio), audio)
    assert len(resampler.flush()) == 0


# --- server messages --------------------------------------------------------------


def test_server_message_builders() -> None:
    assert ready("s1", "tiny.en") == {
        "type": "ready",
        "session_id": "s1",
        "model": "tiny.en",
    }
    assert partial("hel", 0.12345, 0.5) == {
        "type": "partial",
        "text": "hel",
        "start": 0.123,
        "end": 0.5,
    }
    assert error("invalid_json", "bad") == {
        "type": "error",
        "code": "invalid_json",
        "message": "bad",
    }
    assert closed("client closed") == {"type": "closed", "reason": "client closed"}


def test_final_lists_words_without_leading_space() -> None:
    words = [
        DecodedWord(" Hello", 0.0, 0.4, 0.98765),
        DecodedWord(" world.", 0.4, 0.9, 0.5),
    ]
    message = final("Hello world.", 0.0, 0.9, words)
    assert message["type"] == "final" and message["text"] == "Hello world."
    assert message["words"] == [
        {"word": "Hello", "start": 0.0, "end": 0.4, "probability": 0.9877},
        {"word": "world.", "start": 0.4, "end": 0.9, "probability": 0.5},
    ]
    json.dumps(message)  # plain JSON types only

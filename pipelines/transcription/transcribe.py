"""Running faster-whisper on a waveform: options, validation, lazy segments, progress.

English-only models (``*.en``): faster-whisper quietly transcribes as English when
asked for another language, which would hand back something other than what was
asked for, so that is an ``InvalidRequest`` naming the problem. ``task="translate"``
is accepted: such a model's output is English, which is what translate asks for
(and English speech translated into English is its transcription). The reported
language is then ``"en"`` with probability 1.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from pipelines.errors import InvalidRequest
from pipelines.transcription.languages import normalize_language
from pipelines.transcription.transcript import Segment, Task, Transcript, Word

if TYPE_CHECKING:
    from faster_whisper import WhisperModel
    from faster_whisper.transcribe import Segment as WhisperSegment
    from faster_whisper.transcribe import TranscriptionInfo
    from faster_whisper.transcribe import Word as WhisperWord

__all__ = [
    "DEFAULT_TEMPERATURES",
    "SAMPLE_RATE",
    "TranscribeOptions",
    "iter_segments",
    "start_transcription",
    "transcribe",
]

#: Whisper models take 16 kHz mono audio.
SAMPLE_RATE = 16_000
#: faster-whisper's fallback schedule: retry hotter when a decode looks wrong.
DEFAULT_TEMPERATURES: tuple[float, ...] = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
_TASKS = ("transcribe", "translate")


@dataclass
class TranscribeOptions:
    """What to ask of the model; every field mirrors the faster-whisper argument.

    ``language`` is a Whisper code or English name (normalised to the code), or
    ``None`` to detect it; ``vad`` drops silence with Silero VAD before decoding,
    which also stops Whisper inventing words on silence; ``temperature`` is one
    value or a fallback schedule in [0, 1].
    """

    language: str | None = None
    task: Task = "transcribe"
    word_timestamps: bool = False
    vad: bool = False
    initial_prompt: str | None = None
    temperature: float | Sequence[float] = DEFAULT_TEMPERATURES
    beam_size: int = 5
    condition_on_previous_text: bool = True
    batch_size: int = 0
    """Windows decoded together by faster-whisper's ``BatchedInferencePipeline`` (its
    ``batch_size``: the audio is cut at pauses with VAD first, and no window is
    conditioned on the text before it); 0 decodes window after window."""

    def __post_init__(self) -> None:
        self.language = normalize_language(self.language)
        if self.task not in _TASKS:
            raise InvalidRequest(
                f"Unknown task {self.task!r}: use 'transcribe' or 'translate'.",
                details={"task": self.task},
            )
        if self.batch_size < 0:
            raise InvalidRequest(
                "batch_size cannot be negative.", details={"batch_size": self.batch_size}
            )
        if self.beam_size < 1:
            raise InvalidRequest(
                "beam_size must be at least 1.", details={"beam_size": self.beam_size}
            )
        if not self.temperatures() or not all(0.0 <= t <= 1.0 for t in self.temperatures()):
            raise InvalidRequest(
                "temperature must be a number or a list of numbers between 0 and 1.",
                details={"temperature": self.temperature},
            )

    def temperatures(self) -> list[float]:
        """The temperature schedule as a list (one value becomes a one-item list)."""
        if isinstance(self.temperature, int | float):
            return [float(self.temperature)]
        return [float(t) for t in self.temperature]


def iter_segments(
    model: WhisperModel, audio: np.ndarray, options: TranscribeOptions | None = None
) -> Iterator[Segment]:
    """Segments as the model produces them (lazy: decoding happens while iterating).

    Validation and language detection happen now, so a bad request fails at the
    call rather than at the first ``next()``.
    """
    segments, _ = _start(model, audio, options or TranscribeOptions())
    return segments


def start_transcription(
    model: WhisperModel, audio: np.ndarray, options: TranscribeOptions | None = None
) -> tuple[dict[str, Any], Iterator[Segment]]:
    """What is known before decoding (language, probability, duration, task) and the
    lazy segments: the shape a remote, streaming transcription call needs."""
    options = options or TranscribeOptions()
    segments, info = _start(model, audio, options)
    meta = {
        "language": info.language,
        "language_probability": float(info.language_probability),
        "duration": float(info.duration),
        "task": options.task,
    }
    return meta, segments


def transcribe(
    model: WhisperModel,
    audio: np.ndarray,
    options: TranscribeOptions | None = None,
    on_progress: Callable[[float], None] | None = None,
) -> Transcript:
    """Transcribe 16 kHz mono float32 audio into a ``Transcript``.

    ``on_progress`` gets the fraction of the audio decoded so far (end of the
    latest segment over the duration), strictly increasing, ending with 1.0.
    """
    options = options or TranscribeOptions()
    segments, info = _start(model, audio, options)
    progress = _Progress(on_progress, float(info.duration))
    collected: list[Segment] = []
    for segment in segments:
        collected.append(segment)
        progress.at(segment.end)
    progress.finish()
    return Transcript.from_segments(
        collected,
        language=info.language,
        language_probability=float(info.language_probability),
        duration=float(info.duration),
        task=options.task,
    )


def _start(
    model: WhisperModel, audio: np.ndarray, options: TranscribeOptions
) -> tuple[Iterator[Segment], TranscriptionInfo]:
    """Validate, start faster-whisper, and wrap its segment generator."""
    waveform = _mono_float32(audio)
    _check_model_supports(model, options)
    common = {
        "language": options.language,
        "task": options.task,
        "beam_size": options.beam_size,
        "temperature": options.temperatures(),
        "initial_prompt": options.initial_prompt,
        "condition_on_previous_text": options.condition_on_previous_text,
        "word_timestamps": options.word_timestamps,
    }
    if options.batch_size:
        from faster_whisper import BatchedInferencePipeline

        batched = BatchedInferencePipeline(model)
        raw, info = batched.transcribe(
            waveform, vad_filter=True, batch_size=options.batch_size, **common
        )
    else:
        raw, info = model.transcribe(waveform, vad_filter=options.vad, **common)
    return _convert(raw), info


def _mono_float32(audio: np.ndarray) -> np.ndarray:
    """A 1-D float32 view of the audio; a single-channel (1, n) array is accepted too."""
    array = np.asarray(audio)
    if array.ndim == 2 and array.shape[0] == 1:
        array = array[0]
    if array.ndim != 1:
        raise InvalidRequest(
            f"Transcription needs mono audio as a 1-D array; got shape {array.shape}.",
        )
    return array.astype(np.float32, copy=False)


def _check_model_supports(model: WhisperModel, options: TranscribeOptions) -> None:
    """Refuse what an English-only model would silently do wrong."""
    if model.model.is_multilingual:
        return
    if options.language not in (None, "en"):
        raise InvalidRequest(
            f"This model is English-only and cannot transcribe language "
            f"{options.language!r}; use a multilingual model (e.g. 'small') or language 'en'.",
            details={"language": options.language},
        )


def _convert(raw: Iterable[WhisperSegment]) -> Iterator[Segment]:
    """faster-whisper segments to ours: ids from 0, plain floats, words as a list."""
    for index, segment in enumerate(raw):
        yield Segment(
            id=index,
            start=float(segment.start),
            end=float(segment.end),
            text=segment.text,
            words=[_word(word) for word in segment.words or []],
            avg_logprob=float(segment.avg_logprob),
            no_speech_prob=float(segment.no_speech_prob),
            compression_ratio=float(segment.compression_ratio),
            temperature=float(segment.temperature or 0.0),
            seek=int(segment.seek),
            tokens=[int(token) for token in segment.tokens],
        )


def _word(word: WhisperWord) -> Word:
    # faster-whisper hands back numpy floats here; keep the transcript JSON-safe.
    return Word(
        word=word.word,
        start=float(word.start),
        end=float(word.end),
        probability=float(word.probability),
    )


class _Progress:
    """Turns segment end times into a clamped, strictly increasing fraction."""

    def __init__(self, callback: Callable[[float], None] | None, duration: float) -> None:
        self._callback = callback
        self._duration = duration
        self._last = 0.0

    def at(self, seconds: float) -> None:
        if self._duration > 0:
            self._emit(min(1.0, seconds / self._duration))

    def finish(self) -> None:
        self._emit(1.0)

    def _emit(self, fraction: float) -> None:
        if fraction <= self._last:
            return
        self._last = fraction
        if self._callback is not None:
            self._callback(fraction)

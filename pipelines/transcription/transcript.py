"""The transcript data model: words, segments, and the whole result.

Plain dataclasses with ``to_dict()`` / ``from_dict()`` so a transcript can be
stored as JSON, sent through the object store, and rebuilt unchanged.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

__all__ = ["Segment", "Task", "Transcript", "Word"]

Task = Literal["transcribe", "translate"]


@dataclass(frozen=True)
class Word:
    """One word with its time span in seconds.

    ``word`` keeps Whisper's spelling, leading space included, so that joining
    the words of a segment gives back the segment text.
    """

    word: str
    start: float
    end: float
    probability: float

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Word:
        """Rebuild a word from ``asdict`` output."""
        return cls(
            word=str(data["word"]),
            start=float(data["start"]),
            end=float(data["end"]),
            probability=float(data["probability"]),
        )


@dataclass(frozen=True)
class Segment:
    """A stretch of speech as Whisper decoded it, with its decoding statistics.

    ``id`` counts from 0 in transcript order; ``text`` keeps Whisper's leading
    space; ``words`` is empty unless word timestamps were asked for.
    """

    id: int
    start: float
    end: float
    text: str
    words: list[Word] = field(default_factory=list)
    avg_logprob: float = 0.0
    no_speech_prob: float = 0.0
    compression_ratio: float = 0.0
    temperature: float = 0.0
    seek: int = 0
    tokens: list[int] = field(default_factory=list)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Segment:
        """Rebuild a segment (and its words) from ``asdict`` output."""
        return cls(
            id=int(data["id"]),
            start=float(data["start"]),
            end=float(data["end"]),
            text=str(data["text"]),
            words=[Word.from_dict(word) for word in data.get("words") or []],
            avg_logprob=float(data.get("avg_logprob", 0.0)),
            no_speech_prob=float(data.get("no_speech_prob", 0.0)),
            compression_ratio=float(data.get("compression_ratio", 0.0)),
            temperature=float(data.get("temperature") or 0.0),
            seek=int(data.get("seek", 0)),
            tokens=[int(token) for token in data.get("tokens") or []],
        )


@dataclass(frozen=True)
class Transcript:
    """The result of transcribing one piece of audio.

    ``language`` is a Whisper code (``"en"``); ``duration`` is the length of the
    input audio in seconds; ``text`` is the segment texts joined and stripped;
    ``task`` says whether the text is a transcription or an English translation.
    """

    language: str
    language_probability: float
    duration: float
    segments: list[Segment]
    text: str
    task: Task = "transcribe"

    @classmethod
    def from_segments(
        cls,
        segments: list[Segment],
        *,
        language: str,
        language_probability: float,
        duration: float,
        task: Task = "transcribe",
    ) -> Transcript:
        """Build a transcript whose ``text`` is derived from its segments."""
        return cls(
            language=language,
            language_probability=language_probability,
            duration=duration,
            segments=segments,
            text="".join(segment.text for segment in segments).strip(),
            task=task,
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict (only str, int, float, list and dict inside)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Transcript:
        """Rebuild a transcript from ``to_dict()`` output."""
        task = data.get("task", "transcribe")
        if task not in ("transcribe", "translate"):
            raise ValueError(f"Unknown transcript task {task!r}.")
        return cls(
            language=str(data["language"]),
            language_probability=float(data["language_probability"]),
            duration=float(data["duration"]),
            segments=[Segment.from_dict(segment) for segment in data["segments"]],
            text=str(data["text"]),
            task=task,
        )

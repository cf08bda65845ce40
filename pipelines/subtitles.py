"""Transcript to subtitle and lyric files: SRT, WebVTT, plain text, LRC.

Segments longer than a cue allows are split between words. With word
timestamps each cue spans exactly its words; without them a segment's time is
shared among its words by character count. Empty segments are skipped, and cue
times never go backwards or overlap.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace

from pipelines.errors import InvalidRequest
from pipelines.transcription.transcript import Segment, Transcript

__all__ = [
    "Cue",
    "CueWord",
    "build_cues",
    "lrc_timestamp",
    "srt_timestamp",
    "to_lrc",
    "to_srt",
    "to_txt",
    "to_vtt",
    "vtt_timestamp",
]

# A word with the whitespace before it, so joining words rebuilds the text
# (also for scripts written without spaces).
_TOKEN = re.compile(r"\s*\S+")
# An LRC line stays on screen until the next one; clear it across longer pauses.
_LRC_CLEAR_GAP = 1.0


@dataclass(frozen=True)
class CueWord:
    """A word of a cue; ``text`` keeps its leading space, ``timed`` is False when estimated."""

    text: str
    start: float
    end: float
    timed: bool


@dataclass(frozen=True)
class Cue:
    """One subtitle: a time span and up to ``max_lines`` lines of words."""

    start: float
    end: float
    lines: tuple[tuple[CueWord, ...], ...]

    @property
    def text_lines(self) -> list[str]:
        """The lines as text."""
        return [_join(line) for line in self.lines]

    @property
    def words(self) -> list[CueWord]:
        """All words of the cue in order."""
        return [word for line in self.lines for word in line]


def srt_timestamp(seconds: float) -> str:
    """``HH:MM:SS,mmm`` (hours grow past 99 if they must)."""
    return _clock(seconds, ",")


def vtt_timestamp(seconds: float) -> str:
    """``HH:MM:SS.mmm``."""
    return _clock(seconds, ".")


def lrc_timestamp(seconds: float) -> str:
    """``mm:ss.xx`` in hundredths; minutes go past 59 rather than adding hours."""
    hundredths = _rounded(seconds, 100)
    minutes, hundredths = divmod(hundredths, 6000)
    secs, hundredths = divmod(hundredths, 100)
    return f"{minutes:02d}:{secs:02d}.{hundredths:02d}"


def build_cues(transcript: Transcript, max_line_chars: int = 42, max_lines: int = 2) -> list[Cue]:
    """Split the transcript into cues of at most ``max_lines`` lines.

    A line holds at most ``max_line_chars`` characters unless a single word is
    longer. Cues are sorted, and each starts no earlier than the previous ends.
    """
    if max_line_chars < 1 or max_lines < 1:
        raise InvalidRequest("max_line_chars and max_lines must be at least 1.")
    cues: list[Cue] = []
    for segment in transcript.segments:
        lines = _wrap(_segment_words(segment), max_line_chars)
        groups = [lines[i : i + max_lines] for i in range(0, len(lines), max_lines)]
        cues.extend(_cue(segment, groups, i) for i in range(len(groups)))
    return _sequential(cues)


def to_srt(transcript: Transcript, max_line_chars: int = 42, max_lines: int = 2) -> str:
    """SubRip text: numbered cues with ``HH:MM:SS,mmm`` times."""
    blocks = [
        f"{index}\n{srt_timestamp(cue.start)} --> {srt_timestamp(cue.end)}\n"
        + "\n".join(cue.text_lines)
        for index, cue in enumerate(build_cues(transcript, max_line_chars, max_lines), 1)
    ]
    return "".join(block + "\n\n" for block in blocks)


def to_vtt(transcript: Transcript, max_line_chars: int = 42, max_lines: int = 2) -> str:
    """WebVTT text with ``HH:MM:SS.mmm`` times; ``&``, ``<`` and ``>`` are escaped."""
    blocks = [
        f"{vtt_timestamp(cue.start)} --> {vtt_timestamp(cue.end)}\n"
        + "\n".join(_vtt_escape(line) for line in cue.text_lines)
        for cue in build_cues(transcript, max_line_chars, max_lines)
    ]
    return "WEBVTT\n\n" + "".join(block + "\n\n" for block in blocks)


def to_txt(transcript: Transcript) -> str:
    """One line per non-empty segment."""
    lines = [segment.text.strip() for segment in transcript.segments]
    return "".join(line + "\n" for line in lines if line)


def to_lrc(transcript: Transcript, enhanced: bool = True, max_line_chars: int = 42) -> str:
    """LRC lyrics: ``[mm:ss.xx]`` per line.

    ``enhanced`` adds ``<mm:ss.xx>`` before each word and after the last one
    (the "A2" extension) on lines whose words carry real timestamps; lines
    without word timestamps stay plain. An empty tagged line clears the display
    across pauses of a second or more and after the last line.
    """
    lines = build_cues(transcript, max_line_chars, max_lines=1)
    out: list[str] = []
    for index, line in enumerate(lines):
        out.append(f"[{lrc_timestamp(line.start)}]{_lrc_text(line, enhanced)}")
        following = lines[index + 1].start if index + 1 < len(lines) else math.inf
        if following - line.end >= _LRC_CLEAR_GAP:
            out.append(f"[{lrc_timestamp(line.end)}]")
    return "".join(text + "\n" for text in out)


def _clock(seconds: float, separator: str) -> str:
    millis = _rounded(seconds, 1000)
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def _rounded(seconds: float, per_second: int) -> int:
    # Round once, in integer units, so a carry can never produce "60" or "1000".
    return max(0, math.floor(seconds * per_second + 0.5))


def _segment_words(segment: Segment) -> list[CueWord]:
    """Words with times clamped into the segment: real ones if present, else estimated."""
    timed = [
        CueWord(_tidy(w.word), _clamp(w.start, segment), _clamp(w.end, segment), True)
        for w in segment.words
        if w.word.strip()
    ]
    return timed or _estimated_words(segment)


def _estimated_words(segment: Segment) -> list[CueWord]:
    """Share the segment's time among its words in proportion to their length."""
    tokens = _TOKEN.findall(segment.text)
    weights = [len(token.strip()) for token in tokens]
    total = sum(weights) or 1
    span = max(0.0, segment.end - segment.start)
    words, elapsed = [], 0
    for token, weight in zip(tokens, weights, strict=True):
        start = segment.start + span * elapsed / total
        elapsed += weight
        end = segment.start + span * elapsed / total
        words.append(CueWord(_tidy(token), start, end, False))
    return words


def _wrap(words: list[CueWord], max_chars: int) -> list[tuple[CueWord, ...]]:
    """Greedy line filling; a word longer than a line gets a line of its own."""
    lines: list[tuple[CueWord, ...]] = []
    current: tuple[CueWord, ...] = ()
    for word in words:
        if current and len(_join((*current, word))) > max_chars:
            lines.append(current)
            current = ()
        current = (*current, word)
    return [*lines, current] if current else lines


def _cue(segment: Segment, groups: list[list[tuple[CueWord, ...]]], index: int) -> Cue:
    """A cue spans its words; the first and last cue of a segment reach its edges."""
    words = [word for line in groups[index] for word in line]
    start = segment.start if index == 0 else words[0].start
    end = segment.end if index == len(groups) - 1 else words[-1].end
    return Cue(start, max(start, end), tuple(groups[index]))


def _sequential(cues: list[Cue]) -> list[Cue]:
    """Sort cues and push each start to the previous end, so none overlap."""
    out: list[Cue] = []
    previous_end = 0.0
    for cue in sorted(cues, key=lambda c: c.start):
        start = max(cue.start, previous_end)
        end = max(cue.end, start)
        out.append(replace(cue, start=start, end=end))
        previous_end = end
    return out


def _lrc_text(line: Cue, enhanced: bool) -> str:
    words = line.words
    if not (enhanced and all(word.timed for word in words)):
        return _join(words)
    tagged = []
    for index, word in enumerate(words):
        text = word.text.lstrip() if index == 0 else word.text
        space, bare = text[: len(text) - len(text.lstrip())], text.lstrip()
        when = min(max(word.start, line.start), line.end)
        tagged.append(f"{space}<{lrc_timestamp(when)}>{bare}")
    return "".join(tagged) + f"<{lrc_timestamp(line.end)}>"


def _join(words: tuple[CueWord, ...] | list[CueWord]) -> str:
    return "".join(word.text for word in words).strip()


def _tidy(text: str) -> str:
    """Collapse whitespace to single spaces, keeping whether the word had one before it."""
    return (" " if text[:1].isspace() else "") + " ".join(text.split())


def _clamp(seconds: float, segment: Segment) -> float:
    return min(max(seconds, segment.start), segment.end)


def _vtt_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")

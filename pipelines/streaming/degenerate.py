"""Degenerate decodes: the repetition loops and garbage Whisper emits on hard audio.

Greedy Whisper decoding sometimes falls into a loop (``"7-0 .0.0.0.0.0…"``,
``"the the the the"``) or hallucinates text over noise. Such text must never
reach a client as ``final`` nor be fed back as the prompt of the next window,
where it seeds the same loop again. The checks are the ones Whisper's own
temperature fallback uses (compression ratio, average log-probability,
no-speech probability) plus two that also catch loops too short to compress
well: an n-gram repeated back to back, and a few characters repeated inside
the text.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "DegenerateLimits",
    "character_loop",
    "compression_ratio",
    "degenerate_reason",
    "longest_repeat",
]

_WORD = re.compile(r"[^\w]+")
# 2-8 characters repeated back to back (".0.0.0.0", "abcabcabcabc"), or one
# non-digit character 8 times ("!!!!!!!!"). Digits alone are left out: numbers
# such as 1000000 are real text.
_LOOP = re.compile(r"(.{2,8}?)\1{3,}|([^\d\s])\2{7,}", re.S)
_NUMERIC = re.compile(r"^[\d,]+$")


@dataclass(frozen=True)
class DegenerateLimits:
    """Thresholds past which a decode counts as degenerate."""

    max_compression_ratio: float = 2.4
    """Whisper's own fallback threshold: looping text compresses too well."""
    min_chars_for_ratio: int = 40
    """Shorter text is not judged by compression ratio (zlib overhead dominates)."""
    min_avg_logprob: float = -2.0
    """Below this average token log-probability the model was guessing. Lower
    than Whisper's -1.0 fallback threshold, which tiny models cross on sound text
    in windows of a few seconds."""
    no_speech_logprob: float = -1.0
    """Whisper's silence rule: a log-probability below this and a no-speech
    probability above `max_no_speech_prob` mean the text was invented."""
    max_no_speech_prob: float = 0.6
    """See `no_speech_logprob`."""
    max_word_repeats: int = 3
    """The same word back to back more often than this is a loop."""
    max_ngram_repeats: int = 2
    """The same sequence of 2-8 words back to back more often than this is a loop."""


def compression_ratio(text: str) -> float:
    """UTF-8 length over zlib-compressed length (Whisper's measure of repetition)."""
    raw = text.encode("utf-8")
    return len(raw) / len(zlib.compress(raw)) if raw else 0.0


def longest_repeat(words: Sequence[str], n: int) -> int:
    """Most times one ``n``-word sequence occurs back to back (1 when none repeats)."""
    keys = [_WORD.sub("", w.casefold()) for w in words]
    best = 1 if len(keys) >= n else 0
    for start in range(len(keys) - n + 1):
        count, at = 1, start + n
        while keys[at : at + n] == keys[start : start + n] and any(keys[start : start + n]):
            count, at = count + 1, at + n
        best = max(best, count)
    return best


def character_loop(text: str) -> str | None:
    """The first run of a short pattern repeated inside ``text``, or None."""
    for match in _LOOP.finditer(text):
        unit = match.group(1) or match.group(2)
        if not _NUMERIC.match(unit):
            return match.group(0)
    return None


def degenerate_reason(
    text: str,
    *,
    avg_logprob: float | None = None,
    no_speech_prob: float | None = None,
    limits: DegenerateLimits | None = None,
) -> str | None:
    """Why ``text`` (one decoded segment) is degenerate, or None when it looks sound.

    ``avg_logprob`` and ``no_speech_prob`` are the decoder's scores of the
    segment when known.
    """
    limits = limits or DegenerateLimits()
    words = text.split()
    if longest_repeat(words, 1) > limits.max_word_repeats:
        return "repeated_word"
    if any(longest_repeat(words, n) > limits.max_ngram_repeats for n in range(2, 9)):
        return "repeated_phrase"
    if character_loop(text) is not None:
        return "repeated_characters"
    long_enough = len(text.strip()) >= limits.min_chars_for_ratio
    if long_enough and compression_ratio(text.strip()) > limits.max_compression_ratio:
        return "compression_ratio"
    if avg_logprob is None:
        return None
    silent = no_speech_prob is not None and no_speech_prob > limits.max_no_speech_prob
    if silent and avg_logprob < limits.no_speech_logprob:
        return "no_speech"
    if avg_logprob < limits.min_avg_logprob:
        return "low_logprob"
    return None

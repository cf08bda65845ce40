"""The degenerate-output detector on loops tiny.en really produced, and on sound text."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evaluation.corpus import SENTENCES
from pipelines.streaming import DecodedSegment, degenerate_reason, sound_prefix
from pipelines.streaming.degenerate import (
    DegenerateLimits,
    character_loop,
    compression_ratio,
    longest_repeat,
)

pytestmark = pytest.mark.unit

TRANSCRIPTS = json.loads(
    (Path(__file__).parents[1] / "fixtures" / "speech" / "transcripts.json").read_text()
)

LOOPS = {
    # Greedy tiny.en on "Seven silver bicycles…" with such text as the prompt.
    "7-0 .0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0": "repeated_characters",
    " 7-0-mer bicycles weighted patient, leave .0.0.0.0.0.0.0.0.0": "repeated_characters",
    " seven-field-air-b-b-b-b-b-b-b-b-b-b-b-b-b-b-b-b": "repeated_characters",
    " seven silver bicycles weighted patiently leaning against the the the the the the": (
        "repeated_word"
    ),
    "Thank you. Thank you. Thank you. Thank you.": "repeated_phrase",
    "I don't know what to do I don't know what to do I don't know what to do": ("repeated_phrase"),
    "!!!!!!!!!!!!": "repeated_characters",
}

SOUND = [
    *TRANSCRIPTS.values(),
    *SENTENCES,
    "7 silver bicycles weighted patiently, leaning against the old brick wall.",
    "We counted 43 birds on the frozen lake.",
    "The prize was 1000000 dollars, or 1,000,000 to be exact.",
    "Call 555-0100 before 10.30 tomorrow.",
    "Yes, yes, I know.",
    "He said no, no, no.",
    "Wait...",
    "",
]


@pytest.mark.parametrize(("text", "reason"), LOOPS.items())
def test_known_loops_are_degenerate(text: str, reason: str) -> None:
    assert degenerate_reason(text) == reason


@pytest.mark.parametrize("text", SOUND)
def test_sound_text_is_not_degenerate(text: str) -> None:
    assert degenerate_reason(text, avg_logprob=-0.4, no_speech_prob=0.05) is None


def test_a_long_loop_compresses_too_well() -> None:
    loop = "and then we went to the market " * 8
    assert compression_ratio(loop) > 2.4
    assert compression_ratio(TRANSCRIPTS["story"]) < 2.0
    # The n-gram check alone would not need the ratio; with it switched off the
    # ratio still catches a loop of phrases longer than four words.
    limits = DegenerateLimits(max_word_repeats=99, max_ngram_repeats=99)
    assert degenerate_reason(loop, limits=limits) == "compression_ratio"


def test_scores_flag_invented_text() -> None:
    text = "Thanks for watching!"
    assert degenerate_reason(text, avg_logprob=-1.2, no_speech_prob=0.9) == "no_speech"
    assert degenerate_reason(text, avg_logprob=-1.2, no_speech_prob=0.1) is None
    assert degenerate_reason(text, avg_logprob=-2.5, no_speech_prob=0.1) == "low_logprob"


def test_longest_repeat_counts_back_to_back_ngrams() -> None:
    words = ["a", "b", "a", "b", "a", "b", "c"]
    assert longest_repeat(words, 2) == 3
    assert longest_repeat(words, 1) == 1
    assert longest_repeat(["The", "the,", "THE"], 1) == 3  # case and punctuation ignored
    assert longest_repeat([], 1) == 0


def test_character_loop_leaves_numbers_alone() -> None:
    assert character_loop("10000000000") is None
    assert character_loop("1,000,000,000,000") is None
    assert character_loop("lalalalala") == "lalalalala"


def test_sound_prefix_stops_at_the_first_degenerate_segment() -> None:
    good = DecodedSegment(0.0, 1.0, " Seven silver bicycles.")
    loop = DecodedSegment(1.0, 2.0, " .0.0.0.0.0.0.0.0")
    after = DecodedSegment(2.0, 3.0, " The orchestra.")
    assert sound_prefix([good, loop, after]) == [good]
    assert sound_prefix([good, after]) == [good, after]
    noise = DecodedSegment(0.0, 1.0, " Thank you.", avg_logprob=-1.5, no_speech_prob=0.8)
    assert sound_prefix([noise, good]) == []

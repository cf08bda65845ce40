"""Subtitle and lyric output, read back with independent parsers."""

from __future__ import annotations

import html
import itertools
import re

import pytest
import srt
import webvtt

from pipelines.subtitles import (
    build_cues,
    lrc_timestamp,
    srt_timestamp,
    to_lrc,
    to_srt,
    to_txt,
    to_vtt,
    vtt_timestamp,
)
from pipelines.transcription import Segment, Transcript, Word

pytestmark = pytest.mark.unit

STORY = (
    "Once upon a time there was a little village near the mountains and every "
    "morning the baker opened his shop and sold fresh bread to the farmers"
)
ENDING = "The children found clear blue water."
LONG = STORY.split()
SHORT = ENDING.split()
LRC_LINE = re.compile(r"\[(\d{2,}):([0-5]\d)\.(\d\d)\](.*)")
LRC_WORD = re.compile(r"<(\d{2,}):([0-5]\d)\.(\d\d)>([^<]*)")


def timed_segment(index: int, start: float, words: list[str], step: float = 0.4) -> Segment:
    timed = [
        Word(f" {text}", start + i * step, start + (i + 1) * step - 0.1, 0.9)
        for i, text in enumerate(words)
    ]
    text = "".join(word.word for word in timed)
    return Segment(index, start, timed[-1].end, text, timed)


def untimed(segment: Segment) -> Segment:
    return Segment(segment.id, segment.start, segment.end, segment.text)


def transcript_of(segments: list[Segment], duration: float = 40.0) -> Transcript:
    return Transcript.from_segments(
        segments, language="en", language_probability=1.0, duration=duration
    )


@pytest.fixture(params=["words", "no_words"])
def transcript(request) -> Transcript:
    segments = [
        timed_segment(0, 0.5, LONG),
        Segment(1, 11.0, 11.5, "  "),
        timed_segment(2, 12.0, SHORT),
        timed_segment(3, 3725.0, SHORT),
    ]
    if request.param == "no_words":
        segments = [untimed(segment) for segment in segments]
    return transcript_of(segments, duration=3730.0)


def squash(text: str) -> str:
    return " ".join(text.split())


def assert_sequential(spans: list[tuple[float, float]]) -> None:
    for (start, end), (next_start, _) in itertools.pairwise(spans):
        assert start <= end <= next_start
    assert spans[-1][0] <= spans[-1][1]


def vtt_seconds(stamp: webvtt.models.Timestamp) -> float:
    # start_in_seconds drops the milliseconds, so read the fields.
    return stamp.hours * 3600 + stamp.minutes * 60 + stamp.seconds + stamp.milliseconds / 1000


def lrc_seconds(minutes: str, seconds: str, hundredths: str) -> float:
    return int(minutes) * 60 + int(seconds) + int(hundredths) / 100


# -- SRT and VTT agree with the transcript ---------------------------------------


def test_srt_parses_and_matches_the_cues(transcript: Transcript) -> None:
    cues = build_cues(transcript)
    subtitles = list(srt.parse(to_srt(transcript)))
    assert [s.index for s in subtitles] == list(range(1, len(cues) + 1))
    for subtitle, cue in zip(subtitles, cues, strict=True):
        assert subtitle.start.total_seconds() == pytest.approx(cue.start, abs=5e-4)
        assert subtitle.end.total_seconds() == pytest.approx(cue.end, abs=5e-4)
        assert subtitle.content.split("\n") == cue.text_lines
    assert squash(" ".join(s.content for s in subtitles)) == squash(transcript.text)
    assert_sequential([(s.start.total_seconds(), s.end.total_seconds()) for s in subtitles])


def test_vtt_parses_and_matches_the_cues(transcript: Transcript) -> None:
    cues = build_cues(transcript)
    captions = webvtt.from_string(to_vtt(transcript), strict=True).captions
    assert len(captions) == len(cues)
    for caption, cue in zip(captions, cues, strict=True):
        assert vtt_seconds(caption.start_time) == pytest.approx(cue.start, abs=5e-4)
        assert vtt_seconds(caption.end_time) == pytest.approx(cue.end, abs=5e-4)
    text = " ".join(html.unescape(caption.text) for caption in captions)
    assert squash(text) == squash(transcript.text)
    assert "3725" not in to_vtt(transcript) and "01:02:05.000" in to_vtt(transcript)


def test_cue_edges_follow_the_segment_and_its_words() -> None:
    segment = timed_segment(0, 0.5, LONG)
    cues = build_cues(transcript_of([segment]))
    assert len(cues) > 1
    assert (cues[0].start, cues[-1].end) == (segment.start, segment.end)
    for cue, following in itertools.pairwise(cues):
        assert cue.end == cue.words[-1].end
        assert following.start == following.words[0].start


def test_untimed_segments_share_time_by_word_length() -> None:
    segment = Segment(0, 10.0, 20.0, " aaaa" * 20)
    cues = build_cues(transcript_of([segment]), max_line_chars=20, max_lines=2)
    assert [len(cue.words) for cue in cues] == [8, 8, 4]
    edges = [edge for cue in cues for edge in (cue.start, cue.end)]
    assert edges == pytest.approx([10.0, 14.0, 14.0, 18.0, 18.0, 20.0])


@pytest.mark.parametrize(("max_chars", "max_lines"), [(12, 1), (20, 2), (42, 2), (30, 3)])
def test_lines_respect_the_limits(transcript: Transcript, max_chars: int, max_lines: int) -> None:
    for subtitle in srt.parse(to_srt(transcript, max_line_chars=max_chars, max_lines=max_lines)):
        lines = subtitle.content.split("\n")
        assert 1 <= len(lines) <= max_lines
        assert all(0 < len(line) <= max_chars for line in lines)


def test_a_word_longer_than_a_line_gets_its_own_line() -> None:
    segment = Segment(0, 0.0, 3.0, " a supercalifragilistic b")
    cues = build_cues(transcript_of([segment]), max_line_chars=5, max_lines=1)
    assert [cue.text_lines for cue in cues] == [["a"], ["supercalifragilistic"], ["b"]]


def test_overlapping_segments_become_sequential_cues() -> None:
    segments = [Segment(0, 0.0, 5.0, " first"), Segment(1, 4.0, 6.0, " second")]
    cues = build_cues(transcript_of(segments))
    assert [(cue.start, cue.end) for cue in cues] == [(0.0, 5.0), (5.0, 6.0)]


def test_empty_transcript_and_segments_produce_no_cues() -> None:
    empty = transcript_of([Segment(0, 0.0, 1.0, ""), Segment(1, 1.0, 2.0, "   ")])
    assert (to_srt(empty), to_vtt(empty), to_txt(empty), to_lrc(empty)) == (
        "",
        "WEBVTT\n\n",
        "",
        "",
    )


def test_vtt_escapes_markup() -> None:
    text = " 1 < 2 & 3 --> 4"
    vtt = to_vtt(transcript_of([Segment(0, 0.0, 1.0, text)]))
    (caption,) = webvtt.from_string(vtt, strict=True).captions
    assert "&lt;" in caption.text and html.unescape(caption.text) == text.strip()


def test_txt_has_one_line_per_segment(transcript: Transcript) -> None:
    lines = to_txt(transcript).splitlines()
    assert lines == [s.text.strip() for s in transcript.segments if s.text.strip()]


# -- timestamps ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "srt_text", "lrc_text"),
    [
        (0.0, "00:00:00,000", "00:00.00"),
        (-0.2, "00:00:00,000", "00:00.00"),
        (1.0005, "00:00:01,001", "00:01.00"),
        (59.994, "00:00:59,994", "00:59.99"),
        (59.999, "00:00:59,999", "01:00.00"),
        (59.9996, "00:01:00,000", "01:00.00"),
        (3599.9999, "01:00:00,000", "60:00.00"),
        (3725.5, "01:02:05,500", "62:05.50"),
        (360000.0, "100:00:00,000", "6000:00.00"),
    ],
)
def test_timestamp_formats(seconds: float, srt_text: str, lrc_text: str) -> None:
    assert srt_timestamp(seconds) == srt_text
    assert vtt_timestamp(seconds) == srt_text.replace(",", ".")
    assert lrc_timestamp(seconds) == lrc_text


def test_rounding_never_carries_into_an_invalid_field() -> None:
    clock = re.compile(r"(\d{2,}):([0-5]\d):([0-5]\d),(\d{3})")
    fractions = (0.0, 0.0004999, 0.4995, 0.994999, 0.9995, 0.99999)
    for seconds in (whole + f for whole in range(0, 7300, 59) for f in fractions):
        srt_match = clock.fullmatch(srt_timestamp(seconds))
        lrc_match = LRC_LINE.fullmatch(f"[{lrc_timestamp(seconds)}]")
        assert srt_match is not None and lrc_match is not None
        hours, minutes, secs, millis = map(int, srt_match.groups())
        assert abs(hours * 3600 + minutes * 60 + secs + millis / 1000 - seconds) <= 5e-4 + 1e-9
        assert abs(lrc_seconds(*lrc_match.groups()[:3]) - seconds) <= 5e-3 + 1e-9


# -- LRC ----------------------------------------------------------------------------


def parse_lrc(text: str) -> list[tuple[float, str]]:
    lines = []
    for line in text.splitlines():
        match = LRC_LINE.fullmatch(line)
        assert match, f"not an LRC line: {line!r}"
        lines.append((lrc_seconds(*match.groups()[:3]), match.group(4)))
    return lines


def test_enhanced_lrc_tags_every_word_with_its_time() -> None:
    segments = [timed_segment(0, 0.5, LONG), timed_segment(1, 3725.0, SHORT)]
    transcript = transcript_of(segments)
    words = [word for segment in segments for word in segment.words]
    tagged = [tag for _, text in parse_lrc(to_lrc(transcript)) for tag in LRC_WORD.findall(text)]
    # Each line ends with a tag for its last word's end, carrying no text.
    starts = [(lrc_seconds(*tag[:3]), tag[3].strip()) for tag in tagged if tag[3]]
    assert [text for _, text in starts] == [word.word.strip() for word in words]
    for (when, _), word in zip(starts, words, strict=True):
        assert when == pytest.approx(word.start, abs=0.005)
    assert tagged[-1][3] == "" and lrc_seconds(*tagged[-1][:3]) == pytest.approx(segments[-1].end)


def test_lrc_lines_follow_the_transcript(transcript: Transcript) -> None:
    lines = parse_lrc(to_lrc(transcript, enhanced=False))
    times = [when for when, _ in lines]
    assert times == sorted(times)
    assert not any(LRC_WORD.search(text) for _, text in lines)
    assert squash(" ".join(text for _, text in lines)) == squash(transcript.text)
    assert lines[-1][1] == "" and lines[-1][0] == pytest.approx(transcript.segments[-1].end)
    assert all(len(text) <= 42 for _, text in lines)


def test_lrc_is_plain_without_word_timestamps() -> None:
    transcript = transcript_of([untimed(timed_segment(0, 0.5, LONG))])
    assert to_lrc(transcript) == to_lrc(transcript, enhanced=False)
    assert "<" not in to_lrc(transcript)


def test_lrc_clears_the_display_across_long_pauses() -> None:
    transcript = transcript_of(
        [
            Segment(0, 1.0, 2.0, " one"),
            Segment(1, 2.5, 3.0, " two"),
            Segment(2, 9.0, 9.5, " three"),
        ]
    )
    assert to_lrc(transcript) == (
        "[00:01.00]one\n[00:02.50]two\n[00:03.00]\n[00:09.00]three\n[00:09.50]\n"
    )

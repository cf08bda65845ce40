"""LocalAgreement-2: commit what two consecutive hypotheses agree on.

Each decode of the growing window yields a hypothesis (words with absolute
times). A word is committed once it sits in the common prefix of two
consecutive hypotheses, beyond what is already committed. Committed words never
change, never repeat, and their times never go backwards.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace

from pipelines.streaming.decoding import DecodedWord

_NON_WORD = re.compile(r"[^\w]+")

TIME_TOLERANCE = 0.1
"""Words starting this much before the committed end still count as new: word
timestamps jitter between decodes of the same audio."""

NGRAM_WINDOW = 1.0
"""Only look for re-transcribed committed words this close to the committed end."""

MAX_NGRAM = 5
"""Longest run of committed words searched for at the head of a hypothesis."""


def normalize_word(word: str) -> str:
    """Comparison key of a word: case and punctuation do not matter."""
    return _NON_WORD.sub("", word.casefold())


def common_prefix(a: Sequence[DecodedWord], b: Sequence[DecodedWord]) -> int:
    """Number of leading words ``a`` and ``b`` share, compared by `normalize_word`."""
    n = 0
    for left, right in zip(a, b, strict=False):
        if normalize_word(left.word) != normalize_word(right.word):
            break
        n += 1
    return n


class LocalAgreement:
    """Commits the agreed prefix of consecutive hypotheses (whisper_streaming's policy)."""

    def __init__(self) -> None:
        self._recent: list[DecodedWord] = []
        self._previous: list[DecodedWord] = []
        self.committed_end = 0.0

    @property
    def tail(self) -> list[DecodedWord]:
        """Words of the latest hypothesis that are not committed yet."""
        return list(self._previous)

    def insert(
        self, hypothesis: Sequence[DecodedWord], *, commit: bool = True
    ) -> list[DecodedWord]:
        """Add a hypothesis; return the words it newly commits.

        With ``commit=False`` the hypothesis only becomes the one the next
        must agree with (used for windows too short to trust).
        """
        new = self._beyond_committed(hypothesis)
        agreed = common_prefix(self._previous, new) if commit else 0
        self._previous = new[agreed:]
        return self._commit(new[:agreed])

    def flush(self, hypothesis: Sequence[DecodedWord] | None = None) -> list[DecodedWord]:
        """Commit everything: ``hypothesis`` (beyond what is committed) or the tail."""
        words = self._previous if hypothesis is None else self._beyond_committed(hypothesis)
        committed = self._commit(words)
        self.reset()
        return committed

    def reset(self) -> None:
        """Start a fresh utterance: the window no longer holds committed audio.

        ``committed_end`` survives so times keep increasing.
        """
        self._previous = []
        self._recent = []

    def forget_before(self, time: float) -> None:
        """Drop committed words that ended before ``time`` (trimmed from the window)."""
        self._recent = [w for w in self._recent if w.end > time]

    def _beyond_committed(self, hypothesis: Sequence[DecodedWord]) -> list[DecodedWord]:
        # The window still holds audio of committed words, so each decode
        # transcribes them again: drop them by time, then by text at the seam.
        new = [w for w in hypothesis if w.start > self.committed_end - TIME_TOLERANCE]
        if new and abs(new[0].start - self.committed_end) < NGRAM_WINDOW:
            new = new[self._repeated_head(new) :]
        return new

    def _repeated_head(self, new: Sequence[DecodedWord]) -> int:
        longest = min(len(self._recent), len(new), MAX_NGRAM)
        for n in range(1, longest + 1):
            if common_prefix(self._recent[-n:], new[:n]) == n:
                return n
        return 0

    def _commit(self, words: Sequence[DecodedWord]) -> list[DecodedWord]:
        committed = []
        for word in words:
            start = max(word.start, self.committed_end)
            word = replace(word, start=start, end=max(word.end, start))
            self.committed_end = word.end
            committed.append(word)
        self._recent = (self._recent + committed)[-4 * MAX_NGRAM :]
        return committed

"""Word error rate for checking transcripts against known texts."""

from __future__ import annotations

import re

__all__ = ["normalize_words", "word_error_rate"]

_NOT_WORD = re.compile(r"[^\w\s']|(?<!\w)'|'(?!\w)")


def normalize_words(text: str) -> list[str]:
    """Lower-case words with punctuation removed (inner apostrophes kept: "don't")."""
    return _NOT_WORD.sub(" ", text.lower()).split()


def word_error_rate(reference: str, hypothesis: str) -> float:
    """(substitutions + deletions + insertions) / reference words, after normalising.

    An empty reference gives 0.0 for an empty hypothesis and 1.0 otherwise.
    """
    ref, hyp = normalize_words(reference), normalize_words(hypothesis)
    if not ref:
        return 0.0 if not hyp else 1.0
    # One row of the Levenshtein table at a time: previous[j] = distance(ref[:i], hyp[:j]).
    previous = list(range(len(hyp) + 1))
    for i, ref_word in enumerate(ref, 1):
        current = [i]
        for j, hyp_word in enumerate(hyp, 1):
            substitution = previous[j - 1] + (ref_word != hyp_word)
            current.append(min(previous[j] + 1, current[j - 1] + 1, substitution))
        previous = current
    return previous[-1] / len(ref)

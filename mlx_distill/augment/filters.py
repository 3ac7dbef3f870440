"""Decide which parsed candidates become rows: length limits, duplicates, copies and leakage.

Why near duplicates and not only exact ones: a small model repeats itself with a changed word or a
full stop ("Buy milk" / "Buy milk."), and copies the few-shot examples it was shown. Exact keys are
``mlx_distill.data.normalise_text`` (the project's one definition of "the same text"); near matches
use rapidfuzz's ``ratio`` on its default processing (lower-case, punctuation removed).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from rapidfuzz import fuzz, process, utils

from mlx_distill.data import normalise_text

#: Every reason a candidate can be rejected for, in the order the summary prints them.
REASONS = ("cut_off", "meta", "empty", "too_short", "too_long", "in_eval_test", "copies_train",
           "duplicate", "near_duplicate")


@dataclass
class _Pool:
    """Texts seen so far: exact keys and the rapidfuzz-processed forms for near matching."""

    keys: set[str] = field(default_factory=set)
    processed: list[str] = field(default_factory=list)

    def add(self, text: str) -> None:
        self.keys.add(normalise_text(text))
        self.processed.append(utils.default_process(text))

    def matches(self, text: str, cutoff: float) -> bool:
        if normalise_text(text) in self.keys:
            return True
        if cutoff > 100 or not self.processed:
            return False
        return process.extractOne(utils.default_process(text), self.processed, scorer=fuzz.ratio,
                                  processor=None, score_cutoff=cutoff) is not None


class RowFilter:
    """Stateful gate: :meth:`reason` says why a candidate is rejected (None: keep it), and
    :meth:`keep` records a kept one so later copies of it are caught."""

    def __init__(self, real: Iterable[str], excluded: Iterable[str], *, min_words: int, max_words: int,
                 min_chars: int, max_chars: int, near_duplicate: float) -> None:
        self._real, self._excluded, self._kept = _Pool(), _Pool(), _Pool()
        for text in real:
            self._real.add(text)
        for text in excluded:
            self._excluded.add(text)
        self._limits = (min_words, max_words, min_chars, max_chars)
        self._cutoff = near_duplicate

    def reason(self, text: str) -> str | None:
        min_words, max_words, min_chars, max_chars = self._limits
        words = len(text.split())
        if words < min_words or len(text) < min_chars:
            return "too_short"
        if words > max_words or len(text) > max_chars:
            return "too_long"
        if self._excluded.matches(text, self._cutoff):
            return "in_eval_test"
        if self._real.matches(text, self._cutoff):
            return "copies_train"
        if normalise_text(text) in self._kept.keys:
            return "duplicate"
        if self._kept.matches(text, self._cutoff):
            return "near_duplicate"
        return None

    def keep(self, text: str) -> None:
        self._kept.add(text)

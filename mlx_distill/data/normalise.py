"""The one definition of "the same text" used by duplicate, conflict, leakage and overlap checks.

Why one function: if dedupe and the leakage check disagreed on what "the same" means, a row could
be removed as a duplicate yet still leak into the evaluation set. Everything compares
``normalise_text(a) == normalise_text(b)``.
"""

from __future__ import annotations

import unicodedata


def normalise_text(text: str) -> str:
    """Case- and whitespace-insensitive key: NFKC (so a composed "é" equals "e" + combining accent,
    and full-width letters equal ASCII ones), ``casefold`` (so "STRASSE" equals "straße"), then
    runs of any Unicode whitespace (tabs, NBSP, U+2028 ...) collapsed to one space and trimmed."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())

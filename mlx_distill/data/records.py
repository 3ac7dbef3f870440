"""The row type every data stage passes around, the error users see, and how problem lists are shown.

Why one place: readers, checks and the augment/clean stages all report problems as
``file:line: reason`` lines; sharing the formatting keeps the messages alike and capped the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_REPORTED = 20


class DataError(ValueError):
    """A data file the user must fix; the message lists each problem as ``file:line: reason``."""


@dataclass(frozen=True)
class Example:
    text: str
    label: str | None
    source: str  # "file:line", so later stages can point back at the row


def capped(lines: list[str], limit: int = MAX_REPORTED, what: str = "") -> list[str]:
    """The first ``limit`` lines, then one "... and N more" line, so a 10,000-row mistake stays readable."""
    if len(lines) <= limit:
        return list(lines)
    return [*lines[:limit], f"... and {len(lines) - limit} more{' ' + what if what else ''}"]


def problems_error(header: str, problems: list[str]) -> DataError:
    """One header line, then every problem indented beneath it (capped)."""
    return DataError(header + ":\n  " + "\n  ".join(capped(problems)))

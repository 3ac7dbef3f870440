"""Duplicate and overlap removal for transfer and synthetic rows.

Why: a transfer or generated row that equals an evaluation/test text lets the student see the
answer to a question it is scored on; a repeated row silently weighs more than the others. Both
are removed here and *counted*, so the report can say how many went.
"""

from __future__ import annotations

from collections.abc import Iterable

from mlx_distill.data.normalise import normalise_text
from mlx_distill.data.records import Example


def group_by_text(rows: Iterable[Example]) -> dict[str, list[Example]]:
    """Rows grouped by :func:`normalise_text`, groups and rows in first-seen order."""
    groups: dict[str, list[Example]] = {}
    for row in rows:
        groups.setdefault(normalise_text(row.text), []).append(row)
    return groups


def dedupe(rows: list[Example]) -> tuple[list[Example], int]:
    """Keep the first row of each normalised text (whatever its label); return (kept, n_dropped).

    Labelled data with conflicting labels should go through ``check_labelled`` first, which refuses
    them; for synthetic rows the first occurrence wins, since a text can have one target only.
    """
    kept = [group[0] for group in group_by_text(rows).values()]
    return kept, len(rows) - len(kept)


def drop_overlaps(rows: list[Example], against: Iterable[Example]) -> tuple[list[Example], int]:
    """Rows whose normalised text does not occur in ``against`` (evaluation/test); (kept, n_dropped)."""
    taken = {normalise_text(e.text) for e in against}
    kept = [row for row in rows if normalise_text(row.text) not in taken]
    return kept, len(rows) - len(kept)

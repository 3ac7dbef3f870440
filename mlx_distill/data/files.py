"""Read labelled texts from JSONL or CSV, reporting every bad row by file, line and reason.

Contract (shared/DESIGN.md): JSONL rows are objects with ``text`` and ``label``; CSV files have a
header with ``text`` and ``label`` columns; UTF-8. Nothing is silently dropped: a file with bad rows
raises :class:`DataError` listing all of them, so the user fixes the file once, not row by row.
"""

from __future__ import annotations

import os
from pathlib import Path

from mlx_distill.data.records import DataError, Example, problems_error
from mlx_distill.data.rows import csv_rows, jsonl_rows
from mlx_distill.data.sources import read_user_text, split_lines
from mlx_distill.data.unlabeled import read_unlabeled

__all__ = ["DataError", "Example", "read_examples", "read_texts"]

LABELLED = "a .jsonl or .csv file with text,label"
_TEXTS = "a file of texts (.jsonl or .csv with a text field, or any other file with one text per line)"


def read_examples(path: str | os.PathLike[str], require_label: bool = True) -> list[Example]:
    """All rows of a .jsonl / .csv file (or plain text, one text per line, when labels are not needed)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if require_label and suffix not in (".jsonl", ".ndjson", ".csv") and not path.is_dir():
        raise DataError(f"{path}: unsupported file type {suffix!r}; use .jsonl (text, label) or .csv (text,label)")
    raw = read_user_text(path, LABELLED if require_label else _TEXTS)
    if suffix in (".jsonl", ".ndjson"):
        rows, problems = jsonl_rows(path, raw, "'text' and 'label'" if require_label else "a 'text' field")
    elif suffix == ".csv":
        rows, problems = csv_rows(path, raw, ("text", "label") if require_label else ("text",))
    else:
        rows = [(n, {"text": line}) for n, line in enumerate(split_lines(raw), 1) if line.strip()]
        problems = []

    examples: list[Example] = []
    for line, row in rows:
        where = f"{path}:{line}"
        text, label = row.get("text"), row.get("label")
        if not isinstance(text, str) or not text.strip():
            problems.append((line, f"{where}: field 'text' is missing or empty"))
            continue
        if label is not None and (isinstance(label, bool) or not isinstance(label, (str, int))):
            problems.append((line, f"{where}: field 'label' must be a string or integer, got {type(label).__name__}"))
            continue
        label_text = None if label is None else str(label).strip()
        if require_label and not label_text:
            problems.append((line, f"{where}: field 'label' is missing or empty"))
            continue
        examples.append(Example(text.strip(), label_text or None, where))
    if problems:
        raise problems_error(f"{path}: {len(problems)} bad row(s); fix them and run again", [p for _, p in sorted(problems)])
    if not examples:
        raise DataError(f"{path}: no examples found (only a header or blank lines); expected {LABELLED}")
    return examples


def read_texts(path: str | os.PathLike[str]) -> list[str]:
    """Texts to classify: the ``text`` field of JSONL/CSV, or one text per line of any other file
    (so ``--file notes.md`` or ``--file /dev/stdin`` work too)."""
    return [e.text for e in read_unlabeled(path, any_suffix=True)]

"""Read labelled texts from JSONL or CSV, reporting every bad row by file, line and reason.

Contract (shared/DESIGN.md): JSONL rows are objects with ``text`` and ``label``; CSV files have a
header with ``text`` and ``label`` columns; UTF-8. Nothing is silently dropped: a file with bad rows
raises :class:`DataError` listing all of them, so the user fixes the file once, not row by row.
"""

from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path

_MAX_REPORTED = 20


class DataError(ValueError):
    """A data file the user must fix; the message lists each problem as ``file:line: reason``."""


@dataclass(frozen=True)
class Example:
    text: str
    label: str | None
    source: str  # "file:line", so later stages can point back at the row


def read_examples(path: str | os.PathLike[str], require_label: bool = True) -> list[Example]:
    """All rows of a .jsonl / .csv file (or plain text, one text per line, when labels are not needed)."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: file not found")
    suffix = path.suffix.lower()
    try:
        raw = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 (byte {exc.start}); save the file as UTF-8") from None
    if suffix in (".jsonl", ".ndjson"):
        rows, problems = _jsonl_rows(path, raw)
    elif suffix == ".csv":
        rows, problems = _csv_rows(path, raw)
    elif not require_label:
        rows = [(n, {"text": line}) for n, line in enumerate(_lines(raw), 1) if line.strip()]
        problems = []
    else:
        raise DataError(f"{path}: unsupported file type {suffix!r}; use .jsonl (text, label) or .csv (text,label)")

    examples: list[Example] = []
    for line, row in rows:
        where = f"{path}:{line}"
        text, label = row.get("text"), row.get("label")
        if not isinstance(text, str) or not text.strip():
            problems.append(f"{where}: field 'text' is missing or empty")
            continue
        if label is not None and not isinstance(label, (str, int)):
            problems.append(f"{where}: field 'label' must be a string or integer, got {type(label).__name__}")
            continue
        label_text = None if label is None else str(label).strip()
        if require_label and not label_text:
            problems.append(f"{where}: field 'label' is missing or empty")
            continue
        examples.append(Example(text.strip(), label_text or None, where))
    if problems:
        shown = "\n  ".join(problems[:_MAX_REPORTED])
        more = f"\n  ... and {len(problems) - _MAX_REPORTED} more" if len(problems) > _MAX_REPORTED else ""
        raise DataError(f"{path}: {len(problems)} bad row(s); fix them and run again:\n  {shown}{more}")
    if not examples:
        raise DataError(f"{path}: no examples found")
    return examples


def read_texts(path: str | os.PathLike[str]) -> list[str]:
    """Texts to classify: the ``text`` field of JSONL/CSV, or one text per line of any other file."""
    return [e.text for e in read_examples(path, require_label=False)]


def _lines(raw: str) -> list[str]:
    """Split on newlines only: ``str.splitlines`` also splits on U+2028, NEL and other characters
    that JSON writers leave unescaped inside strings, which would corrupt valid rows."""
    return [line[:-1] if line.endswith("\r") else line for line in raw.split("\n")]


def _jsonl_rows(path: Path, raw: str) -> tuple[list[tuple[int, dict]], list[str]]:
    rows, problems = [], []
    for number, line in enumerate(_lines(raw), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.append(f"{path}:{number}: invalid JSON ({exc.msg} at column {exc.colno})")
            continue
        if not isinstance(row, dict):
            problems.append(f"{path}:{number}: expected a JSON object with 'text' and 'label'")
            continue
        rows.append((number, row))
    return rows, problems


def _csv_rows(path: Path, raw: str) -> tuple[list[tuple[int, dict]], list[str]]:
    reader = csv.DictReader(io.StringIO(raw, newline=""))
    fields = [f.strip() for f in (reader.fieldnames or [])]
    if "text" not in fields:
        raise DataError(f"{path}:1: the CSV header must name a 'text' column (found {fields})")
    reader.fieldnames = fields
    rows, problems = [], []
    for row in reader:
        if None in row:  # more cells than header columns: usually an unquoted comma in the text
            problems.append(f"{path}:{reader.line_num}: more cells than header columns; quote texts that contain commas")
            continue
        rows.append((reader.line_num, row))
    return rows, problems

"""Turn decoded JSONL / CSV text into ``(line number, row dict)`` pairs, collecting every bad line.

Why separate from the readers: labelled and unlabelled files share the same two formats and the
same mistakes (invalid JSON, unquoted commas); only which fields are required differs.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from mlx_distill.data.records import DataError
from mlx_distill.data.sources import split_lines

Rows = list[tuple[int, dict]]
Problems = list[tuple[int, str]]  # (line, "file:line: reason"), so readers can list them in file order


def jsonl_rows(path: Path, raw: str, fields: str) -> tuple[Rows, Problems]:
    """Objects per non-blank line; ``fields`` names what an object must hold, for the message."""
    rows, problems = [], []
    for number, line in enumerate(split_lines(raw), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.append((number, f"{path}:{number}: invalid JSON ({exc.msg} at column {exc.colno})"))
            continue
        if not isinstance(row, dict):
            problems.append((number, f"{path}:{number}: expected a JSON object with {fields}"))
            continue
        rows.append((number, row))
    return rows, problems


def csv_rows(path: Path, raw: str, columns: tuple[str, ...]) -> tuple[Rows, Problems]:
    """Rows keyed by the (stripped) header names; the header must name every one of ``columns``."""
    reader = csv.DictReader(io.StringIO(raw, newline=""))
    try:
        fields = [f.strip() for f in (reader.fieldnames or [])]
        missing = [c for c in columns if c not in fields]
        if missing:
            need = " and ".join(repr(c) for c in columns)
            raise DataError(f"{path}:1: the CSV header must name {need} column(s); missing {missing}, found {fields}")
        reader.fieldnames = fields
        rows, problems = [], []
        for row in reader:
            if None in row:  # more cells than header columns: usually an unquoted comma in the text
                where = f"{path}:{reader.line_num}"
                problems.append((reader.line_num, f"{where}: more cells than header columns; quote texts that contain commas"))
                continue
            rows.append((reader.line_num, row))
    except csv.Error as exc:
        raise DataError(f"{path}:{reader.line_num}: unreadable CSV ({exc})") from None
    return rows, problems

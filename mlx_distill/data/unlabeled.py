"""Read unlabelled texts (transfer rows for distillation, texts to classify).

Why a reader of its own: unlabelled means unlabelled. A ``label`` field or column in such a file is
ignored rather than trusted, so transfer data can never smuggle labels into the cross-entropy term.
Formats: ``.txt`` one text per line (blank lines skipped), ``.jsonl`` objects with a ``text`` field,
``.csv`` with a ``text`` column; other fields are ignored. Bad rows are all listed as ``file:line``.
"""

from __future__ import annotations

import os
from pathlib import Path

from mlx_distill.data.records import DataError, Example, problems_error
from mlx_distill.data.rows import csv_rows, jsonl_rows
from mlx_distill.data.sources import read_user_text, split_lines

UNLABELLED = "a .txt file (one text per line), or a .jsonl or .csv file with a text field"
_PLAIN = (".txt", ".text")


def read_unlabeled(path: str | os.PathLike[str], any_suffix: bool = False) -> list[Example]:
    """Every text of ``path`` as ``Example(text, None, "file:line")``.

    ``any_suffix`` reads files that are neither .jsonl nor .csv as plain lines (for ``predict
    --file``); otherwise only .txt/.jsonl/.csv are accepted. Raises :class:`DataError`.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    known = suffix in (".jsonl", ".ndjson", ".csv", *_PLAIN)
    if not known and not any_suffix and not path.is_dir():
        raise DataError(f"{path}: unsupported file type {suffix!r}; expected {UNLABELLED}")
    raw = read_user_text(path, UNLABELLED)
    if suffix in (".jsonl", ".ndjson"):
        rows, problems = jsonl_rows(path, raw, "a 'text' field")
    elif suffix == ".csv":
        rows, problems = csv_rows(path, raw, ("text",))
    else:
        rows = [(n, {"text": line}) for n, line in enumerate(split_lines(raw), 1) if line.strip()]
        problems = []
    examples: list[Example] = []
    for line, row in rows:
        text = row.get("text")
        if not isinstance(text, str) or not text.strip():
            problems.append((line, f"{path}:{line}: field 'text' is missing or empty"))
            continue
        examples.append(Example(text.strip(), None, f"{path}:{line}"))
    if problems:
        raise problems_error(f"{path}: {len(problems)} bad row(s); fix them and run again", [p for _, p in sorted(problems)])
    if not examples:
        raise DataError(f"{path}: no texts found (only a header or blank lines); expected {UNLABELLED}")
    return examples

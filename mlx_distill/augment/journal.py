"""Append-only JSONL files that survive Ctrl-C and ``kill -9``: the rows, the progress log, rejects.

Why append + fsync instead of atomic rewrites: rows must reach the disk as they are produced (a
long run should lose at most the request in flight), and rewriting a growing file per batch would
cost O(n²). The price is that a kill during a write can leave a torn last line; :func:`read_jsonl`
repairs that (cuts it off, says so on stderr) instead of refusing the file.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path


def read_jsonl(path: Path, repair: bool = True) -> list[dict]:
    """Every object of ``path`` ([] when missing). A torn or unparsable *last* line is what an
    interrupted append leaves: it is cut off the file. A bad line elsewhere is an error."""
    if not path.exists():
        return []
    data = path.read_bytes()
    lines = data.split(b"\n")
    rows, offset = [], 0
    last = max((i for i, line in enumerate(lines, 1) if line.strip()), default=0)  # last non-blank line
    for number, line in enumerate(lines, 1):
        end = offset + len(line) + 1
        is_last = number == last
        if line.strip():
            try:
                row = json.loads(line)
                if not isinstance(row, dict):
                    raise ValueError("not an object")
                if is_last and number == len(lines):  # no newline after it: the append was cut short
                    raise ValueError("no newline")
                rows.append(row)
            except (ValueError, UnicodeDecodeError):
                if not is_last:
                    raise ValueError(f"{path}:{number}: not a JSON object; this file was edited or is not "
                                     "one augment wrote: fix the line or pass another --out") from None
                if repair:
                    with open(path, "r+b") as handle:
                        handle.truncate(offset)
                        os.fsync(handle.fileno())
                    print(f"warning: {path}:{number}: repaired a torn last line left by an interrupted run "
                          f"({len(data) - offset} bytes dropped)", file=sys.stderr)
                break
        offset = end
    return rows


class Appender:
    """Opened once, appended in batches; each batch is flushed and fsynced before returning."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = open(path, "a", encoding="utf-8")

    def write(self, rows: list[dict]) -> None:
        if not rows:
            return
        self._handle.write("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
        self._handle.flush()
        os.fsync(self._handle.fileno())

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> "Appender":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

"""Open and decode a user's data file, turning each way a path can be wrong into one clear line.

Why: a folder, a typo'd name, a file without read permission, an empty export or a file saved in
Latin-1 used to surface as raw ``IsADirectoryError`` / ``UnicodeDecodeError`` tracebacks with a byte
offset. Users fix files in an editor, so decode errors name the line and column an editor shows.
"""

from __future__ import annotations

import os
from pathlib import Path

from mlx_distill.data.records import DataError

_BOM = b"\xef\xbb\xbf"


def read_user_text(path: str | os.PathLike[str], expected: str) -> str:
    """The file's text (UTF-8, an optional BOM removed); ``expected`` completes "expected ..." in errors.

    Raises :class:`DataError` for a missing path, a folder, an unreadable file, an empty file, NUL bytes and
    invalid UTF-8 (with line, column and byte offset of the first bad byte, and the other bad lines).
    Non-regular files (``/dev/stdin``, a FIFO) are read as they come, so piping texts in still works.
    """
    path = Path(path)
    if path.is_dir():
        raise DataError(f"{path}: is a folder; expected {expected}")
    if not path.exists():
        raise DataError(f"{path}: file not found; expected {expected}")
    try:
        data = path.read_bytes()
    except PermissionError:
        raise DataError(f"{path}: cannot be read (permission denied); make it readable or copy it") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc.strerror or exc}); expected {expected}") from None
    bom = len(_BOM) if data.startswith(_BOM) else 0
    if not data[bom:].strip():
        raise DataError(f"{path}: is empty; expected {expected}")
    if b"\0" in data:  # valid UTF-8, but what Excel's "Unicode text" (UTF-16) and binary files look like
        line = data[: data.index(b"\0")].count(b"\n") + 1
        raise DataError(f"{path}:{line}: contains NUL bytes (a UTF-16 or binary file?); save the file as UTF-8 text")
    try:
        return data[bom:].decode("utf-8")
    except UnicodeDecodeError:
        raise _utf8_error(path, data, bom) from None


def split_lines(raw: str) -> list[str]:
    """Split on newlines only: ``str.splitlines`` also splits on U+2028, NEL and other characters
    that JSON writers leave unescaped inside strings, which would corrupt valid rows."""
    return [line[:-1] if line.endswith("\r") else line for line in raw.split("\n")]


def _utf8_error(path: Path, data: bytes, bom: int) -> DataError:
    """Where the bad bytes are, line by line. UTF-8 never uses byte 0x0A inside a multi-byte
    character, so splitting the raw bytes on newlines gives the same lines an editor shows."""
    bad: list[tuple[int, int, int, int]] = []  # line, column, byte value, file offset
    offset = 0
    for number, line in enumerate(data.split(b"\n"), 1):
        start = bom if number == 1 else 0
        try:
            line[start:].decode("utf-8")
        except UnicodeDecodeError as exc:
            column = len(line[start:start + exc.start].decode("utf-8")) + 1
            bad.append((number, column, line[start + exc.start], offset + start + exc.start))
        offset += len(line) + 1
    number, column, byte, at = bad[0]
    others = [str(b[0]) for b in bad[1:]]
    also = ""
    if others:
        shown = ", ".join(others[:10]) + (f" and {len(others) - 10} more" if len(others) > 10 else "")
        also = f"; also on line(s) {shown}"
    return DataError(
        f"{path}:{number}: not UTF-8 (byte 0x{byte:02x} at column {column}, file offset {at}){also}; "
        "save the file as UTF-8"
    )

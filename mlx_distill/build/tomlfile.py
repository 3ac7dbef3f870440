"""Read a build file (TOML) and say *where* a problem is: file, line and key.

Why a line scanner: ``tomllib`` reports syntax errors with a line and column, but once parsed the
values carry no positions, and "unknown key ``warmpu``" is only useful with the line that holds it.
The scanner follows table headers (``[distill.train]``) and finds ``key =`` (or a dotted
``train.epochs =``) inside the table the key belongs to: the first such line is the key's line.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - requires-python is >= 3.10; tomli is tomllib's backport
    import tomli as tomllib


class ConfigError(ValueError):
    """A build file problem, as one line: ``FILE:LINE: key: what is wrong and what to do``."""


_HEADER = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r"""^\s*((?:"[^"]*"|'[^']*'|[A-Za-z0-9_-]+)(?:\s*\.\s*(?:"[^"]*"|'[^']*'|[A-Za-z0-9_-]+))*)\s*=""")


def _parts(dotted: str) -> tuple[str, ...]:
    return tuple(p.strip().strip("\"'") for p in re.findall(r"""\"[^\"]*\"|'[^']*'|[^.\s]+""", dotted))


def read_toml(path: Path) -> tuple[dict[str, Any], str]:
    """The parsed table and the file's text; a syntax error is one :class:`ConfigError` line."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}); save the build file as UTF-8") from None
    try:
        return tomllib.loads(text), text
    except tomllib.TOMLDecodeError as exc:
        # tomllib's message ends with "(at line N, column M)": turn it into FILE:N.
        message = str(exc)
        found = re.search(r"\(at line (\d+), column (\d+)\)", message)
        if found:
            message = message[: found.start()].strip()
            raise ConfigError(f"{path}:{found.group(1)}: TOML syntax: {message} (column {found.group(2)})") from None
        raise ConfigError(f"{path}: TOML syntax: {message}") from None


def find_line(text: str, key_path: tuple[str, ...]) -> int | None:
    """The 1-based line that sets ``key_path`` (or opens it as a table), else None."""
    table: tuple[str, ...] = ()
    for number, line in enumerate(text.splitlines(), 1):
        header = _HEADER.match(line)
        if header:
            table = _parts(header.group(1))
            if table == key_path:
                return number
            continue
        key = _KEY.match(line)
        if key:
            full = table + _parts(key.group(1))
            if full[: len(key_path)] == key_path:
                return number
    return None


def where(path: Path, text: str, key_path: tuple[str, ...]) -> str:
    """``FILE:LINE: a.b.key`` (without the line when the key is not written in the file)."""
    line = find_line(text, key_path)
    dotted = ".".join(key_path)
    return f"{path}:{line}: {dotted}" if line else f"{path}: {dotted}"

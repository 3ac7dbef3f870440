"""Crash-safe file writing shared by every stage that produces outputs or checkpoints.

Why: a build may be killed at any moment (laptop lid, Ctrl-C, OOM). Writing to a temp file in the
same folder and renaming it over the target means readers only ever see the old or the new file.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator

#: errno values that mean "the disk (or the user's quota, or the file-size limit) is full".
_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


class DiskFullError(OSError):
    """A write failed because the disk is full; the message names the folder and what to do."""


def _is_disk_full(exc: BaseException, folder: Path) -> bool:
    if isinstance(exc, OSError) and exc.errno in _FULL:
        return True
    # mlx's savers raise RuntimeError("[write] Unable to write N bytes ...") without an errno; we
    # call that disk full only when the disk really is (nearly) full, so other bugs stay visible.
    if isinstance(exc, RuntimeError) and "Unable to write" in str(exc):
        try:
            return shutil.disk_usage(existing_parent(folder)).free < 64 * 2**20
        except OSError:
            return False
    return False


def existing_parent(path: Path) -> Path:
    """``path`` itself if it exists, else its nearest existing parent folder."""
    return next(p for p in [path, *path.absolute().parents] if p.exists())


@contextlib.contextmanager
def disk_full_guard(folder: str | os.PathLike[str], what: str, cleanup: tuple[Path, ...] = ()) -> Iterator[None]:
    """Turn a disk-full failure while writing ``what`` into ``folder`` into one clear
    :class:`DiskFullError`, after removing the half-written ``cleanup`` paths (which would otherwise
    keep the disk full)."""
    folder = Path(folder)
    try:
        yield
    except BaseException as exc:
        if not _is_disk_full(exc, folder):
            raise
        for path in cleanup:
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        raise DiskFullError(
            errno.ENOSPC,
            f"{folder}: the disk is full (writing {what}); free some space and run the same command again "
            "— work already saved is kept",
        ) from None


def atomic_write(path: str | os.PathLike[str], write: Callable[[str], None]) -> None:
    """Run ``write(temp_path)`` then rename the temp file over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        fsync_path(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def fsync_path(path: str | os.PathLike[str]) -> None:
    """Flush a written file to the disk, so a rename that follows cannot outlive its contents."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def atomic_write_json(path: str | os.PathLike[str], data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def read_json_lines(path: str | os.PathLike[str]) -> list[dict]:
    """The records of a JSON-lines log we append to (metrics, stage log); [] when there is none.
    A line torn by a kill is skipped: the log is a record of progress, not an input to trust."""
    path = Path(path)
    if not path.exists():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def hash_into(digest: "hashlib._Hash", path: str | os.PathLike[str]) -> None:
    """Feed a file's bytes into ``digest`` in 4 MiB blocks (files here reach gigabytes)."""
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)


def sha256_file(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    hash_into(digest, path)
    return digest.hexdigest()

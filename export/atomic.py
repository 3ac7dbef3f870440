"""Atomic writes: a reader never sees a half-written export or manifest.

Outputs are built in a hidden staging folder next to the target (same filesystem, so ``rename``
is atomic), flushed to disk and swapped in at the end. A crash, Ctrl-C or an error mid-export
leaves the previous export untouched; the next export sweeps up whatever a killed one left beside it.

Replacing an existing export takes two renames (old -> backup, staging -> target). Before the first
one, a small journal (``.<name>.swap.json``) records the backup's and the staging folder's names, so
a process killed *between* the two renames is repaired by the next run: it restores exactly that
backup - never some other ``.old-*`` folder, and never an export the user deleted afterwards (once
the staging folder has been renamed in, the backup is garbage, whatever happens to the target).

Files and folders are created with the ordinary ``0o666`` / ``0o777`` modes, so the kernel applies
the process umask itself: nothing here changes the umask (which would race with other threads).

A write that fails because the disk is full (ENOSPC, EDQUOT) or a file-size limit was hit (EFBIG)
is re-raised as :class:`OutOfSpaceError`, an ``OSError`` with that errno whose message names the
output folder, after the staging folder has been removed.
"""

from __future__ import annotations

import errno
import json
import os
import secrets
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Optional

#: errnos that mean "no room to write": disk full, quota exceeded, file-size limit (ulimit -f)
_NO_SPACE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
#: below this many free bytes an export that failed for any reason is reported as a full disk
_NEARLY_FULL_BYTES = 64 * 1024


class OutOfSpaceError(OSError):
    """No room left to write an output; ``str()`` is one line naming the output and what to do."""

    def __str__(self) -> str:
        return str(self.strerror)


@contextmanager
def staged_directory(target: Path) -> Iterator[Path]:
    """Yield an empty staging folder; on success it replaces ``target``, on any error or interrupt
    it is deleted (and ``target`` is left as it was)."""
    target = Path(target).absolute()
    target.parent.mkdir(parents=True, exist_ok=True)
    _sweep_leftovers(target)
    staging = _make_unique(target.parent, f".{target.name}.staging-", directory=True)
    try:
        yield staging
        _fsync_tree(staging)
        publish_directory(staging, target)
    except BaseException as exc:
        no_space = _no_space_errno(exc, staging)  # before the removal frees the space
        if no_space is not None and no_space[1] is None:
            no_space = (no_space[0], _fuller_temp_folder(staging))
        shutil.rmtree(staging, ignore_errors=True)
        if no_space is not None:
            raise _out_of_space(no_space, target, exc) from exc
        raise


def publish_directory(staging: Path, target: Path) -> None:
    """Move ``staging`` to ``target``; an existing ``target`` is renamed away first, then removed."""
    staging, target = Path(staging).absolute(), Path(target).absolute()
    if not target.exists():
        os.rename(staging, target)
        _fsync_dir(target.parent)
        return
    journal = _journal_path(target)
    backup = _make_unique(target.parent, f".{target.name}.old-", directory=False)
    write_json_atomic(journal, {"backup": backup.name, "staging": staging.name})
    os.rename(target, backup)
    try:
        os.rename(staging, target)
    except BaseException:
        os.rename(backup, target)
        journal.unlink(missing_ok=True)
        raise
    # From here on the backup is never restored: the new export is in place.
    journal.unlink(missing_ok=True)
    _fsync_dir(target.parent)
    shutil.rmtree(backup, ignore_errors=True)


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write to a temp file in the same folder, fsync, then ``os.replace``."""
    path = Path(path)
    tmp = _make_unique(path.parent, f".{path.name}.", directory=False)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask applies, as for open()
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_json_atomic(path: Path, data: Any) -> None:
    write_bytes_atomic(path, (json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))


# --- helpers ------------------------------------------------------------------------------------


def _journal_path(target: Path) -> Path:
    return target.parent / f".{target.name}.swap.json"


def _make_unique(parent: Path, prefix: str, directory: bool) -> Path:
    """A fresh hidden name in ``parent``; a folder is created (mode 0o777 less the umask), a file
    name is only reserved by being new (the caller creates it with O_EXCL)."""
    for _ in range(100):
        path = parent / f"{prefix}{secrets.token_hex(4)}"
        if directory:
            try:
                os.mkdir(path, 0o777)
            except FileExistsError:
                continue
            return path
        if not os.path.lexists(path):
            return path
    raise FileExistsError(f"{parent}: could not find a free name starting with {prefix!r}")


def _sweep_leftovers(target: Path) -> None:
    """Repair and remove what a killed export left beside ``target``.

    The only export ever put back is the backup named by a journal whose staging folder still
    exists and whose target is missing: the state of a process killed between its two renames.
    Every other ``.old-*`` / ``.staging-*`` folder (and a stray journal) is deleted.
    """
    journal = _journal_path(target)
    if journal.exists():
        record = _read_journal(journal)
        backup = _journal_entry(target, record, "backup", f".{target.name}.old-")
        staging = _journal_entry(target, record, "staging", f".{target.name}.staging-")
        if backup is not None and staging is not None and backup.is_dir() and staging.is_dir() \
                and not os.path.lexists(target):
            os.rename(backup, target)
            _fsync_dir(target.parent)
        journal.unlink(missing_ok=True)
    parent = target.parent
    leftovers = [*parent.glob(f".{target.name}.old-*"), *parent.glob(f".{target.name}.staging-*"),
                 *parent.glob(f".{journal.name}.*")]
    for leftover in leftovers:
        if leftover.is_dir() and not leftover.is_symlink():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            leftover.unlink(missing_ok=True)


def _read_journal(journal: Path) -> dict:
    try:
        record = json.loads(journal.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def _journal_entry(target: Path, record: dict, key: str, prefix: str) -> Optional[Path]:
    """A name from the journal, accepted only if it is one of ours beside ``target``."""
    name = record.get(key)
    if not isinstance(name, str) or not name.startswith(prefix) or "/" in name or os.sep in name:
        return None
    return target.parent / name


def _fsync_tree(folder: Path) -> None:
    """Flush every file, then the folders, so the rename that publishes them cannot outlive them."""
    for path in sorted(folder.rglob("*"), reverse=True):
        _fsync_path(path)
    _fsync_path(folder)


def _fsync_dir(folder: Path) -> None:
    try:
        _fsync_path(folder)
    except OSError:
        pass  # some filesystems refuse fsync on folders; the rename itself is still atomic


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _no_space_errno(exc: BaseException, where: Path) -> Optional[tuple[int, Optional[str]]]:
    """(errno, path that failed or None) when ``exc`` means "no room to write": an OSError with a
    no-room errno in its cause/context chain, a ``shutil.Error`` from copytree whose per-file
    reasons (text only) carry one, or any failure while the output's filesystem (or the system temp
    folder's, where coremltools builds each package first) is all but full.
    None for anything else, interrupts included."""
    seen = set()
    current: Optional[BaseException] = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in _NO_SPACE_ERRNOS:
            return current.errno, current.filename if isinstance(current.filename, str) else None
        if isinstance(current, shutil.Error) and current.args and isinstance(current.args[0], list):
            for entry in current.args[0]:
                for code in _NO_SPACE_ERRNOS:
                    if f"[Errno {code}]" in str(entry):
                        dst = entry[1] if isinstance(entry, tuple) and len(entry) == 3 else None
                        return code, dst if isinstance(dst, str) else None
        current = current.__cause__ or current.__context__
    if isinstance(exc, Exception):  # e.g. coremltools' "[MIL FileWriter]: Unknown error" RuntimeError
        import tempfile

        for folder, name in ((where, None), (Path(tempfile.gettempdir()), tempfile.gettempdir())):
            if _free_bytes(folder) < _NEARLY_FULL_BYTES:
                return errno.ENOSPC, name
    return None


def _free_bytes(folder: Path) -> float:
    try:
        stat = os.statvfs(folder)
    except (OSError, AttributeError):
        return float("inf")
    return stat.f_bavail * stat.f_frsize


def _fuller_temp_folder(where: Path) -> Optional[str]:
    """The system temp folder, when it is on another filesystem than ``where`` and has less room.

    coremltools builds every package in the temp folder before it is copied into the export, and
    its ENOSPC names no file: comparing the two filesystems tells which one ran out."""
    import tempfile

    temp = tempfile.gettempdir()
    try:
        here, there = os.statvfs(where), os.statvfs(temp)
        if os.stat(where).st_dev == os.stat(temp).st_dev:
            return None
    except (OSError, AttributeError):
        return None
    return temp if there.f_bavail * there.f_frsize < here.f_bavail * here.f_frsize else None


def _out_of_space(found: tuple[int, Optional[str]], target: Path, exc: BaseException) -> OutOfSpaceError:
    code, failed = found
    elsewhere = failed is not None and not _same_filesystem(Path(failed), target.parent)
    if code == errno.EFBIG:
        what = "a file grew past this process's file-size limit (ulimit -f)"
    elif code == errno.EDQUOT:
        what = "the disk quota is exceeded"
    elif elsewhere:
        # coremltools builds each package in the system temp folder first: that disk may be the full one
        what = f"the disk holding {failed} is full (coremltools builds each model there first)"
    else:
        what = "the disk is full"
    try:
        free = shutil.disk_usage(target.parent).free
        room = "" if elsewhere else f" ({free / 2**20:.1f} MiB free there now)"
    except OSError:
        room = ""
    kept = "the previous export there is unchanged" if target.exists() else "nothing was written"
    advice = ("free some space there or set TMPDIR to a folder on a disk with room" if elsewhere
              else "free some space or choose --out on another disk")
    return OutOfSpaceError(
        code, f"{target}: cannot write the output, {what}{room}; the partial files were removed and "
              f"{kept}. To export, {advice}, then rerun")


def _same_filesystem(path: Path, folder: Path) -> bool:
    """Is ``path`` (or its nearest existing parent) on the filesystem that holds ``folder``?"""
    probe = path.absolute()
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        return os.stat(probe).st_dev == os.stat(folder).st_dev
    except OSError:
        return True

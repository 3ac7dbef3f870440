"""Crash-safe file writing shared by every stage that produces outputs or checkpoints, on both
sides (MLX and ``export/``; nothing here imports mlx or torch).

Why: a build may be killed at any moment (laptop lid, Ctrl-C, OOM). Writing to a temp file in the
same folder and renaming it over the target means readers only ever see the old or the new file.
A folder is written the same way (``staged_directory``): built in a hidden staging folder beside
the target, flushed, swapped in (see that function for the journal that makes the swap safe).
Files and folders get the ordinary 0o666 / 0o777 modes less the umask; the umask is never changed.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import secrets
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

#: errno values that mean "the disk (or the user's quota, or the file-size limit) is full".
_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
#: a writer that reports no errno is believed only when this little room is left where it wrote
_NEARLY_FULL_BYTES = 64 * 2**20


class DiskFullError(OSError):
    """A write failed because the disk is full: an ``OSError`` with that errno; ``str()`` is one
    line naming the folder and what to do."""

    def __str__(self) -> str:
        return str(self.strerror)


def disk_full_cause(exc: BaseException, folder: Path) -> Optional[tuple[int, Optional[str]]]:
    """(errno, the path that failed or None) when ``exc`` means "no room to write", else None.

    By errno: an ``OSError`` with a no-room errno anywhere in the cause/context chain, or a
    ``shutil.Error`` from copytree whose per-file reasons carry one. Two writers report no errno, and
    their ``RuntimeError`` counts only while the disk really is (nearly) full, so other bugs stay
    visible: mlx's savers (``"[write] Unable to write N bytes ..."``, checked where ``folder`` is)
    and coremltools' weight writer (``"[MIL FileWriter]: Unknown error ..."``; it writes each
    package in the system temp folder first, so that disk is checked too and named when full).
    """
    seen = set()
    current: Optional[BaseException] = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in _FULL:
            return current.errno, current.filename if isinstance(current.filename, str) else None
        if isinstance(current, shutil.Error) and current.args and isinstance(current.args[0], list):
            for entry in current.args[0]:
                for code in _FULL:
                    if f"[Errno {code}]" in str(entry):
                        dst = entry[1] if isinstance(entry, tuple) and len(entry) == 3 else None
                        return code, dst if isinstance(dst, str) else None
        current = current.__cause__ or current.__context__
    if isinstance(exc, RuntimeError) and ("Unable to write" in str(exc) or "[MIL FileWriter]" in str(exc)):
        places = [(folder, None)]
        if "[MIL FileWriter]" in str(exc):
            places.append((Path(tempfile.gettempdir()), tempfile.gettempdir()))
        for place, name in places:
            try:
                if shutil.disk_usage(existing_parent(place)).free < _NEARLY_FULL_BYTES:
                    return errno.ENOSPC, name
            except OSError:
                pass
    return None


def existing_parent(path: Path) -> Path:
    """``path`` itself if it exists, else its nearest existing parent folder."""
    return next(p for p in [path, *path.absolute().parents] if p.exists())


@contextlib.contextmanager
def disk_full_guard(folder: str | os.PathLike[str], what: str) -> Iterator[None]:
    """Turn a disk-full failure while writing ``what`` into ``folder`` into one clear
    :class:`DiskFullError` in the words of the command that was writing (the half-written files are
    removed by the writer: ``staged_directory`` / ``atomic_write``)."""
    folder = Path(folder)
    try:
        yield
    except BaseException as exc:
        if disk_full_cause(exc, folder) is None:
            raise
        raise DiskFullError(
            errno.ENOSPC,
            f"{folder}: the disk is full (writing {what}); free some space and run the same command again "
            "— work already saved is kept",
        ) from None


def atomic_write(path: str | os.PathLike[str], write: Callable[[str], None]) -> None:
    """Run ``write(temp_path)`` then rename the temp file over ``path``. The temp file is created
    with mode 0o666, so the umask applies as for ``open()`` (the umask itself is never changed)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _unique_name(path.parent, f".{path.name}.", path.suffix)
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    try:
        write(str(tmp))
        fsync_path(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
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


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))


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


# --- folders: staged, then swapped in --------------------------------------------------------------


@contextlib.contextmanager
def staged_directory(target: str | os.PathLike[str], kind: str = "output") -> Iterator[Path]:
    """Yield an empty hidden staging folder beside ``target``; on success it replaces ``target``
    (``publish_directory``), on any error or interrupt it is deleted and ``target`` is left as it was.

    A full disk (errno, see ``disk_full_cause``; also the system temp folder's, where some writers
    build files first) raises :class:`DiskFullError` naming ``target`` and the full disk, after the
    partial files are removed. ``kind`` names what the folder holds in that message ("export").
    Leftovers of a killed run beside ``target`` are repaired or swept first (``repair_directory``).
    """
    target = Path(target).absolute()
    target.parent.mkdir(parents=True, exist_ok=True)
    repair_directory(target)
    staging = _unique_name(target.parent, f".{target.name}.staging-", directory=True)
    try:
        yield staging
        for path in sorted(staging.rglob("*"), reverse=True):  # files, then folders, then the rename
            fsync_path(path)
        fsync_path(staging)
        publish_directory(staging, target)
    except BaseException as exc:
        full = disk_full_cause(exc, staging)  # before the removal frees the space
        if full is not None and full[1] is None:
            full = (full[0], _fuller_temp_folder(staging))
        shutil.rmtree(staging, ignore_errors=True)
        if full is not None:
            raise _folder_full(full, target, kind) from exc
        raise


def publish_directory(staging: str | os.PathLike[str], target: str | os.PathLike[str]) -> None:
    """Move ``staging`` to ``target``; an existing ``target`` is renamed to a backup first, then removed.

    Before that first rename a journal ``.<name>.swap.json`` records the backup's and the staging
    folder's names, so a process killed *between* the two renames is repaired by the next
    ``staged_directory(target)``: it restores exactly that backup - never some other ``.old-*``
    folder, and never a target the user deleted afterwards (once the staging folder has been
    renamed in, the backup is garbage, whatever happens to the target).
    """
    staging, target = Path(staging).absolute(), Path(target).absolute()
    if not target.exists():
        os.rename(staging, target)
        _fsync_dir(target.parent)
        return
    journal = _journal_path(target)
    backup = _unique_name(target.parent, f".{target.name}.old-")
    atomic_write_json(journal, {"backup": backup.name, "staging": staging.name})
    os.rename(target, backup)
    try:
        os.rename(staging, target)
    except BaseException:
        os.rename(backup, target)
        journal.unlink(missing_ok=True)
        raise
    # From here on the backup is never restored: the new folder is in place.
    journal.unlink(missing_ok=True)
    _fsync_dir(target.parent)
    shutil.rmtree(backup, ignore_errors=True)


def _journal_path(target: Path) -> Path:
    return target.parent / f".{target.name}.swap.json"


def _unique_name(parent: Path, prefix: str, suffix: str = "", directory: bool = False) -> Path:
    """A fresh hidden name in ``parent``; a folder is created (0o777 less the umask), a file name
    is only reserved by being new (the caller creates it with O_EXCL)."""
    for _ in range(100):
        path = parent / f"{prefix}{secrets.token_hex(4)}{suffix}"
        if directory:
            try:
                os.mkdir(path, 0o777)
            except FileExistsError:
                continue
            return path
        if not os.path.lexists(path):
            return path
    raise FileExistsError(f"{parent}: could not find a free name starting with {prefix!r}")


def repair_directory(target: str | os.PathLike[str]) -> None:
    """Repair and remove what a killed run left beside ``target``. ``staged_directory`` calls it;
    call it yourself before *reading* ``target`` (a resume) so a kill between the two renames is undone.

    The only folder ever put back is the backup named by a journal whose staging folder still
    exists and whose target is missing: the state of a process killed between its two renames.
    Every other ``.old-*`` / ``.staging-*`` folder (and a stray journal) is deleted.
    """
    target = Path(target).absolute()
    journal = _journal_path(target)
    if journal.exists():
        try:
            record = json.loads(journal.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            record = {}
        backup, staging = (_journalled(target, record, "backup", "old"), _journalled(target, record, "staging", "staging"))
        if backup is not None and staging is not None and backup.is_dir() and staging.is_dir() \
                and not os.path.lexists(target):
            os.rename(backup, target)
            _fsync_dir(target.parent)
        journal.unlink(missing_ok=True)
    parent = target.parent
    for leftover in [*parent.glob(f".{target.name}.old-*"), *parent.glob(f".{target.name}.staging-*"),
                     *parent.glob(f".{journal.name}.*")]:
        if leftover.is_dir() and not leftover.is_symlink():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            leftover.unlink(missing_ok=True)


def _journalled(target: Path, record: Any, key: str, kind: str) -> Optional[Path]:
    """A name from the journal, accepted only if it is one of ours beside ``target``."""
    name = record.get(key) if isinstance(record, dict) else None
    if not isinstance(name, str) or not name.startswith(f".{target.name}.{kind}-") or "/" in name or os.sep in name:
        return None
    return target.parent / name


def _fsync_dir(folder: Path) -> None:
    try:
        fsync_path(folder)
    except OSError:
        pass  # some filesystems refuse fsync on folders; the rename itself is still atomic


def _fuller_temp_folder(where: Path) -> Optional[str]:
    """The system temp folder, when it is on another filesystem than ``where`` and has less room
    (coremltools builds every package there first, and its ENOSPC names no file)."""
    temp = tempfile.gettempdir()
    try:
        here, there = os.statvfs(where), os.statvfs(temp)
        if os.stat(where).st_dev == os.stat(temp).st_dev:
            return None
    except (OSError, AttributeError):
        return None
    return temp if there.f_bavail * there.f_frsize < here.f_bavail * here.f_frsize else None


def _folder_full(found: tuple[int, Optional[str]], target: Path, kind: str) -> DiskFullError:
    code, failed = found
    elsewhere = failed is not None and not _same_filesystem(Path(failed), target.parent)
    if code == errno.EFBIG:
        what = "a file grew past this process's file-size limit (ulimit -f)"
    elif code == errno.EDQUOT:
        what = "the disk quota is exceeded"
    elif elsewhere:
        what = f"the disk holding {failed} is full (coremltools builds each model there first)"
    else:
        what = "the disk is full"
    try:
        room = "" if elsewhere else f" ({shutil.disk_usage(target.parent).free / 2**20:.1f} MiB free there now)"
    except OSError:
        room = ""
    kept = f"the previous {kind} there is unchanged" if target.exists() else "nothing was written"
    advice = ("free some space there or set TMPDIR to a folder on a disk with room" if elsewhere
              else "free some space or choose a folder on another disk")
    return DiskFullError(code, f"{target}: cannot write the output, {what}{room}; the partial files were "
                               f"removed and {kept}. {advice[0].upper()}{advice[1:]}, then run the same command again")


def _same_filesystem(path: Path, folder: Path) -> bool:
    """Is ``path`` (or its nearest existing parent) on the filesystem that holds ``folder``?"""
    try:
        return os.stat(existing_parent(path)).st_dev == os.stat(folder).st_dev
    except OSError:
        return True

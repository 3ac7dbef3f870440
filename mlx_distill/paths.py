"""Check every path a command was given before it does any work.

Why: the expensive part of a command (training, conversion) used to run first and the path mistake
showed up afterwards — or never, when the output folder *was* the input folder and the teacher was
silently overwritten by its own student. Every command names its path arguments here, with the
flag the user typed, so each mistake is one line naming that flag and what was expected.

Pure ``pathlib``: no mlx, no torch, so the torch-side commands use it too.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from mlx_distill.fileio import existing_parent


class PathError(ValueError):
    """A path argument of the wrong kind, or an output that would overwrite an input."""


@dataclass(frozen=True)
class PathArg:
    """A path as the user gave it, with the flag (or positional name) that gave it."""

    flag: str
    path: Path

    @property
    def real(self) -> Path:
        """Symlinks resolved, so two spellings of one folder compare equal."""
        return Path(os.path.realpath(self.path.expanduser()))

    def __str__(self) -> str:
        return f"{self.flag} {self.path}"


def _contains(folder: Path, other: Path) -> bool:
    return other == folder or folder in other.parents


def require_file(arg: PathArg, expected: str) -> None:
    """An existing, readable file (``expected`` says what kind, for the message)."""
    path = arg.path.expanduser()
    if path.is_dir():
        raise PathError(f"{arg}: is a folder; expected {expected}")
    if not path.exists():
        raise PathError(f"{arg}: no such file; expected {expected}")
    if not os.access(path, os.R_OK):
        raise PathError(f"{arg}: cannot be read (permissions); expected {expected}")


def require_folder(arg: PathArg, expected: str, marker: str | None = None) -> None:
    """An existing folder (holding ``marker`` when given, e.g. ``config.json``)."""
    path = arg.path.expanduser()
    if path.exists() and not path.is_dir():
        raise PathError(f"{arg}: is a file; expected {expected}")
    if not path.is_dir():
        raise PathError(f"{arg}: no such folder; expected {expected}")
    if marker and not (path / marker).exists():
        raise PathError(f"{arg}: has no {marker}; expected {expected}")


def require_output_folder(arg: PathArg) -> None:
    """A folder we may create or write into: not an existing file, and a parent we can write."""
    path = arg.path.expanduser()
    if path.exists() and not path.is_dir():
        raise PathError(f"{arg}: is an existing file; the output must be a folder (give a new folder name)")
    existing = existing_parent(path)
    if not existing.is_dir():
        raise PathError(f"{arg}: {existing} is a file, so the folder cannot be created there")
    if not os.access(existing, os.W_OK):
        raise PathError(f"{arg}: {existing} is not writable (permissions)")


def refuse_overlap(out: PathArg, inputs: list[PathArg]) -> None:
    """Refuse an output folder that is an input, contains one, or lies inside an input folder.

    Why all three: writing the student over the teacher destroys the teacher (``out == input``);
    ``--restart`` clears ``OUT/training`` (an input inside the output can be in there); and an
    output inside an input folder changes that folder's contents (the teacher's hash, its files).
    """
    target = out.real
    for arg in inputs:
        source = arg.real
        if source == target:
            raise PathError(f"{out} is also the input {arg}; write to a new folder so the input stays as it is")
        if source.is_dir() and _contains(source, target):
            raise PathError(f"{out} lies inside the input folder {arg}; write the output outside it")
        if _contains(target, source):
            raise PathError(f"{out} contains the input {arg}; pick an output folder that holds no inputs")

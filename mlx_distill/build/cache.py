"""Stage records: when a stage of a build may be reused, and the log of what each run did.

A stage is reused when its *key* — a hash of its settings, the content hashes of its input files
and the output hashes of the stages it reads from — equals the key of its last finished run, and
its outputs still hash to what that run recorded. The record (``RUN_DIR/stages/<stage>.json``) is
written last and atomically, so a killed stage has no "done" record and simply runs again; the
training stages then resume from their own checkpoints. A record marked ``started`` remembers the
key the interrupted run had: the same key resumes, a different key starts that stage over (an old
checkpoint was made for other settings).
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlx_distill.fileio import atomic_write_json, read_json_lines, sha256_file


def hash_tree(root: Path, exclude: tuple[str, ...] = ()) -> str:
    """sha256 over every file's relative path and contents (a file: its contents). ``exclude``
    names top-level entries left out (``training``: checkpoints are not what downstream reads)."""
    root = Path(root)
    if root.is_file():
        return sha256_file(root)
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        relative = path.relative_to(root)
        if relative.parts[0] in exclude or any(part.startswith(".") and part.endswith(".tmp") for part in relative.parts):
            continue
        digest.update(str(relative).encode() + b"\0" + sha256_file(path).encode() + b"\n")
    return digest.hexdigest()


def stage_key(settings: Any, inputs: dict[str, str]) -> str:
    """The identity of one stage run: its settings and the hashes of everything it reads."""
    blob = json.dumps({"settings": settings, "inputs": inputs}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


@dataclass
class StageRecord:
    stage: str
    status: str  # "started" | "done"
    key: str
    output_hash: str = ""
    seconds: float = 0.0
    finished_at: str = ""
    summary: dict | None = None  # what the report needs from this stage (small)

    def to_json(self) -> dict:
        return dict(self.__dict__)


class StageStore:
    """The records of one run folder and its append-only stage log (``RUN_DIR/stages/log.jsonl``)."""

    def __init__(self, run_dir: Path):
        self.folder = Path(run_dir) / "stages"

    def path(self, stage: str) -> Path:
        return self.folder / f"{stage}.json"

    def read(self, stage: str) -> StageRecord | None:
        try:
            data = json.loads(self.path(stage).read_text(encoding="utf-8"))
            return StageRecord(**data)
        except (OSError, ValueError, TypeError):
            return None  # absent, or damaged: the stage runs again

    def write(self, record: StageRecord) -> None:
        atomic_write_json(self.path(record.stage), record.to_json())

    def log(self, build_id: str, stage: str, action: str, reason: str, seconds: float = 0.0) -> None:
        """One line per stage per build: ``action`` is ``ran`` or ``reused`` (tests read this)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        line = {"build": build_id, "stage": stage, "action": action, "reason": reason, "seconds": round(seconds, 3),
                "at": time.strftime("%Y-%m-%dT%H:%M:%S")}
        with (self.folder / "log.jsonl").open("a", encoding="utf-8") as f:
            f.write(json.dumps(line) + "\n")

    def read_log(self) -> list[dict]:
        return read_json_lines(self.folder / "log.jsonl")

"""Run (or plan) a build: each stage reused when its key is unchanged, else run (resuming its work).

The key of a stage is computed when the stages before it are done, from their *actual* output
hashes: a stage that reran and produced the same output (data re-split identically) leaves the
later stages reused. ``--dry-run`` cannot know that yet, so it says "runs: upstream X runs".

Data-parallel stages (teacher, distill) run as ranks under ``mlx.launch`` when the build asks for
several processes or a host file (``[parallel]``, ``--processes``): this process launches them
(``mlx_distill.distributed.run_ranks``), each rank runs the stage's own function
(``build-stage``), rank 0 writes its outputs, and this process records the stage as for any other.
Everything else runs here, once. The process count is not part of a stage's key: a finished stage
is reused whatever ran it (an interrupted one resumes only with the count that made its checkpoint).
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from mlx_distill.build.cache import StageRecord, StageStore, stage_key
from mlx_distill.build.config import BuildConfig
from mlx_distill.build.stages import Context, Stage, stages_until


class RanksFailed(Exception):
    """A rank of a data-parallel stage failed; its line is printed already. ``code``: the exit code."""

    def __init__(self, stage: str, code: int):
        super().__init__(f"the ranks of the {stage} stage failed (exit code {code})")
        self.stage, self.code = stage, code


def run_stage(stage: Stage, ctx: Context, resume: bool) -> dict:
    """Run ``stage`` here, or as the ranks the build asks for when it is a data-parallel stage."""
    parallel = ctx.config.parallel
    if stage.report is None or not parallel.several:
        return stage.run(ctx, resume)
    from mlx_distill.distributed import run_ranks

    report = stage.report(ctx)
    report.unlink(missing_ok=True)  # what rank 0 writes last: no older run's report may stand in for it
    argv = ["build-stage", str(ctx.config.path), "--out", str(ctx.run_dir.resolve()), "--stage", stage.name,
            *([] if resume else ["--fresh"])]
    code = run_ranks(argv, parallel, what=f"{stage.name} stage: ")
    if code != 0:
        raise RanksFailed(stage.name, code)
    if not report.exists():
        raise ValueError(f"{stage.name} stage: its ranks ended well but rank 0's report {report} is not here; on "
                         "several machines the run folder must be one folder every host sees at the same path")
    return stage.summarize(ctx, json.loads(report.read_text(encoding="utf-8")))


@dataclass
class Decision:
    stage: str
    run: bool
    reason: str
    resume: bool = True


def _changes(old: dict | None, new: dict, prefix: str = "") -> list[str]:
    """Dotted names of what differs between two (nested) settings/input dicts."""
    if not isinstance(old, dict) or not isinstance(new, dict):
        return [prefix.rstrip(".") or "everything"] if old != new else []
    out = []
    for key in sorted(set(old) | set(new), key=str):
        if old.get(key) != new.get(key):
            if isinstance(old.get(key), dict) and isinstance(new.get(key), dict):
                out += _changes(old[key], new[key], f"{prefix}{key}.")
            else:
                out.append(f"{prefix}{key}")
    return out


def decide(stage: Stage, ctx: Context, store: StageStore, restart: bool, upstream_running: list[str],
           planning: bool = False) -> tuple[Decision, str, dict, dict]:
    """Whether ``stage`` runs, why, and with which key (settings and inputs included)."""
    settings = stage.settings(ctx)
    inputs = {**stage.inputs(ctx), **{f"stage:{u}": ctx.outputs.get(u, "") for u in stage.upstream
                                      if u in ctx.outputs or u in upstream_running}}
    key = stage_key(settings, inputs)
    record = store.read(stage.name)
    if restart:
        return Decision(stage.name, True, "--restart", resume=False), key, settings, inputs
    if planning and upstream_running:
        return Decision(stage.name, True, f"upstream {', '.join(upstream_running)} runs"), key, settings, inputs
    if record is None:
        return Decision(stage.name, True, "never finished here"), key, settings, inputs
    if record.key != key:
        # Settings or inputs differ from the last run (finished or interrupted): start this stage
        # over, because a checkpoint it left was made for other settings.
        changed = _changes((record.summary or {}).get("_settings"), settings)
        changed += [f"input {name}" for name in _changes((record.summary or {}).get("_inputs"), inputs)]
        why = f"changed: {', '.join(changed)}" if record.summary and changed else "settings or inputs changed"
        return Decision(stage.name, True, why, resume=False), key, settings, inputs
    if record.status != "done":
        return Decision(stage.name, True, "resumes its interrupted run", resume=True), key, settings, inputs
    if stage.output_hash(ctx) != record.output_hash:
        return Decision(stage.name, True, "its outputs changed or went missing", resume=True), key, settings, inputs
    return Decision(stage.name, False, "inputs and settings unchanged"), key, settings, inputs


def plan(config: BuildConfig, run_dir: Path, device: str, restart: bool = False,
         until: str | None = None) -> list[Decision]:
    """What ``build`` would do now, without doing it (``--dry-run``)."""
    ctx = Context(config, run_dir, device, {}, {})
    store = StageStore(run_dir)
    decisions, running = [], []
    for stage in stages_until(config, until):
        upstream = [u for u in stage.upstream if u in running]
        decision, *_ = decide(stage, ctx, store, restart, upstream, planning=True)
        record = store.read(stage.name)
        if record is not None:
            ctx.outputs[stage.name] = record.output_hash
        decisions.append(decision)
        if decision.run:
            running.append(stage.name)
    return decisions


def run_build(config: BuildConfig, run_dir: Path, device: str, restart: bool = False,
              until: str | None = None) -> dict[str, dict]:
    """Run every stage that needs it (up to and including ``until``, by default all); return each
    stage's summary (the report's under ``report``)."""
    ctx = Context(config, run_dir, device, {}, {})
    store = StageStore(run_dir)
    build_id = uuid.uuid4().hex[:12]
    stages = stages_until(config, until)
    for number, stage in enumerate(stages, 1):
        decision, key, settings, inputs = decide(stage, ctx, store, restart, [])
        label = f"[{number}/{len(stages)}] {stage.name}"
        if not decision.run:
            record = store.read(stage.name)
            print(f"{label}: reused ({decision.reason})", file=sys.stderr)
            store.log(build_id, stage.name, "reused", decision.reason)
        else:
            print(f"{label}: {stage.title} ({decision.reason})", file=sys.stderr, flush=True)
            store.write(StageRecord(stage.name, "started", key))
            started = time.perf_counter()
            summary = run_stage(stage, ctx, decision.resume)
            seconds = time.perf_counter() - started
            summary = {**summary, "_settings": settings, "_inputs": inputs}
            record = StageRecord(stage.name, "done", key, stage.output_hash(ctx), round(seconds, 3),
                                 time.strftime("%Y-%m-%dT%H:%M:%S"), summary)
            store.write(record)  # last: a stage without this record runs again
            store.log(build_id, stage.name, "ran", decision.reason, seconds)
        ctx.outputs[stage.name] = record.output_hash
        ctx.summaries[stage.name] = {**(record.summary or {}), "_seconds": record.seconds}
    return ctx.summaries

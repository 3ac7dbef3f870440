"""When a stage is reused, rerun, resumed or started over: the decision rules on a real run folder
(stage records and outputs on disk), with a stage whose work is writing one file. Fast."""

from __future__ import annotations

from pathlib import Path

from mlx_distill.build.cache import StageRecord, StageStore, hash_tree, stage_key
from mlx_distill.build.run import decide
from mlx_distill.build.stages import Context, Stage


def _stage(settings: dict) -> Stage:
    def run(ctx: Context, resume: bool) -> dict:
        ctx.folder("make").mkdir(parents=True, exist_ok=True)
        (ctx.folder("make") / "out.txt").write_text(repr(settings))
        return {}

    return Stage("make", "write a file", (), lambda c: settings, lambda c: {"input": "abc"}, run,
                 exclude=("training",))


def _finish(stage: Stage, ctx: Context, store: StageStore) -> None:
    decision, key, settings, inputs = decide(stage, ctx, store, False, [])
    stage.run(ctx, decision.resume)
    store.write(StageRecord("make", "done", key, stage.output_hash(ctx), 0.1, "", {"_settings": settings,
                                                                                   "_inputs": inputs}))


def test_reuse_rerun_resume_and_start_over(tmp_path: Path):
    ctx = Context(None, tmp_path, "cpu", {}, {})
    store = StageStore(tmp_path)
    stage = _stage({"lr": 1e-3, "train": {"epochs": 2}})
    first, *_ = decide(stage, ctx, store, False, [])
    assert (first.run, first.reason, first.resume) == (True, "never finished here", True)
    _finish(stage, ctx, store)
    again, *_ = decide(stage, ctx, store, False, [])
    assert (again.run, again.reason) == (False, "inputs and settings unchanged")

    # checkpoints are not outputs: training/ may change without a rerun
    (ctx.folder("make") / "training").mkdir()
    (ctx.folder("make") / "training" / "state").write_text("x")
    assert not decide(stage, ctx, store, False, [])[0].run

    changed, *_ = decide(_stage({"lr": 1e-3, "train": {"epochs": 3}}), ctx, store, False, [])
    assert (changed.run, changed.reason, changed.resume) == (True, "changed: train.epochs", False)

    (ctx.folder("make") / "out.txt").write_text("edited by hand")
    tampered, *_ = decide(stage, ctx, store, False, [])
    assert (tampered.run, tampered.reason) == (True, "its outputs changed or went missing")

    restart, *_ = decide(stage, ctx, store, True, [])
    assert (restart.run, restart.resume) == (True, False)


def test_an_interrupted_stage_resumes_only_with_the_same_key(tmp_path: Path):
    ctx = Context(None, tmp_path, "cpu", {}, {})
    store = StageStore(tmp_path)
    stage = _stage({"lr": 1e-3})
    key = stage_key({"lr": 1e-3}, {"input": "abc"})
    store.write(StageRecord("make", "started", key))  # what a kill -9 leaves
    same, *_ = decide(stage, ctx, store, False, [])
    assert (same.run, same.reason, same.resume) == (True, "resumes its interrupted run", True)
    other, *_ = decide(_stage({"lr": 1e-4}), ctx, store, False, [])
    assert (other.run, other.resume) == (True, False)  # its checkpoint was made for other settings


def test_upstream_output_hash_is_part_of_the_key(tmp_path: Path):
    ctx = Context(None, tmp_path, "cpu", {"data": "h1"}, {})
    stage = Stage("make", "", ("data",), lambda c: {}, lambda c: {}, lambda c, r: {})
    _, key1, _, _ = decide(stage, ctx, StageStore(tmp_path), False, [])
    ctx.outputs["data"] = "h2"
    _, key2, _, inputs = decide(stage, ctx, StageStore(tmp_path), False, [])
    assert key1 != key2 and inputs == {"stage:data": "h2"}


def test_tree_hash_covers_names_and_contents(tmp_path: Path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.txt").write_text("1")
    first = hash_tree(tmp_path)
    (tmp_path / "a" / "x.txt").rename(tmp_path / "a" / "y.txt")
    renamed = hash_tree(tmp_path)
    assert renamed != first
    (tmp_path / "training").mkdir()
    (tmp_path / "training" / "ckpt").write_text("z")
    assert hash_tree(tmp_path, exclude=("training",)) == renamed != hash_tree(tmp_path)

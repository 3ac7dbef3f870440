"""The clean stage with a real (tiny, real-vocabulary) teacher fine-tuned on demo notes: rows the
teacher contradicts are dropped with the reason, unsure rows are dropped below P, confident
agreeing rows are kept with all their fields, counts add up, the input is never touched."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.helpers.hf_models import save_real_vocab_bert
from mlx_distill import demo
from mlx_distill.clean import DEFAULT_MIN_CONFIDENCE, CleanConfig, add_parser, clean, config_from_args, decide
from mlx_distill.data import DataError, read_examples
from mlx_distill.predict import TextClassifier
from mlx_distill.train.teacher import TeacherConfig, fine_tune_teacher
from mlx_distill.train.trainer import TrainConfig

MAX_LENGTH = 32  # the tiny teacher has 64 positions
PER_LABEL = 6


@pytest.fixture(scope="module")
def teacher(tmp_path_factory, minilm_dir):
    """A 2-layer BERT over the real WordPiece vocabulary, fine-tuned until it classifies its 24
    demo notes correctly (~10 s). Returns (folder, notes, probabilities of the notes)."""
    root = tmp_path_factory.mktemp("clean_teacher")
    by_label: dict[str, list] = {}
    for example in read_examples(demo.TRAIN_FILE):
        by_label.setdefault(example.label, []).append(example)
    notes = [e for label in sorted(by_label) for e in by_label[label][:PER_LABEL]]
    save_real_vocab_bert(root / "base", ["x", "y"], minilm_dir)
    config = TeacherConfig(max_length=MAX_LENGTH, train=TrainConfig(
        epochs=40, batch_size=16, learning_rate=5e-3, warmup_ratio=0.0, checkpoint_every=0))
    fine_tune_teacher(root / "base", notes, notes, root / "teacher", config)
    classifier = TextClassifier(root / "teacher", max_length=MAX_LENGTH)
    predictions = classifier.predict([e.text for e in notes])
    assert all(p.label == e.label for p, e in zip(predictions, notes)), "fixture teacher did not learn its notes"
    return root / "teacher", notes, predictions


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _synthetic_rows(notes, labels):
    """Augment-style rows: every 4th asks for the wrong label (the LLM wrote off-category)."""
    rows, flipped = [], set()
    for i, note in enumerate(notes):
        label = note.label
        if i % 4 == 0:
            label = labels[(labels.index(label) + 1) % len(labels)]
            flipped.add(i)
        rows.append({"text": note.text, "label": label, "backend": "mlx-lm", "model": "SmolLM2-135M",
                     "prompt_sha256": f"{i:064x}", "seed": i})
    return rows, flipped


def test_clean_drops_contradicted_and_unsure_rows_and_keeps_the_rest(teacher, tmp_path):
    teacher_dir, notes, predictions = teacher
    labels = sorted({n.label for n in notes})
    rows, flipped = _synthetic_rows(notes, labels)
    source = _write_jsonl(tmp_path / "synthetic.jsonl", rows)
    before = source.read_bytes()
    # P between the teacher's confidences on the correct rows, so both kinds of drop happen.
    agreeing = sorted(predictions[i].probs[notes[i].label] for i in range(len(notes)) if i not in flipped)
    threshold = round(float(np.median(agreeing)), 3)

    config = CleanConfig(teacher=teacher_dir, input=source, out=tmp_path / "kept.jsonl",
                         min_confidence=threshold, max_length=MAX_LENGTH)
    result = clean(config)

    assert source.read_bytes() == before
    kept, dropped = _jsonl(tmp_path / "kept.jsonl"), _jsonl(tmp_path / "kept.dropped.jsonl")
    summary = json.loads((tmp_path / "kept.summary.json").read_text(encoding="utf-8"))
    assert summary == result.summary
    dropped_by_line = {int(d["clean"]["source"].rsplit(":", 1)[1]): d for d in dropped}
    expected_kept = []
    for i, (row, prediction) in enumerate(zip(rows, predictions)):
        line = i + 1
        if i in flipped:  # contradicts the teacher: dropped, naming what the teacher says
            scores = dropped_by_line[line]["clean"]
            top = notes[i].label
            assert scores["reason"] == f"teacher says {top} ({prediction.probs[top]:.2f})"
            assert scores["top_label"] == top and scores["p_top"] == pytest.approx(prediction.probs[top], abs=1e-3)
            assert scores["p_label"] == pytest.approx(prediction.probs[row["label"]], abs=1e-3)
        elif prediction.probs[row["label"]] < threshold:  # agrees, but unsure
            shown, rest = dropped_by_line[line]["clean"]["reason"].removeprefix("confidence ").split(" < ")
            assert rest == f"{threshold:g}" and float(shown) < threshold
            assert float(shown) == pytest.approx(prediction.probs[row["label"]], abs=5e-3)
        else:
            assert line not in dropped_by_line
            expected_kept.append(row)
    assert kept == expected_kept  # unchanged rows, provenance fields and order included
    assert all({k: v for k, v in d.items() if k != "clean"} == rows[n - 1] for n, d in dropped_by_line.items())
    assert len(kept) >= 6 and len(dropped) >= len(flipped) + 3  # both kinds of drop happened

    per_label = summary["per_label"]
    assert sum(c["rows"] for c in per_label.values()) == summary["rows"] == len(rows)
    assert all(c["rows"] == c["kept"] + c["dropped_teacher_disagrees"] + c["dropped_low_confidence"]
               for c in per_label.values())
    assert sum(c["dropped_teacher_disagrees"] for c in per_label.values()) == len(flipped)
    assert summary["kept"] == len(kept) and summary["dropped_rows"] == len(dropped)
    assert [e.text for e in read_examples(tmp_path / "kept.jsonl")] == [r["text"] for r in expected_kept]
    assert len(read_examples(tmp_path / "kept.dropped.jsonl")) == len(dropped)  # a data file, to relabel


def test_reasons_name_the_teacher_label_or_a_confidence_shown_below_p():
    labels = ["health", "shopping", "work"]
    assert decide("work", np.array([0.91, 0.05, 0.04]), labels, 0.6).reason == "teacher says health (0.91)"
    assert decide("work", np.array([0.3, 0.28, 0.42]), labels, 0.6).reason == "confidence 0.42 < 0.6"
    assert decide("work", np.array([0.3, 0.2008, 0.4992]), labels, 0.5).reason == "confidence 0.499 < 0.5"
    kept = decide("work", np.array([0.2, 0.1, 0.7]), labels, 0.7)
    assert kept.kept and (kept.top_label, kept.p_label) == ("work", pytest.approx(0.7))


def test_csv_input_keeps_its_extra_columns(teacher, tmp_path):
    teacher_dir, notes, _ = teacher
    source = tmp_path / "rows.csv"
    source.write_text("text,label,origin\n" + "".join(f'"{n.text}",{n.label},hand-{i}\n' for i, n in enumerate(notes[:4])),
                      encoding="utf-8")
    result = clean(CleanConfig(teacher=teacher_dir, input=source, out=tmp_path / "kept.jsonl", min_confidence=0.0,
                               max_length=MAX_LENGTH, dropped=tmp_path / "why.jsonl", summary=tmp_path / "s.json"))
    assert result.summary["kept"] == 4
    assert _jsonl(tmp_path / "kept.jsonl") == [{"text": n.text, "label": n.label, "origin": f"hand-{i}"}
                                               for i, n in enumerate(notes[:4])]
    assert (tmp_path / "why.jsonl").read_text() == "" and (tmp_path / "s.json").exists()


def test_unknown_label_is_an_error_naming_label_and_rows(teacher, tmp_path):
    teacher_dir, notes, _ = teacher
    rows = [{"text": n.text, "label": n.label} for n in notes[:5]]
    rows[2]["label"] = rows[4]["label"] = "pets"
    source = _write_jsonl(tmp_path / "rows.jsonl", rows)
    with pytest.raises(DataError) as error:
        clean(CleanConfig(teacher=teacher_dir, input=source, out=tmp_path / "out.jsonl", max_length=MAX_LENGTH))
    message = str(error.value)
    assert "\n" not in message and f"'pets' at {source}:3,5" in message and "health, shopping, travel, work" in message
    assert not (tmp_path / "out.jsonl").exists() and not (tmp_path / "out.dropped.jsonl").exists()


def test_outputs_that_would_overwrite_an_input_are_refused(tmp_path):
    source = _write_jsonl(tmp_path / "rows.jsonl", [{"text": "Buy milk", "label": "shopping"}])
    teacher_dir = tmp_path / "teacher"
    teacher_dir.mkdir()
    (teacher_dir / "config.json").write_text("{}")
    cases = [
        (dict(out=source), f"--out {source} is also the input --input"),
        (dict(out=tmp_path / "k.jsonl", dropped=source), "--dropped .* is also the input --input"),
        (dict(out=tmp_path / "k.jsonl", summary=source), "--summary .* is also the input --input"),
        (dict(out=teacher_dir / "k.jsonl"), "lies inside the input folder --teacher"),
        (dict(out=tmp_path / "k.jsonl", dropped=tmp_path / "k.jsonl"), "must be three different files"),
        (dict(out=tmp_path / "k.csv"), r"\.jsonl name"), (dict(out=tmp_path / "k.jsonl", min_confidence=1.5), "between 0 and 1"),
        (dict(out=tmp_path / "k.jsonl", input=tmp_path / "missing.jsonl"), "--input .*missing.jsonl: no such file"),
    ]
    for overrides, expected in cases:
        settings = {"teacher": teacher_dir, "input": source, **overrides}
        with pytest.raises(ValueError, match=expected):
            clean(CleanConfig(**settings))
    assert source.read_text() == '{"text": "Buy milk", "label": "shopping"}\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rows.jsonl", "teacher"]


def test_cli_flags_come_from_the_config():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    clean_parser = add_parser(sub)
    args = parser.parse_args(["clean", "--teacher", "t", "--input", "in.jsonl", "--out", "out.jsonl"])
    config = config_from_args(args)
    assert config == CleanConfig(teacher=Path("t"), input=Path("in.jsonl"), out=Path("out.jsonl"))
    assert config.min_confidence == DEFAULT_MIN_CONFIDENCE and args.run.__name__ == "run"
    assert config.dropped_path() == Path("out.dropped.jsonl") and config.summary_path() == Path("out.summary.json")
    assert f"(default {DEFAULT_MIN_CONFIDENCE})" in clean_parser.format_help()
    with pytest.raises(SystemExit):
        parser.parse_args(["clean", "--input", "in.jsonl", "--out", "out.jsonl"])  # --teacher is required


def test_command_line_prints_the_table_and_refuses_in_place_cleaning(teacher, tmp_path):
    teacher_dir, notes, _ = teacher
    source = _write_jsonl(tmp_path / "rows.jsonl", [{"text": n.text, "label": n.label} for n in notes[::3]])
    base = [sys.executable, "-m", "mlx_distill.clean", "--teacher", str(teacher_dir), "--input", str(source),
            "--max-length", str(MAX_LENGTH)]
    env = {**os.environ, "MKL_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run([*base, "--out", str(tmp_path / "kept.jsonl"), "--min-confidence", "0"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "teacher disagrees" in done.stdout and f"kept {len(notes[::3])} of {len(notes[::3])}" in done.stdout
    assert json.loads((tmp_path / "kept.summary.json").read_text())["kept"] == len(notes[::3])
    refused = subprocess.run([*base, "--out", str(source)], capture_output=True, text=True, env=env, timeout=120)
    assert refused.returncode == 1 and refused.stderr.count("\n") == 1
    assert refused.stderr.startswith(f"error: --out {source} is also the input --input {source}")

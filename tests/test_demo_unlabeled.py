"""The demo's unlabelled notes: enough, distinct, never a labelled demo note, and reproducible from
their seeded generator."""

from __future__ import annotations

import importlib.util
from collections import Counter
from pathlib import Path

from mlx_distill import demo
from mlx_distill.data import normalise_text, read_examples, read_unlabeled

UNLABELED = demo.UNLABELED_FILE
GENERATOR = Path(__file__).resolve().parent.parent / "scripts" / "make_demo_unlabeled.py"


def _generator():
    spec = importlib.util.spec_from_file_location("make_demo_unlabeled", GENERATOR)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_unlabeled_notes_are_many_distinct_and_never_labelled_notes():
    notes = [e.text for e in read_unlabeled(UNLABELED)]
    assert len(notes) >= 1500
    keys = [normalise_text(n) for n in notes]
    assert len(set(keys)) == len(keys)
    labelled = {normalise_text(e.text) for f in (demo.TRAIN_FILE, demo.TEST_FILE) for e in read_examples(f)}
    assert not set(keys) & labelled
    openings = Counter(" ".join(k.split()[:2]) for k in keys)
    assert len(openings) > 400 and openings.most_common(1)[0][1] < 0.06 * len(notes)  # not one template
    assert len({w for k in keys for w in k.split()}) > 1500


def test_file_is_what_the_seeded_generator_writes_and_is_balanced():
    notes, kinds = _generator().generate(2000, seed=0)
    assert UNLABELED.read_text(encoding="utf-8") == "\n".join(notes) + "\n"
    assert all(kinds[k] >= 0.2 * len(notes) for k in ("work", "shopping", "health", "travel"))
    assert 0.05 * len(notes) <= kinds["mixed"] <= 0.1 * len(notes)

"""Fixtures of the data-parallel tests: a real-vocabulary teacher, labelled demo notes and a tiny
dropout-free student config (dropout masks are drawn per shard, so they cannot match between a
1-process and a 2-process run; everything else must)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import mlx_distill
from tests.helpers.hf_models import save_real_vocab_bert

DEMO = Path(mlx_distill.__file__).parent / "demo" / "data" / "train.jsonl"


@pytest.fixture(scope="session")
def dp_inputs(tmp_path_factory, minilm_dir) -> Path:
    root = tmp_path_factory.mktemp("dp_inputs")
    rows = [json.loads(line) for line in DEMO.open(encoding="utf-8")]
    labels = sorted({r["label"] for r in rows})
    (root / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:30]))
    (root / "eval.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[30:42]))
    # Unlabelled rows make CE a mean over only some rows of each shard: the exact-combination case.
    (root / "notes.txt").write_text("".join(r["text"] + "\n" for r in rows[42:62]))
    save_real_vocab_bert(root / "teacher", labels, minilm_dir)
    (root / "student.json").write_text(json.dumps({
        "model_type": "mobilebert", "num_hidden_layers": 2, "hidden_size": 32, "embedding_size": 16,
        "intra_bottleneck_size": 16, "intermediate_size": 32, "num_attention_heads": 2,
        "num_feedforward_networks": 1, "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0,
    }))
    return root

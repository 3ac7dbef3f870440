"""``python -m mlx_distill predict`` and ``info`` as a user runs them (subprocess, real folders)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from tests.helpers.hf_models import LABELS, copy_tokenizer, save_hf_classifier
from mlx_distill.data import DataError, read_examples
from mlx_distill.predict import TextClassifier

TEXTS = ["Stocks rallied on Friday.", "The striker scored twice.", "Expect showers later today."]


@pytest.fixture(scope="module")
def classifier_dir(tmp_path_factory, minilm_dir):
    """A tiny MobileBERT classifier over the real uncased WordPiece vocab, with its tokenizer files."""
    folder = tmp_path_factory.mktemp("clf")
    save_hf_classifier(
        "mobilebert", folder, LABELS, vocab_size=30522, hidden_size=32, embedding_size=16, num_hidden_layers=1,
        num_attention_heads=2, intermediate_size=24, intra_bottleneck_size=16, num_feedforward_networks=1,
    )
    copy_tokenizer(minilm_dir, folder)
    return folder


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mlx_distill", *args], capture_output=True, text=True, timeout=300)


def test_predict_json_matches_transformers(classifier_dir, tmp_path):
    import transformers

    texts_file = tmp_path / "texts.txt"
    texts_file.write_text(TEXTS[2] + "\n\n")
    # Texts may come before and after the options.
    done = _run("predict", str(classifier_dir), TEXTS[0], "--file", str(texts_file), "--json", "--max-length", "32", TEXTS[1])
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert [r["text"] for r in rows] == TEXTS
    tok = transformers.AutoTokenizer.from_pretrained(classifier_dir)
    hf = transformers.MobileBertForSequenceClassification.from_pretrained(classifier_dir).eval()
    with torch.no_grad():
        ref = torch.softmax(hf(**tok(TEXTS, padding="max_length", max_length=32, return_tensors="pt")).logits, -1).numpy()
    for row, expected in zip(rows, ref):
        assert set(row["probs"]) == set(LABELS)
        assert abs(sum(row["probs"].values()) - 1) < 1e-5
        np.testing.assert_allclose([row["probs"][label] for label in LABELS], expected, atol=1e-5)
        assert row["label"] == LABELS[int(expected.argmax())]


def test_predict_errors_are_clear(classifier_dir, tmp_path):
    done = _run("predict", str(tmp_path / "missing"), "hello")
    assert done.returncode == 1 and "MODEL_DIR" in done.stderr and "no such folder" in done.stderr
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "ok"}\n{"txt": "typo"}\nnot json\n')
    done = _run("predict", str(classifier_dir), "--file", str(bad))
    assert done.returncode == 1
    assert f"{bad}:2: field 'text' is missing" in done.stderr and f"{bad}:3: invalid JSON" in done.stderr
    done = _run("predict", str(classifier_dir))
    assert done.returncode == 2 and "give texts" in done.stderr


def test_ids_outside_vocabulary_are_rejected(classifier_dir):
    clf = TextClassifier(classifier_dir, max_length=8)
    ids = np.full((1, 8), 30522, dtype=np.int32)
    with pytest.raises(ValueError, match=r"token ids must be in \[0, 30522\)"):
        clf.probabilities_for_ids(ids, np.ones_like(ids))


def test_info_reports_device_and_blas():
    done = _run("info", "--json")
    assert done.returncode == 0, done.stderr
    info = json.loads(done.stdout)
    assert info["device"] in {"cpu", "gpu (metal)", "gpu (cuda)"}
    assert info["mlx"] == "0.32.4" and info["blas"]


def test_info_reports_the_thread_settings_it_runs_with():
    import os

    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"} | {"MKL_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "mlx_distill", "info", "--json"], capture_output=True, text=True,
                          timeout=300, env=env)
    assert done.returncode == 0, done.stderr
    info = json.loads(done.stdout)
    assert info["MKL_NUM_THREADS"] == "1" and info["OMP_WAIT_POLICY"] == "unset"
    assert info["cores"] >= 1 and info["load_1min"] >= 0


def test_data_files_report_every_bad_row(tmp_path):
    good = tmp_path / "good.csv"
    good.write_text('text,label\n"Rain, then sun",weather\nGoal!,sport\n')
    assert [(e.text, e.label) for e in read_examples(good)] == [("Rain, then sun", "weather"), ("Goal!", "sport")]
    bad = tmp_path / "bad.csv"
    bad.write_text("text,label\nRain, then sun,weather\n,sport\nok,\n")
    with pytest.raises(DataError) as err:
        read_examples(bad)
    message = str(err.value)
    assert "3 bad row(s)" in message
    assert f"{bad}:2: more cells than header columns" in message
    assert f"{bad}:3: field 'text' is missing or empty" in message
    assert f"{bad}:4: field 'label' is missing or empty" in message
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(DataError, match="unsupported file type"):
        read_examples(tmp_path / "notes.txt")


def test_unicode_line_separators_inside_texts_are_kept(tmp_path):
    rows = [{"text": "Buy milk\u2028and eggs", "label": "shopping"}, {"text": "Call\x85Sam", "label": "work"}]
    jsonl = tmp_path / "odd.jsonl"
    jsonl.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    assert [e.text for e in read_examples(jsonl)] == ["Buy milk\u2028and eggs", "Call\x85Sam"]
    assert read_examples(jsonl)[1].source == f"{jsonl}:2"
    csv_file = tmp_path / "odd.csv"
    csv_file.write_text("text,label\nBuy milk\u2028and eggs,shopping\n", encoding="utf-8")
    assert [(e.text, e.label) for e in read_examples(csv_file)] == [("Buy milk\u2028and eggs", "shopping")]

"""``python -m mlx_distill export`` on an MLX-written student: the files and manifest an iOS
developer wires to, and a clear error for a folder that is not a classifier."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import coremltools as ct

from mlx_distill.models import MobileBertConfig, build_classifier, save_pretrained
from tests.helpers.hf_models import LABELS


def test_export_command_writes_models_and_manifest(tmp_path, minilm_dir):
    config = MobileBertConfig(vocab_size=30522, hidden_size=32, embedding_size=16, num_hidden_layers=1,
                              num_attention_heads=2, intermediate_size=24, intra_bottleneck_size=16,
                              num_feedforward_networks=1, id2label=dict(enumerate(LABELS)))
    save_pretrained(build_classifier(config, seed=1), tmp_path / "student", tokenizer_dir=minilm_dir)
    # Export through a symlinked folder (as /tmp and /var are on macOS): the recorded relative
    # source path must still lead back to the student.
    (tmp_path / "deep" / "er").mkdir(parents=True)
    (tmp_path / "link").symlink_to(tmp_path / "deep" / "er")
    out = tmp_path / "link" / "coreml"
    done = subprocess.run(
        [sys.executable, "-m", "mlx_distill", "export", str(tmp_path / "student"), "--out", str(out),
         "--max-length", "24", "--learning-rate", "0.005", "--update-epochs", "4", "--no-pipeline"],
        capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["labels"] == LABELS and manifest["max_length"] == 24
    recorded = manifest["source_model_dir"]
    assert not os.path.isabs(recorded)  # relative: no home folder inside an app bundle
    assert (out.resolve() / recorded).resolve() == (tmp_path / "student").resolve()
    head = ct.models.MLModel(str(out / "UpdatableHead.mlmodel"), skip_model_load=True).get_spec()
    assert head.isUpdatable and head.specificationVersion >= 4
    sgd = head.neuralNetworkClassifier.updateParams.optimizer.sgdOptimizer
    assert abs(sgd.learningRate.defaultValue - 0.005) < 1e-9
    assert head.neuralNetworkClassifier.updateParams.epochs.defaultValue == 4
    assert (out / "Classifier.mlpackage").is_dir() and (out / "vocab.txt").exists()
    assert not (out / "UpdatablePipeline.mlmodel").exists()

    not_classifier = subprocess.run(
        [sys.executable, "-m", "mlx_distill", "export", str(minilm_dir), "--out", str(tmp_path / "x")],
        capture_output=True, text=True, timeout=300,
    )
    assert not_classifier.returncode == 1 and "error:" in not_classifier.stderr and "classifier" in not_classifier.stderr

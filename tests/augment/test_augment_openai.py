"""The openai backend against a real HTTP server on 127.0.0.1: retries, concurrency, resume, the key."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.helpers.chat_server import ChatServer, distinct_text

from mlx_distill.augment import AugmentConfig, run_augment
from mlx_distill.augment.run import progress_path
from mlx_distill.data import read_examples

KEY = "sk-test-DO-NOT-LEAK-4242"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture()
def train(tmp_path) -> Path:
    path = tmp_path / "train.jsonl"
    rows = [("Buy milk and eggs", "shopping"), ("Order printer ink", "shopping"), ("Get new shoes", "shopping"),
            ("Book a dentist visit", "health"), ("Take the vitamins", "health"), ("Go for a long run", "health")]
    path.write_text("".join(json.dumps({"text": t, "label": l}) + "\n" for t, l in rows))
    return path


def _config(train: Path, server: ChatServer, **kw) -> AugmentConfig:
    settings = dict(train=str(train), out=str(train.with_name("syn.jsonl")), backend="openai",
                    base_url=server.base_url, model="test-model", per_label=3, per_request=3, shots=2,
                    concurrency=1, max_retries=4, progress=False, min_words=2)
    return AugmentConfig(**(settings | kw))


def test_retries_429_500_and_garbage_then_writes_rows(train, monkeypatch):
    monkeypatch.setenv("AUGMENT_TEST_KEY", KEY)
    with ChatServer(failures=[429, 500, "garbage"]) as server:
        config = _config(train, server, api_key_env="AUGMENT_TEST_KEY", rejects=str(train.with_name("rej.jsonl")))
        result = run_augment(config)
    # one request per label succeeds; the first one needed three more tries (two by the client, one by us)
    assert [r["status"] for r in server.requests] == [429, 500, "garbage", 200, 200]
    assert result.requests == 2 and result.rows_per_label == {"shopping": 3, "health": 3}
    assert result.rejected == {"meta": 2}  # "Here are 3 examples:" once per answer
    rows = read_examples(config.out)
    assert [r.label for r in rows] == ["shopping"] * 3 + ["health"] * 3
    assert rows[0].text == distinct_text("shopping", 11)
    lines = [json.loads(line) for line in Path(config.out).read_text().splitlines()]
    provenance = lines[0]["provenance"]
    assert provenance["backend"] == "openai" and provenance["model"] == "test-model"
    assert provenance["label"] == "shopping" and provenance["request"] == 0 and len(provenance["prompt_hash"]) == 16
    assert provenance["temperature"] == config.temperature and provenance["max_tokens"] == config.max_tokens
    body = server.requests[-1]["body"]
    assert body["seed"] == provenance["seed"] or lines[-1]["provenance"]["seed"] == body["seed"]
    # the key went to the server it was meant for, and nowhere else
    assert all(r["authorization"] == f"Bearer {KEY}" for r in server.requests)
    for path in (Path(config.out), progress_path(Path(config.out)), Path(config.rejects)):
        assert KEY not in path.read_text()


def test_no_key_configured_sends_no_openai_api_key(train, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)  # set in the user's shell for something else
    with ChatServer() as server:
        run_augment(_config(train, server, per_label=1))
    assert server.requests and all(KEY not in (r["authorization"] or "") for r in server.requests)


def test_concurrency_is_bounded(train):
    with ChatServer(delay=0.3, rows_per_answer=1) as server:
        result = run_augment(_config(train, server, per_label=3, per_request=1, concurrency=2))
    assert result.rows_per_label == {"shopping": 3, "health": 3}
    assert len(server.requests) == 6 and server.max_in_flight == 2


def test_a_dead_endpoint_is_one_clear_error(train):
    with ChatServer() as server:
        url = server.base_url
    with pytest.raises(ValueError, match=r"--base-url http://127.0.0.1:\d+/v1: cannot connect"):
        run_augment(_config(train, ChatServer(), base_url=url, max_retries=0))


def test_http_401_names_the_key_flag(train):
    with ChatServer(failures=[401]) as server:
        with pytest.raises(ValueError, match="HTTP 401 .check --api-key-env"):
            run_augment(_config(train, server))


def test_kill_9_then_rerun_resumes_without_loss_or_duplicates(train):
    """A subprocess is killed mid-run; a torn line is left behind; the same command finishes the job."""
    out = train.with_name("syn.jsonl")
    with ChatServer(delay=0.4, rows_per_answer=2) as server:
        command = [sys.executable, "-m", "mlx_distill.augment", "--train", str(train), "--out", str(out),
                   "--backend", "openai", "--base-url", server.base_url, "--model", "m", "--per-label", "4",
                   "--per-request", "2", "--concurrency", "1", "--no-progress"]
        env = dict(os.environ, MKL_NUM_THREADS="1", OMP_NUM_THREADS="1")
        first = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (not out.exists() or len(out.read_text().splitlines()) < 2):
            time.sleep(0.05)
        first.send_signal(signal.SIGKILL)
        first.wait()
        written = len(out.read_text().splitlines())
        assert 2 <= written < 8, "the first run should have been killed part-way"
        with open(out, "a") as handle:
            handle.write('{"text": "half a ro')  # what a kill during an append leaves
        second = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert second.returncode == 0, second.stderr
    assert "repaired a torn last line" in second.stderr
    rows = read_examples(out)
    assert sorted(r.label for r in rows) == ["health"] * 4 + ["shopping"] * 4
    assert len({r.text for r in rows}) == 8
    finished = [json.loads(line) for line in progress_path(out).read_text().splitlines()[1:]]
    assert len({(p["label"], p["request"]) for p in finished}) == len(finished)  # no request done twice
    assert "shopping 4, health 4 rows" in second.stdout


def test_rerun_with_other_settings_is_refused_and_more_rows_continue(train):
    with ChatServer() as server:
        config = _config(train, server, per_label=3)
        run_augment(config)
        with pytest.raises(ValueError, match=r"other settings \(changed: temperature\)"):
            run_augment(_config(train, server, per_label=3, temperature=0.2))
        more = run_augment(_config(train, server, per_label=6))  # a bigger --per-label continues
    assert more.rows_per_label == {"shopping": 6, "health": 6} and more.new_rows == 6
    assert len(read_examples(config.out)) == 12


def test_out_equal_to_train_is_refused(train):
    with pytest.raises(ValueError, match="--out: .* is also an input"):
        run_augment(AugmentConfig(train=str(train), out=str(train), llm="x.gguf"))


def test_a_short_label_continues_when_max_requests_is_raised(train):
    with ChatServer(rows_per_answer=2) as server:
        short = run_augment(_config(train, server, per_label=4, per_request=2, max_requests=1))
        assert short.short == {"shopping": 2, "health": 2} and len(server.requests) == 2
        done = run_augment(_config(train, server, per_label=4, per_request=2, max_requests=2))
    assert done.short == {} and done.rows_per_label == {"shopping": 4, "health": 4} and done.requests == 2
    assert [r["body"]["seed"] for r in server.requests[2:]] != [r["body"]["seed"] for r in server.requests[:2]]

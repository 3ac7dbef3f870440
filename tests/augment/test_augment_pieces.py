"""Filters, prompt rotation, templates, settings and the append-only files, without a model."""

from __future__ import annotations

import argparse
import json

import pytest

from mlx_distill.augment.config import AugmentConfig, add_config_arguments, config_from_args
from mlx_distill.augment.filters import RowFilter
from mlx_distill.augment.journal import Appender, read_jsonl
from mlx_distill.augment.prompts import DEFAULT_TEMPLATE, PromptBuilder, load_template, request_seed
from mlx_distill.augment.run import _plan


def _gate(**kw):
    limits = dict(min_words=2, max_words=12, min_chars=6, max_chars=80, near_duplicate=90.0) | kw
    return RowFilter(["Buy milk and eggs on the way home"], ["Book a dentist appointment for Monday"], **limits)


def test_filter_reasons_exact_near_copies_and_leakage():
    gate = _gate()
    assert gate.reason("Buy milk and eggs on the way home!") == "copies_train"  # near copy of a real row
    assert gate.reason("book a DENTIST appointment for monday") == "in_eval_test"
    assert gate.reason("Milk") == "too_short"
    assert gate.reason(" ".join(["word"] * 13)) == "too_long"
    assert gate.reason("Order new running shoes online") is None
    gate.keep("Order new running shoes online")
    assert gate.reason("order new  running shoes online") == "duplicate"
    assert gate.reason("Order new running shoes online.") == "duplicate" or \
        gate.reason("Order new running shoes online.") == "near_duplicate"
    assert gate.reason("Order new running shoe online") == "near_duplicate"
    assert gate.reason("Pick up the dry cleaning") is None


def test_exact_only_matching_when_near_duplicate_is_101():
    gate = _gate(near_duplicate=101)
    gate.keep("Order new running shoes online")
    assert gate.reason("Order new running shoe online") is None
    assert gate.reason("ORDER new running shoes online") == "duplicate"


def test_prompts_rotate_examples_and_are_deterministic():
    examples = {"work": [f"work note {i}" for i in range(10)], "home": ["a", "b"]}
    build = PromptBuilder(examples, DEFAULT_TEMPLATE, "sys", shots=4, per_request=5, seed=3)
    first, second = build.build("work", 0), build.build("work", 1)
    assert len(first.shots) == 4 and not set(first.shots) & set(second.shots)  # different examples
    assert build.build("work", 0) == PromptBuilder(examples, DEFAULT_TEMPLATE, "sys", 4, 5, 3).build("work", 0)
    assert PromptBuilder(examples, DEFAULT_TEMPLATE, "sys", 4, 5, 4).build("work", 0).shots != first.shots
    assert first.hash != second.hash
    # fewer examples than shots: all of them, in a different order per request
    assert build.build("home", 0).hash != build.build("home", 1).hash
    user = first.messages[-1]["content"]
    assert '"work"' in user and "work, home" in user and "Write 5 new" in user
    assert all(f"- {shot}" in user for shot in first.shots)
    assert first.messages[0] == {"role": "system", "content": "sys"}
    assert request_seed(0, "work", 1) == request_seed(0, "work", 1) != request_seed(0, "work", 2)


def test_a_batch_is_planned_round_robin_and_no_larger_than_the_rows_still_wanted():
    examples = {"work": ["w1", "w2"], "home": ["h1", "h2"]}
    config = AugmentConfig(train="t.jsonl", out="o.jsonl", llm="m", per_label=10, per_request=5)
    builder = PromptBuilder(examples, DEFAULT_TEMPLATE, "sys", 1, 5, 0)
    batch = _plan(builder, ["work", "home"], {"work": 0, "home": 5}, {("work", 0)}, config, 8, 8, 0)
    # work misses 10 rows (2 requests), home 5 (1 request); work's request 0 is already done
    assert [(r.prompt.label, r.prompt.request) for r in batch] == [("work", 1), ("home", 0), ("work", 2)]
    config.stop_after = 7  # 7 rows still wanted: 2 requests of 5, however large the batch may be
    assert len(_plan(builder, ["work", "home"], {"work": 0, "home": 0}, set(), config, 8, 8, 0)) == 2
    assert len(_plan(builder, ["work", "home"], {"work": 0, "home": 0}, set(), config, 8, 8, 5)) == 1
    assert _plan(builder, ["work", "home"], {"work": 0, "home": 0}, set(), config, 8, 8, 7) == []


def test_template_file_placeholders(tmp_path):
    good = tmp_path / "t.txt"
    good.write_text("Label {label} ({labels}); {n} rows like:\n{examples}\nJSON like {{\"text\": ...}}\n")
    template = load_template(str(good))
    prompt = PromptBuilder({"a": ["x y"], "b": ["z"]}, template, "", 1, 3, 0).build("a", 0)
    assert prompt.messages == [{"role": "user", "content": 'Label a (a, b); 3 rows like:\n- x y\nJSON like {"text": ...}\n'}]
    bad = tmp_path / "bad.txt"
    bad.write_text("Label {label}\nWrite {count} rows\n")
    with pytest.raises(ValueError, match=r"bad.txt:2: unknown placeholder \{count\}"):
        load_template(str(bad))
    no_label = tmp_path / "nolabel.txt"
    no_label.write_text("Write {n} rows\n")
    with pytest.raises(ValueError, match="never says"):
        load_template(str(no_label))
    with pytest.raises(FileNotFoundError, match="--template"):
        load_template(str(tmp_path / "missing.txt"))


def test_flags_come_from_the_dataclass(tmp_path):
    parser = argparse.ArgumentParser()
    add_config_arguments(parser)
    args = parser.parse_args(["--train", "t.jsonl", "--out", "o.jsonl", "--llm", "m.gguf", "--per-label", "7",
                              "--exclude", "a.csv", "--exclude", "b.csv", "--no-progress", "--restart"])
    config = config_from_args(args)
    assert (config.per_label, config.exclude, config.progress, config.restart) == (7, ["a.csv", "b.csv"], False, True)
    assert config.temperature == AugmentConfig.temperature  # the default lives in one place
    assert "sampling temperature (default 0.9)" in " ".join(parser.format_help().split())


@pytest.mark.parametrize("change, message", [
    (dict(out="train.jsonl"), "--out: .*is also an input"),
    (dict(out="o.csv"), "--out: .*must end in .jsonl"),
    (dict(per_label=0), "--per-label: must be at least 1"),
    (dict(top_p=0), "--top-p"),
    (dict(min_words=9, max_words=3), "--min-words"),
    (dict(llm=""), "--llm: required"),
    (dict(backend="openai"), "--base-url: required"),
    (dict(backend="openai", base_url="http://127.0.0.1:1/v1", model="m", api_key_env="AUGMENT_TEST_UNSET_VAR"),
     "--api-key-env: environment variable AUGMENT_TEST_UNSET_VAR is not set"),
])
def test_bad_settings_name_their_flag(tmp_path, monkeypatch, change, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "train.jsonl").write_text('{"text": "a b", "label": "x"}\n')
    config = AugmentConfig(**(dict(train="train.jsonl", out="o.jsonl", llm="m.gguf") | change))
    with pytest.raises(ValueError, match=message):
        config.validate()


def test_torn_last_line_is_repaired_and_bad_middle_line_refused(tmp_path, capsys):
    path = tmp_path / "rows.jsonl"
    with Appender(path) as out:
        out.write([{"text": "a", "label": "x"}, {"text": "b", "label": "x"}])
    whole = path.read_bytes()
    path.write_bytes(whole + b'{"text": "c", "lab')  # kill -9 in the middle of an append
    assert [r["text"] for r in read_jsonl(path)] == ["a", "b"]
    assert path.read_bytes() == whole
    assert "repaired a torn last line" in capsys.readouterr().err
    path.write_bytes(whole + b'{"text": "c", "label": "x"}')  # complete JSON but no newline: cut short too
    assert len(read_jsonl(path)) == 2 and path.read_bytes() == whole
    path.write_bytes(b'{"text": "a"}\nnot json\n{"text": "b"}\n')
    with pytest.raises(ValueError, match=r"rows.jsonl:2: not a JSON object"):
        read_jsonl(path)
    assert read_jsonl(tmp_path / "missing.jsonl") == []
    json.loads(whole.split(b"\n")[0])

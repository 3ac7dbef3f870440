"""check_labelled on real files: conflicts refused, duplicates/leakage/odd labels warned with file:line."""

from __future__ import annotations

import json

import pytest

from mlx_distill.data import DataError, check_labelled, read_examples, stratified_split


def _jsonl(path, rows) -> list:
    path.write_text("".join(json.dumps({"text": t, "label": label}) + "\n" for t, label in rows))
    return read_examples(path)


def test_same_text_with_two_labels_is_an_error_naming_every_place(tmp_path):
    train = _jsonl(tmp_path / "train.jsonl", [("Buy milk", "shopping"), ("Call Sam", "work"), ("buy  MILK ", "work"),
                                              ("Pay rent", "home"), ("Buy milk", "shopping"), ("pay rent", "work")])
    with pytest.raises(DataError) as err:
        check_labelled(train)
    t = tmp_path / "train.jsonl"
    assert str(err.value).splitlines() == [
        "2 text(s) have more than one label; give each text one label and run again:",
        f"  {t}:1: 'Buy milk' is labelled 'shopping' ({t}:1, {t}:5) and 'work' ({t}:3)",
        f"  {t}:4: 'Pay rent' is labelled 'home' ({t}:4) and 'work' ({t}:6)",
    ]
    ev = _jsonl(tmp_path / "eval.jsonl", [("Gym at 6", "health"), ("gym at 6", "work")])
    with pytest.raises(DataError, match="eval.jsonl:1: 'Gym at 6' is labelled 'health'"):
        check_labelled(train[:2], evaluation=ev)


def test_duplicates_are_kept_once_counted_and_warned(tmp_path):
    t = tmp_path / "train.csv"
    t.write_text("text,label\nBuy milk,shopping\nCall Sam,work\nbuy milk,shopping\r\nCALL SAM,work\nBuy milk ,shopping\nFly home,travel\nFly out,travel\n")
    report = check_labelled(read_examples(t))
    assert [e.source for e in report.train] == [f"{t}:2", f"{t}:3", f"{t}:7", f"{t}:8"]
    assert report.counts["train"].rows == 7 and report.counts["train"].kept == 4 and report.counts["train"].duplicates == 3
    assert report.warnings[:3] == [
        f"{t}:4: same text and label as {t}:2; kept once",
        f"{t}:6: same text and label as {t}:2; kept once",
        f"{t}:5: same text and label as {t}:3; kept once",
    ]
    # Counted after dedupe: five 'shopping'/'work' rows are two distinct texts, one of each.
    assert report.train_label_counts == {"shopping": 1, "travel": 2, "work": 1}
    assert [w.split(": ", 1)[0] for w in report.warnings[3:]] == [f"{t}:2", f"{t}:3"]


def test_long_warning_lists_are_capped(tmp_path):
    rows = [("Buy milk", "shopping"), ("Call Sam", "work")] * 30
    report = check_labelled(_jsonl(tmp_path / "t.jsonl", rows))
    assert report.counts["train"].duplicates == 58 and len(report.train) == 2
    dup = [w for w in report.warnings if "kept once" in w or "duplicate rows" in w]
    assert len(dup) == 11 and dup[-1] == "... and 48 more duplicate rows in the training data"


def test_evaluation_and_test_texts_seen_in_training_are_leakage(tmp_path):
    train = _jsonl(tmp_path / "train.jsonl", [(f"note {i}", "a" if i % 2 else "b") for i in range(20)])
    ev_path, test_path = tmp_path / "eval.jsonl", tmp_path / "test.jsonl"
    ev = _jsonl(ev_path, [("NOTE 1", "a"), ("fresh", "a"), ("note  2", "a"), ("note 3", "a"), ("note 5", "a"), ("note 7", "a")])
    test = _jsonl(test_path, [("new one", "b"), ("other", "a")])
    report = check_labelled(train, evaluation=ev, test=test)
    t = tmp_path / "train.jsonl"
    leak = [w for w in report.warnings if "leakage" in w]
    assert leak == [
        f"{ev_path}: 5 of 6 evaluation texts also appear in the training data, so evaluation scores will be optimistic "
        f"(leakage); e.g. {ev_path}:1 = {t}:2, {ev_path}:3 = {t}:3 (labelled 'b' there), {ev_path}:4 = {t}:4 and 2 more"
    ]
    assert report.counts["evaluation"].in_train == 5 and report.counts["test"].in_train == 0
    assert len(report.evaluation) == 6 and report.test == test  # leakage is reported, not removed


def test_single_example_label_and_unseen_evaluation_label(tmp_path):
    train = _jsonl(tmp_path / "train.jsonl", [("Buy milk", "shopping"), ("Call Sam", "work"), ("Email Jo", "work"),
                                              ("Book flights", "travel"), ("Buy bread", "shopping")])
    ev = _jsonl(tmp_path / "eval.jsonl", [("Gym at 6", "health"), ("Renew passport", "travel"), ("Yoga", "health")])
    report = check_labelled(train, evaluation=ev)
    assert report.warnings == [
        f"{tmp_path / 'train.jsonl'}:4: label 'travel' has a single example in the training data, so it can never be "
        "held out or evaluated; add more examples of it",
        f"{tmp_path / 'eval.jsonl'}:1: label 'health' (2 evaluation row(s)) does not occur in the training data; "
        "a classifier trained on it cannot predict this label",
    ]
    assert report.train_label_counts == {"shopping": 2, "travel": 1, "work": 2}
    # The split indeed never holds it out: this is why the warning exists.
    _, held = stratified_split(report.train, 0.5, seed=0)
    assert "travel" not in {e.label for e in held}


def test_a_number_among_word_labels_is_named_but_all_numeric_labels_are_fine(tmp_path):
    csv_file = tmp_path / "train.csv"
    csv_file.write_text("text,label\nBuy milk,shopping\nCall Sam,work\nFly,travel\n\"Rent\",3\nEmail Jo,work\n")
    report = check_labelled(read_examples(csv_file))
    numeric = [w for w in report.warnings if "is a number" in w]
    assert numeric == [f"{csv_file}:5: label '3' is a number while the other labels are words ('shopping', 'travel', "
                       "'work'); a shifted or missing column? As it is, it becomes a class of its own"]
    ints = tmp_path / "ints.jsonl"
    ints.write_text("".join(json.dumps({"text": f"t{i}", "label": i % 3}) + "\n" for i in range(9)))
    assert check_labelled(read_examples(ints)).warnings == []
    mostly = tmp_path / "mostly.jsonl"
    mostly.write_text("".join(json.dumps({"text": f"t{i}", "label": i % 2}) + "\n" for i in range(6))
                      + json.dumps({"text": "x", "label": "positive"}) + "\n")
    words = [w for w in check_labelled(read_examples(mostly)).warnings if "is a word" in w]
    assert words and words[0].startswith(f"{mostly}:7: label 'positive' is a word while the other labels are numbers ('0', '1')")


def test_labels_differing_only_in_case(tmp_path):
    train = _jsonl(tmp_path / "train.jsonl", [("a", "work"), ("b", "Work"), ("c", "work"), ("d", "home"), ("e", "home"), ("f", "Work")])
    t = tmp_path / "train.jsonl"
    assert check_labelled(train).warnings == [
        f"{t}:1: labels 'work' ({t}:1) and 'Work' ({t}:2) differ only in case or spacing; they are separate classes — use one spelling"]


def test_clean_data_gives_no_warnings_and_json_report(tmp_path):
    train = _jsonl(tmp_path / "train.jsonl", [("a", "x"), ("b", "x"), ("c", "y"), ("d", "y")])
    report = check_labelled(train, test=_jsonl(tmp_path / "test.jsonl", [("e", "x")]))
    assert report.warnings == [] and report.train == train and report.evaluation is None
    assert report.to_json() == {
        "counts": {"train": {"rows": 4, "kept": 4, "duplicates": 0, "in_train": 0},
                   "test": {"rows": 1, "kept": 1, "duplicates": 0, "in_train": 0}},
        "train_label_counts": {"x": 2, "y": 2}, "warnings": []}
    with pytest.raises(DataError, match="the evaluation data has no rows"):
        check_labelled(train, evaluation=[])

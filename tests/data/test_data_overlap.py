"""normalise_text, dedupe and drop_overlaps: one definition of "the same text", counted removals."""

from __future__ import annotations

from mlx_distill.data import Example, dedupe, drop_overlaps, normalise_text


def _rows(*texts: str, label: str | None = None) -> list[Example]:
    return [Example(t, label, f"t.jsonl:{i}") for i, t in enumerate(texts, 1)]


def test_normalise_text_ignores_case_whitespace_and_unicode_forms():
    same = ["Buy  milk\tTODAY", " buy milk today ", "BUY\u00a0MILK\u2028today", "ｂｕｙ milk today"]
    assert {normalise_text(t) for t in same} == {"buy milk today"}
    assert normalise_text("café") == normalise_text("cafe\u0301")
    assert normalise_text("STRASSE") == normalise_text("straße")
    assert normalise_text("buy milk.") != normalise_text("buy milk")  # punctuation is content


def test_dedupe_keeps_first_and_counts():
    rows = _rows("Buy milk", "call sam", "buy  MILK", "Call Sam", "book flights")
    kept, dropped = dedupe(rows)
    assert [e.source for e in kept] == ["t.jsonl:1", "t.jsonl:2", "t.jsonl:5"] and dropped == 2
    assert dedupe([]) == ([], 0)


def test_drop_overlaps_removes_rows_seen_in_evaluation_and_counts():
    synthetic = _rows("Buy milk", "Renew passport", "call SAM ", "Pay rent")
    evaluation = [Example("buy milk", "shopping", "eval.jsonl:4"), Example("Call Sam", "work", "test.jsonl:9")]
    kept, dropped = drop_overlaps(synthetic, evaluation)
    assert [e.text for e in kept] == ["Renew passport", "Pay rent"] and dropped == 2
    assert drop_overlaps(synthetic, []) == (synthetic, 0)

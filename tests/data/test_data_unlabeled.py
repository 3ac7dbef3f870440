"""Reading unlabelled texts: .txt lines, .jsonl text fields, .csv text columns; labels never kept."""

from __future__ import annotations

import json

import pytest

from mlx_distill.data import DataError, read_texts, read_unlabeled


def test_txt_one_text_per_line_blank_lines_skipped_crlf_and_bom(tmp_path):
    txt = tmp_path / "notes.txt"
    txt.write_bytes(b"\xef\xbb\xbfBuy milk\r\n\r\n   \r\n  Call Sam  \r\nBook\xe2\x80\xa8flights")
    rows = read_unlabeled(txt)
    assert [(e.text, e.label, e.source) for e in rows] == [
        ("Buy milk", None, f"{txt}:1"), ("Call Sam", None, f"{txt}:4"), ("Book\u2028flights", None, f"{txt}:5")]


def test_jsonl_and_csv_labels_and_extra_fields_are_ignored(tmp_path):
    jsonl = tmp_path / "transfer.jsonl"
    jsonl.write_text("\n".join(json.dumps(r) for r in [{"text": "a", "label": "work", "id": 7}, {"text": "b", "meta": {}}]) + "\n")
    assert [(e.text, e.label, e.source) for e in read_unlabeled(jsonl)] == [("a", None, f"{jsonl}:1"), ("b", None, f"{jsonl}:2")]
    csv_file = tmp_path / "transfer.csv"
    csv_file.write_text('id,text,label\n1,"x, y",work\n2,z,\n')
    assert [(e.text, e.label, e.source) for e in read_unlabeled(csv_file)] == [("x, y", None, f"{csv_file}:2"), ("z", None, f"{csv_file}:3")]


def test_every_bad_row_is_listed_in_file_order(tmp_path):
    jsonl = tmp_path / "bad.jsonl"
    jsonl.write_text('{"text": ""}\n{"text": "fine"}\n{oops\n"just a string"\n{"text": 3}\n')
    with pytest.raises(DataError) as err:
        read_unlabeled(jsonl)
    assert str(err.value).splitlines() == [
        f"{jsonl}: 4 bad row(s); fix them and run again:",
        f"  {jsonl}:1: field 'text' is missing or empty",
        f"  {jsonl}:3: invalid JSON (Expecting property name enclosed in double quotes at column 2)",
        f"  {jsonl}:4: expected a JSON object with a 'text' field",
        f"  {jsonl}:5: field 'text' is missing or empty",
    ]
    csv_file = tmp_path / "bad.csv"
    csv_file.write_text("label,texts\nwork,hello\n")
    with pytest.raises(DataError, match=r"bad\.csv:1: the CSV header must name 'text' column\(s\); missing \['text'\]"):
        read_unlabeled(csv_file)


def test_paths_and_types_are_explained(tmp_path):
    expected = "expected a .txt file (one text per line), or a .jsonl or .csv file with a text field"
    with pytest.raises(DataError) as err:
        read_unlabeled(tmp_path)
    assert str(err.value) == f"{tmp_path}: is a folder; {expected}"
    (tmp_path / "notes.md").write_text("hello\n")
    with pytest.raises(DataError) as err:
        read_unlabeled(tmp_path / "notes.md")
    assert str(err.value) == f"{tmp_path / 'notes.md'}: unsupported file type '.md'; {expected}"
    assert read_texts(tmp_path / "notes.md") == ["hello"]  # predict --file reads any file as lines
    (tmp_path / "empty.txt").write_text("\n\n")
    with pytest.raises(DataError, match="empty.txt: is empty"):
        read_unlabeled(tmp_path / "empty.txt")
    (tmp_path / "header.csv").write_text("text\n")
    with pytest.raises(DataError, match="header.csv: no texts found"):
        read_unlabeled(tmp_path / "header.csv")


def test_invalid_utf8_line_number(tmp_path):
    txt = tmp_path / "mixed.txt"
    txt.write_bytes(b"one\ntwo\nthr\xe9e\n")
    with pytest.raises(DataError) as err:
        read_unlabeled(txt)
    assert str(err.value) == f"{txt}:3: not UTF-8 (byte 0xe9 at column 4, file offset 11); save the file as UTF-8"

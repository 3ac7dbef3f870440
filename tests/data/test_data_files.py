"""Reading labelled files: wrong kinds of paths, encodings and line endings, each one clear line."""

from __future__ import annotations

import json
import os
import sys

import pytest

from mlx_distill.data import DataError, read_examples, read_texts


def _error(path, **kwargs) -> str:
    with pytest.raises(DataError) as err:
        read_examples(path, **kwargs)
    return str(err.value)


def test_missing_file_and_folder_name_the_path_and_what_was_expected(tmp_path):
    message = _error(tmp_path / "nope.jsonl")
    assert message == f"{tmp_path / 'nope.jsonl'}: file not found; expected a .jsonl or .csv file with text,label"
    folder = tmp_path / "data"
    folder.mkdir()
    assert _error(folder) == f"{folder}: is a folder; expected a .jsonl or .csv file with text,label"
    with pytest.raises(DataError, match="is a folder"):
        read_texts(folder)  # used to be a raw IsADirectoryError
    odd = tmp_path / "looks_like.jsonl"  # a folder with a data-file name
    odd.mkdir()
    assert "is a folder" in _error(odd)


def test_empty_files_are_refused_with_the_path(tmp_path):
    for name, data in (("empty.jsonl", b""), ("blank.csv", b"\n \r\n"), ("bom.jsonl", b"\xef\xbb\xbf\n")):
        (tmp_path / name).write_bytes(data)
        assert _error(tmp_path / name) == f"{tmp_path / name}: is empty; expected a .jsonl or .csv file with text,label"
    header_only = tmp_path / "header.csv"
    header_only.write_text("text,label\n")
    assert _error(header_only).startswith(f"{header_only}: no examples found")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their permissions")
def test_file_without_read_permission(tmp_path):
    locked = tmp_path / "locked.jsonl"
    locked.write_text('{"text": "a", "label": "b"}\n')
    locked.chmod(0)
    assert _error(locked) == f"{locked}: cannot be read (permission denied); make it readable or copy it"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/self/mem exists only on Linux")
def test_file_that_fails_to_read():
    # A real file that exists but cannot be read (EIO): the OSError becomes one DataError line.
    with pytest.raises(DataError) as err:
        read_texts("/proc/self/mem")
    assert str(err.value).startswith("/proc/self/mem: cannot be read (Input/output error)")


def test_invalid_utf8_names_line_and_column(tmp_path):
    bad = tmp_path / "latin1.jsonl"
    rows = ['{"text": "Buy milk", "label": "shopping"}', '{"text": "Book the café", "label": "travel"}',
            '{"text": "Pay the café bill", "label": "work"}', '{"text": "ok", "label": "work"}',
            '{"text": "Naïve plan", "label": "work"}']
    data = "\n".join(rows).encode("utf-8").split(b"\n")
    data[2] = rows[2].encode("latin-1")  # line 3: é as 0xe9
    data[4] = rows[4].encode("latin-1")  # line 5: ï as 0xef
    bad.write_bytes(b"\xef\xbb\xbf" + b"\n".join(data))  # a BOM must not shift line 1 or the columns
    message = _error(bad)
    offset = 3 + len(data[0]) + 1 + len(data[1]) + 1 + rows[2].index("é")
    assert message == (f"{bad}:3: not UTF-8 (byte 0xe9 at column {rows[2].index('é') + 1}, file offset {offset}); "
                       "also on line(s) 5; save the file as UTF-8")
    assert "\n" not in message


def test_invalid_utf8_after_multibyte_characters_counts_characters(tmp_path):
    bad = tmp_path / "notes.txt"
    bad.write_bytes("a\nb\n日本 \xff".encode("utf-8").replace("\xff".encode("utf-8"), b"\xff"))
    with pytest.raises(DataError) as err:
        read_texts(bad)
    assert str(err.value).startswith(f"{bad}:3: not UTF-8 (byte 0xff at column 4, file offset 11)")


def test_crlf_bom_and_quoted_newlines(tmp_path):
    csv_file = tmp_path / "windows.csv"
    csv_file.write_bytes(b'\xef\xbb\xbftext,label\r\n"Rain,\r\nthen sun",weather\r\nGoal!,sport\r\n')
    examples = read_examples(csv_file)
    assert [(e.text, e.label) for e in examples] == [("Rain,\r\nthen sun", "weather"), ("Goal!", "sport")]
    assert [e.source for e in examples] == [f"{csv_file}:3", f"{csv_file}:4"]
    jsonl = tmp_path / "windows.jsonl"
    jsonl.write_bytes(b'\xef\xbb\xbf{"text": "a", "label": "x"}\r\n\r\n{"text": "b", "label": 2}\r\n')
    assert [(e.text, e.label, e.source) for e in read_examples(jsonl)] == [("a", "x", f"{jsonl}:1"), ("b", "2", f"{jsonl}:3")]


def test_csv_header_must_name_both_columns_and_bad_labels_are_listed(tmp_path):
    csv_file = tmp_path / "texts.csv"
    csv_file.write_text("text,category\nhello,greeting\n")
    assert _error(csv_file).startswith(f"{csv_file}:1: the CSV header must name 'text' and 'label' column(s); missing ['label']")
    assert read_texts(csv_file) == ["hello"]  # predict --file needs only the text column
    jsonl = tmp_path / "types.jsonl"
    jsonl.write_text("\n".join(json.dumps(r) for r in [{"text": "a", "label": True}, {"text": "b", "label": [1]}, [1, 2]]))
    message = _error(jsonl)
    assert message.splitlines() == [
        f"{jsonl}: 3 bad row(s); fix them and run again:",
        f"  {jsonl}:1: field 'label' must be a string or integer, got bool",
        f"  {jsonl}:2: field 'label' must be a string or integer, got list",
        f"  {jsonl}:3: expected a JSON object with 'text' and 'label'",
    ]


def test_long_problem_lists_are_capped(tmp_path):
    jsonl = tmp_path / "many.jsonl"
    jsonl.write_text("not json\n" * 25)
    lines = _error(jsonl).splitlines()
    assert lines[0] == f"{jsonl}: 25 bad row(s); fix them and run again:"
    assert len(lines) == 22 and lines[-1] == "  ... and 5 more"
    assert lines[20] == f"  {jsonl}:20: invalid JSON (Expecting value at column 1)"


def test_utf16_and_nul_bytes_are_named(tmp_path):
    utf16 = tmp_path / "excel.csv"
    utf16.write_bytes("text,label\nhi,greeting\n".encode("utf-16"))  # what Excel's "Unicode text" writes
    assert _error(utf16) == f"{utf16}:1: contains NUL bytes (a UTF-16 or binary file?); save the file as UTF-8 text"
    no_bom = tmp_path / "excel.jsonl"
    no_bom.write_bytes(b"\n".join([b'{"text": "a", "label": "b"}', '{"text": "c"}'.encode("utf-16-le")]))
    assert _error(no_bom) == f"{no_bom}:2: contains NUL bytes (a UTF-16 or binary file?); save the file as UTF-8 text"

"""Turn what a chat model actually wrote into candidate rows, and say why each other line was dropped.

Real model output is messy even when asked for "one per line": numbering (``1.``, ``1)``, ``(1)``,
``#1``, ``Example 1:``), bullets (``-``, ``*``, ``•``, ``–``), quotes, Markdown bold, blank lines,
chatter and meta lines ("Here are 5 examples:", "Sure!", "I hope this helps"), and a last line cut
off when generation hit the token limit. Each line becomes either a candidate text or a rejection
with a reason, so the run can count what it threw away.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

_MARKER = re.compile(
    r"""^\s*(?:
        (?:example|text|note|message|sample|item)\s*\#?\d*\s*[:.)-]\s*   # "Example 3:", "Text:"
      | \(?\#?\d{1,3}\s*[.):\]]\s*                                       # "1." "1)" "(1)" "#1:" "1]"
      | \#\d{1,3}\s+                                                     # "#1 "
      | [-*•·–—+▪►]\s+                                                   # bullets
    )""", re.IGNORECASE | re.VERBOSE)
_QUOTES = [('"', '"'), ("'", "'"), ("“", "”"), ("‘", "’"), ("«", "»"), ("`", "`"), ("„", "“")]
_META_START = re.compile(
    r"^(here\s+(are|is)|here's|sure|certainly|of course|absolutely|okay|ok\b|great|i hope|hope this|let me|"
    r"i've|i have|i can|i'll|these (are|examples)|below (are|is)|feel free|note:|as an ai|i'm sorry|"
    r"i apologi[sz]e|happy to help|in this (list|response|task)|examples?( of)?\b.*:$)", re.IGNORECASE)
# Chatter that announces or describes the list wherever it sits in the line.
_META_ANYWHERE = re.compile(
    r"\b(here (are|is)|here's)\b[^.!?]*\b(examples?|texts?|sentences?|notes?|ideas?|options?)\b"
    r"|\bas an ai\b|\bthe (examples|texts) (above|below)\b|\blabell?ed\s+\"", re.IGNORECASE)


@dataclass(frozen=True)
class Parsed:
    """Candidates in output order, and (line, reason) for every non-empty line that was not one."""

    candidates: list[str]
    rejected: list[tuple[str, str]]


def parse_output(text: str, truncated: bool = False, label: str | None = None) -> Parsed:
    """Candidates from one model answer. ``truncated``: generation stopped at the token limit, so
    the last non-empty line is incomplete and is dropped as ``cut_off``."""
    candidates: list[str] = []
    rejected: list[tuple[str, str]] = []
    json_rows = _json_list(text)
    lines = json_rows if json_rows is not None else text.split("\n")
    if truncated and json_rows is None:
        last = max((i for i, line in enumerate(lines) if line.strip()), default=None)
        if last is not None:
            rejected.append((lines[last].strip(), "cut_off"))
            lines = lines[:last]
    for raw in lines:
        line = raw.strip()
        if not line or set(line) <= set("-=*_#~`"):  # blank lines, rules, code fences
            continue
        cleaned, reason = clean_line(line, label)
        if reason:
            rejected.append((line, reason))
        else:
            candidates.append(cleaned)
    return Parsed(candidates, rejected)


def clean_line(line: str, label: str | None = None) -> tuple[str, str | None]:
    """(text, None) for a candidate, or (line, reason) for a line that is not one."""
    text = line.strip()
    if text.startswith("#") and not re.match(r"#\d", text):
        return line, "meta"  # a Markdown heading
    had_marker = False
    for _ in range(3):  # "1. - **text**" carries several layers
        stripped = _LEAD_IN.sub("", _MARKER.sub("", text, count=1), count=1).strip()
        if stripped == text:
            break
        had_marker, text = True, stripped
    text = _strip_emphasis(text)
    if label and text.strip(" .:*_").lower() == label.lower():
        return line, "meta"  # a heading naming the label
    if label and text.lower().startswith(f"{label.lower()}:"):
        text = text[len(label) + 1:].strip()
    text = _unquote(text)
    if not text:
        return line, "empty"
    if label and "_" in label and label.lower() in text.lower():
        # An identifier such as pending_cash_withdrawal is the prompt's word, not a customer's: the line
        # talks about the task. The teacher would keep it (the label's own words are in it).
        return line, "meta"
    bare = text.lstrip("([ ")
    if _META_START.match(bare) or _META_ANYWHERE.search(text) or (text.endswith(":") and not had_marker):
        return line, "meta"
    return text, None


# "**Text:** ..." / "**Example:** ..." lead-ins in bold
_LEAD_IN = re.compile(r"^\*\*(?:text|example|note|label)\s*\d*:?\*\*:?\s*", re.IGNORECASE)


def _strip_emphasis(text: str) -> str:
    for mark in ("**", "__", "*", "_"):
        if text.startswith(mark) and text.endswith(mark) and len(text) > 2 * len(mark):
            return text[len(mark):-len(mark)].strip()
    return text


def _unquote(text: str) -> str:
    for _ in range(2):
        for left, right in _QUOTES:
            if len(text) >= 2 and text.startswith(left) and text.endswith(right):
                text = text[len(left):-len(right)].strip()
        # a trailing comma after a quoted item, as in a pasted list: "text",
        if len(text) >= 3 and text[0] in "\"“" and text.endswith(("\",", "”,")):
            text = text[1:-2].strip()
    return text


def _json_list(text: str) -> list[str] | None:
    """A model that answers with a JSON array of strings (or of {"text": ...}) gets its items."""
    body = text.strip()
    if body.startswith("```"):
        body = body.strip("`").removeprefix("json").strip()
    if not body.startswith("["):
        return None
    try:
        data = json.loads(body)
    except json.JSONDecodeError:
        return None
    if not isinstance(data, list):
        return None
    items = [item.get("text") if isinstance(item, dict) else item for item in data]
    return [item for item in items if isinstance(item, str)]

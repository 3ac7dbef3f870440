"""Few-shot prompts: k real examples of one label, rotated between requests, from a template.

Why rotation: a model shown the same four examples every time writes the same forty rows. The
label's examples are shuffled once (from the seed) and request *i* takes the *i*-th window of
``shots`` of them, so consecutive requests see different examples and a rerun sees the same ones.

Template placeholders (a plain text file, ``--template FILE``): ``{label}`` the label asked for,
``{examples}`` the few-shot examples as a bulleted list, ``{n}`` how many rows to write, ``{labels}``
every label of the task (comma-separated). Any other ``{word}`` is an error (named with its line);
``{{`` and ``}}`` write literal braces.
"""

from __future__ import annotations

import hashlib
import random
import re
from dataclasses import dataclass
from pathlib import Path

PLACEHOLDERS = ("label", "examples", "n", "labels")

DEFAULT_TEMPLATE = """\
Here are real examples of texts labelled "{label}" (the labels of this task are: {labels}):

{examples}

Write {n} new, different texts that would also be labelled "{label}". Vary the length, wording, \
tone and details; do not copy the examples. Write one text per line, with no numbering, no quotes \
and no other commentary."""


@dataclass(frozen=True)
class Prompt:
    label: str
    request: int  # index of this request among the label's requests
    messages: list  # chat messages: [{"role", "content"}, ...]
    hash: str  # sha256 of the messages, first 16 hex digits: ties a row to the exact prompt
    shots: tuple[str, ...]


def load_template(path: str | None) -> str:
    """The template text (checked), or the built-in one."""
    if not path:
        return DEFAULT_TEMPLATE
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"--template {path}: no such file")
    text = file.read_text(encoding="utf-8")
    for number, line in enumerate(text.split("\n"), 1):
        for name in re.findall(r"(?<!\{)\{([^{}]*)\}(?!\})", line):
            if name not in PLACEHOLDERS:
                raise ValueError(f"{path}:{number}: unknown placeholder {{{name}}}; use "
                                 + ", ".join(f"{{{p}}}" for p in PLACEHOLDERS) + " (write {{ }} for braces)")
    if "{label}" not in text:
        raise ValueError(f"{path}: the template never says {{label}}, so the model cannot know which label to write")
    return text


class PromptBuilder:
    """Deterministic prompts: request *i* of a label is the same for the same seed and data."""

    def __init__(self, examples_by_label: dict[str, list[str]], template: str, system_prompt: str,
                 shots: int, per_request: int, seed: int) -> None:
        self._template, self._system = template, system_prompt
        self._shots, self._n = shots, per_request
        self._labels = ", ".join(examples_by_label)
        self._order = {}
        for label, texts in examples_by_label.items():
            order = list(texts)
            random.Random(f"{seed}:{label}").shuffle(order)
            self._order[label] = order

    def build(self, label: str, request: int) -> Prompt:
        order = self._order[label]
        k = min(self._shots, len(order))
        # Windows of k when there are enough examples; otherwise every example, in a rotated order.
        start = request % len(order) if k >= len(order) else (request * k) % len(order)
        shots = tuple(order[(start + j) % len(order)] for j in range(k))
        values = {"label": label, "labels": self._labels, "n": str(self._n),
                  "examples": "\n".join(f"- {text}" for text in shots)}
        user = re.sub(r"\{\{|\}\}|\{(" + "|".join(PLACEHOLDERS) + r")\}",
                      lambda m: values[m.group(1)] if m.group(1) else m.group(0)[0], self._template)
        messages = ([{"role": "system", "content": self._system}] if self._system else []) + \
            [{"role": "user", "content": user}]
        digest = hashlib.sha256(repr(messages).encode("utf-8")).hexdigest()[:16]
        return Prompt(label, request, messages, digest, shots)


def request_seed(seed: int, label: str, request: int) -> int:
    """A per-request sampling seed: replaying request *i* samples the same tokens (mlx backend)."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{label}:{request}".encode()).digest()[:4], "little")

"""Checks on labelled data right after reading: conflicts, duplicates, leakage and odd labels.

Why at load time: each of these silently skews training or evaluation. A text labelled two ways
teaches noise; a duplicate weighs twice; an evaluation text that is also a training text makes the
score optimistic; a one-example label can never be held out; a stray "3" among word labels (a
shifted CSV column) becomes a class of its own. Conflicts are errors (only the user knows which
label is right); the rest are warnings as ``file:line: ...`` strings, counted, never silent.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from dataclasses import asdict, dataclass, field

from mlx_distill.data.files import read_examples
from mlx_distill.data.normalise import normalise_text
from mlx_distill.data.overlap import group_by_text
from mlx_distill.data.records import DataError, Example, capped, problems_error

_SHOWN = 10  # warnings of one kind before "... and N more"
_LEAK_EXAMPLES = 3
_NUMBER = re.compile(r"[+-]?\d+(\.\d+)?")
_NAMES = {"train": "training", "evaluation": "evaluation", "test": "test"}


@dataclass(frozen=True)
class SplitCounts:
    """Rows of one split: as read, kept after dedupe, duplicates dropped, kept rows also in train."""

    rows: int
    kept: int
    duplicates: int
    in_train: int = 0


@dataclass(frozen=True)
class DataReport:
    """What :func:`check_labelled` found, and the deduplicated splits to train and evaluate on."""

    train: list[Example]
    evaluation: list[Example] | None
    test: list[Example] | None
    counts: dict[str, SplitCounts]
    train_label_counts: dict[str, int]
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        """For report.json: counts, label counts and the warnings (texts themselves are not copied)."""
        return {
            "counts": {name: asdict(c) for name, c in self.counts.items()},
            "train_label_counts": dict(self.train_label_counts),
            "warnings": list(self.warnings),
        }


def check_labelled(
    train: list[Example], evaluation: list[Example] | None = None, test: list[Example] | None = None
) -> DataReport:
    """Check and deduplicate labelled splits. Call it before ``stratified_split`` so a duplicate
    cannot land on both sides of the split.

    Raises :class:`DataError` when a split has no rows or one text carries two labels within a split
    (all such texts listed, with every place). Returns a :class:`DataReport` whose lists keep the
    first row of each normalised text, and whose warnings cover duplicates, eval/test texts that
    also occur in train, one-example labels, eval/test labels missing from train, a numeric label
    among word labels (or the reverse) and labels that differ only in case or spacing.
    """
    given = (("train", train), ("evaluation", evaluation), ("test", test))
    splits = {name: rows for name, rows in given if rows is not None}
    grouped: dict[str, dict[str, list[Example]]] = {}
    conflicts: list[str] = []
    for name, rows in splits.items():
        if not rows:
            raise DataError(f"the {_NAMES[name]} data has no rows; give a file with text,label rows")
        grouped[name] = group_by_text(rows)
        conflicts += [_conflict(group) for group in grouped[name].values() if len({e.label for e in group}) > 1]
    if conflicts:
        header = f"{len(conflicts)} text(s) have more than one label; give each text one label and run again"
        raise problems_error(header, conflicts)

    warnings: list[str] = []
    kept: dict[str, list[Example]] = {}
    for name, groups in grouped.items():
        repeats = [f"{e.source}: same text and label as {group[0].source}; kept once"
                   for group in groups.values() for e in group[1:]]
        warnings += capped(repeats, _SHOWN, f"duplicate rows in the {_NAMES[name]} data")
        kept[name] = [group[0] for group in groups.values()]

    in_train = {name: _leakage(name, kept[name], grouped["train"], warnings) for name in kept if name != "train"}
    labels = Counter(e.label for e in kept["train"])
    _label_warnings(kept, labels, warnings)

    counts = {
        name: SplitCounts(len(rows), len(kept[name]), len(rows) - len(kept[name]), in_train.get(name, 0))
        for name, rows in splits.items()
    }
    return DataReport(
        train=kept["train"], evaluation=kept.get("evaluation"), test=kept.get("test"),
        counts=counts, train_label_counts=dict(sorted(labels.items())), warnings=warnings,
    )


def _snippet(text: str, width: int = 40) -> str:
    return repr(text if len(text) <= width else text[: width - 1] + "…")


def _conflict(group: list[Example]) -> str:
    places: dict[str | None, list[str]] = {}
    for e in group:
        places.setdefault(e.label, []).append(e.source)
    shown = " and ".join(f"{label!r} ({', '.join(capped(sources, 5))})" for label, sources in places.items())
    return f"{group[0].source}: {_snippet(group[0].text)} is labelled {shown}"


def _leakage(name: str, rows: list[Example], train: dict[str, list[Example]], warnings: list[str]) -> int:
    """Count (and warn about) kept rows of an eval/test split whose text occurs in the training data."""
    leaked = [(e, train[key][0]) for e in rows if (key := normalise_text(e.text)) in train]
    if leaked:
        pairs = [f"{e.source} = {t.source}" + ("" if e.label == t.label else f" (labelled {t.label!r} there)")
                 for e, t in leaked]
        more = f" and {len(pairs) - _LEAK_EXAMPLES} more" if len(pairs) > _LEAK_EXAMPLES else ""
        where = leaked[0][0].source.rsplit(":", 1)[0]
        warnings.append(
            f"{where}: {len(leaked)} of {len(rows)} {name} texts also appear in the training data, so {name} "
            f"scores will be optimistic (leakage); e.g. {', '.join(pairs[:_LEAK_EXAMPLES])}{more}"
        )
    return len(leaked)


def _label_warnings(kept: dict[str, list[Example]], labels: Counter, warnings: list[str]) -> None:
    first = {e.label: e.source for e in kept["train"][::-1]}
    singles = [f"{first[label]}: label {label!r} has a single example in the training data, so it can never be "
               "held out or evaluated; add more examples of it" for label, n in labels.items() if n == 1]
    warnings += capped(singles, _SHOWN, "one-example labels")
    for name in ("evaluation", "test"):
        unseen: dict[str, list[Example]] = {}
        for e in kept.get(name, []):
            if e.label not in labels:
                unseen.setdefault(e.label, []).append(e)
        warnings += capped(
            [f"{rows[0].source}: label {label!r} ({len(rows)} {name} row(s)) does not occur in the training data; "
             "a classifier trained on it cannot predict this label" for label, rows in unseen.items()], _SHOWN)

    every = [e for rows in kept.values() for e in rows]
    numeric = [e for e in every if _NUMBER.fullmatch(e.label or "")]
    words = [e for e in every if not _NUMBER.fullmatch(e.label or "")]
    if numeric and words:
        if len(numeric) <= len(words):  # the rarer kind is the odd one out
            odd, rest, kind, other = numeric, words, "a number", "words"
        else:
            odd, rest, kind, other = words, numeric, "a word", "numbers"
        names = sorted({e.label for e in rest})
        shown = ", ".join(repr(n) for n in names[:5]) + (", ..." if len(names) > 5 else "")
        warnings += capped(
            [f"{e.source}: label {e.label!r} is {kind} while the other labels are {other} ({shown}); a shifted or "
             "missing column? As it is, it becomes a class of its own" for e in odd], _SHOWN, f"rows with {kind} label")

    variants: dict[str, dict[str, str]] = {}
    for e in every:
        variants.setdefault(normalise_text(e.label or ""), {}).setdefault(e.label, e.source)
    for spellings in variants.values():
        if len(spellings) > 1:
            listed = " and ".join(f"{label!r} ({source})" for label, source in spellings.items())
            warnings.append(f"{next(iter(spellings.values()))}: labels {listed} differ only in case or spacing; "
                            "they are separate classes — use one spelling")


def read_labelled(train: str | os.PathLike[str], evaluation: str | os.PathLike[str] | None = None,
                  test: str | os.PathLike[str] | None = None) -> DataReport:
    """Read the labelled files of a run and :func:`check_labelled` them together: what every
    command and the build do before they split or train."""
    return check_labelled(read_examples(train), read_examples(evaluation) if evaluation else None,
                          read_examples(test) if test else None)

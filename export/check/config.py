"""What a check run is told: texts, tolerances, which checks. Every field has a default."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

#: Real English sentences of different lengths (a few words up to longer than most max lengths),
#: so parity covers short, padded, and truncated inputs.
DEFAULT_TEXTS: tuple[str, ...] = (
    "Buy milk.",
    "The cat sat on the mat.",
    "This film was not very good, and the plot was boring.",
    "Call the dentist tomorrow morning to move the appointment.",
    "I loved the acting, but the ending felt rushed and a little confusing.",
    "Remember to send the quarterly report to the finance team before Friday afternoon.",
    "What a great day!",
    "After a long week of meetings, deadlines and late trains, the quiet weekend by the sea was exactly "
    "what the whole family needed, and nobody wanted to go home on Sunday evening.",
)

#: Check names in the order they run and appear in the report.
CHECK_NAMES: tuple[str, ...] = ("shape", "parity", "parity-reference", "extreme-inputs", "updatable-lint",
                                "simulated-update", "fp16")


@dataclass
class CheckConfig:
    """Settings of :func:`export.check.run_checks`.

    ``tolerance`` bounds the max |difference| of fp32 probabilities between artefacts;
    ``sum_tolerance`` how far a probability vector may sum from 1; ``update_epochs`` overrides the
    model's own epoch count for the simulated update (None = the model's default);
    ``fp16_tolerance`` bounds the emulated-fp16 vs fp32 output drift (the export's own fp16 check
    uses 0.05 on probabilities); it also replaces ``tolerance`` (and ``sum_tolerance``) in parity and
    extreme inputs for a file that computes in fp16 (an fp16 ML Program, or the head fed its pooled
    embeddings): the bound the exporter chose fp16 by, so the shipped file's drift is reported and
    held to it; ``only`` restricts the run to some checks (None = all).
    """

    texts: Optional[list[str]] = None
    tolerance: float = 1e-4
    sum_tolerance: float = 1e-4
    update_epochs: Optional[int] = None
    fp16_tolerance: float = 0.05
    random_rows: int = 3
    seed: int = 0
    only: Optional[tuple[str, ...]] = None
    #: write check.json (into the export folder unless run_checks gets an output path)
    write_json: bool = True

    def __post_init__(self) -> None:
        if self.texts is not None and not [t for t in self.texts if t.strip()]:
            raise ValueError("CheckConfig.texts holds no non-empty text")
        if not self.tolerance > 0 or not self.sum_tolerance > 0 or not self.fp16_tolerance > 0:
            raise ValueError("CheckConfig tolerances must be > 0")
        if self.update_epochs is not None and self.update_epochs < 1:
            raise ValueError(f"CheckConfig.update_epochs must be >= 1, got {self.update_epochs}")
        if self.random_rows < 1:
            raise ValueError("CheckConfig.random_rows must be >= 1")
        if self.only is not None:
            unknown = [name for name in self.only if name not in CHECK_NAMES]
            if unknown:
                raise ValueError(f"CheckConfig.only: unknown checks {unknown}; known: {list(CHECK_NAMES)}")

    @property
    def check_texts(self) -> list[str]:
        return [t for t in (self.texts if self.texts is not None else DEFAULT_TEXTS) if t.strip()]

    def wants(self, name: str) -> bool:
        return self.only is None or name in self.only

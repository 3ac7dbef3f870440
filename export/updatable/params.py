"""Typed, validated on-device training parameters for the updatable head.

Core ML's Python builder accepts values the device later rejects (learning rate outside its
range, batch 0, epochs 0 all "work" in Python). Validating here, at construction, turns those
late device failures into an immediate error that names the field.

Each parameter ships with an allowed range or set, because the iOS side may override it through
``MLModelConfiguration.parameters`` / ``MLParameterKey`` only within what the model declares.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Optional

OptimizerName = Literal["sgd", "adam"]


class UpdateParamsError(ValueError):
    """An invalid update parameter; the message names the field and the allowed values.

    ``field`` and ``problem`` are kept apart so a caller can name the field its own way
    (the CLI's ``--learning-rate`` for ``learning_rate``): ``str(error) == f"{field} {problem}"``.
    """

    def __init__(self, field: Optional[str], problem: str) -> None:
        super().__init__(f"{field} {problem}" if field else problem)
        self.field = field
        self.problem = problem


DEFAULT_BATCH_SIZES: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64)
DEFAULT_EPOCHS: tuple[int, ...] = (1, 2, 5, 10, 20, 50, 100)


@dataclass(frozen=True)
class UpdateParams:
    """What the updatable head's ``updateParams`` will say.

    Defaults: SGD (no optimizer state per weight: Adam triples the memory of the trained layer),
    learning rate 0.01 adjustable on device in [1e-6, 1], mini-batch 8, 10 epochs, shuffled.
    """

    optimizer: OptimizerName = "sgd"
    learning_rate: float = 0.01
    learning_rate_range: tuple[float, float] = (1e-6, 1.0)
    batch_size: int = 8
    batch_sizes: tuple[int, ...] = DEFAULT_BATCH_SIZES
    epochs: int = 10
    epochs_allowed: tuple[int, ...] = DEFAULT_EPOCHS
    momentum: float = 0.0
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    shuffle: bool = True
    seed: Optional[int] = None
    #: (min, max) used for momentum / beta1 / beta2 / eps: the device checks default in range.
    unit_range: tuple[float, float] = field(default=(0.0, 1.0))

    def __post_init__(self) -> None:
        if self.optimizer not in ("sgd", "adam"):
            raise UpdateParamsError("optimizer", f"must be 'sgd' or 'adam', got {self.optimizer!r}")
        low, high = self.learning_rate_range
        if not 0.0 <= low < high:
            raise UpdateParamsError("learning_rate_range", f"{self.learning_rate_range} must satisfy 0 <= min < max")
        if not low <= self.learning_rate <= high:
            raise UpdateParamsError(
                "learning_rate", f"{self.learning_rate} is outside its allowed range [{low}, {high}]"
            )
        if self.batch_size <= 0:
            raise UpdateParamsError("batch_size", f"must be > 0, got {self.batch_size}")
        if any(b <= 0 for b in self.batch_sizes):
            raise UpdateParamsError("batch_sizes", f"must all be > 0, got {self.batch_sizes}")
        if self.epochs <= 0:
            raise UpdateParamsError("epochs", f"must be > 0, got {self.epochs}")
        if any(e <= 0 for e in self.epochs_allowed):
            raise UpdateParamsError("epochs_allowed", f"must all be > 0, got {self.epochs_allowed}")
        u_low, u_high = self.unit_range
        for name in ("momentum", "beta1", "beta2", "eps"):
            value = getattr(self, name)
            if not u_low <= value <= u_high:
                raise UpdateParamsError(name, f"{value} is outside its allowed range [{u_low}, {u_high}]")
        if self.seed is not None and self.seed < 0:
            raise UpdateParamsError("seed", f"must be >= 0, got {self.seed}")

    @property
    def allowed_batch_sizes(self) -> tuple[int, ...]:
        """The allowed set always contains the default (Core ML rejects it otherwise)."""
        return tuple(sorted(set(self.batch_sizes) | {self.batch_size}))

    @property
    def allowed_epochs(self) -> tuple[int, ...]:
        return tuple(sorted(set(self.epochs_allowed) | {self.epochs}))

"""On-device training parameters: what we write (``UpdateParams``) and what a saved spec holds
(``read_update_params`` -> ``SpecUpdateParams``, the one reader the linter, manifest and simulator use).

Core ML's Python builder accepts values the device later rejects (learning rate outside its
range, batch 0, epochs 0 all "work" in Python). Validating here, at construction, turns those
late device failures into an immediate error that names the field.

Each parameter ships with an allowed range or set, because the iOS side may override it through
``MLModelConfiguration.parameters`` / ``MLParameterKey`` only within what the model declares.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Optional

from export.runtime.neuralnetwork.spec_io import NN_TYPES, PIPELINE_TYPES, pipeline_models

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


# --- what a saved spec says ----------------------------------------------------------------------
# The one reader of a spec's update parameters: the linter (export.updatable.rules), the manifest
# (export.manifest) and the simulated update (export.runtime.neuralnetwork.training_config) all
# start from ``read_update_params`` and judge a value with ``SpecValue.problems``.

#: our field name -> the proto's (``SGDOptimizer`` / ``AdamOptimizer`` fields)
PROTO_NAMES = {"learning_rate": "learningRate", "mini_batch_size": "miniBatchSize", "momentum": "momentum",
               "beta1": "beta1", "beta2": "beta2", "eps": "eps", "epochs": "epochs", "seed": "seed"}
#: each optimizer's fields; all are required but SGD's momentum
OPTIMIZER_FIELDS = {"sgd": ("learning_rate", "mini_batch_size", "momentum"),
                    "adam": ("learning_rate", "mini_batch_size", "beta1", "beta2", "eps")}


@dataclass(frozen=True)
class SpecValue:
    """One parameter as stored: its default and the range or set the device may override it within."""

    default: float
    min: Optional[float] = None
    max: Optional[float] = None
    allowed: Optional[tuple] = None

    @classmethod
    def read(cls, param, integer: bool) -> "SpecValue":
        cast = int if integer else float
        if integer and param.HasField("set"):
            return cls(cast(param.defaultValue), allowed=tuple(int(v) for v in param.set.values))
        if param.HasField("range"):
            return cls(cast(param.defaultValue), cast(param.range.minValue), cast(param.range.maxValue))
        return cls(cast(param.defaultValue))

    def problems(self, name: str, positive: bool = False) -> list[str]:
        """What Core ML's ParameterValidator refuses: the default outside its range / set, and for a
        positive parameter (batch size, epochs) a default or allowed value <= 0."""
        out = []
        if positive and self.default <= 0:
            out.append(f"{name} default {self.default} must be > 0")
        if self.allowed is not None:
            values = list(self.allowed)
            if positive and any(v <= 0 for v in values):
                out.append(f"{name} allowed set {values} has non-positive values")
            if self.default not in values:
                out.append(f"{name} default {self.default} is not in its allowed set {values}")
        elif self.min is not None:
            low, high = self.min, self.max
            if positive and (low <= 0 or high <= 0):
                out.append(f"{name} allowed range [{low}, {high}] is not positive")
            if not low <= self.default <= high:
                out.append(f"{name} default {self.default} is outside its range [{low}, {high}]")
            if low > high:
                out.append(f"{name} range min {low} > max {high}")
        return out

    def override_problem(self, name: str, value: float) -> Optional[str]:
        """Why a run-time value (``MLUpdateTask``'s ``parameters``) is refused, or None."""
        if self.allowed is not None and value not in self.allowed:
            return f"{name}={value} is not in the model's allowed set {list(self.allowed)}"
        if self.min is not None and not self.min <= value <= self.max:
            return f"{name}={value} is outside the model's allowed range [{self.min}, {self.max}]"
        if isinstance(value, int) and value <= 0 and name in ("epochs", "miniBatchSize"):
            return f"{name} must be positive, got {value}"
        return None

    def as_dict(self) -> dict:
        out: dict = {"default": self.default}
        if self.allowed is not None:
            out["allowed"] = list(self.allowed)
        elif self.min is not None:
            out.update(min=self.min, max=self.max)
        return out


@dataclass(frozen=True)
class SpecLoss:
    name: str
    kind: Optional[str]  # the proto's oneof: categoricalCrossEntropyLossLayer, meanSquaredErrorLossLayer
    input: str
    target: str


@dataclass(frozen=True)
class SpecUpdateParams:
    """An updatable NeuralNetwork's ``updateParams``, typed."""

    optimizer: Optional[str]  # "sgd" | "adam"; None: no optimizer set
    values: dict  # our field name (PROTO_NAMES) -> SpecValue, only the ones the spec sets
    shuffle: bool
    losses: tuple  # SpecLoss, in the spec's order
    updatable_layers: tuple  # layer names

    def problems(self) -> list[tuple[str, str]]:
        """(rule, message) for every parameter Core ML would refuse (rule ids of export.updatable.rules)."""
        if self.optimizer is None:
            return [("optimizer", "no SGD or Adam optimizer is set")]
        out = []
        title = {"sgd": "SGD", "adam": "Adam"}[self.optimizer]
        for name in OPTIMIZER_FIELDS[self.optimizer]:
            value, proto = self.values.get(name), PROTO_NAMES[name]
            if value is None:
                if name != "momentum":
                    out.append(("optimizer", f"{title} optimizer has no {proto}"))
            elif name == "mini_batch_size":
                out += [("mini-batch-size", p) for p in value.problems(proto, positive=True)]
            else:
                out += [("optimizer-default-in-range", p) for p in value.problems(proto)]
        if "epochs" not in self.values:
            out.append(("epochs", "updateParams.epochs is not set"))
        else:
            out += [("epochs", p) for p in self.values["epochs"].problems("epochs", positive=True)]
        if "seed" in self.values:
            out += [("seed", p) for p in self.values["seed"].problems("seed")]
        return out

    def as_manifest(self) -> dict:
        """The manifest's per-model ``update``: every value with its range or allowed set."""
        out: dict = {"optimizer": self.optimizer, "updatable_layers": list(self.updatable_layers),
                     "shuffle": self.shuffle}
        out.update({name: value.as_dict() for name, value in self.values.items()})
        losses = [{"name": loss.name, "type": loss.kind, "input": loss.input, "target": loss.target}
                  for loss in self.losses]
        out["loss"] = losses[0] if len(losses) == 1 else losses
        return out

    def summary(self) -> dict:
        """The defaults the device trains with, flat (``manifest.json`` -> ``update_config``, the report)."""
        out: dict = {"optimizer": self.optimizer}
        for name, value in self.values.items():
            key = "batch_size" if name == "mini_batch_size" else name
            out[key] = value.default
            if name == "learning_rate" and value.min is not None:
                out["learning_rate_range"] = [value.min, value.max]
            if value.allowed is not None:  # allowed_batch_sizes, allowed_epochs
                out[f"allowed_{key}" + ("" if key.endswith("s") else "s")] = list(value.allowed)
        out["shuffle"] = self.shuffle
        return out


def last_model(spec):
    """The model that trains in an updatable spec: the spec itself, or a pipeline's last model
    (recursively); None for an empty pipeline."""
    while spec is not None and spec.WhichOneof("Type") in PIPELINE_TYPES:
        models = pipeline_models(spec)
        spec = models[-1] if models else None
    return spec


def _updatable_network(spec):
    """The NeuralNetwork message holding ``updateParams``: ``spec`` itself if it is one, else that
    of ``last_model(spec)``; None for any other model type (unlike ``spec_io.network_of``, which
    raises: a spec without a network simply has no update parameters)."""
    if hasattr(spec, "updateParams"):
        return spec
    spec = last_model(spec)
    kind = spec.WhichOneof("Type") if spec is not None else None
    return getattr(spec, kind) if kind in NN_TYPES else None


def read_update_params(spec) -> Optional[SpecUpdateParams]:
    """The update parameters of a spec (a pipeline: its last model) or of a NeuralNetwork message;
    None when there is no network. Reads only: ``problems()`` judges."""
    network = _updatable_network(spec)
    if network is None:
        return None
    update = network.updateParams
    kind = update.optimizer.WhichOneof("OptimizerType")
    values: dict = {}
    if kind is not None:
        optimizer = getattr(update.optimizer, kind)
        for name in ("learning_rate", "mini_batch_size", "momentum", "beta1", "beta2", "eps"):
            proto = PROTO_NAMES[name]
            if proto in optimizer.DESCRIPTOR.fields_by_name and optimizer.HasField(proto):
                values[name] = SpecValue.read(getattr(optimizer, proto), integer=name == "mini_batch_size")
    for name in ("epochs", "seed"):
        if update.HasField(name):
            values[name] = SpecValue.read(getattr(update, name), integer=True)
    losses = []
    for loss in update.lossLayers:
        loss_kind = loss.WhichOneof("LossLayerType")
        body = getattr(loss, loss_kind) if loss_kind else None
        losses.append(SpecLoss(loss.name, loss_kind, body.input if body else "", body.target if body else ""))
    return SpecUpdateParams(
        optimizer={"sgdOptimizer": "sgd", "adamOptimizer": "adam"}.get(kind),
        values=values,
        shuffle=bool(update.shuffle.defaultValue) if update.HasField("shuffle") else False,
        losses=tuple(losses),
        updatable_layers=tuple(layer.name for layer in network.layers if layer.isUpdatable),
    )

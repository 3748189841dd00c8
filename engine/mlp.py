"""The Playground's networks, built in one place from a plain description.

`Recipe` says everything about a run that is not data: input features, hidden layers,
activation, initialisation, regularisation, task, optimizer, learning rate, batch size,
epochs and seed. From it `build` makes the feature map (fitted on the training rows),
the MLP, the loss with its penalty and the optimizer; `snapshot` reads what every hidden
unit computes, for the page to draw. The web page, the exported scripts
(`engine.export_script`) and the Engine page (which rebuilds the latest model) all go
through here, so a recipe means the same network everywhere.

Only the public engine API is used (nn, optim, Tensor): this module is a user of the
engine, like the scripts it exports.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import explain, nn, optim
from .tensor import Tensor

# key -> (label, function of the columns x1, x2): TensorFlow Playground's input features
FEATURES: dict[str, tuple[str, Callable[[np.ndarray, np.ndarray], np.ndarray]]] = {
    "x1": ("x₁", lambda a, b: a),
    "x2": ("x₂", lambda a, b: b),
    "x1sq": ("x₁²", lambda a, b: a * a),
    "x2sq": ("x₂²", lambda a, b: b * b),
    "x1x2": ("x₁x₂", lambda a, b: a * b),
    "sinx1": ("sin x₁", lambda a, b: np.sin(a)),
    "sinx2": ("sin x₂", lambda a, b: np.sin(b)),
}
# the same features as Python source, for the exported scripts
FEATURE_CODE = {"x1": "x1", "x2": "x2", "x1sq": "x1 * x1", "x2sq": "x2 * x2",
                "x1x2": "x1 * x2", "sinx1": "np.sin(x1)", "sinx2": "np.sin(x2)"}
ACTIVATIONS = ("tanh", "sigmoid", "ReLU", "leaky ReLU")
INITS = ("constant", "Glorot", "He")
REGS = ("none", "L1", "L2", "dropout", "batch norm", "dropout + batch norm")
OPTIMIZERS = ("batch GD", "SGD", "momentum", "AdaGrad", "RMSProp", "Adam")
TASKS = ("classification", "regression")
CONSTANT_INIT = 0.05
DROPOUT_P = 0.2
LEAKY_SLOPE = 0.05


@dataclass(frozen=True)
class Recipe:
    """A Playground run, apart from its data. `features`: keys of FEATURES for 2-D data,
    or () to feed the data's own columns. `penalty` is the L1/L2 strength."""

    features: tuple[str, ...] = ("x1", "x2")
    hidden: tuple[int, ...] = (8, 8)
    activation: str = "ReLU"
    init: str = "He"
    reg: str = "none"
    penalty: float = 1e-3
    task: str = "classification"
    optimizer: str = "Adam"
    lr: float = 0.01
    batch_size: int = 16
    epochs: int = 30
    seed: int = 0

    def __post_init__(self) -> None:
        for name, value, allowed in (("activation", self.activation, ACTIVATIONS),
                                     ("init", self.init, INITS), ("reg", self.reg, REGS),
                                     ("task", self.task, TASKS),
                                     ("optimizer", self.optimizer, OPTIMIZERS)):
            if value not in allowed:
                raise ValueError(f"unknown {name} {value!r}; choose one of "
                                 f"{', '.join(allowed)}")
        bad = [f for f in self.features if f not in FEATURES]
        if bad:
            raise ValueError(f"unknown input feature {bad[0]!r}; choose from "
                             f"{', '.join(FEATURES)}")
        if not self.hidden or min(self.hidden) < 1:
            raise ValueError(f"need at least one hidden layer of >= 1 unit, got {self.hidden}")
        if self.lr <= 0 or self.batch_size < 1 or self.epochs < 1 or self.penalty < 0:
            raise ValueError("lr, batch_size and epochs must be positive and penalty >= 0")

    def replace(self, **changes: Any) -> Recipe:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["features"], d["hidden"] = list(self.features), list(self.hidden)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Recipe:
        d = dict(d)
        d["features"], d["hidden"] = tuple(d["features"]), tuple(d["hidden"])
        return cls(**d)

    def batch_for(self, n_train: int) -> int:
        """Batch gradient descent uses every training row in each step."""
        return n_train if self.optimizer == "batch GD" else min(self.batch_size, n_train)

    def describe(self) -> str:
        layers = "x".join(str(h) for h in self.hidden)
        reg = "" if self.reg == "none" else f", {self.reg}" + (
            f" {self.penalty:g}" if self.reg in ("L1", "L2") else "")
        return (f"{self.activation}, {self.init} init{reg}, {self.optimizer} "
                f"lr={self.lr:g}, {layers}")


@dataclass(frozen=True)
class FeatureMap:
    """Raw inputs -> the network's standardised inputs. `keys`: FEATURES of the two raw
    columns, or () for the raw columns themselves; `scale` multiplies the raw values first
    (1/255 for pixels); mean and std come from the training rows."""

    keys: tuple[str, ...]
    mean: np.ndarray
    std: np.ndarray
    scale: float = 1.0
    standardize: bool = True

    @classmethod
    def fit(cls, keys: tuple[str, ...], x_train: np.ndarray, scale: float = 1.0,
            standardize: bool = True) -> FeatureMap:
        cols = _columns(keys, np.asarray(x_train, np.float32) * np.float32(scale))
        mean = cols.mean(axis=0) if standardize else np.zeros(cols.shape[1], np.float32)
        std = cols.std(axis=0) if standardize else np.ones(cols.shape[1], np.float32)
        std = np.where(std > 1e-6, std, 1.0)
        return cls(tuple(keys), mean.astype(np.float32), std.astype(np.float32), scale,
                   standardize)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        cols = _columns(self.keys, np.asarray(x, np.float32) * np.float32(self.scale))
        return ((cols - self.mean) / self.std).astype(np.float32)

    @property
    def size(self) -> int:
        return len(self.mean)

    def labels(self, raw_names: tuple[str, ...] = ()) -> list[str]:
        if self.keys:
            return [FEATURES[k][0] for k in self.keys]
        return list(raw_names) or [f"x{i + 1}" for i in range(self.size)]


def _columns(keys: tuple[str, ...], x: np.ndarray) -> np.ndarray:
    if not keys:
        return x.reshape(len(x), -1)
    if x.ndim != 2 or x.shape[1] != 2:
        raise ValueError(f"the features {', '.join(keys)} need 2-D inputs (x1, x2); got "
                         f"shape {x.shape}")
    a, b = x[:, 0], x[:, 1]
    return np.stack([FEATURES[k][1](a, b) for k in keys], 1).astype(np.float32)


def _activation(name: str) -> nn.Module:
    if name == "tanh":
        return nn.Tanh()
    if name == "sigmoid":
        return nn.Sigmoid()
    if name == "ReLU":
        return nn.ReLU()
    return nn.LeakyReLU(LEAKY_SLOPE)


def build_mlp(recipe: Recipe, n_in: int, n_out: int) -> nn.Sequential:
    """Linear [-> BatchNorm1d] -> activation [-> Dropout] per hidden layer, then a
    Linear to n_out; weights initialised by `recipe.init`, biases zero."""
    layers: list[nn.Module] = []
    d = n_in
    for width in recipe.hidden:
        layers.append(nn.Linear(d, width))
        if "batch norm" in recipe.reg:
            layers.append(nn.BatchNorm1d(width))
        layers.append(_activation(recipe.activation))
        if "dropout" in recipe.reg:
            layers.append(nn.Dropout(DROPOUT_P))
        d = width
    layers.append(nn.Linear(d, n_out))
    model = nn.Sequential(*layers)
    init_weights(model, recipe.init, recipe.activation)
    return model


def init_weights(model: nn.Module, scheme: str, activation: str) -> None:
    """constant: every weight CONSTANT_INIT (all units of a layer stay identical);
    Glorot: uniform with variance 2 / (fan_in + fan_out); He: normal with variance
    2 / fan_in (for the rectifier)."""
    for m in model.modules():
        if isinstance(m, nn.Linear):
            if scheme == "constant":
                nn.init.constant_(m.weight, CONSTANT_INIT)
            elif scheme == "Glorot":
                nn.init.xavier_uniform_(m.weight)
            elif activation == "leaky ReLU":
                nn.init.kaiming_normal_(m.weight, a=LEAKY_SLOPE, nonlinearity="leaky_relu")
            else:
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            nn.init.zeros_(m.bias)


def penalised_weights(model: nn.Module) -> list[Tensor]:
    return [m.weight for m in model.modules() if isinstance(m, nn.Linear)]


def make_loss(recipe: Recipe, model: nn.Module) -> Callable[[Tensor, Tensor], Tensor]:
    """Cross-entropy (classification) or mean squared error (regression), plus
    penalty * sum|w| (L1) or penalty * sum w^2 (L2) over the Linear weights."""
    weights = penalised_weights(model)
    reg, lam = recipe.reg, recipe.penalty
    base = (nn.functional.cross_entropy if recipe.task == "classification"
            else nn.functional.mse_loss)

    def loss(out: Tensor, y: Tensor) -> Tensor:
        value = base(out, y)
        if reg == "L1":
            value = value + lam * nn.functional.l1_penalty(weights)
        elif reg == "L2":
            value = value + lam * nn.functional.l2_penalty(weights)
        return value

    return loss


def make_optimizer(recipe: Recipe, params: Any) -> optim.Optimizer:
    name, lr = recipe.optimizer, recipe.lr
    if name in ("batch GD", "SGD"):
        return optim.SGD(params, lr=lr)
    if name == "momentum":
        return optim.SGD(params, lr=lr, momentum=0.9)
    if name == "AdaGrad":
        return optim.Adagrad(params, lr=lr)
    if name == "RMSProp":
        return optim.RMSprop(params, lr=lr)
    return optim.Adam(params, lr=lr)


def targets(y: np.ndarray, task: str) -> np.ndarray:
    """Labels as the loss wants them: int64 classes, or float32 (N, 1) targets."""
    if task == "classification":
        return np.asarray(y, np.int64)
    return np.asarray(y, np.float32).reshape(-1, 1)


@dataclass
class Built:
    """What `build` returns: the feature map, the network, its loss and optimizer."""

    features: FeatureMap
    model: nn.Sequential
    loss: Callable[[Tensor, Tensor], Tensor]
    optimizer: optim.Optimizer
    n_out: int


def output_size(recipe: Recipe, y_train: np.ndarray, classes: int | None = None) -> int:
    if recipe.task == "regression":
        return 1
    return int(classes if classes is not None else int(np.max(y_train)) + 1)


def build(recipe: Recipe, x_train: np.ndarray, y_train: np.ndarray, scale: float = 1.0,
          classes: int | None = None, standardize: bool = True) -> Built:
    """Features fitted on the training rows, then the network, loss and optimizer. Call
    `engine.manual_seed(recipe.seed)` first for reproducible weights."""
    fmap = FeatureMap.fit(recipe.features, x_train, scale, standardize)
    n_out = output_size(recipe, y_train, classes)
    model = build_mlp(recipe, fmap.size, n_out)
    return Built(fmap, model, make_loss(recipe, model), make_optimizer(recipe,
                                                                       model.parameters()),
                 n_out)


# -- what every unit computes -----------------------------------------------------------

@dataclass
class LayerView:
    """One hidden layer: its activation on the grid (or None), value range and states on
    the probe rows."""

    kind: str
    grid: np.ndarray | None     # (grid points, units)
    low: np.ndarray             # (units,) min over the probe rows
    high: np.ndarray            # (units,) max over the probe rows
    dead: np.ndarray            # (units,) bool
    saturated: np.ndarray       # (units,) bool


@dataclass
class Snapshot:
    """The network at one moment: hidden layers, every Linear's weights (out, in), the
    output on the grid (class probabilities or regression values), and summary counts."""

    layers: list[LayerView]
    weights: list[np.ndarray]
    output: np.ndarray | None
    dead: float = 0.0           # fraction of hidden units dead on the probe rows
    saturated: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


def output_values(out: np.ndarray, task: str) -> np.ndarray:
    """Softmax probabilities for a classifier's logits, the values for regression."""
    if task != "classification":
        return out.astype(np.float64)
    z = out - out.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def snapshot(model: nn.Module, probe: np.ndarray, grid: np.ndarray | None, task: str
             ) -> Snapshot:
    """What each hidden unit computes: on `grid` (network inputs of an input-plane grid,
    for 2-D data) and on `probe` (training rows: value range, dead and saturated)."""
    acts, _ = explain.activations(model, probe)
    grid_acts: list[Any] = [None] * len(acts)
    output = None
    if grid is not None:
        g, out = explain.activations(model, grid)
        grid_acts = [a for _, _, a in g]
        output = output_values(out, task)
    layers = []
    for (_, mod, a), ga in zip(acts, grid_acts, strict=True):
        dead, sat = explain.unit_flags(mod, a)
        layers.append(LayerView(type(mod).__name__, ga, a.min(axis=0), a.max(axis=0),
                                dead, sat))
    weights = [m.weight.numpy().copy() for m in model.modules() if isinstance(m, nn.Linear)]
    units = sum(len(v.dead) for v in layers) or 1
    return Snapshot(layers, weights, output,
                    dead=float(sum(v.dead.sum() for v in layers)) / units,
                    saturated=float(sum(v.saturated.sum() for v in layers)) / units)


__all__ = ["Recipe", "FeatureMap", "Built", "build", "build_mlp", "init_weights",
           "make_loss", "make_optimizer", "targets", "snapshot", "Snapshot", "LayerView",
           "FEATURES", "ACTIVATIONS", "INITS", "REGS", "OPTIMIZERS", "TASKS"]

"""The Playground's data: the 2-D sets, the MNIST subset and a user's CSV table, split
into training and test rows the same way for the network, the random forest and the
exported scripts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from webapp.common import ASSETS, once

# key -> label shown in the data menu
DATASETS = {"circle": "Circle", "xor": "XOR", "gauss": "Gaussian clusters (3 classes)",
            "moons": "Two moons", "spiral": "Spiral", "plane": "Plane (regression)",
            "multigauss": "Multi-Gaussian (regression)", "mnist": "MNIST subset",
            "csv": "Your CSV file"}
# the names links made before these sets had: still understood in a URL
LEGACY = {"MNIST subset": "mnist", "spirals": "spiral", "circles": "circle"}
N_POINTS = 500


@dataclass
class Dataset:
    """Training and test rows with what the page needs to draw and describe them."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    task: str                       # "classification" or "regression"
    classes: tuple[str, ...]        # class names ('' for regression)
    columns: tuple[str, ...]        # the raw input columns' names
    scale: float = 1.0              # raw value -> model input (1/255 for pixels)
    standardize: bool = True
    extent: tuple[float, float, float, float] | None = None  # x0, x1, y0, y1 of a 2-D plane
    image_side: int = 0             # 28 for MNIST: first-layer weights as images

    @property
    def plane(self) -> bool:
        return self.extent is not None

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    def arrays(self) -> dict[str, np.ndarray]:
        return {"x_train": self.x_train, "y_train": self.y_train, "x_test": self.x_test,
                "y_test": self.y_test}

    def describe(self) -> str:
        what = (f"{self.n_classes} classes" if self.task == "classification"
                else "regression")
        return (f"{DATASETS.get(self.name, self.name)}: {len(self.x_train)} training and "
                f"{len(self.x_test)} test rows, {what}")


@once
def mnist_subset() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The shipped 5,000 + 1,000 MNIST digits, pixels as uint8 rows of 784."""
    with np.load(ASSETS / "mnist_subset.npz", allow_pickle=False) as z:
        return (z["x_train"].reshape(len(z["x_train"]), -1), z["y_train"],
                z["x_test"].reshape(len(z["x_test"]), -1), z["y_test"])


def _extent(x: np.ndarray) -> tuple[float, float, float, float]:
    lo, hi = x.min(axis=0), x.max(axis=0)
    pad = 0.05 * np.maximum(hi - lo, 1e-6)
    return (float(lo[0] - pad[0]), float(hi[0] + pad[0]), float(lo[1] - pad[1]),
            float(hi[1] + pad[1]))


def load(name: str, noise: float = 0.0, train_fraction: float = 0.5, seed: int = 0,
         table: Any = None) -> Dataset:
    """The data set `name` (a DATASETS key); `table` is the engine.data.tabular.Table of
    an uploaded CSV file for name == "csv". Noise and the split apply to the 2-D sets and
    the CSV table; MNIST keeps its own training and test digits."""
    from engine.data.tabular import split
    from engine.data.toy import EXTENT, PLAYGROUND_SETS, make_playground

    if name == "mnist":
        x, y, xt, yt = mnist_subset()
        return Dataset(name, x, y, xt, yt, "classification", tuple(str(i) for i in range(10)),
                       tuple(f"pixel {i}" for i in range(784)), scale=1 / 255,
                       standardize=False, image_side=28)
    if name == "csv":
        if table is None:
            raise ValueError("no CSV file yet: upload one (a header row, numeric feature "
                             "columns and a label column)")
        x, y, xt, yt = split(table.x, table.y, train_fraction, seed)
        extent = _extent(table.x) if table.x.shape[1] == 2 else None
        return Dataset(name, x, y, xt, yt, table.task, table.classes, table.features,
                       extent=extent)
    if name not in PLAYGROUND_SETS:
        raise ValueError(f"unknown data set {name!r}; choose one of {', '.join(DATASETS)}")
    x, y = make_playground(name, N_POINTS, noise, seed)
    task = PLAYGROUND_SETS[name]
    classes = tuple(str(c) for c in range(int(y.max()) + 1)) if task == "classification" \
        else ()
    x, y, xt, yt = split(x, y, train_fraction, seed)
    return Dataset(name, x, y, xt, yt, task, classes, ("x1", "x2"),
                   extent=(-EXTENT, EXTENT, -EXTENT, EXTENT))


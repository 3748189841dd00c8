"""Where batches come from ((X, y) arrays, a Dataset-like object, a batch factory) and
the metrics computed on them (on the device, read back once per epoch)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import numpy as np

from ..random import generator
from ..tensor import Tensor

MetricFn = Callable[[Tensor, Tensor], Any]


def accuracy(output: Tensor, target: Tensor) -> Tensor:
    """Fraction of rows whose largest score is the labelled class (a device scalar)."""
    return (output.argmax(-1) == target).astype(np.float32).mean()


def resolve_metrics(metrics: Any, y_example: np.ndarray | None) -> dict[str, MetricFn]:
    if metrics is None:  # accuracy for integer class labels, nothing for regression
        if y_example is not None and y_example.ndim == 1 and y_example.dtype.kind in "iu":
            return {"accuracy": accuracy}
        return {}
    if isinstance(metrics, Mapping):
        return dict(metrics)
    out: dict[str, MetricFn] = {}
    for m in metrics:
        if m == "accuracy":
            out["accuracy"] = accuracy
        elif callable(m):
            out[getattr(m, "__name__", f"metric{len(out)}")] = m
        else:
            raise ValueError(f"unknown metric {m!r}: use 'accuracy' or a function "
                             "(output, target) -> scalar")
    return out


class Source:
    """Batches of host arrays from (X, y) arrays, a Dataset-like object, or a factory."""

    def __init__(self, data: Any, name: str) -> None:
        self.name = name
        self.arrays: tuple[np.ndarray, np.ndarray] | None = None
        self.dataset: Any = None
        self.factory: Callable[[], Iterable[Any]] | None = None
        if isinstance(data, (tuple, list)) and len(data) == 2:
            x, y = (np.asarray(a.numpy() if isinstance(a, Tensor) else a) for a in data)
            if len(x) != len(y):
                raise ValueError(f"{name}: X has {len(x)} samples but y has {len(y)}")
            if len(x) == 0:
                raise ValueError(f"{name}: no samples")
            self.arrays = (x, y)
        elif hasattr(data, "__len__") and hasattr(data, "__getitem__"):
            self.dataset = data
        elif callable(data):
            self.factory = data
        else:
            raise TypeError(f"{name}: expected an (X, y) pair of arrays, a Dataset-like object "
                            "(__len__ and __getitem__ giving (x, y)), or a function returning "
                            f"an iterable of (xb, yb) batches; got {type(data).__name__}")

    def __len__(self) -> int:
        if self.arrays is not None:
            return len(self.arrays[0])
        if self.dataset is not None:
            return len(self.dataset)
        return 0

    def steps(self, batch_size: int) -> int | None:
        if self.factory is not None:
            return None
        return -(-len(self) // batch_size)

    def y_example(self) -> np.ndarray | None:
        if self.arrays is not None:
            return self.arrays[1][:1]
        if self.dataset is not None and len(self.dataset):
            return np.asarray([self.dataset[0][1]])
        return None

    def batches(self, batch_size: int, shuffle: bool) -> Iterator[tuple[Any, Any]]:
        if self.factory is not None:
            yield from self.factory()
            return
        n = len(self)
        order = generator().permutation(n) if shuffle else np.arange(n)
        for start in range(0, n, batch_size):
            idx = order[start:start + batch_size]
            if self.arrays is not None:
                x, y = self.arrays
                if shuffle:
                    yield x[idx], y[idx]
                else:  # views, no copy
                    yield x[start:start + batch_size], y[start:start + batch_size]
            else:
                items = [self.dataset[int(i)] for i in idx]
                yield (np.stack([np.asarray(a) for a, _ in items]),
                       np.stack([np.asarray(b) for _, b in items]))


def to_device(a: Any, device: str) -> Tensor:
    if isinstance(a, Tensor):
        return a.to(device)
    return Tensor(np.asarray(a), device=device)


def scalar(v: Any) -> float:
    return float(v.item()) if isinstance(v, Tensor) else float(v)

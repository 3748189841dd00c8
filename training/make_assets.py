"""Write the small demo assets the web app ships (compressed .npz, no pickle).

    python training/make_assets.py        # reads $DEMYSTIFY_DATA, writes webapp/assets/

- mnist_samples.npz: 300 MNIST test digits (30 per class) with labels, for the Digits page.
- mnist_subset.npz: 5,000 MNIST training digits (500 per class) + 1,000 test digits, the
  Playground's training data.
- cifar10_samples.npz: 300 CIFAR-10 test images (30 per class) with labels and class names.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.data import load_mnist  # noqa: E402
from engine.data.cifar10 import load_cifar10  # noqa: E402

OUT = Path(__file__).resolve().parent.parent / "webapp" / "assets"


def per_class(labels: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k indices of each class, in a shuffled but reproducible order."""
    idx = np.concatenate([rng.choice(np.flatnonzero(labels == c), k, replace=False)
                          for c in range(int(labels.max()) + 1)])
    return idx[rng.permutation(len(idx))]


def main() -> None:
    rng = np.random.default_rng(0)
    OUT.mkdir(parents=True, exist_ok=True)
    xtr, ytr = load_mnist(split="train")
    xte, yte = load_mnist(split="test")
    i = per_class(yte, 30, rng)
    np.savez_compressed(OUT / "mnist_samples.npz", images=xte[i], labels=yte[i])
    tr, te = per_class(ytr, 500, rng), per_class(yte, 100, rng)
    np.savez_compressed(OUT / "mnist_subset.npz", x_train=xtr[tr], y_train=ytr[tr],
                        x_test=xte[te], y_test=yte[te])
    cx, cy, classes = load_cifar10(split="test")
    i = per_class(cy, 30, rng)
    np.savez_compressed(OUT / "cifar10_samples.npz", images=cx[i], labels=cy[i],
                        classes=np.array(classes))
    for f in sorted(OUT.glob("*.npz")):
        print(f"{f.name}: {f.stat().st_size / 1024:.0f} KiB")


if __name__ == "__main__":
    main()

"""Train LeNet-5 on MNIST with the engine; export webapp/models/lenet5.onnx and its card.

Recipe: inputs in [0, 1] (no normalisation, so the drawing demo feeds pixels as they are),
random shifts of up to 2 px, Adam with a one-cycle schedule, 5,000 training digits held
out for validation each epoch, the official 10,000-digit test set for the final figure.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import engine  # noqa: E402
from engine import models, nn, optim  # noqa: E402
from engine.data import load_mnist  # noqa: E402
from engine.data.transforms import random_crop  # noqa: E402
from training import common  # noqa: E402

CLASSES = [str(d) for d in range(10)]


def main() -> None:
    args = common.parser("lenet5", epochs=15, batch_size=128, lr=3e-3).parse_args()
    engine.manual_seed(args.seed)
    device = engine.backends.resolve(args.device)
    xtr, ytr = load_mnist(args.data and Path(args.data) / "mnist", "train")
    xte, yte = load_mnist(args.data and Path(args.data) / "mnist", "test")
    xtr = (xtr[:, None] / 255.0).astype(np.float32)
    xte = (xte[:, None] / 255.0).astype(np.float32)
    xval, yval, xtr, ytr = xtr[-5000:], ytr[-5000:], xtr[:-5000], ytr[:-5000]

    model = models.lenet5().to(device)
    opt = optim.Adam(model.parameters(), lr=args.lr)
    sched = common.one_cycle(opt, args, len(xtr))
    rng = engine.random.generator()
    batches = common.shuffled_batches(
        xtr, ytr, args.batch_size, rng,
        lambda x: random_crop(x, 28, padding=2, rng=rng, layout="NCHW"))

    common.train_and_ship("lenet5", args, model, opt, sched, batches,
                          nn.functional.cross_entropy, (xval, yval), (xte, yte), CLASSES, {
        "title": "LeNet-5 on MNIST",
        "summary": "LeNet-5 (LeCun et al. 1998; ReLU and max pooling instead of the original "
                   "tanh and subsampling), trained from scratch by the Demystify engine. "
                   "Input: 1x28x28 grey digits, white ink on black, values in [0, 1].",
        "test_set": "MNIST official test set, 10,000 digits",
        "architecture": "conv5x5-6 (pad 2), maxpool 2, conv5x5-16, maxpool 2, fc 120, fc 84, "
                        "fc 10; ReLU",
        "data": "MNIST train (55,000 digits; the last 5,000 are the validation set)",
        "recipe": f"Adam, one-cycle lr peak {args.lr:g}, batch {args.batch_size}, "
                  f"{args.epochs} epochs, random shifts up to 2 px"})

if __name__ == "__main__":
    main()

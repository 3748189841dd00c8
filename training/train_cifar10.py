"""Train a narrow ResNet-9 on CIFAR-10 with the engine; export webapp/models/cifar10.onnx.

Recipe (Page's DAWNBench ResNet-9 at a quarter of the width, so a 2-core CPU can train it):
random crops with 4 px padding and horizontal flips, SGD with Nesterov momentum and weight
decay under a one-cycle schedule, label smoothing, 2,000 training images held out for
validation each epoch. Inputs are [0, 1] RGB: normalisation is the model's first layer.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import engine  # noqa: E402
from engine import models, nn, optim  # noqa: E402
from engine.data.cifar10 import load_cifar10  # noqa: E402
from engine.data.transforms import random_crop, random_hflip  # noqa: E402
from training import common  # noqa: E402


def to_nchw(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2), dtype=np.float32) / 255.0


def main() -> None:
    ap = common.parser("cifar10", epochs=16, batch_size=128, lr=0.1)
    ap.add_argument("--width", type=int, default=16, help="channels of the first stage")
    ap.add_argument("--weight-decay", type=float, default=5e-4)
    args = ap.parse_args()
    engine.manual_seed(args.seed)
    device = engine.backends.resolve(args.device)
    root = args.data and Path(args.data) / "cifar10"
    xtr, ytr, classes = load_cifar10(root, "train")
    xte, yte, _ = load_cifar10(root, "test")
    xtr, xte = to_nchw(xtr), to_nchw(xte)
    xval, yval, xtr, ytr = common.holdout(xtr, ytr, 2000)

    model = models.cifar_resnet(args.width).to(device)
    opt = optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, nesterov=True,
                    weight_decay=args.weight_decay)
    sched = common.one_cycle(opt, args, len(xtr), pct_start=0.25)
    rng = engine.random.generator()

    def augment(x):
        crop = random_crop(x, 32, padding=4, rng=rng, layout="NCHW")
        return random_hflip(crop, rng=rng, layout="NCHW")

    batches = common.shuffled_batches(xtr, ytr, args.batch_size, rng, augment)

    def loss_fn(out, y):
        return nn.functional.cross_entropy(out, y, label_smoothing=0.1)

    common.train_and_ship("cifar10", args, model, opt, sched, batches, loss_fn, (xval, yval),
                          (xte, yte), classes, {
        "title": "Narrow ResNet-9 on CIFAR-10",
        "summary": "A ResNet-9 (Page's DAWNBench design) at 1/4 of the width, trained from "
                   "scratch by the Demystify engine. Input: 3x32x32 RGB in [0, 1]; the model "
                   "normalises internally.",
        "test_set": "CIFAR-10 test split, 10,000 images (JPEG copy in ../shared/data)",
        "architecture": f"normalise, conv-bn-relu {args.width}, [conv-bn-relu {2 * args.width},"
                        f" maxpool, residual 2x conv-bn-relu], conv-bn-relu {4 * args.width}, "
                        f"maxpool, [conv-bn-relu {8 * args.width}, maxpool, residual], "
                        "maxpool 4, fc 10",
        "data": "CIFAR-10 train (48,000 images; 2,000 held out for validation, 200 per "
                "class, chosen with a fixed seed)",
        "recipe": f"SGD Nesterov momentum 0.9, weight decay {args.weight_decay:g}, one-cycle "
                  f"lr peak {args.lr:g}, batch {args.batch_size}, {args.epochs} epochs, "
                  "random crop (pad 4) + flip, label smoothing 0.1"})

if __name__ == "__main__":
    main()

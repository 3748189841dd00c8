"""What the row-by-row MNIST recipes share (train_seq_lstm.py, train_seq_attention.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import engine
from engine import nn, optim, sequences
from engine.data import load_mnist
from engine.data.sequence_tasks import mnist_rows
from training import common

CLASSES = [str(d) for d in range(10)]


def main(name: str, kind: str, epochs: int, batch_size: int, lr: float,
         card: dict[str, Any]) -> float:
    ap = common.parser(name, epochs=epochs, batch_size=batch_size, lr=lr)
    ap.add_argument("--subset", type=int, default=0,
                    help="train on the first N digits only (a quick check, not for shipping)")
    args = ap.parse_args()
    engine.manual_seed(args.seed)
    device = engine.backends.resolve(args.device)
    folder = args.data and Path(args.data) / "mnist"
    xtr, ytr = load_mnist(folder, "train")
    xte, yte = load_mnist(folder, "test")
    xtr, xte = mnist_rows(xtr), mnist_rows(xte)
    xval, yval, xtr, ytr = xtr[-5000:], ytr[-5000:], xtr[:-5000], ytr[:-5000]
    if args.subset:
        xtr, ytr = xtr[:args.subset], ytr[:args.subset]
    model = sequences.row_model(kind, **sequences.SHIPPED[kind]).to(device)
    opt = optim.Adam(model.parameters(), lr=args.lr)
    sched = common.one_cycle(opt, args, len(xtr))
    batches = common.shuffled_batches(xtr, ytr, args.batch_size, engine.random.generator())

    return common.train_and_ship(name, args, model, opt, sched, batches,
                                 nn.functional.cross_entropy, (xval, yval), (xte, yte),
                                 CLASSES, {
        **card,
        "test_set": "MNIST official test set, 10,000 digits",
        "data": "MNIST train (55,000 digits; the last 5,000 are the validation set)"
                + (f"; first {args.subset} only" if args.subset else ""),
        "recipe": f"Adam, one-cycle lr peak {args.lr:g}, batch {args.batch_size}, "
                  f"{args.epochs} epochs"})

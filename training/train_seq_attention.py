"""Train a small attention model that reads MNIST digits as 28 row tokens; export
webapp/models/seq_attention.onnx and its card.

Recipe: each row embedded by a linear layer plus a sinusoidal positional encoding, two
transformer encoder layers (d=64, 4 heads), attention pooling with one learned query
(its weights over the rows are what the Sequences page shows), a linear head; Adam with a
one-cycle schedule, 5,000 training digits held out for validation, the official test set
for the final figure.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from training import seq_common  # noqa: E402


def main() -> None:
    seq_common.main("seq_attention", "attention", epochs=15, batch_size=128, lr=2e-3, card={
        "title": "Row-by-row attention model on MNIST",
        "summary": "The 28 rows of a digit are 28 tokens: a linear embedding plus sinusoidal "
                   "positions, two transformer encoder layers, then attention pooling (one "
                   "learned query weighs the rows) and a linear head; trained from scratch "
                   "by the Demystify engine. Input: (N, 28, 28) rows in [0, 1].",
        "architecture": "linear 28 -> 64 + positional encoding; 2 transformer encoder "
                        "layers (d 64, 4 heads, feed-forward 128, dropout 0.1); attention "
                        "pooling; linear 64 -> 10",
    })


if __name__ == "__main__":
    main()

"""Train an LSTM that reads MNIST digits row by row (28 steps of 28 pixels); export
webapp/models/seq_lstm.onnx and its card.

Recipe: rows in [0, 1] (what the drawing canvas gives after MNIST preprocessing), one
LSTM layer of 128 units, a linear head on the last hidden state, Adam with a one-cycle
schedule, 5,000 training digits held out for validation each epoch, the official
10,000-digit test set for the final figure.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from training import seq_common  # noqa: E402


def main() -> None:
    seq_common.main("seq_lstm", "LSTM", epochs=12, batch_size=128, lr=3e-3, card={
        "title": "Row-by-row LSTM on MNIST",
        "summary": "An LSTM reads each 28x28 digit one row per time step (28 steps of 28 "
                   "pixels) and classifies it from its last hidden state; trained from "
                   "scratch by the Demystify engine. Input: (N, 28, 28) rows, white ink on "
                   "black, values in [0, 1].",
        "architecture": "LSTM(28 -> 128), 1 layer; linear 128 -> 10 on the last step",
    })


if __name__ == "__main__":
    main()

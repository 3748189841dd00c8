"""Sequences: why gates and attention work, measured live.

Part 1 (`sequences_rows`): an RNN, an LSTM and a small attention model read MNIST digits
row by row, trained side by side; the learner's own drawing shows the hidden state over
time, the LSTM's gates and the attention weights over the rows. Part 2
(`sequences_gradients`): vanishing and exploding gradients on the adding problem, RNN vs
LSTM, with and without gradient clipping. Settings live in the URL (`?length=100&...`).
"""

from __future__ import annotations

from typing import Any

import panel as pn

from webapp.common import shell
from webapp.sequences_gradients import MAX_LENGTH, GradientsDemo
from webapp.sequences_rows import RowsDemo

ROWS_INTRO = """### Reading a digit row by row
A recurrent network "cycles information through a loop": it reads the 28 rows of a digit
one per step and keeps what it has seen in its hidden state. Train the three models side
by side on a few thousand digits, then draw one: watch the hidden state change row by
row, the LSTM's gates decide what to forget and what to write, and the attention model
weigh the rows (attention is a generalised gate: weights over all the inputs at once)."""

GRADIENTS_INTRO = f"""### Vanishing and exploding gradients
In the adding problem the answer is the sum of two marked numbers, one in each half of the
sequence, so the gradient must travel from the last step back to the marks. In a plain
RNN it shrinks (or, with large recurrent weights, grows) at every step; the LSTM's cell
carries it across hundreds of steps. Exploding gradients are easily fixed by clipping
their norm; vanishing ones are not. Try both presets; sequences of up to {MAX_LENGTH}
steps."""


class SequencesPage(pn.viewable.Viewer):
    """Both parts of the page, with their settings synced to the URL."""

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.rows = RowsDemo()
        self.gradients = GradientsDemo()
        if pn.state.location is not None:
            pn.state.location.sync(self.rows, {"digits": "digits", "epochs": "epochs",
                                               "hidden": "hidden", "device": "device"})
            pn.state.location.sync(self.gradients, {
                "length": "length", "steps": "steps", "scale": "scale", "lr": "lr",
                "clip": "clip", "activation": "act", "optimizer": "opt"})
        self._layout = pn.Column(pn.pane.Markdown(ROWS_INTRO), self.rows,
                                 pn.pane.Markdown(GRADIENTS_INTRO), self.gradients,
                                 sizing_mode="stretch_width")

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout


def page() -> pn.viewable.Viewable:
    return shell("sequences", "Sequences", SequencesPage,
                 "RNN, LSTM and attention, trained live by this engine: what gates and "
                 "attention do, and why an LSTM learns long dependencies a plain RNN "
                 "cannot.")


if __name__.startswith("bokeh"):
    page().servable(title="Demystify · Sequences")

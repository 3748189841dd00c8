"""The seeds' five contrasts, "traditional neural networks vs deep learning", as one-click
experiments: each trains the traditional and the modern recipe on the same data with the
same seed, one after the other, and ends with a result card written from what was
measured (never from what was expected: if the traditional recipe wins, the card says so).

The recipes were chosen so each contrast changes one idea and finishes in seconds on a
laptop CPU: a 3x32 ReLU network on the spiral for activation, initialisation and
optimizer; a 3x64 network on the MNIST subset for regularisation; a 2x256 network on MNIST
for the device.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

from engine.mlp import Recipe
from webapp.playground_data import DATASETS
from webapp.playground_run import Result


@dataclass(frozen=True)
class Side:
    """One recipe of a contrast."""

    label: str
    recipe: Recipe
    device: str = "CPU"


@dataclass(frozen=True)
class Experiment:
    key: str
    title: str
    idea: str          # what the contrast shows, one sentence
    data: str
    traditional: Side
    modern: Side
    noise: float = 0.0

    def with_seed(self, seed: int) -> Experiment:
        from dataclasses import replace

        return replace(self, traditional=replace(self.traditional,
                                                 recipe=self.traditional.recipe.replace(
                                                     seed=seed)),
                       modern=replace(self.modern,
                                      recipe=self.modern.recipe.replace(seed=seed)))


SPIRAL = Recipe(features=("x1", "x2"), hidden=(32, 32, 32), activation="ReLU", init="He",
                optimizer="Adam", lr=0.01, batch_size=16, epochs=40)
MNIST = Recipe(features=(), hidden=(64, 64, 64), activation="ReLU", init="He",
               optimizer="SGD", lr=0.05, batch_size=64, epochs=3)
MNIST_WIDE = Recipe(features=(), hidden=(256, 256), activation="ReLU", init="He",
                    optimizer="Adam", lr=0.001, batch_size=128, epochs=1)

EXPERIMENTS: dict[str, Experiment] = {e.key: e for e in (
    Experiment("activation", "tanh vs ReLU",
               "A rectifier passes gradients through every active unit unchanged; tanh "
               "squeezes them, more so the deeper the network.", "spiral",
               Side("tanh, Glorot init", SPIRAL.replace(activation="tanh", init="Glorot")),
               Side("ReLU, He init", SPIRAL)),
    Experiment("init", "constant vs He init",
               "With every weight equal, all units of a layer compute the same thing and "
               "get the same gradient: the layer behaves like one unit. Random weights "
               "scaled to the fan-in (He, Glorot) break the symmetry.", "spiral",
               Side("constant init", SPIRAL.replace(init="constant")),
               Side("He init", SPIRAL)),
    Experiment("regularisation", "L2 vs dropout + batch norm",
               "A weight penalty only shrinks weights; batch norm keeps every layer's "
               "inputs well scaled so plain SGD trains fast, and dropout keeps units from "
               "relying on each other.", "mnist",
               Side("L2 penalty 1e-4", MNIST.replace(reg="L2", penalty=1e-4)),
               Side("dropout + batch norm", MNIST.replace(reg="dropout + batch norm"))),
    Experiment("optimizer", "batch GD vs Adam",
               "Batch gradient descent takes one step per pass over the data; minibatch "
               "Adam takes one per 16 rows, with a per-weight step size.", "spiral",
               Side("batch gradient descent, lr 0.1", SPIRAL.replace(optimizer="batch GD",
                                                                     lr=0.1)),
               Side("Adam, batches of 16", SPIRAL)),
    Experiment("device", "CPU vs GPU",
               "The same network and data on the CPU (NumPy) and on the GPU (WGSL compute "
               "shaders): the same arithmetic, so nearly the same accuracy; what differs "
               "is the time.", "mnist",
               Side("CPU", MNIST_WIDE, "CPU"), Side("GPU", MNIST_WIDE, "GPU")),
)}


def _pct(v: float) -> str:
    return f"{100 * v:.1f}%"


def _side_line(side: Side, r: Result) -> str:
    units = []
    if r.dead >= 0.005:
        units.append(f"{_pct(r.dead)} of hidden units dead")
    if r.saturated >= 0.005:
        units.append(f"{_pct(r.saturated)} saturated")
    tail = f", {', '.join(units)}" if units else ""
    why = "" if r.why == "finished" else f" ({html.escape(r.why)})"
    return (f"<b>{html.escape(side.label)}</b>: {_pct(r.metric)} test accuracy in "
            f"{r.train_s:.1f} s on {html.escape(r.device_name)}{tail}{why}")


def verdict(exp: Experiment, trad: Result, modern: Result) -> str:
    """One sentence comparing the two measured runs."""
    gap = 100 * (modern.metric - trad.metric)
    if exp.key == "device":
        if modern.device != "gpu":
            return ("There is no GPU here, so both ran on the CPU; open the page on a "
                    "machine or browser with a GPU (WebGPU) to compare.")
        fast, slow = (modern, trad) if modern.train_s < trad.train_s else (trad, modern)
        ratio = slow.train_s / max(fast.train_s, 1e-9)
        who = "GPU" if fast is modern else "CPU"
        same = (f"the same accuracy within {abs(gap):.1f} points" if abs(gap) < 1
                else f"accuracies {abs(gap):.1f} points apart")
        return (f"{who} was {ratio:.1f}× faster, with {same}."
                + (" A software GPU (llvmpipe, SwiftShader) or a small network favours the "
                   "CPU; a real GPU wins on wide layers." if who == "CPU" else ""))
    if abs(gap) < 0.5:
        return f"Both reach the same accuracy (within {abs(gap):.1f} points) here."
    if gap > 0:
        return f"The modern recipe is {gap:.1f} points more accurate."
    return (f"Here the traditional recipe won by {-gap:.1f} points: with this seed and so "
            "few epochs it can happen; try another seed.")


def result_card(exp: Experiment, trad: Result, modern: Result, seed: int) -> str:
    """The card for one finished contrast, as HTML."""
    data = DATASETS.get(exp.data, exp.data)
    return (f"<div class='result-card' data-experiment='{exp.key}'>"
            f"<div class='card-title'>{html.escape(exp.title)}</div>"
            f"<div class='muted'>{html.escape(data)}, seed {seed}, the same data and split "
            f"for both</div><ul><li>{_side_line(exp.modern, modern)}</li>"
            f"<li>{_side_line(exp.traditional, trad)}</li></ul>"
            f"<div class='card-verdict'>{html.escape(verdict(exp, trad, modern))}</div>"
            f"<div class='muted'>{html.escape(exp.idea)}</div></div>")


CARD_CSS = """
.result-card {border: 1px solid #d0d7de; border-radius: 8px; padding: 8px 12px; margin: 4px 0;}
.result-card ul {margin: 4px 0 4px 18px; padding: 0;}
.card-title {font-weight: bold;}
.card-verdict {font-weight: 600; margin: 2px 0;}
"""

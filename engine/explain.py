"""Looking inside models: class probabilities, saliency maps, activations, factor maps.

What the web app shows next to a prediction, computed here so the app only draws:
`probabilities` (softmax of a classifier's logits), `layer_outputs` (each layer of a
Sequential on one input), `read_layers` (both from one pass, only the layers asked
for), `occlusion_saliency` (how much the true class's probability drops when a patch is
greyed out), `gradient_saliency` (|d score / d pixel|), `activations` (what every hidden
unit computes on a batch), `unit_stats` (dead and saturated units per activation layer)
and `pca_2d`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from . import nn
from .nn.utils import evaluating
from .nn.utils import model_device as _device
from .tensor import Tensor, cat
from .train import predict


def probabilities(model: Any, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """softmax(model(x)) as a host (N, classes) float array, in eval mode."""
    return _softmax(predict(model, np.asarray(x, np.float32), batch_size))


def _softmax(logits: np.ndarray) -> np.ndarray:
    """The engine's own softmax on host logits, as float64 (what the pages plot). On the
    CPU: the logits are on the host already, and on the default device (a GPU) it was one
    more upload, dispatch and readback per reading (in a browser a readback is a Promise,
    which code called from JavaScript, as the static site's quick start, cannot wait for)."""
    return nn.functional.softmax(Tensor(logits, device="cpu"), dim=-1).numpy().astype(
        np.float64)


def layer_outputs(model: nn.Sequential, x: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """(layer name, output) for every layer of a Sequential run on batch x (in eval mode;
    the model's mode is restored after)."""
    return _run_layers(model, x, lambda name, layer, out: True)[1]


def read_layers(model: nn.Sequential, x: np.ndarray,
                keep: Callable[[str, Any, Tensor], bool]
                ) -> tuple[np.ndarray, list[tuple[str, np.ndarray]]]:
    """`probabilities(model, x)` and the `layer_outputs` that keep(name, layer, output)
    selects, from one forward pass: on a GPU each output read back is a round trip to
    the device (in a browser, a Promise), so a page that shows two feature maps reads
    three arrays, not every layer's and the logits again."""
    logits, outs = _run_layers(model, x, keep)
    return _softmax(logits), outs


def _run_layers(model: nn.Sequential, x: np.ndarray,
                keep: Callable[[str, Any, Tensor], bool]
                ) -> tuple[np.ndarray, list[tuple[str, np.ndarray]]]:
    """The last layer's output and the kept layers' outputs, read back at once: the whole
    pass and then one flat copy of the outputs are encoded before the one readback."""
    h = Tensor(np.ascontiguousarray(x, np.float32), device=_device(model))
    names, kept = [], []
    with evaluating(model):
        for name, layer in model.named_children():
            h = layer(h)
            if keep(name, layer, h):
                names.append(f"{name}: {type(layer).__name__}")
                kept.append(h)
        if not kept:
            return h.numpy(), []
        outs = [h, *kept]
        flat = cat([t.reshape(-1) for t in outs]).numpy()
    ends = np.cumsum([math.prod(t.shape) for t in outs])
    arrays = [piece.reshape(t.shape) for piece, t in zip(np.split(flat, ends[:-1]), outs)]
    return arrays[0], list(zip(names, arrays[1:]))


def occlusion_saliency(model: Any, image: np.ndarray, target: int, patch: int = 8,
                       stride: int = 4, fill: float = 0.5) -> np.ndarray:
    """(H, W) map: how much p(target) drops when a patch x patch square around each pixel
    is replaced by `fill` (grey). image: (C, H, W) in the model's input scale. One batch."""
    c, h, w = image.shape
    ys = list(range(0, max(h - patch, 0) + 1, stride))
    xs = list(range(0, max(w - patch, 0) + 1, stride))
    batch = np.repeat(image[None].astype(np.float32), len(ys) * len(xs) + 1, axis=0)
    k = 1
    for y in ys:
        for x0 in xs:
            batch[k, :, y:y + patch, x0:x0 + patch] = fill
            k += 1
    p = probabilities(model, batch)[:, target]
    drop = p[0] - p[1:]
    heat = np.zeros((h, w))
    count = np.zeros((h, w))
    k = 0
    for y in ys:
        for x0 in xs:
            heat[y:y + patch, x0:x0 + patch] += drop[k]
            count[y:y + patch, x0:x0 + patch] += 1
            k += 1
    return heat / np.maximum(count, 1)


def gradient_saliency(model: Any, image: np.ndarray, target: int) -> np.ndarray:
    """(H, W) map of max over channels of |d logit[target] / d pixel| (Simonyan et al.)."""
    model.eval()
    x = Tensor(image[None].astype(np.float32), device=_device(model), requires_grad=True)
    out = model(x)
    out[0, int(target)].backward()
    g = np.abs(x.grad.numpy()[0])
    model.zero_grad()
    return g.max(axis=0)


ACTIVATIONS = (nn.ReLU, nn.LeakyReLU, nn.Tanh, nn.Sigmoid)


def activations(model: nn.Module, x: np.ndarray) -> tuple[list[tuple[str, Any, np.ndarray]],
                                                           np.ndarray]:
    """([(name, module, output as (N, units))] for every activation layer, the model's
    output) on batch x, in eval mode under no_grad: what each hidden unit computes."""
    acts: list[tuple[str, Any, np.ndarray]] = []
    handles = []
    for name, m in model.named_modules():
        if isinstance(m, ACTIVATIONS):
            handles.append(m.register_forward_hook(
                lambda mod, inp, out, name=name: acts.append((name, mod, out.numpy()))))
    try:
        with evaluating(model):
            out = model(Tensor(np.ascontiguousarray(x, np.float32), device=_device(model)))
            out = out.numpy()
    finally:
        for hd in handles:
            hd.remove()
    return [(n, mod, a.reshape(len(a), -1)) for n, mod, a in acts], out


def unit_flags(module: Any, a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(dead, saturated) boolean per unit of an activation layer's (N, units) outputs:
    dead = a ReLU (or leaky ReLU) never positive on these inputs; saturated = tanh
    |a| > 0.97, or sigmoid a < 0.03 or a > 0.97, on more than 90% of them."""
    none = np.zeros(a.shape[1], bool)
    if isinstance(module, (nn.ReLU, nn.LeakyReLU)):
        return (a <= 0).all(axis=0), none
    if isinstance(module, nn.Tanh):
        return none, (np.abs(a) > 0.97).mean(axis=0) > 0.9
    if isinstance(module, nn.Sigmoid):
        return none, ((a < 0.03) | (a > 0.97)).mean(axis=0) > 0.9
    return none, none


def unit_stats(model: nn.Module, x: np.ndarray) -> list[dict[str, Any]]:
    """Per activation layer on batch x: the fraction of dead and of saturated units
    (see `unit_flags`)."""
    rows = []
    for i, (name, mod, a) in enumerate(activations(model, x)[0]):
        dead, sat = unit_flags(mod, a)
        rows.append({"layer": f"hidden {i + 1} ({name})", "kind": type(mod).__name__,
                     "units": a.shape[1], "dead": float(dead.mean()),
                     "saturated": float(sat.mean())})
    return rows


def pca_2d(points: np.ndarray) -> np.ndarray:
    """(N, D) -> (N, 2): coordinates on the two principal components."""
    p = np.asarray(points, np.float64)
    p = p - p.mean(axis=0)
    _, _, vt = np.linalg.svd(p, full_matrices=False)
    return p @ vt[:2].T


def grid_2d(xlim: tuple[float, float], ylim: tuple[float, float], n: int = 80
            ) -> tuple[np.ndarray, np.ndarray]:
    """An n x n grid of 2-D points over the box, as (n*n, 2) float32 and its (n, n) shape."""
    gx, gy = np.meshgrid(np.linspace(*xlim, n), np.linspace(*ylim, n))
    return np.stack([gx.ravel(), gy.ravel()], 1).astype(np.float32), np.array(gx.shape)


__all__ = ["probabilities", "layer_outputs", "read_layers", "occlusion_saliency",
           "gradient_saliency", "activations", "unit_flags", "unit_stats", "pca_2d", "grid_2d"]

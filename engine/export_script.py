"""A trained Playground network as a short Python script to take away (engine or PyTorch).

The script rebuilds the network layer by layer (the same code in both flavours: the
engine follows PyTorch's names), then either loads the trained weights and prints the
test metric the Playground measured, or, with --retrain, trains a fresh network with the
same recipe on the same data and prints what that gives. The engine flavour with
--retrain repeats the Playground's run exactly on the CPU (same seed, same order of
random draws); PyTorch draws other random numbers, so it lands close, not equal.

The data and the weights travel inside the script as base64 NumPy archives, read back
with `np.load(allow_pickle=False)`: the script needs only NumPy and the engine (or torch).
"""

from __future__ import annotations

import base64
import io
import textwrap

import numpy as np

from .mlp import CONSTANT_INIT, DROPOUT_P, FEATURE_CODE, LEAKY_SLOPE, FeatureMap, Recipe

FLAVOURS = ("engine", "torch")


def _blob(arrays: dict[str, np.ndarray]) -> str:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    text = base64.b64encode(buf.getvalue()).decode()
    return "\n".join(textwrap.wrap(text, 96))


def _array(a: np.ndarray) -> str:
    return "np.array([" + ", ".join(f"{float(v)!r}" for v in np.asarray(a).ravel()) + \
        "], np.float32)"


def _activation(recipe: Recipe) -> str:
    return {"tanh": "nn.Tanh()", "sigmoid": "nn.Sigmoid()", "ReLU": "nn.ReLU()",
            "leaky ReLU": f"nn.LeakyReLU({LEAKY_SLOPE})"}[recipe.activation]


def network_code(recipe: Recipe, n_in: int, n_out: int) -> str:
    """`def network()`: the layers and the initialisation, as engine.mlp.build_mlp makes
    them (valid for the engine and for PyTorch alike)."""
    lines, d = [], n_in
    for width in recipe.hidden:
        row = [f"nn.Linear({d}, {width})"]
        if "batch norm" in recipe.reg:
            row.append(f"nn.BatchNorm1d({width})")
        row.append(_activation(recipe))
        if "dropout" in recipe.reg:
            row.append(f"nn.Dropout({DROPOUT_P})")
        lines.append("        " + ", ".join(row) + ",")
        d = width
    lines.append(f"        nn.Linear({d}, {n_out}),")
    if recipe.init == "constant":
        init = f"nn.init.constant_(m.weight, {CONSTANT_INIT})"
    elif recipe.init == "Glorot":
        init = "nn.init.xavier_uniform_(m.weight)"
    elif recipe.activation == "leaky ReLU":
        init = f'nn.init.kaiming_normal_(m.weight, a={LEAKY_SLOPE}, nonlinearity="leaky_relu")'
    else:
        init = 'nn.init.kaiming_normal_(m.weight, nonlinearity="relu")'
    body = "\n".join(lines)
    reg = "" if recipe.reg in ("none", "L1", "L2") else f", {recipe.reg}"
    what = f"{'x'.join(map(str, recipe.hidden))} hidden units, {recipe.activation}{reg}"
    return f'''def network():
    """{what}; weights initialised {recipe.init}, biases zero."""
    model = nn.Sequential(
{body}
    )
    for m in model.modules():
        if isinstance(m, nn.Linear):
            {init}
            nn.init.zeros_(m.bias)
    return model
'''


def features_code(fmap: FeatureMap) -> str:
    what = ", ".join(fmap.labels()) if fmap.keys else "the raw columns"
    what += (", standardised with the training rows' mean and std" if fmap.standardize
             else "")
    scale = "" if fmap.scale == 1.0 else f" * np.float32({fmap.scale!r})"
    if fmap.keys:
        cols = ("    x1, x2 = x[:, 0], x[:, 1]\n    cols = np.stack(["
                + ", ".join(FEATURE_CODE[k] for k in fmap.keys) + "], 1)\n")
    else:
        cols = "    cols = x.reshape(len(x), -1)\n"
    return f'''MEAN = {_array(fmap.mean)}
STD = {_array(fmap.std)}


def features(x):
    """The network's inputs: {what}."""
    x = x.astype(np.float32){scale}
{cols}    return ((cols - MEAN) / STD).astype(np.float32)
'''


def _loss_code(recipe: Recipe, flavour: str) -> str:
    base = ("nn.functional.cross_entropy(out, y)" if recipe.task == "classification"
            else "nn.functional.mse_loss(out, y)")
    if recipe.reg not in ("L1", "L2"):
        return f'''def loss_fn(model):
    def loss(out, y):
        return {base}
    return loss
'''
    if flavour == "engine":
        pen = f"nn.functional.{'l1' if recipe.reg == 'L1' else 'l2'}_penalty(weights)"
    else:
        pen = ("sum(w.abs().sum() for w in weights)" if recipe.reg == "L1"
               else "sum((w * w).sum() for w in weights)")
    return f'''def loss_fn(model):
    weights = [m.weight for m in model.modules() if isinstance(m, nn.Linear)]

    def loss(out, y):
        return {base} + {recipe.penalty!r} * {pen}
    return loss
'''


def _optimizer_code(recipe: Recipe) -> str:
    lr = repr(recipe.lr)
    return {"batch GD": f"optim.SGD(params, lr={lr})", "SGD": f"optim.SGD(params, lr={lr})",
            "momentum": f"optim.SGD(params, lr={lr}, momentum=0.9)",
            "AdaGrad": f"optim.Adagrad(params, lr={lr})",
            "RMSProp": f"optim.RMSprop(params, lr={lr})",
            "Adam": f"optim.Adam(params, lr={lr})"}[recipe.optimizer]


ENGINE_MAIN = '''
def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\\n")[0])
    parser.add_argument("--retrain", action="store_true",
                        help="train from scratch instead of loading the trained weights")
    args = parser.parse_args()
    data = unpack(DATA)
    x_train, y_train = features(data["x_train"]), targets(data["y_train"])
    x_test, y_test = features(data["x_test"]), targets(data["y_test"])
    if args.retrain:
        engine.manual_seed(SEED)
        model = network()
        params = model.parameters()
        engine.fit(model, loss_fn(model), {optimizer}, (x_train, y_train), epochs=EPOCHS,
                   batch_size={batch}, progress=False)
    else:
        model = network()
        model.load_state_dict(unpack(WEIGHTS))
    loss, accuracy = evaluate(model, x_test, y_test, loss_fn={metric_loss})
    {report}
'''

TORCH_MAIN = '''
def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\\n")[0])
    parser.add_argument("--retrain", action="store_true",
                        help="train from scratch instead of loading the trained weights")
    args = parser.parse_args()
    data = unpack(DATA)
    x_train = torch.from_numpy(features(data["x_train"]))
    y_train = torch.from_numpy(targets(data["y_train"]))
    x_test = torch.from_numpy(features(data["x_test"]))
    y_test = torch.from_numpy(targets(data["y_test"]))
    if args.retrain:
        torch.manual_seed(SEED)
        model = network()
        params = model.parameters()
        opt, loss = {optimizer}, loss_fn(model)
        batch = {batch}
        for _ in range(EPOCHS):
            model.train()
            order = torch.randperm(len(x_train))
            for start in range(0, len(x_train), batch):
                idx = order[start:start + batch]
                opt.zero_grad()
                loss(model(x_train[idx]), y_train[idx]).backward()
                opt.step()
    else:
        model = network()
        model.load_state_dict({{k: torch.from_numpy(v) for k, v in unpack(WEIGHTS).items()}})
    model.eval()
    with torch.no_grad():
        out = model(x_test)
    {report}
'''


def script(recipe: Recipe, fmap: FeatureMap, n_out: int, state: dict[str, np.ndarray],
           data: dict[str, np.ndarray], flavour: str = "engine", title: str = "",
           measured: str = "", classes: tuple[str, ...] = ()) -> str:
    """The script's source. `data`: raw x_train, y_train, x_test, y_test (before the
    feature map); `state`: the trained model's state_dict; `measured`: what the
    Playground printed (goes into the docstring)."""
    if flavour not in FLAVOURS:
        raise ValueError(f"unknown flavour {flavour!r}; choose engine or torch")
    cls = recipe.task == "classification"
    n_train = len(data["x_train"])
    batch = recipe.batch_for(n_train)
    engine_flavour = flavour == "engine"
    if engine_flavour:
        head = ("import engine\nfrom engine import nn, optim\n"
                "from engine.train import evaluate\n")
        report = ('print(f"test accuracy: {accuracy:.4f}")' if cls
                  else 'print(f"test MSE: {loss:.6f}")')
        main = ENGINE_MAIN.format(optimizer=_optimizer_code(recipe), batch=batch,
                                  metric_loss="nn.functional.cross_entropy" if cls
                                  else "nn.functional.mse_loss", report=report)
        needs = "the Demystify engine (`engine` importable) and NumPy"
    else:
        head = "import torch\nfrom torch import nn, optim\n"
        report = ('print(f"test accuracy: {(out.argmax(1) == y_test).float().mean().item():.4f}")'
                  if cls else
                  'print(f"test MSE: {((out - y_test) ** 2).mean().item():.6f}")')
        main = TORCH_MAIN.format(optimizer=_optimizer_code(recipe), batch=batch,
                                 report=report)
        needs = "PyTorch and NumPy"
    targets = ('    return y.astype(np.int64)\n' if cls else
               '    return y.astype(np.float32).reshape(-1, 1)\n')
    class_note = f"\nClasses, by output index: {', '.join(classes)}." if classes else ""
    version = "engine" if engine_flavour else "PyTorch"
    doc = f'''"""{title or 'A Demystify Playground network'} ({version} version).

{recipe.describe()}; {recipe.epochs} epochs, batch {batch}, seed {recipe.seed}.
The Playground measured: {measured or 'n/a'}.{class_note}

    python this_script.py            rebuild the network, load the trained weights and
                                     print the test {'accuracy' if cls else 'MSE'}
    python this_script.py --retrain  train it again with the same recipe, then print it

Needs {needs}.
"""'''
    return f'''#!/usr/bin/env python3
{doc}

import argparse
import base64
import io

import numpy as np
{head}
SEED, EPOCHS = {recipe.seed}, {recipe.epochs}


{features_code(fmap)}

def targets(y):
{targets}

{network_code(recipe, fmap.size, n_out)}

{_loss_code(recipe, flavour)}

def unpack(text):
    """A NumPy archive stored as base64 text (arrays only; nothing is unpickled)."""
    with np.load(io.BytesIO(base64.b64decode(text)), allow_pickle=False) as z:
        return {{k: z[k] for k in z.files}}

{main}

DATA = """
{_blob({k: np.asarray(data[k]) for k in ("x_train", "y_train", "x_test", "y_test")})}
"""

WEIGHTS = """
{_blob({k: np.asarray(v) for k, v in state.items()})}
"""

if __name__ == "__main__":
    main()
'''


def filename(flavour: str) -> str:
    return "playground_model.py" if flavour == "engine" else "playground_model_torch.py"


def measured_text(task: str, metric: float) -> str:
    """The line the scripts print, for the same number."""
    return (f"test accuracy: {metric:.4f}" if task == "classification"
            else f"test MSE: {metric:.6f}")


__all__ = ["script", "network_code", "features_code", "filename", "measured_text", "FLAVOURS"]

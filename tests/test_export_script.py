"""engine.export_script: the exported Python scripts run and print the accuracy (or MSE)
the training measured; the engine's --retrain repeats the run exactly."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import engine
from engine import export_script, mlp
from engine.data.tabular import split
from engine.data.toy import make_playground
from engine.train import evaluate

ROOT = Path(__file__).resolve().parents[1]


def train_like_the_playground(recipe: mlp.Recipe, data: dict, scale: float = 1.0,
                              standardize: bool = True, classes: int | None = None):
    """One fit per epoch, as the page's run does; returns (built, measured line)."""
    engine.manual_seed(recipe.seed)
    built = mlp.build(recipe, data["x_train"], data["y_train"], scale, classes,
                      standardize)
    x, y = built.features(data["x_train"]), mlp.targets(data["y_train"], recipe.task)
    xt, yt = built.features(data["x_test"]), mlp.targets(data["y_test"], recipe.task)
    for _ in range(recipe.epochs):
        engine.fit(built.model, built.loss, built.optimizer, (x, y), val=(xt, yt), epochs=1,
                   batch_size=recipe.batch_for(len(x)), progress=False)
    cls = recipe.task == "classification"
    base = engine.nn.functional.cross_entropy if cls else engine.nn.functional.mse_loss
    loss, acc = evaluate(built.model, xt, yt, loss_fn=base)
    return built, export_script.measured_text(recipe.task, acc if cls else loss)


def run_script(path: Path, *args: str) -> str:
    out = subprocess.run([sys.executable, str(path), *args], capture_output=True, text=True,
                         cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout.strip()


def toy(kind: str, n: int = 200):
    x, y = make_playground(kind, n, 0.1, seed=0)
    xtr, ytr, xte, yte = split(x, y, 0.5, 0)
    return {"x_train": xtr, "y_train": ytr, "x_test": xte, "y_test": yte}


CASES = {
    "xor, L2, momentum": ("xor", mlp.Recipe(features=("x1", "x2", "x1x2"), hidden=(6, 6),
                                           reg="L2", optimizer="momentum", lr=0.02,
                                           epochs=6)),
    "gauss, dropout + batch norm": ("gauss", mlp.Recipe(features=("x1", "x2", "sinx1"),
                                                        hidden=(8,), reg="dropout + batch norm",
                                                        activation="tanh", init="Glorot",
                                                        epochs=5)),
    "plane, regression, L1": ("plane", mlp.Recipe(features=("x1", "x2", "x1sq"), hidden=(5,),
                                                  task="regression", reg="L1",
                                                  activation="leaky ReLU", epochs=5)),
}


@pytest.mark.parametrize("case", list(CASES))
def test_exported_scripts_print_what_training_measured(case, tmp_path):
    kind, recipe = CASES[case]
    data = toy(kind)
    built, measured = train_like_the_playground(recipe, data)
    state = built.model.state_dict()
    paths = {}
    for flavour in export_script.FLAVOURS:
        src = export_script.script(recipe, built.features, built.n_out, state, data, flavour,
                                   title=case, measured=measured)
        assert measured in src  # the docstring records the Playground's number
        paths[flavour] = tmp_path / export_script.filename(flavour)
        paths[flavour].write_text(src)
    assert run_script(paths["engine"]) == measured
    assert run_script(paths["engine"], "--retrain") == measured  # the same run, exactly
    pytest.importorskip("torch")
    torch_loaded = run_script(paths["torch"])
    name, value = measured.rsplit(": ", 1)
    got_name, got = torch_loaded.rsplit(": ", 1)
    assert got_name == name and float(got) == pytest.approx(float(value), rel=1e-4, abs=1e-5)
    retrained = float(run_script(paths["torch"], "--retrain").rsplit(": ", 1)[1])
    if recipe.task == "classification":  # PyTorch draws other numbers, so only close
        assert retrained >= float(value) - 0.2 and retrained > 0.6
    else:
        assert retrained < 3 * float(value) + 0.05 and retrained < np.var(data["y_test"])


def test_pixels_export_with_their_scale(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (80, 16)).astype(np.uint8)
    y = (x[:, :8].mean(1) > x[:, 8:].mean(1)).astype(np.int64)
    data = {"x_train": x[:60], "y_train": y[:60], "x_test": x[60:], "y_test": y[60:]}
    recipe = mlp.Recipe(features=(), hidden=(8,), epochs=4, batch_size=10)
    built, measured = train_like_the_playground(recipe, data, scale=1 / 255,
                                                standardize=False, classes=2)
    src = export_script.script(recipe, built.features, built.n_out,
                               built.model.state_dict(), data, "engine", measured=measured)
    assert "np.float32(0.00392156" in src and "uint8" not in src.split('DATA = """')[0]
    path = tmp_path / "pixels.py"
    path.write_text(src)
    assert run_script(path) == measured
    assert run_script(path, "--retrain") == measured


def test_network_code_matches_the_factory():
    code = export_script.network_code(mlp.Recipe(hidden=(4, 3), reg="dropout + batch norm",
                                                 activation="leaky ReLU"), 2, 3)
    ns: dict = {"nn": engine.nn}
    exec(code, ns)  # our own generated source
    engine.manual_seed(5)
    a = ns["network"]()
    engine.manual_seed(5)
    b = mlp.build_mlp(mlp.Recipe(hidden=(4, 3), reg="dropout + batch norm",
                                 activation="leaky ReLU"), 2, 3)
    assert repr(a) == repr(b)
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items(),
                                  strict=True):
        assert ka == kb
        np.testing.assert_array_equal(va, vb)
    with pytest.raises(ValueError, match="unknown flavour"):
        export_script.script(mlp.Recipe(), None, 2, {}, {}, "jax")

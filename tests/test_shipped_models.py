"""The shipped demo models, evaluated on the full real test sets through ONNX Runtime and
through the engine (the same file), plus the drawing demo's preprocessing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

import engine
import engine.onnx
from engine.data import load_mnist
from engine.data.cifar10 import load_cifar10
from engine.data.transforms import mnist_preprocess
from tests.data_helpers import real_data

MODELS = Path(__file__).resolve().parent.parent / "webapp" / "models"
ASSETS = Path(__file__).resolve().parent.parent / "webapp" / "assets"
ort = pytest.importorskip("onnxruntime")


def ort_logits(path: Path, x: np.ndarray, batch: int = 1000) -> np.ndarray:
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    return np.concatenate([sess.run(None, {name: x[i:i + batch]})[0]
                           for i in range(0, len(x), batch)])


def engine_logits(model: engine.nn.Module, x: np.ndarray, batch: int = 1000) -> np.ndarray:
    with engine.no_grad():
        return np.concatenate([model(engine.Tensor(x[i:i + batch])).numpy()
                               for i in range(0, len(x), batch)])


def check_model(name: str, x: np.ndarray, y: np.ndarray, target: float) -> None:
    path = MODELS / f"{name}.onnx"
    card = json.loads((MODELS / f"{name}.json").read_text())
    via_ort = ort_logits(path, x)
    model = engine.onnx.load(path, device="cpu")
    model.eval()
    via_engine = engine_logits(model, x)
    acc_ort = float((via_ort.argmax(1) == y).mean())
    acc_engine = float((via_engine.argmax(1) == y).mean())
    print(f"{name}: ONNX Runtime {acc_ort:.4f}, engine {acc_engine:.4f}, "
          f"card {card['test_accuracy']:.4f}")
    assert acc_ort >= target and acc_engine >= target
    np.testing.assert_allclose(via_engine, via_ort, atol=1e-3, rtol=1e-3)
    assert (via_engine.argmax(1) == via_ort.argmax(1)).mean() >= 0.999
    assert abs(acc_engine - card["test_accuracy"]) < 0.002  # the card states what ships


@pytest.mark.data
def test_lenet5_reaches_99_percent_on_mnist_test():
    real_data("mnist")
    x, y = load_mnist(split="test")
    check_model("lenet5", (x[:, None] / 255.0).astype(np.float32), y, 0.99)


@pytest.mark.data
def test_cifar10_model_reaches_82_percent_on_cifar10_test():
    real_data("cifar10")
    x, y, _ = load_cifar10(split="test")
    x = np.ascontiguousarray(x.transpose(0, 3, 1, 2), dtype=np.float32) / 255.0
    check_model("cifar10", x, y, 0.82)


def draw(strokes: list[list[tuple[int, int]]], size: int = 280, width: int = 22) -> np.ndarray:
    """A canvas like the Digits page's: black ink on white, as a mouse would draw it."""
    img = Image.new("L", (size, size), 255)
    pen = ImageDraw.Draw(img)
    for stroke in strokes:
        pen.line(stroke, fill=0, width=width, joint="curve")
    return np.asarray(img)


@pytest.mark.parametrize("digit,strokes", [
    (7, [[(70, 60), (210, 60), (120, 240)]]),
    (1, [[(150, 40), (145, 240)]]),
    (0, [[(140, 40), (200, 90), (200, 190), (140, 240), (80, 190), (80, 90), (140, 40)]]),
    (4, [[(170, 240), (170, 40), (70, 170), (220, 170)]]),
])
def test_drawn_digit_is_preprocessed_like_mnist_and_recognised(digit, strokes):
    x = mnist_preprocess(draw(strokes))
    assert x.shape == (28, 28) and x.dtype == np.float32
    ys, xs = np.nonzero(x > 0.1)
    assert ys.max() - ys.min() <= 20 and xs.max() - xs.min() <= 20  # scaled into 20x20
    mass = x / x.sum()
    cy, cx = (mass.sum(1) * np.arange(28)).sum(), (mass.sum(0) * np.arange(28)).sum()
    assert abs(cy - 13.5) < 1.0 and abs(cx - 13.5) < 1.0  # centred by centre of mass
    model = engine.onnx.load(MODELS / "lenet5.onnx", device="cpu")
    model.eval()
    with engine.no_grad():
        pred = int(model(engine.Tensor(x[None, None])).numpy().argmax())
    assert pred == digit


def test_demo_assets_load_without_pickle():
    m = np.load(ASSETS / "mnist_samples.npz", allow_pickle=False)
    assert m["images"].shape == (300, 28, 28) and m["images"].dtype == np.uint8
    assert np.bincount(m["labels"], minlength=10).tolist() == [30] * 10
    c = np.load(ASSETS / "cifar10_samples.npz", allow_pickle=False)
    assert c["images"].shape == (300, 32, 32, 3) and len(c["classes"]) == 10
    s = np.load(ASSETS / "mnist_subset.npz", allow_pickle=False)
    assert s["x_train"].shape == (5000, 28, 28) and s["x_test"].shape == (1000, 28, 28)

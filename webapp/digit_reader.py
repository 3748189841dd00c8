"""What reads a drawn digit, without Panel: the Digits page calls it, and so does the
static site's quick start (webapp.quickstart), which reads drawings on the loading screen
before Panel is imported."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np

MODEL = Path(__file__).resolve().parent / "models" / "lenet5.onnx"
# the Digits canvas (DrawCanvas settings), shared with the quick-start pad
CANVAS = {"size": 280, "pixels": 280, "pen": 20, "throttle_ms": 150}


def load(device: str) -> object:
    """The shipped LeNet-5 (ONNX) as an engine Sequential, so each layer can be shown."""
    from engine.models import load_lenet5

    return load_lenet5(MODEL, device)


def read(net: object, data_url: str
         ) -> tuple[np.ndarray, np.ndarray, list[tuple[str, np.ndarray]]]:
    """Canvas PNG -> (28x28 MNIST-style input, class probabilities, layer outputs): one
    forward pass; only the two feature maps shown are read back."""
    from engine import explain
    from engine.data.images import decode_data_url, decode_image
    from engine.data.transforms import mnist_preprocess

    pixels = decode_image(decode_data_url(data_url), "L", max_pixels=1_000_000)
    x = mnist_preprocess(pixels)
    probs, maps = explain.read_layers(net, x[None, None], is_feature_map)
    return x, probs[0], maps


def is_feature_map(name: str, layer: object, out: object) -> bool:
    """A convolution's output after its ReLU (what the page shows)."""
    from engine import nn

    return isinstance(layer, nn.ReLU) and getattr(out, "ndim", 0) == 4


def sample_drawing() -> str:
    """A canvas-like PNG data URL (a stroke on white, RGBA as the canvas sends it)."""
    from PIL import Image

    rgba = np.full((280, 280, 4), 255, np.uint8)
    rgba[50:230, 130:150, :3] = 0
    buf = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buf, "PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()

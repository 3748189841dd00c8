"""The demo models' architectures, shared by training, tests and the web app."""

from __future__ import annotations

from typing import Any

import numpy as np

from . import nn
from .tensor import Tensor


def lenet5(device: str | None = None) -> nn.Sequential:
    """LeNet-5 (LeCun et al. 1998) with ReLU and max pooling, on 28x28 MNIST digits.

    conv5x5-6 (padded to keep 28x28), pool, conv5x5-16, pool, 120, 84, 10. Its parameters
    are made on `device` (default: the default device).
    """
    return nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2, device=device), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5, device=device), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(16 * 5 * 5, 120, device=device), nn.ReLU(),
        nn.Linear(120, 84, device=device), nn.ReLU(), nn.Linear(84, 10, device=device))


class Normalize(nn.Module):
    """(x - mean) / std per channel, inside the model so every caller (the web app, an
    ONNX runtime) feeds plain [0, 1] pixels."""

    def __init__(self, mean: list[float], std: list[float]) -> None:
        super().__init__()
        c = len(mean)
        self.register_buffer("mean", Tensor(np.array(mean, np.float32).reshape(1, c, 1, 1)))
        self.register_buffer("inv_std",
                             Tensor((1.0 / np.array(std, np.float32)).reshape(1, c, 1, 1)))

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean) * self.inv_std


CIFAR_MEAN = [0.4914, 0.4822, 0.4465]
CIFAR_STD = [0.2470, 0.2435, 0.2616]


def load_lenet5(path: Any, device: str = "cpu") -> nn.Sequential:
    """A LeNet-5 saved as ONNX (the shipped digits model) as this module's `lenet5`
    Sequential, in eval mode: named layers the web app can show one by one, and a fresh
    copy each call that can be trained without touching anyone else's."""
    from . import onnx

    # made and loaded on the CPU, then moved once: on the default device (the GPU in a
    # browser) the empty layers would start the GPU and each weight would be uploaded and
    # read back again (in a browser, a second of a quick start's first reading)
    with nn.init.no_init():  # every weight is loaded next
        net = lenet5("cpu")
    net.load_state_dict(onnx.load(path, device="cpu").state_dict())
    return net.to(device).eval()


def conv_bn(cin: int, cout: int, pool: bool = False) -> nn.Sequential:
    layers = [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]
    if pool:
        layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers)


class Residual(nn.Module):
    """x + f(x): lets a deeper CIFAR net train in few epochs."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.f = nn.Sequential(conv_bn(channels, channels), conv_bn(channels, channels))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.f(x)


def cifar_resnet(width: int = 16) -> nn.Sequential:
    """A narrow ResNet-9 (Page's DAWNBench design): prep, three pooled stages, two of them
    with a residual block, global max pool, linear. `width` is the first stage's channels
    (the original uses 64; 16 trains ~16x faster on a CPU)."""
    w = width
    return nn.Sequential(
        Normalize(CIFAR_MEAN, CIFAR_STD),
        conv_bn(3, w),
        conv_bn(w, 2 * w, pool=True), Residual(2 * w),
        conv_bn(2 * w, 4 * w, pool=True),
        conv_bn(4 * w, 8 * w, pool=True), Residual(8 * w),
        nn.MaxPool2d(4),
        nn.Flatten(), nn.Linear(8 * w, 10))

"""CPU speed of the engine vs PyTorch (CPU) in one process, printed as engine/torch ratios.

Rows: LeNet-5 training throughput at batch 64, LeNet-5 single-image inference latency,
a CIFAR-style CNN (3 conv blocks with batch norm) training throughput at batch 128.
Targets (issue 2): LeNet-5 training >= 0.5x torch's samples/s; inference latency <= 2x.

    python build.py bench cpu [--quick]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np

import engine
from engine import nn as enn
from engine import optim as eoptim


def lenet5(nn: Any) -> Any:
    return nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10))


def cifar_cnn(nn: Any) -> Any:
    def block(cin: int, cout: int) -> list[Any]:
        return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(),
                nn.MaxPool2d(2)]
    return nn.Sequential(*block(3, 32), *block(32, 64), *block(64, 128), nn.Flatten(),
                         nn.Linear(128 * 4 * 4, 10))


def timeit(fn: Callable[[], Any], repeats: int, number: int) -> float:
    """Median seconds per call over `repeats` batches of `number` calls, after a warm-up."""
    fn()
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        times.append((time.perf_counter() - t0) / number)
    return statistics.median(times)


def engine_train_step(model: Any, x: np.ndarray, y: np.ndarray) -> Callable[[], Any]:
    opt = eoptim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    xt, yt = engine.Tensor(x), engine.Tensor(y)

    def step() -> None:
        opt.zero_grad()
        loss = enn.functional.cross_entropy(model(xt), yt)
        loss.backward()
        opt.step()
    return step


def torch_train_step(torch: Any, model: Any, x: np.ndarray, y: np.ndarray) -> Callable[[], Any]:
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)

    def step() -> None:
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(xt), yt)
        loss.backward()
        opt.step()
    return step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="fewer repeats (noisier)")
    args = ap.parse_args()
    reps, num = (3, 3) if args.quick else (5, 10)
    rng = np.random.default_rng(0)
    try:
        import torch
    except ImportError:
        torch = None
        print("PyTorch is not installed: printing engine numbers only "
              "(pip install torch==2.13.0 for the ratios)")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
          f"numpy {np.__version__}" + (f", torch {torch.__version__} "
                                      f"({torch.get_num_threads()} threads)" if torch else ""))

    rows = []
    x = rng.standard_normal((64, 1, 28, 28)).astype(np.float32)
    y = rng.integers(0, 10, 64)
    e = timeit(engine_train_step(lenet5(enn), x, y), reps, num)
    t = timeit(torch_train_step(torch, lenet5(torch.nn), x, y), reps, num) if torch else None
    rows.append(("LeNet-5 training, batch 64", "samples/s", 64 / e, 64 / t if t else None, True))

    x1 = rng.standard_normal((1, 1, 28, 28)).astype(np.float32)
    m = lenet5(enn).eval()
    x1e = engine.Tensor(x1)
    with engine.no_grad():
        e = timeit(lambda: m(x1e).numpy(), reps, num * 10)
    if torch:
        mt = lenet5(torch.nn).eval()
        x1t = torch.from_numpy(x1)
        with torch.no_grad():
            t = timeit(lambda: mt(x1t).numpy(), reps, num * 10)
    rows.append(("LeNet-5 inference, 1 image", "ms", e * 1e3, t * 1e3 if torch else None, False))

    x = rng.standard_normal((128, 3, 32, 32)).astype(np.float32)
    y = rng.integers(0, 10, 128)
    reps_c, num_c = max(2, reps // 2), max(2, num // 3)
    e = timeit(engine_train_step(cifar_cnn(enn), x, y), reps_c, num_c)
    t = timeit(torch_train_step(torch, cifar_cnn(torch.nn), x, y), reps_c, num_c) \
        if torch else None
    rows.append(("CIFAR CNN (3 conv+BN blocks) training, batch 128", "samples/s", 128 / e,
                 128 / t if t else None, True))

    print(f"\n{'benchmark':52s} {'unit':>9s} {'engine':>10s} {'torch':>10s} {'ratio':>12s}")
    for name, unit, ev, tv, higher_better in rows:
        if tv is None:
            print(f"{name:52s} {unit:>9s} {ev:10.2f} {'-':>10s} {'-':>12s}")
            continue
        ratio = ev / tv
        label = f"{ratio:.2f}x" + (" (speed)" if higher_better else " (time)")
        print(f"{name:52s} {unit:>9s} {ev:10.2f} {tv:10.2f} {label:>12s}")
    print("\nratio = engine / torch: for samples/s higher is better (target LeNet-5 >= 0.5x); "
          "for latency lower is better (target <= 2x).")


if __name__ == "__main__":
    main()

"""Sequence-model speed of the engine vs PyTorch (CPU) in one process, as engine/torch ratios.

Rows: LSTM training throughput (input 28, hidden 128, sequence 28, batch 64: row-by-row
MNIST), LSTM inference latency for one sequence and for a batch of 64, GRU and Elman RNN
training at the same size, and the page's small attention model (a transformer encoder
layer over the 28 rows) training. Target (issue 15): LSTM training >= 0.5x torch's
samples/s on the CPU. With --gpu the engine's GPU rows are added (on lavapipe they measure
the dispatch structure, not a real GPU's speed).

    python build.py bench seq [--quick] [--gpu] [--threads N]

--threads N limits both sides to N BLAS/torch threads (on a busy shared machine
multi-threaded BLAS on small matrices measures the scheduler more than the code).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

if "--threads" in sys.argv:  # before NumPy loads its BLAS
    _n = sys.argv[sys.argv.index("--threads") + 1]
    for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[_var] = _n

import numpy as np  # noqa: E402

import engine  # noqa: E402
from engine import nn as enn  # noqa: E402
from engine import optim as eoptim  # noqa: E402

T, I, H, B, C = 28, 28, 128, 64, 10


def recurrent_classifier(nn: Any, kind: str) -> Any:
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.rnn = getattr(nn, kind)(I, H, batch_first=True)
            self.fc = nn.Linear(H, C)

        def forward(self, x: Any) -> Any:
            out, _ = self.rnn(x)
            return self.fc(out[:, -1])
    return Net()


def attention_classifier(nn: Any) -> Any:
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Linear(I, 64)
            self.encoder = nn.TransformerEncoderLayer(64, 4, 128, dropout=0.0,
                                                      batch_first=True)
            self.fc = nn.Linear(64, C)

        def forward(self, x: Any) -> Any:
            return self.fc(self.encoder(self.embed(x)).mean(1))
    return Net()


def timeit(fn: Callable[[], Any], repeats: int, number: int) -> float:
    """Median seconds per call over `repeats` batches of `number` calls, after a warm-up."""
    return paired(fn, None, repeats, number)[0]


def paired(fa: Callable[[], Any], fb: Callable[[], Any] | None, repeats: int,
           number: int) -> tuple[float, float | None]:
    """Median seconds per call of fa and fb, timed in alternation (a batch of `number`
    calls of each per repeat), so that load from other processes hits both alike."""
    fns = [f for f in (fa, fb) if f is not None]
    for f in fns:
        f()
        f()
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for f, ts in zip(fns, times):
            t0 = time.perf_counter()
            for _ in range(number):
                f()
            ts.append((time.perf_counter() - t0) / number)
    meds = [statistics.median(ts) for ts in times]
    return meds[0], (meds[1] if fb is not None else None)


def engine_step(model: Any, x: np.ndarray, y: np.ndarray, device: str) -> Callable[[], Any]:
    model.to(device)
    opt = eoptim.Adam(model.parameters(), lr=1e-3)
    xt, yt = engine.Tensor(x, device=device), engine.Tensor(y, device=device)
    sync = engine.backends.get(device)

    def step() -> None:
        opt.zero_grad()
        loss = enn.functional.cross_entropy(model(xt), yt)
        loss.backward()
        opt.step()
        if hasattr(sync, "synchronize"):
            sync.synchronize()
    return step


def torch_step(torch: Any, model: Any, x: np.ndarray, y: np.ndarray) -> Callable[[], Any]:
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
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
    ap.add_argument("--gpu", action="store_true", help="add the engine's GPU rows")
    ap.add_argument("--threads", type=int, default=0,
                    help="BLAS and torch threads for both sides (default: the libraries')")
    args = ap.parse_args()
    reps, num = (3, 3) if args.quick else (5, 8)
    rng = np.random.default_rng(0)
    try:
        import torch
        if args.threads:
            torch.set_num_threads(args.threads)
    except ImportError:
        torch = None
        print("PyTorch is not installed: printing engine numbers only "
              "(pip install torch==2.13.0 for the ratios)")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"load {load:.1f}; numpy {np.__version__}" + (
              f", torch {torch.__version__} ({torch.get_num_threads()} threads)" if torch
              else ""))
    x = rng.standard_normal((B, T, I)).astype(np.float32)
    y = rng.integers(0, C, B)
    rows = []
    devices = ["cpu"] + (["gpu"] if args.gpu else [])

    def train_row(label: str, make: Callable[[Any], Any]) -> None:
        peer = torch_step(torch, make(torch.nn), x, y) if torch else None
        for dev in devices:
            engine.manual_seed(0)
            e, t = paired(engine_step(make(enn), x, y, dev), peer if dev == "cpu" else None,
                          reps, num)
            rows.append((f"{label} training, batch {B} ({dev})", "samples/s", B / e,
                         B / t if t else None, True))

    train_row(f"LSTM {I}->{H}, {T} steps", lambda nn: recurrent_classifier(nn, "LSTM"))
    for batch in (1, B):
        xb = x[:batch]
        peer = None
        if torch:
            mt = recurrent_classifier(torch.nn, "LSTM").eval()
            xt = torch.from_numpy(xb)

            def peer(mt: Any = mt, xt: Any = xt) -> Any:
                with torch.no_grad():
                    return mt(xt).numpy()
        for dev in devices:
            m = recurrent_classifier(enn, "LSTM").to(dev).eval()
            xe = engine.Tensor(xb, device=dev)

            def ours(m: Any = m, xe: Any = xe) -> Any:
                with engine.no_grad():
                    return m(xe).numpy()
            e, t = paired(ours, peer if dev == "cpu" else None, reps, num * 4)
            rows.append((f"LSTM inference, {batch} sequence{'s' if batch > 1 else ''} ({dev})",
                         "ms", e * 1e3, t * 1e3 if t else None, False))
    train_row(f"GRU {I}->{H}, {T} steps", lambda nn: recurrent_classifier(nn, "GRU"))
    train_row(f"RNN {I}->{H}, {T} steps", lambda nn: recurrent_classifier(nn, "RNN"))
    train_row("attention (encoder layer d=64)", attention_classifier)

    print(f"\n{'benchmark':52s} {'unit':>9s} {'engine':>10s} {'torch':>10s} {'ratio':>12s}")
    for name, unit, ev, tv, higher_better in rows:
        if tv is None:
            print(f"{name:52s} {unit:>9s} {ev:10.2f} {'-':>10s} {'-':>12s}")
            continue
        ratio = ev / tv
        label = f"{ratio:.2f}x" + (" (speed)" if higher_better else " (time)")
        print(f"{name:52s} {unit:>9s} {ev:10.2f} {tv:10.2f} {label:>12s}")
    print("\nratio = engine / torch (CPU): for samples/s higher is better (target LSTM "
          "training >= 0.5x); for latency lower is better.")


if __name__ == "__main__":
    main()

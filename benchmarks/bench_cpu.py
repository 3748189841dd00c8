"""CPU speed of the engine vs PyTorch (CPU), in one process, printed as engine/torch ratios.

Rows: LeNet-5 training throughput (batch 64) and single-image inference latency (eager
under no_grad, and through `engine.compile`'s cached plan, what `predict` uses), a
CIFAR-style CNN (3 conv + batch-norm blocks, batch 128), the shipped CIFAR-10 ResNet-9
(width 16, batch 128) and the sequence page's LSTM digit reader (batch 64; the row is
skipped while the engine has no nn.LSTM), all training with SGD + momentum. Target
(issue 18): every training row >= 1.0x torch's samples/s, the inference row <= 1.0x its
time.

How it measures: both libraries on the same number of threads (`--threads`, default all
cores: `engine.set_num_threads` and `torch.set_num_threads`; the BLAS libraries read it
at start-up, so the script restarts itself with it set; the header prints the counts each
side really runs: the engine's kernel threads, OpenBLAS' and torch's intra-op threads),
each row in `--rounds` interleaved rounds (engine, then torch, then engine ...), medians
printed. With one thread the clock is the process's CPU time (`time.process_time`), which
other processes' load hardly moves; with more it is the wall clock. On a loaded machine,
measure with `--threads 1` and say so.

    python build.py bench cpu [--threads N] [--rounds R] [--quick] [--only NAME ...]
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                    help="threads for both libraries (default: all cores)")
    ap.add_argument("--rounds", type=int, default=None, help="interleaved rounds per row")
    ap.add_argument("--quick", action="store_true", help="fewer rounds, shorter rounds")
    ap.add_argument("--clock", choices=("auto", "cpu", "wall"), default="auto",
                    help="auto: CPU time with one thread, wall clock with more")
    ap.add_argument("--only", nargs="*", default=None,
                    help="rows whose key is listed (lenet-train lenet-infer lenet-plan "
                         "cifar-cnn resnet9 lstm)")
    return ap.parse_args(argv)


def pin_threads(n: int) -> None:
    """Restart this script with the BLAS/OpenMP thread variables set to n, unless they are:
    OpenBLAS and MKL size their thread pools once, when NumPy and torch load."""
    if all(os.environ.get(v) == str(n) for v in THREAD_VARS):
        return
    env = dict(os.environ, **{v: str(n) for v in THREAD_VARS})
    os.execve(sys.executable, [sys.executable, *sys.argv], env)


# -- the models, written once for either library's nn ---------------------------------

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


def torch_resnet9(torch: Any, width: int = 16) -> Any:
    """PyTorch twin of `engine.models.cifar_resnet` (checked: same parameter shapes)."""
    from engine import models

    nn = torch.nn

    class Normalize(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("mean", torch.tensor(models.CIFAR_MEAN).reshape(1, 3, 1, 1))
            self.register_buffer("inv_std",
                                 1.0 / torch.tensor(models.CIFAR_STD).reshape(1, 3, 1, 1))

        def forward(self, x: Any) -> Any:
            return (x - self.mean) * self.inv_std

    def conv_bn(cin: int, cout: int, pool: bool = False) -> Any:
        layers = [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout),
                  nn.ReLU()]
        return nn.Sequential(*layers, *([nn.MaxPool2d(2)] if pool else []))

    class Residual(nn.Module):
        def __init__(self, c: int) -> None:
            super().__init__()
            self.f = nn.Sequential(conv_bn(c, c), conv_bn(c, c))

        def forward(self, x: Any) -> Any:
            return x + self.f(x)

    w = width
    return nn.Sequential(Normalize(), conv_bn(3, w), conv_bn(w, 2 * w, pool=True),
                         Residual(2 * w), conv_bn(2 * w, 4 * w, pool=True),
                         conv_bn(4 * w, 8 * w, pool=True), Residual(8 * w), nn.MaxPool2d(4),
                         nn.Flatten(), nn.Linear(8 * w, 10))


def row_lstm(nn: Any) -> Any:
    """The shipped sequence demo's digit reader (engine.sequences.RowClassifier, LSTM,
    hidden 128): 28 rows of 28 pixels, one per step, logits from the last hidden state."""

    class RowLSTM(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.rnn = nn.LSTM(28, 128, batch_first=True)
            self.fc = nn.Linear(128, 10)

        def forward(self, x: Any) -> Any:
            out, _ = self.rnn(x)
            return self.fc(out[:, -1])
    return RowLSTM()


def same_shapes(em: Any, tm: Any, what: str) -> None:
    es = [tuple(p.shape) for p in em.parameters()]
    ts = [tuple(p.shape) for p in tm.parameters()]
    if es != ts:
        raise SystemExit(f"bench cpu: the engine's and torch's {what} differ: {es} vs {ts}")


# -- steps ----------------------------------------------------------------------------

def engine_train_step(model: Any, x: Any, y: Any, **sgd: Any) -> Callable[[], Any]:
    import engine
    from engine import nn as enn
    from engine import optim as eoptim

    opt = eoptim.SGD(model.parameters(), lr=0.01, momentum=0.9, **sgd)
    xt, yt = engine.Tensor(x), engine.Tensor(y)

    def step() -> None:
        opt.zero_grad()
        loss = enn.functional.cross_entropy(model(xt), yt)
        loss.backward()
        opt.step()
    return step


def torch_train_step(torch: Any, model: Any, x: Any, y: Any, **sgd: Any) -> Callable[[], Any]:
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, **sgd)
    xt, yt = (a if torch.is_tensor(a) else torch.from_numpy(a) for a in (x, y))  # or CUDA

    def step() -> None:
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(xt), yt)
        loss.backward()
        opt.step()
    return step


@dataclass
class Row:
    key: str
    name: str
    unit: str  # "samples/s" (per == batch size) or "ms"
    per: int  # samples per call; 0: report milliseconds per call
    engine: Callable[[], Callable[[], Any]]
    torch: Callable[[], Callable[[], Any]] | None


def rows(np: Any, torch: Any) -> list[Row]:
    import engine
    from engine import models
    from engine import nn as enn

    rng = np.random.default_rng(0)
    out: list[Row] = []

    x = rng.standard_normal((64, 1, 28, 28)).astype(np.float32)
    y = rng.integers(0, 10, 64)
    out.append(Row("lenet-train", "LeNet-5 training, batch 64", "samples/s", 64,
                   lambda: engine_train_step(models.lenet5(), x, y),
                   torch and (lambda: torch_train_step(torch, lenet5(torch.nn), x, y))))

    x1 = rng.standard_normal((1, 1, 28, 28)).astype(np.float32)

    def engine_infer() -> Callable[[], Any]:
        m, xt = models.lenet5().eval(), engine.Tensor(x1)

        def call() -> Any:
            with engine.no_grad():
                return m(xt).numpy()
        return call

    def torch_infer() -> Callable[[], Any]:
        m, xt = lenet5(torch.nn).eval(), torch.from_numpy(x1)

        def call() -> Any:
            with torch.no_grad():
                return m(xt).numpy()
        return call
    out.append(Row("lenet-infer", "LeNet-5 inference, 1 image", "ms", 0, engine_infer,
                   torch and torch_infer))

    def engine_plan() -> Callable[[], Any]:
        m, xt = models.lenet5().eval(), engine.Tensor(x1)
        run = engine.compile(m)

        def call() -> Any:
            with engine.no_grad():
                return run(xt).numpy()
        return call
    out.append(Row("lenet-plan", "LeNet-5 inference, 1 image, cached plan (as predict)",
                   "ms", 0, engine_plan, torch and torch_infer))

    xc = rng.standard_normal((128, 3, 32, 32)).astype(np.float32)
    yc = rng.integers(0, 10, 128)
    out.append(Row("cifar-cnn", "CIFAR CNN (3 conv+BN blocks) training, batch 128",
                   "samples/s", 128, lambda: engine_train_step(cifar_cnn(enn), xc, yc),
                   torch and (lambda: torch_train_step(torch, cifar_cnn(torch.nn), xc, yc))))

    xr = rng.random((128, 3, 32, 32), dtype=np.float32)  # pixels in [0, 1], as shipped
    sgd = dict(nesterov=True, weight_decay=5e-4)  # training/train_cifar10.py's optimizer

    def resnet_engine() -> Callable[[], Any]:
        return engine_train_step(models.cifar_resnet(16), xr, yc, **sgd)

    def resnet_torch() -> Callable[[], Any]:
        tm = torch_resnet9(torch, 16)
        same_shapes(models.cifar_resnet(16), tm, "ResNet-9s")
        return torch_train_step(torch, tm, xr, yc, **sgd)
    out.append(Row("resnet9", "CIFAR-10 ResNet-9 (width 16, shipped) training, batch 128",
                   "samples/s", 128, resnet_engine, torch and resnet_torch))

    def lstm_torch() -> Any:
        tm = row_lstm(torch.nn)
        same_shapes(row_lstm(enn), tm, "LSTM readers")
        return tm

    if hasattr(enn, "LSTM"):
        xs = rng.random((64, 28, 28), dtype=np.float32)
        ys = rng.integers(0, 10, 64)
        out.append(Row("lstm", "LSTM row reader (hidden 128, 28 steps) training, batch 64",
                       "samples/s", 64, lambda: engine_train_step(row_lstm(enn), xs, ys),
                       torch and (lambda: torch_train_step(torch, lstm_torch(), xs, ys))))
    else:
        print("bench cpu: skipping the LSTM row: this engine has no nn.LSTM yet (the "
              "recurrent layers of issue 15)")
    return out


# -- timing ---------------------------------------------------------------------------

def measure(fn: Callable[[], Any], number: int, clock: Callable[[], float]) -> float:
    t0 = clock()
    for _ in range(number):
        fn()
    return (clock() - t0) / number


def calibrate(fn: Callable[[], Any], clock: Callable[[], float], target: float) -> int:
    """Calls per round so that one round lasts about `target` seconds (after a warm-up)."""
    fn()
    once = max(measure(fn, 1, clock), 1e-6)
    return max(1, int(target / once))


def run_row(row: Row, rounds: int, target: float, clock: Callable[[], float]
            ) -> tuple[float, float | None, float | None]:
    """(engine value, torch value, spread of the per-round ratio): medians over rounds
    that alternate the two libraries, so a burst of load hits both alike."""
    fns = [row.engine()] + ([row.torch()] if row.torch else [])
    numbers = [calibrate(f, clock, target) for f in fns]
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(rounds):
        for f, n, ts in zip(fns, numbers, times):
            ts.append(measure(f, n, clock))

    def value(seconds: float) -> float:
        return row.per / seconds if row.per else seconds * 1e3
    e = value(statistics.median(times[0]))
    if len(fns) == 1:
        return e, None, None
    t = value(statistics.median(times[1]))
    ratios = sorted(value(a) / value(b) for a, b in zip(times[0], times[1]))
    return e, t, ratios[-1] - ratios[0]


def machine(np: Any, torch: Any, threads: int, clock_name: str) -> list[str]:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")),
                       cpu)
    except OSError:
        pass
    blas = "?"
    try:
        info = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        blas = f"{info['name']} {info['version']}"
    except Exception:  # noqa: BLE001 - older NumPy: the version line is enough
        pass
    load = "/".join(f"{v:.1f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    import engine
    from engine.backends import cpu_parallel

    kernels = engine.get_num_threads()
    blas_now = cpu_parallel.blas_threads()
    blas_note = "?" if blas_now is None else str(blas_now)
    lines = [f"date: {datetime.date.today()}, load average (1/5/15 min): {load}",
             f"machine: {cpu}, {os.cpu_count()} cores, {platform.system()} "
             f"{platform.release()}, Python {platform.python_version()}",
             f"engine: NumPy {np.__version__} ({blas}), {kernels} kernel thread(s) "
             f"(engine.get_num_threads), OpenBLAS on {blas_note} now"
             + " (the engine holds it at 1 from its first kernel on)"]
    if torch:
        lines.append(f"torch: {torch.__version__}, {torch.get_num_threads()} intra-op "
                     f"thread(s) (torch.get_num_threads), {torch.get_num_interop_threads()} "
                     f"inter-op, MKL {torch.backends.mkl.is_available()}, oneDNN "
                     f"{torch.backends.mkldnn.is_available()}")
    lines.append(f"clock: {clock_name}; each row: median of interleaved rounds")
    return lines


def main() -> None:
    args = parse_args()
    pin_threads(args.threads)
    import numpy as np

    try:
        import torch
    except ImportError:
        torch = None
        print("PyTorch is not installed: printing engine numbers only "
              "(pip install torch==2.13.0 for the ratios)")
    import engine
    from engine.backends import cpu_parallel

    engine.set_num_threads(args.threads)
    if torch:
        torch.set_num_threads(args.threads)
    cpu_clock = args.clock == "cpu" or (args.clock == "auto" and args.threads == 1)
    clock = time.process_time if cpu_clock else time.perf_counter
    clock_name = "process CPU time" if cpu_clock else "wall clock"
    rounds = args.rounds or (3 if args.quick else 7)
    target = 0.15 if args.quick else 0.4
    print("\n".join(machine(np, torch, args.threads, clock_name)))

    print(f"\n{'benchmark':58s} {'unit':>9s} {'engine':>10s} {'torch':>10s} {'ratio':>14s}"
          f" {'spread':>7s}")
    for row in rows(np, torch):
        if args.only is not None and row.key not in args.only:
            continue
        e, t, spread = run_row(row, rounds, target, clock)
        if t is None:
            print(f"{row.name:58s} {row.unit:>9s} {e:10.2f} {'-':>10s} {'-':>14s}", flush=True)
            continue
        label = f"{e / t:.2f}x " + ("(speed)" if row.per else "(time)")
        print(f"{row.name:58s} {row.unit:>9s} {e:10.2f} {t:10.2f} {label:>14s}"
              f" {spread:7.2f}", flush=True)
    st = cpu_parallel.stats()
    print(f"\nthreads really used: engine {st['pool_threads'] or 1} (kernel regions: "
          f"{st['pool']} on the pool, {st['serial']} split but serial, {st['single']} in one "
          f"part), OpenBLAS {st['blas_threads'] if st['blas_threads'] is not None else '?'} "
          f"at the end" + (f"; torch {torch.get_num_threads()}" if torch else ""))
    print("\nratio = engine / torch (median of each over the rounds); spread = max - min of the "
          "per-round ratio.\nsamples/s: higher is better (target >= 1.0x); ms: lower is "
          "better (target <= 1.0x).")


if __name__ == "__main__":
    main()

"""GPU kernel throughput: GFLOP/s of matmul and conv2d for the WGSL kernels vs NumPy.

Rows: square matmul (256, 512, 1024; 2048 and 4096 with --large) for the tiled kernel,
the naive one-output-per-invocation reference kernel and NumPy (BLAS), as ratios; then
conv2d forward and both backward passes on the LeNet-5 (batch 64) and CIFAR CNN (batch 128)
layer shapes, implicit-GEMM kernel vs the NumPy backend's im2col + BLAS. With a CUDA build
of PyTorch and a CUDA GPU, also PyTorch's fp32 (TF32 off). With --train, a LeNet-5
(batch 64) and CIFAR CNN (batch 128) SGD training step on the GPU vs the engine's CPU path
(and PyTorch CUDA), in samples/s.
Targets: tiled >= 3x naive at 1024 on llvmpipe (issue 3); on a real GPU (issue 18) tiled
>= 50% of PyTorch fp32 at 4096, and GPU training steps several times the CPU path's.
benchmarks/real_gpu.sh runs all of it on a machine with a real GPU.

    python build.py bench gpu [--large] [--quick] [--train]
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from engine import backends
from engine.backends.cpu import CpuBackend


def seconds(fn: Callable[[], Any], sync: Callable[[], None], min_time: float,
            max_reps: int = 50) -> float:
    """Median seconds per call: one warm-up, then batches timed until min_time passes."""
    fn()
    sync()
    t0 = time.perf_counter()
    fn()
    sync()
    once = max(time.perf_counter() - t0, 1e-6)
    number = max(1, min(max_reps, int(0.2 * min_time / once)))
    times = []
    start = time.perf_counter()
    while not times or (time.perf_counter() - start < min_time and len(times) < 5):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        sync()
        times.append((time.perf_counter() - t0) / number)
    return statistics.median(times)


def torch_cuda() -> Any:
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    return torch


def fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:9.1f}"


def ratio(a: float | None, b: float | None) -> str:
    return "-" if a is None or b is None else f"{a / b:6.2f}x"


def matmul_row(gpu: Any, n: int, min_time: float, torch: Any) -> str:
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    ga, gb = gpu.from_numpy(a), gpu.from_numpy(b)
    flop = 2.0 * n ** 3
    tiled = flop / seconds(lambda: gpu.matmul(ga, gb), gpu.synchronize, min_time) / 1e9
    naive = None
    if n <= 2048:
        naive = flop / seconds(lambda: gpu.matmul(ga, gb, kernel="naive"), gpu.synchronize,
                               min_time, max_reps=3) / 1e9
    cpu = flop / seconds(lambda: a @ b, lambda: None, min_time) / 1e9
    line = f"{n:>6} {fmt(tiled)} {fmt(naive)} {fmt(cpu)} {ratio(tiled, naive):>12} " \
           f"{ratio(tiled, cpu):>12}"
    if torch:
        ta, tb = torch.from_numpy(a).cuda(), torch.from_numpy(b).cuda()
        tc = flop / seconds(lambda: ta @ tb, torch.cuda.synchronize, min_time) / 1e9
        line += f" {fmt(tc):>10} {ratio(tiled, tc):>12}"
    return line


def bench_matmul(gpu: Any, sizes: list[int], min_time: float, torch: Any) -> None:
    print("\nmatmul C = A @ B, float32, GFLOP/s")
    head = f"{'n':>6} {'tiled':>9} {'naive':>9} {'numpy':>9} {'tiled/naive':>12} " \
           f"{'tiled/numpy':>12}"
    if torch:
        head += f" {'torch-cuda':>10} {'tiled/torch':>12}"
    print(head)
    for n in sizes:
        print(matmul_row(gpu, n, min_time, torch), flush=True)


CONVS = [  # name, x shape, w shape, padding
    ("lenet conv1 b64", (64, 1, 28, 28), (6, 1, 5, 5), 2),
    ("lenet conv2 b64", (64, 6, 14, 14), (16, 6, 5, 5), 0),
    ("cifar 3->64 b128", (128, 3, 32, 32), (64, 3, 3, 3), 1),
    ("cifar 64->128 b128", (128, 64, 16, 16), (128, 64, 3, 3), 1),
    ("cifar 128->256 b128", (128, 128, 8, 8), (256, 128, 3, 3), 1),
]


def conv_rows(gpu: Any, xs: tuple[int, ...], ws: tuple[int, ...], p: int, min_time: float,
              torch: Any) -> list[tuple[str, float, float, float | None]]:
    """(pass, gpu GFLOP/s, numpy GFLOP/s, torch GFLOP/s) for forward and both gradients."""
    cpu = CpuBackend()
    rng = np.random.default_rng(0)
    x = rng.standard_normal(xs, dtype=np.float32)
    w = rng.standard_normal(ws, dtype=np.float32)
    args = ((1, 1), (p, p), (1, 1), 1)
    y = cpu.conv2d(x, w, *args)
    gy = rng.standard_normal(y.shape, dtype=np.float32)
    gx_, gw_, ggy = gpu.from_numpy(x), gpu.from_numpy(w), gpu.from_numpy(gy)
    flop = 2.0 * y.size * ws[1] * ws[2] * ws[3]
    passes = {
        "forward": (lambda: gpu.conv2d(gx_, gw_, *args), lambda: cpu.conv2d(x, w, *args)),
        "grad_in": (lambda: gpu.conv2d_grad_input(ggy, gw_, xs, *args),
                    lambda: cpu.conv2d_grad_input(gy, w, xs, *args)),
        "grad_w": (lambda: gpu.conv2d_grad_weight(ggy, gx_, ws, *args),
                   lambda: cpu.conv2d_grad_weight(gy, x, ws, *args)),
    }
    t_fns: dict[str, Callable[[], Any]] = {}
    if torch:
        conv = torch.nn.functional.conv2d
        tx = torch.from_numpy(x).cuda().requires_grad_()
        tw = torch.from_numpy(w).cuda().requires_grad_()
        tgy = torch.from_numpy(gy).cuda()
        t_fns = {"forward": lambda: conv(tx.detach(), tw.detach(), padding=p),
                 "grad_in": lambda: torch.autograd.grad(conv(tx, tw, padding=p), tx, tgy),
                 "grad_w": lambda: torch.autograd.grad(conv(tx, tw, padding=p), tw, tgy)}
    rows = []
    for pname, (g_fn, c_fn) in passes.items():
        g = flop / seconds(g_fn, gpu.synchronize, min_time) / 1e9
        c = flop / seconds(c_fn, lambda: None, min_time) / 1e9
        t = flop / seconds(t_fns[pname], torch.cuda.synchronize, min_time) / 1e9 \
            if torch else None
        rows.append((pname, g, c, t))
    return rows


def bench_conv(gpu: Any, min_time: float, torch: Any, quick: bool) -> None:
    print("\nconv2d (stride 1), float32, GFLOP/s: implicit-GEMM WGSL vs NumPy im2col+BLAS")
    head = f"{'layer':<20} {'pass':<8} {'gpu':>9} {'numpy':>9} {'gpu/numpy':>10}"
    if torch:
        head += f" {'torch-cuda':>10} {'gpu/torch':>10}"
    print(head)
    for name, xs, ws, p in CONVS[:3] if quick else CONVS:
        for pname, g, c, t in conv_rows(gpu, xs, ws, p, min_time, torch):
            line = f"{name:<20} {pname:<8} {fmt(g)} {fmt(c)} {ratio(g, c):>10}"
            if torch:
                line += f" {fmt(t):>10} {ratio(g, t):>10}"
            print(line, flush=True)


def bench_train(gpu: Any, min_time: float, torch: Any) -> None:
    """One SGD + momentum step of the bench-cpu models: engine GPU vs engine CPU (and
    PyTorch CUDA), samples/s; the GPU step ends with a loss read back (as a training
    loop's progress line would), so its queue is drained each step."""
    import bench_cpu as bc

    import engine
    from engine import models
    from engine import nn as enn

    print("\ntraining step, SGD + momentum, samples/s (engine GPU, engine CPU, torch CUDA)")
    head = f"{'model':<22} {'gpu':>9} {'cpu':>9} {'gpu/cpu':>8}"
    if torch:
        head += f" {'torch-cuda':>10} {'gpu/torch':>10}"
    print(head)
    rng = np.random.default_rng(0)
    cases = [("LeNet-5 b64", models.lenet5, lambda: bc.lenet5(torch.nn), (64, 1, 28, 28)),
             ("CIFAR CNN b128", lambda: bc.cifar_cnn(enn), lambda: bc.cifar_cnn(torch.nn),
              (128, 3, 32, 32))]
    for name, make, make_torch, shape in cases:
        x = rng.standard_normal(shape, dtype=np.float32)
        y = rng.integers(0, 10, shape[0])
        per = {}
        for device in ("gpu", "cpu"):
            model = make().to(device)
            opt = engine.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
            xt, yt = engine.Tensor(x, device=device), engine.Tensor(y, device=device)

            def step(model: Any = model, opt: Any = opt, xt: Any = xt, yt: Any = yt) -> None:
                opt.zero_grad()
                loss = enn.functional.cross_entropy(model(xt), yt)
                loss.backward()
                opt.step()
                loss.item()
            sync = gpu.synchronize if device == "gpu" else (lambda: None)
            per[device] = shape[0] / seconds(step, sync, min_time, max_reps=20)
        line = f"{name:<22} {fmt(per['gpu'])} {fmt(per['cpu'])} {ratio(per['gpu'], per['cpu']):>8}"
        if torch:
            tm = make_torch().cuda()
            xt_, yt_ = torch.from_numpy(x).cuda(), torch.from_numpy(y).cuda()
            tstep = bc.torch_train_step(torch, tm, xt_, yt_)
            tc = shape[0] / seconds(tstep, torch.cuda.synchronize, min_time, max_reps=20)
            line += f" {fmt(tc):>10} {ratio(per['gpu'], tc):>10}"
        print(line, flush=True)


def header(gpu: Any, torch: Any) -> list[str]:
    """Date, load, machine and library versions: printed above every table."""
    import wgpu

    load = "/".join(f"{v:.1f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    lines = [f"date: {datetime.date.today()}, load average (1/5/15 min): {load}",
             f"machine: {platform.machine()}, {os.cpu_count()} cores, {platform.system()} "
             f"{platform.release()}, Python {platform.python_version()}",
             f"engine: adapter {gpu.describe()} via wgpu {wgpu.__version__}; CPU path NumPy "
             f"{np.__version__}, BLAS threads {os.environ.get('OPENBLAS_NUM_THREADS', 'all')}"]
    if torch:
        lines.append(f"torch {torch.__version__} on {torch.cuda.get_device_name()}, CUDA "
                     f"{torch.version.cuda}, TF32 off")
    else:
        lines.append("torch CUDA: not available (no torch, or no CUDA device): no torch columns")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--large", action="store_true", help="also 2048 and 4096 (slow on lavapipe)")
    ap.add_argument("--quick", action="store_true", help="fewer shapes, shorter timing")
    ap.add_argument("--min-time", type=float, default=None, help="seconds per measurement")
    ap.add_argument("--train", action="store_true",
                    help="also LeNet-5 and CIFAR CNN training steps, GPU vs CPU")
    ap.add_argument("--no-conv", action="store_true", help="skip the conv2d table")
    args = ap.parse_args()
    try:
        gpu = backends.get("gpu")
    except backends.DeviceError as exc:
        raise SystemExit(f"bench gpu: {exc}") from None
    min_time = args.min_time or (0.3 if args.quick else 1.0)
    torch = torch_cuda()
    print("\n".join(header(gpu, torch)))
    sizes = [256, 512] if args.quick else [256, 512, 1024]
    if args.large:
        sizes += [2048, 4096]
    bench_matmul(gpu, sizes, min_time, torch)
    if not args.no_conv:
        bench_conv(gpu, min_time, torch, args.quick)
    if args.train:
        bench_train(gpu, min_time, torch)


if __name__ == "__main__":
    main()

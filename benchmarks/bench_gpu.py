"""GPU kernel throughput: GFLOP/s of matmul and conv2d for the WGSL kernels vs NumPy.

Rows: square matmul (256, 512, 1024; 2048 and 4096 with --large) for the tiled kernel,
the naive one-output-per-invocation reference kernel and NumPy (BLAS), as ratios; then
conv2d forward and both backward passes on the LeNet-5 (batch 64) and CIFAR CNN (batch 128)
layer shapes, implicit-GEMM kernel vs the NumPy backend's im2col + BLAS. With a CUDA build
of PyTorch and a CUDA GPU, also PyTorch's fp32 (TF32 off).
Targets (issue 3): tiled >= 3x naive at 1024 on llvmpipe; >= 50% of PyTorch fp32 at 4096
on a real GPU.

    python build.py bench gpu [--large] [--quick]
"""

from __future__ import annotations

import argparse
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--large", action="store_true", help="also 2048 and 4096 (slow on lavapipe)")
    ap.add_argument("--quick", action="store_true", help="fewer shapes, shorter timing")
    ap.add_argument("--min-time", type=float, default=None, help="seconds per measurement")
    args = ap.parse_args()
    try:
        gpu = backends.get("gpu")
    except backends.DeviceError as exc:
        raise SystemExit(f"bench gpu: {exc}") from None
    min_time = args.min_time or (0.3 if args.quick else 1.0)
    torch = torch_cuda()
    print(f"adapter: {gpu.describe()}")
    if torch:
        print(f"torch {torch.__version__} on {torch.cuda.get_device_name()}, TF32 off")
    sizes = [256, 512] if args.quick else [256, 512, 1024]
    if args.large:
        sizes += [2048, 4096]
    bench_matmul(gpu, sizes, min_time, torch)
    bench_conv(gpu, min_time, torch, args.quick)


if __name__ == "__main__":
    main()

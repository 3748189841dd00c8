"""The CPU backend's thread pool (engine/backends/cpu_parallel.py) and the kernels on it.

The splitting thresholds are forced down (`tiny_parts`) so that small arrays are cut into
many parts and the pool really runs them; every kernel is then run on one thread and on
two and must give *identical* arrays (the parts are cut from the sizes alone, partial
sums are added in part order). The float64 gradient check runs through the parallel
kernels, and the fallbacks are checked: one thread, a busy pool (nested and concurrent
regions), no threads at all (Pyodide), an OpenBLAS held at one thread on any count.
"""

from __future__ import annotations

import sys
import threading

import numpy as np
import pytest

import engine
from engine import Tensor, fused, nn
from engine.backends import cpu_channels_last, cpu_kernels, cpu_recurrent, cpu_winograd
from engine.backends import cpu_parallel as par
from engine.backends.cpu import CpuBackend
from engine.fused import kernels
from tests.gradcheck import gradcheck
from tests.test_fused import CASES, _run

RNG = np.random.default_rng(0)


@pytest.fixture
def threads(monkeypatch):
    """Set the engine's thread count for a test; the default is restored after it. The
    back-off to serial on a busy machine is off, so the pool's use can be asserted."""
    monkeypatch.setattr(par, "ADAPTIVE", False)
    before = par.get_num_threads()
    par.set_num_threads(1)  # a fresh pool, no back-off pending
    yield par.set_num_threads
    par.set_num_threads(before)


@pytest.fixture
def tiny_parts(monkeypatch):
    """Every splittable kernel cut into many small parts (and Winograd into many blocks)."""
    monkeypatch.setattr(par, "GRAIN", 1)
    monkeypatch.setattr(par, "PASS_GRAIN", 1)
    monkeypatch.setattr(par, "ELEMENTWISE", 1)
    monkeypatch.setattr(cpu_winograd, "BLOCK", 1)
    monkeypatch.setattr(cpu_winograd, "ROWS", 1)
    monkeypatch.setattr(cpu_channels_last.Patches, "ROWS", 1)  # im2col: a block per image
    monkeypatch.setattr(cpu_kernels, "GEMM_BLOCK", 7)  # NCHW: GEMMs in 7-column blocks
    monkeypatch.setattr(cpu_recurrent, "STEP_RUN", 1)  # LSTM: a run (and a part) per step
    monkeypatch.setattr(cpu_recurrent, "OVERLAP_GRAIN", 1)


def _on(threads, n: int, fn):
    threads(n)
    before = dict(par._counts)
    out = fn()
    return out, par._counts["pool"] - before["pool"]


def _identical(a: list, b: list, what: str) -> None:
    assert len(a) == len(b), what
    for i, (x, y) in enumerate(zip(a, b, strict=True)):
        np.testing.assert_array_equal(x, y, err_msg=f"{what}: result {i}")


def channels_last(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)


# -- the pool itself ---------------------------------------------------------------------

def test_split_covers_the_items_in_order_and_ignores_the_thread_count(threads):
    for n in (1, 2):
        threads(n)
        parts = par.split(10, 1000, grain=3000)
        assert [list(r) for r in parts] == [[0, 1, 2], [3, 4, 5], [6, 7, 8, 9]]
    assert par.split(0, 5) == []
    assert len(par.split(1000, 1.0, grain=1)) == par.MAX_PARTS
    assert par.split(5, 1.0, grain=1e9) == [range(0, 5)]


def test_run_calls_every_part_once_with_a_slot_per_thread(threads):
    seen: list[tuple[int, int, int]] = []
    lock = threading.Lock()

    def body(i: int, slot: int) -> None:
        with lock:
            seen.append((i, slot, threading.get_ident()))
    _, pooled = _on(threads, 2, lambda: par.run(40, body))
    assert pooled == 1
    assert sorted(i for i, _, _ in seen) == list(range(40))
    assert {slot for _, slot, _ in seen} <= {0, 1}
    # a slot is always the same thread: per-thread scratch is never shared
    owners = {}
    for _, slot, ident in seen:
        assert owners.setdefault(slot, ident) == ident
    assert par.stats()["pool_threads"] == 2
    seen.clear()
    _, pooled = _on(threads, 1, lambda: par.run(5, body))
    assert pooled == 0 and [(i, s) for i, s, _ in seen] == [(i, 0) for i in range(5)]
    assert par.stats()["pool_threads"] == 0  # one thread: the pool is gone


def test_an_error_in_a_part_reaches_the_caller_and_the_pool_goes_on(threads):
    threads(2)

    def body(i: int, slot: int) -> None:
        if i == 3:
            raise ValueError("part 3 failed")
    with pytest.raises(ValueError, match="part 3 failed"):
        par.run(8, body)
    hits = []
    par.run(4, lambda i, slot: hits.append(i))
    assert sorted(hits) == [0, 1, 2, 3]


def test_nested_and_concurrent_regions_run_serially_and_complete(threads):
    threads(2)
    inner_pooled = []

    def outer(i: int, slot: int) -> None:
        before = par._counts["pool"]
        out = par.map_slices(6, 1.0, lambda r: r.stop - r.start, grain=1)
        assert sum(out) == 6
        inner_pooled.append(par._counts["pool"] - before)
    par.run(4, outer)
    assert inner_pooled and not any(inner_pooled)  # nested: in the caller, serially

    results: dict[int, float] = {}

    def session(k: int) -> None:  # two web sessions' kernels at once
        a = np.arange(5000, dtype=np.float64) + k
        results[k] = float(par.total(par.map_slices(5000, 1.0, lambda r: a[r].sum(),
                                                    grain=100)))
    ts = [threading.Thread(target=session, args=(k,)) for k in range(2)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert results == {k: float((np.arange(5000) + k).sum()) for k in range(2)}


def test_no_threads_in_pyodide_and_the_thread_count_setting(threads, monkeypatch):
    monkeypatch.setattr(sys, "platform", "emscripten")
    assert not par.threads_available()
    assert par.default_threads() == 1
    with pytest.raises(ValueError, match="cannot run threads"):
        threads(2)
    threads(1)
    hits = []
    par.run(3, lambda i, slot: hits.append((i, slot)))  # the serial path, no pool
    assert hits == [(0, 0), (1, 0), (2, 0)] and par._pool is None
    monkeypatch.undo()
    monkeypatch.setenv(par.ENV, "3")
    assert par.default_threads() == 3
    monkeypatch.setenv(par.ENV, "two")
    with pytest.raises(ValueError, match="DEMYSTIFY_NUM_THREADS='two'"):
        par.default_threads()
    monkeypatch.delenv(par.ENV)
    with pytest.raises(ValueError, match="at least 1"):
        threads(0)
    assert engine.set_num_threads is par.set_num_threads
    engine.set_num_threads(1)
    assert engine.get_num_threads() == 1


def test_a_thread_that_cannot_start_leaves_the_serial_path(threads, monkeypatch):
    """Where Thread.start raises (a sandbox, a thread limit; the web app's Pyodide
    simulation), the first region runs serially and the engine stays on one thread."""
    def no_threads(self):
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(threading.Thread, "start", no_threads)
    threads(2)
    hits = []
    par.run(3, lambda i, slot: hits.append((i, slot)))
    assert hits == [(0, 0), (1, 0), (2, 0)] and par._pool is None
    assert par.get_num_threads() == 1 and par.blas_threads() in (None, 1)


@pytest.mark.parametrize("n", [1, 2])
def test_openblas_is_held_at_one_thread_on_any_thread_count(threads, monkeypatch, n):
    if par.blas().set is None:
        pytest.skip("NumPy's BLAS here is not an OpenBLAS this module can find")
    before = par.blas_threads()
    par.blas().set(2)
    monkeypatch.setattr(par, "_blas_held", False)  # as in a process that ran no kernel yet
    try:
        threads(n)
        seen = []
        par.run(2, lambda i, slot: seen.append(par.blas_threads()))
        assert seen == [1, 1] and par.blas_threads() == 1
        threads(3 - n)
        assert par.blas_threads() == 1  # still held
    finally:
        par.blas().set(before)


def test_a_full_size_lenet_step_is_identical_on_one_and_two_threads(threads, monkeypatch):
    """At real sizes, with OpenBLAS free to run two threads before the engine starts:
    its own tiling by thread count would round the GEMMs differently (measured: conv1's
    output 4.8e-7 apart, a max-pool near-tie flipped on ~1% of batches)."""
    if par.blas().set is not None:
        before = par.blas_threads()
        par.blas().set(2)
        monkeypatch.setattr(par, "_blas_held", False)
    x = np.random.default_rng(12).standard_normal((16, 1, 28, 28), dtype=np.float32)

    def step() -> list[np.ndarray]:
        engine.manual_seed(0)
        model = nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                              nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                              nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 10))
        out = model(Tensor(x))
        (out * out).sum().backward()
        return [out.numpy()] + [p.grad.numpy() for p in model.parameters()]
    try:
        one, _ = _on(threads, 1, step)
        two, _ = _on(threads, 2, step)
    finally:
        if par.blas().set is not None:
            par.blas().set(before)
    _identical(one, two, "full-size LeNet step")


def test_short_numpy_passes_and_gemms_stay_serial_and_long_gemms_split(threads):
    """At LeNet-5's batch-64 sizes (0.3 M floats a layer) pooling and elementwise ops are
    chains of 10-20 us NumPy passes, and conv1's GEMMs ~20 us calls: on two threads the
    GIL hand-offs made them slower than serial, so they stay in one part (PASS_GRAIN,
    CALL_GRAIN); conv2's longer GEMMs still split."""
    threads(2)
    bk = CpuBackend()
    x = RNG.standard_normal((64, 6, 28, 28), dtype=np.float32)
    before = dict(par._counts)
    bk.unary("relu", x)
    bk.binary("add", x, x)
    bk.where(x > 0, x, 0.0)
    bk.maxpool2d(x, (2, 2), (2, 2), (0, 0), (1, 1))
    assert par._counts["pool"] == before["pool"], "short passes went to the pool"
    assert par._counts["single"] > before["single"]  # the pooling, in one part
    x1 = RNG.standard_normal((64, 1, 28, 28), dtype=np.float32)  # conv1: 6x25 @ 25x4096
    w1 = RNG.standard_normal((6, 1, 5, 5), dtype=np.float32)  # GEMMs of ~20 us (CALL_GRAIN)
    bk.conv2d(x1, w1, (1, 1), (2, 2), (1, 1), 1)
    gy1 = RNG.standard_normal((64, 6, 28, 28), dtype=np.float32)
    bk.conv2d_grad_weight(gy1, x1, w1.shape, (1, 1), (2, 2), (1, 1), 1)
    assert par._counts["pool"] == before["pool"], "short GEMMs went to the pool"
    w = RNG.standard_normal((16, 6, 5, 5), dtype=np.float32)  # conv2: 16x150 @ 150x4096
    bk.conv2d(x[:, :, :14, :14].copy(), w, (1, 1), (0, 0), (1, 1), 1)
    assert par._counts["pool"] > before["pool"], "the convolution's GEMMs did not split"
    big = RNG.standard_normal((8, 1 << 18), dtype=np.float32)  # 2 M floats: 4 parts
    before = par._counts["pool"]
    np.testing.assert_array_equal(bk.binary("add", big, big), big + big)
    assert par._counts["pool"] == before + 1


def test_a_convolutions_gradients_run_side_by_side_as_the_separate_calls(threads):
    """conv2d_grads (the NCHW fast path's backward): at LeNet-5's conv2 size the input
    and weight gradients (and the bias's) are the parts of one region, a thread each,
    and give the arrays the separate serial calls give; at tiny sizes no region."""
    bk = CpuBackend()
    x = RNG.standard_normal((64, 6, 14, 14), dtype=np.float32)
    w = RNG.standard_normal((16, 6, 5, 5), dtype=np.float32)
    gy = RNG.standard_normal((64, 16, 10, 10), dtype=np.float32)
    p = ((1, 1), (0, 0), (1, 1), 1)
    threads(1)
    ref = [bk.conv2d_grad_input(gy, w, x.shape, *p), bk.conv2d_grad_weight(gy, x, w.shape, *p),
           bk.reduce("sum", gy, (0, 2, 3), False)]
    threads(2)
    before = par._counts["pool"]
    got = bk.conv2d_grads(gy, x.copy(), w, *p, True, True, True)
    assert par._counts["pool"] == before + 1, "the gradients did not run side by side"
    _identical(ref, list(got), "conv2d_grads")
    gx, gw, gb = bk.conv2d_grads(gy, x, w, *p, False, True, False)
    assert gx is None and gb is None
    np.testing.assert_array_equal(gw, ref[1])
    one = dict(par._counts)  # one image: the kernels' own regions, as the separate calls
    bk.conv2d_grads(gy[:1], x[:1], w, *p, True, True, False)
    paired = dict(par._counts)
    bk.conv2d_grad_input(gy[:1], w, x[:1].shape, *p)
    bk.conv2d_grad_weight(gy[:1], x[:1], w.shape, *p)
    assert {k: paired[k] - one[k] for k in one} == {k: par._counts[k] - paired[k] for k in one}


# -- the kernels: two threads give the very arrays one thread gives ---------------------

def test_elementwise_ops_split_keep_values_dtype_and_memory_order(threads, tiny_parts):
    bk = CpuBackend()
    x = channels_last(RNG.standard_normal((4, 3, 5, 6), dtype=np.float32))
    y = RNG.standard_normal((4, 3, 5, 6), dtype=np.float32)
    bias = RNG.standard_normal((1, 3, 1, 1), dtype=np.float32)

    def ops():
        return [bk.unary("relu", x), bk.unary("exp", x), bk.unary("sigmoid", x),
                bk.binary("add", x, y), bk.binary("mul", x, bias), bk.binary("sub", x, 2.0),
                bk.binary("gt", x, 0.0), bk.where(x > 0, y, 0.0),
                bk.where(bk.binary("gt", x, 0.0), x, 0.0)]  # a ReLU's backward
    one, _ = _on(threads, 1, ops)
    two, pooled = _on(threads, 2, ops)
    # relu, exp, mul, sub, gt (twice) and the masking of x by its own (bool, channels-last)
    # mask: sigmoid is composite, add and the first where mix memory orders (left to NumPy)
    assert pooled == 7
    _identical(one, two, "elementwise")
    for a, b in zip(one, two):
        assert a.dtype == b.dtype and a.strides == b.strides
    assert two[0].dtype == np.float32 and two[6].dtype == bool
    assert two[0].transpose(0, 2, 3, 1).flags.c_contiguous  # channels-last kept
    np.testing.assert_array_equal(two[4], x * bias)


def _conv_bn_pool_step(x: np.ndarray) -> list[np.ndarray]:
    """Winograd (3x3), im2col with col2im (stride 2) and with its input gradient as a
    convolution (5x5), batch norm, ReLU, a residual add, two kinds of max pooling."""
    engine.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                          nn.MaxPool2d(2), nn.Conv2d(16, 16, 3, padding=1, bias=False),
                          nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(3, 1, 1),
                          nn.Conv2d(16, 16, 3, stride=2, padding=1), nn.ReLU(),
                          nn.Conv2d(16, 16, 5, padding=2))
    xt = Tensor(x, requires_grad=True)
    out = model(xt)
    (out * out).sum().backward()
    return [out.numpy(), xt.grad.numpy()] + [p.grad.numpy() for p in model.parameters()]


def test_a_conv_bn_pool_step_is_identical_on_one_and_two_threads(threads, tiny_parts,
                                                                  monkeypatch):
    monkeypatch.setattr(cpu_winograd, "pays", lambda n, c, co, h, w: h * w > 40)
    x = RNG.standard_normal((3, 8, 10, 8), dtype=np.float32)  # even: 2x2 pooling by phases
    one, _ = _on(threads, 1, lambda: _conv_bn_pool_step(x))
    two, pooled = _on(threads, 2, lambda: _conv_bn_pool_step(x))
    assert pooled >= 10, "the kernels did not run on the pool"
    _identical(one, two, "conv/bn/pool step")


def test_a_lenet_step_on_the_nchw_kernels_is_identical_on_one_and_two_threads(threads,
                                                                              tiny_parts):
    x = RNG.standard_normal((3, 1, 12, 12), dtype=np.float32)

    def step() -> list[np.ndarray]:
        engine.manual_seed(0)
        model = nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                              nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                              nn.Linear(16, 10))
        out = model(Tensor(x))
        (out * out).sum().backward()
        return [out.numpy()] + [p.grad.numpy() for p in model.parameters()]
    one, _ = _on(threads, 1, step)
    two, pooled = _on(threads, 2, step)
    assert pooled >= 6, "the NCHW kernels did not run on the pool"
    _identical(one, two, "LeNet step")


@pytest.mark.parametrize("name,i", CASES, ids=[f"{n}-{i}" for n, i in CASES])
def test_every_fused_kernel_is_identical_on_two_threads(threads, tiny_parts, name, i):
    kernel = kernels()[name]
    sample = kernel.samples(np.random.default_rng(0))[i]
    one, _ = _on(threads, 1, lambda: _run(kernel, sample, "cpu"))
    two, _ = _on(threads, 2, lambda: _run(kernel, sample, "cpu"))
    _identical(one, two, name)


def test_gradcheck_through_the_parallel_kernels(threads, tiny_parts, monkeypatch):
    monkeypatch.setattr(cpu_winograd, "pays", lambda *shape: True)
    threads(2)
    x = RNG.standard_normal((2, 8, 4, 4))
    w = RNG.standard_normal((16, 8, 3, 3)) * 0.3
    g, b = RNG.standard_normal(16), RNG.standard_normal(16)
    before = par._counts["pool"]

    def fn(x, w, g, b):
        y = fused.conv2d(x, w, None, padding=(1, 1))
        y = fused.batch_norm(y, g, b, axes=(0, 2, 3))[0]
        return nn.functional.max_pool2d(y.relu(), 2)
    gradcheck(fn, [x, w, g, b])
    assert par._counts["pool"] > before


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="no os.fork here")
def test_a_forked_child_starts_its_own_pool(threads):
    import os

    threads(2)
    par.run(2, lambda i, slot: None)  # the parent's pool exists
    pid = os.fork()
    if pid == 0:  # the child: the parent's workers are gone, a region must still finish
        hits = []
        par.run(6, lambda i, slot: hits.append(i))
        os._exit(0 if sorted(hits) == list(range(6)) and par.stats()["pool_threads"] == 2
                 else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_regions_back_off_to_serial_while_the_workers_wait_for_a_core(threads, monkeypatch):
    threads(2)
    par.run(2, lambda i, slot: None)
    backoff = par._pool.backoff
    monkeypatch.setattr(par, "ADAPTIVE", True)
    for _ in range(backoff.WINDOW):  # as if the caller waited 9 ms for every 1 it worked
        backoff.record(0.001, 0.009)
    before = dict(par._counts)
    hits = []
    for _ in range(backoff.SERIAL):
        par.run(4, lambda i, slot: hits.append(slot))
    assert par._counts["serial"] - before["serial"] == backoff.SERIAL
    assert set(hits) == {0}  # all in the caller
    par.run(4, lambda i, slot: None)  # then the pool is tried again
    assert par._counts["pool"] == before["pool"] + 1
    for _ in range(backoff.WINDOW):  # a pool that keeps up: no back-off
        backoff.record(0.009, 0.001)
    assert backoff.serial_left == 0

"""The LSTM scan's step loop beside its GEMMs (`_Overlap` in backends/cpu_recurrent.py):
forward and backward are one pool region each, whose other parts project the inputs ahead
of the loop and compute each run's weight and input gradients behind it. The results must
be the same arrays on one thread and on two, and as the reference's; a failure in any part
must reach the caller without leaving a part waiting."""

from __future__ import annotations

import numpy as np
import pytest

from engine import Tensor, fused
from engine.backends import cpu_parallel as par
from engine.backends import cpu_recurrent
from engine.fused import reference_only


@pytest.fixture
def threads(monkeypatch):
    monkeypatch.setattr(par, "ADAPTIVE", False)
    before = par.get_num_threads()
    par.set_num_threads(1)
    yield par.set_num_threads
    par.set_num_threads(before)


def _lstm(reverse: bool, dtype=np.float32) -> list[np.ndarray]:
    rng = np.random.default_rng(3)
    T, B, I, H = 9, 4, 3, 6  # runs of 2 steps: 5 runs, the last one short

    def t(*shape: int, scale: float = 1.0) -> Tensor:
        return Tensor(rng.standard_normal(shape) * scale, dtype=dtype, requires_grad=True)
    x, h0, c0 = t(T, B, I), t(B, H), t(B, H)
    w_ih, w_hh, b_ih, b_hh = t(4 * H, I, scale=0.4), t(4 * H, H, scale=0.4), t(4 * H), t(4 * H)
    out = fused.recurrent_scan(x, h0, c0, w_ih, w_hh, b_ih, b_hh, mode="LSTM",
                               reverse=reverse)
    w = Tensor(rng.standard_normal(out.shape), dtype=dtype)
    (out * w).sum().backward()
    return [out.numpy()] + [a.grad.numpy() for a in (x, h0, c0, w_ih, w_hh, b_ih, b_hh)]


@pytest.mark.parametrize("reverse", [False, True])
def test_the_overlapped_scan_is_identical_on_one_and_two_threads(threads, monkeypatch,
                                                                  reverse):
    monkeypatch.setattr(cpu_recurrent, "STEP_RUN", 2)
    monkeypatch.setattr(cpu_recurrent, "OVERLAP_GRAIN", 1)
    threads(1)
    one = _lstm(reverse)
    threads(2)
    before = par._counts["pool"]
    two = _lstm(reverse)
    assert par._counts["pool"] - before == 2, "forward and backward: one region each"
    for i, (a, b) in enumerate(zip(one, two, strict=True)):
        np.testing.assert_array_equal(a, b, err_msg=f"result {i}")
    ref = _lstm_ref(reverse)
    for i, (a, b) in enumerate(zip(_lstm(reverse, np.float64), ref, strict=True)):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12, err_msg=f"result {i}")


def _lstm_ref(reverse: bool) -> list[np.ndarray]:
    with reference_only("recurrent_scan"):
        return _lstm(reverse, np.float64)


def test_small_scans_run_the_same_parts_serially(threads, monkeypatch):
    monkeypatch.setattr(cpu_recurrent, "STEP_RUN", 2)
    threads(2)  # OVERLAP_GRAIN as shipped: this scan is far too small for a region
    before = par._counts["pool"]
    two = _lstm(False)
    assert par._counts["pool"] == before
    threads(1)
    for a, b in zip(two, _lstm(False), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("where", ["step", "before", "after"])
@pytest.mark.parametrize("n", [1, 2])
def test_a_failing_part_reaches_the_caller_and_releases_the_others(threads, where, n):
    threads(n)
    done: list[str] = []

    def step(k: int) -> None:
        if where == "step" and k == 1:
            raise ValueError("step failed")
        done.append(f"step {k}")

    def before(k: int) -> None:
        if where == "before" and k == 2:
            raise ValueError("before failed")

    def after(k: int, wait) -> None:
        if where == "after" and k == 0:
            raise ValueError("after failed")
        wait()
        done.append(f"after {k}")

    with pytest.raises((ValueError, RuntimeError)):
        cpu_recurrent._Overlap(4, step, before, after).run(pooled=True)
    assert "step 3" not in done or where == "after"
    hits: list[int] = []  # the pool goes on
    par.run(3, lambda i, slot: hits.append(i))
    assert sorted(hits) == [0, 1, 2]


def test_the_runs_follow_the_loop_and_cover_every_step(monkeypatch):
    monkeypatch.setattr(cpu_recurrent, "STEP_RUN", 4)
    assert cpu_recurrent._runs(10, False) == [range(0, 4), range(4, 8), range(8, 10)]
    assert cpu_recurrent._runs(10, True) == [range(8, 10), range(4, 8), range(0, 4)]

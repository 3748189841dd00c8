"""Sequence layers: finite-difference gradient checks (float64), every fused fast path
against its Tensor-op reference (forward and backward, every device), and the errors
for wrong input rank, feature size and state shapes."""

from __future__ import annotations

import numpy as np
import pytest

import engine
from engine import Tensor, backends, fused, nn
from engine.autograd import trace
from engine.fused.recurrent import GATES
from engine.nn import sequence_functional as SF
from tests.gradcheck import gradcheck
from tests.sequence_helpers import need_device
from tests.test_nn_gradcheck import module_gradcheck

rng = np.random.default_rng(5)


def randn(*shape: int) -> np.ndarray:
    return rng.standard_normal(shape)


# -- finite differences (float64) -----------------------------------------------------------

@pytest.mark.parametrize("mode", list(GATES))
@pytest.mark.parametrize("reverse", [False, True])
def test_fused_scan_gradcheck(mode, reverse):
    T, B, I, H = 4, 2, 3, 3
    G = GATES[mode]
    args = [randn(T, B, I), randn(B, H), randn(B, H), randn(G * H, I) * 0.5,
            randn(G * H, H) * 0.5, randn(G * H), randn(G * H)]

    def fn(x, h0, c0, w_ih, w_hh, b_ih, b_hh):
        out = SF.recurrent_scan(mode, x, h0, c0, w_ih, w_hh, b_ih, b_hh, reverse=reverse)
        return out + 0.0 * c0.sum()  # c0 is unused outside LSTM: still gets a gradient
    if mode == "RNN_RELU":  # keep pre-activations away from the kink at 0
        args[5] = args[5] + 3.0
    gradcheck(fn, args, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("module", [
    lambda: nn.RNN(3, 2, num_layers=2, bidirectional=True),
    lambda: nn.LSTM(3, 2, num_layers=2, batch_first=True),
    lambda: nn.GRU(3, 2, bidirectional=True, bias=False),
], ids=["rnn", "lstm", "gru"])
def test_recurrent_module_gradcheck(module):
    m = module()
    x = randn(2, 3, 3)
    module_gradcheck(_OutputAndState(m), x)


class _OutputAndState(nn.Module):
    """output and final states in one tensor, for module_gradcheck."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: Tensor) -> Tensor:
        out, h = self.inner(x)
        states = list(h) if isinstance(h, tuple) else [h]
        return engine.cat([out.reshape(-1)] + [s.reshape(-1) for s in states])


@pytest.mark.parametrize("cell", [lambda: nn.RNNCell(3, 2), lambda: nn.LSTMCell(3, 2),
                                  lambda: nn.GRUCell(3, 2)], ids=["rnn", "lstm", "gru"])
def test_cell_gradcheck(cell):
    m = cell()

    class Wrap(nn.Module):
        def __init__(self):
            super().__init__()
            self.m = m

        def forward(self, x, h):
            out = self.m(x, (h, h * 0.5)) if isinstance(m, nn.LSTMCell) else self.m(x, h)
            return engine.cat([o.reshape(-1) for o in (out if isinstance(out, tuple)
                                                       else (out,))])
    module_gradcheck(Wrap(), randn(4, 3), randn(4, 2))


def test_attention_and_transformer_gradcheck():
    mha = nn.MultiheadAttention(4, 2, batch_first=True, kdim=3, vdim=5)

    class Wrap(nn.Module):
        def __init__(self):
            super().__init__()
            self.m = mha

        def forward(self, q, k, v):
            out, w = self.m(q, k, v, attn_mask=np.triu(np.ones((3, 4), bool), 2))
            return engine.cat([out.reshape(-1), w.reshape(-1)])
    module_gradcheck(Wrap(), randn(2, 3, 4), randn(2, 4, 3), randn(2, 4, 5))
    layer = nn.TransformerEncoderLayer(4, 2, 6, dropout=0.0, batch_first=True, norm_first=True)
    module_gradcheck(layer, randn(2, 3, 4))
    gradcheck(lambda q, k, v: SF.scaled_dot_product_attention(q, k, v, is_causal=True),
              [randn(2, 3, 4), randn(2, 3, 4), randn(2, 3, 2)])
    gradcheck(lambda x, w, b: SF.layer_norm(x, (4,), w, b), [randn(3, 4), randn(4), randn(4)])


# -- the fused scan: one op ------------------------------------------------------------------
# Its fast paths are compared with the reference (these cells) on every device, forward and
# backward, by tests/test_fused.py from the kernel's samples (engine/fused/recurrent.py).

@pytest.mark.parametrize("mode", list(GATES))
def test_fused_scan_is_one_op_where_the_reference_is_many(mode):
    T, B, I, H = 7, 2, 3, 4
    G = GATES[mode]
    ts = [Tensor(a.astype(np.float32), requires_grad=True) for a in
          (randn(T, B, I), randn(B, H), randn(B, H), randn(G * H, I), randn(G * H, H))]
    c0 = ts[2] if mode == "LSTM" else None
    counts = []
    for scan in (SF.recurrent_scan, SF.scan_reference):
        with trace() as tr:
            out = scan(mode, ts[0], ts[1], c0, ts[3], ts[4], None, None)
        counts.append(len(tr.records))
    assert tuple(out.shape) == (T + (mode == "LSTM"), B, H)
    assert counts[0] == 1 and counts[1] > 3 * T, counts
    assert fused.recurrent_scan.fast_paths(backends.get("cpu"))


@pytest.mark.gpu
def test_gpu_scan_never_reads_back_and_dispatches_once_per_step():
    need_device("gpu")
    gpu = backends.get("gpu")
    T = 9
    m = nn.LSTM(4, 5).to("gpu")
    x = Tensor(randn(T, 2, 4).astype(np.float32), device="gpu", requires_grad=True)
    before = gpu.readbacks
    calls = []
    orig = gpu._run

    def counting(shader, entry, *a, **k):
        calls.append((shader, entry))
        return orig(shader, entry, *a, **k)
    gpu._run = counting
    try:
        out, (h, c) = m(x)
        (out.sum() + c.sum()).backward()
    finally:
        del gpu._run
    assert gpu.readbacks == before
    assert sum(1 for s, e in calls if e == "lstm_fwd") == T
    assert sum(1 for s, e in calls if e == "lstm_bwd") == T + 1


def test_modules_can_run_the_reference():
    m = nn.GRU(3, 4, num_layers=2, bidirectional=True)
    x = Tensor(randn(5, 2, 3).astype(np.float32))
    a, ha = m(x)
    m.fused = False
    b, hb = m(x)
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ha.numpy(), hb.numpy(), rtol=1e-5, atol=1e-6)


# -- errors ----------------------------------------------------------------------------------

def test_wrong_rank_feature_size_and_state_shapes_say_expected_and_given():
    m = nn.LSTM(28, 16, num_layers=2)
    with pytest.raises(ValueError, match=r"expected a 3-D input \(L, N, H_in\).*4-D input "
                                         r"of shape \(1, 2, 3, 28\)"):
        m(Tensor(np.zeros((1, 2, 3, 28), np.float32)))
    with pytest.raises(ValueError, match=r"input has 27 features.*input_size=28"):
        m(Tensor(np.zeros((5, 2, 27), np.float32)))
    x = Tensor(np.zeros((5, 2, 28), np.float32))
    h = Tensor(np.zeros((1, 2, 16), np.float32))
    with pytest.raises(ValueError, match=r"h_0 must have shape \(2, 2, 16\) \(num_layers \* "
                                         r"num_directions, batch, hidden_size\), got \(1, 2, 16\)"):
        m(x, (h, h))
    with pytest.raises(TypeError, match=r"hx must be a tuple \(h_0, c_0\)"):
        m(x, h)
    g = nn.GRU(28, 16, batch_first=True, bidirectional=True)
    with pytest.raises(ValueError, match=r"\(N, L, H_in\)"):
        g(Tensor(np.zeros((28,), np.float32)))
    with pytest.raises(ValueError, match=r"h_0 must have shape \(2, 16\)"):
        g(Tensor(np.zeros((5, 28), np.float32)), Tensor(np.zeros((2, 1, 16), np.float32)))
    with pytest.raises(ValueError, match="empty"):
        g(Tensor(np.zeros((2, 0, 28), np.float32)))
    with pytest.raises(ValueError, match=r"input has 3 features.*input_size=4"):
        nn.GRUCell(4, 2)(Tensor(np.zeros((2, 3), np.float32)))
    with pytest.raises(ValueError, match=r"c_0 must have shape \(2, 2\)"):
        nn.LSTMCell(4, 2)(Tensor(np.zeros((2, 4), np.float32)),
                          (Tensor(np.zeros((2, 2), np.float32)),
                           Tensor(np.zeros((3, 2), np.float32))))
    mha = nn.MultiheadAttention(8, 2)
    q = Tensor(np.zeros((3, 2, 8), np.float32))
    with pytest.raises(ValueError, match=r"key has 7 features \(shape \(3, 2, 7\)\), expected 8"):
        mha(q, Tensor(np.zeros((3, 2, 7), np.float32)), q)
    with pytest.raises(ValueError, match=r"attn_mask must have shape \(3, 3\) or \(4, 3, 3\)"):
        mha(q, q, q, attn_mask=np.zeros((2, 3), bool))
    with pytest.raises(ValueError, match=r"key_padding_mask must have shape \(batch, S\) = "
                                         r"\(2, 3\), got \(3, 2\)"):
        mha(q, q, q, key_padding_mask=np.zeros((3, 2), bool))
    with pytest.raises(ValueError, match="multiple of num_heads"):
        nn.MultiheadAttention(6, 4)
    with pytest.raises(ValueError, match="nonlinearity"):
        nn.RNN(2, 2, nonlinearity="sigmoid")


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN"])
def test_a_core_only_device_runs_the_reference(kind):
    """A device with only the twenty core primitives (no recurrent_scan) runs the scan's
    Tensor-op reference and gets the CPU fast path's outputs and gradients."""
    from tests.test_core_backend import CoreOnly

    engine.manual_seed(3)
    cpu = getattr(nn, kind)(3, 4, num_layers=2, bidirectional=True)
    x = randn(5, 2, 3).astype(np.float32)
    results = []
    with backends.override("gpu", CoreOnly()) as core:
        for device in ("cpu", "gpu"):
            m = getattr(nn, kind)(3, 4, num_layers=2, bidirectional=True)
            m.load_state_dict(cpu.state_dict())
            m.to(device)
            xt = Tensor(x, device=device, requires_grad=True)
            out, _ = m(xt)
            out.sum().backward()
            results.append((out.numpy(), xt.grad.numpy(),
                            [p.grad.numpy() for p in m.parameters()]))
        assert not fused.recurrent_scan.fast_paths(core) and core.calls["matmul"] > 0
    (o1, g1, p1), (o2, g2, p2) = results
    np.testing.assert_allclose(o2, o1, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(g2, g1, rtol=1e-5, atol=1e-6)
    for a, b in zip(p1, p2):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6)

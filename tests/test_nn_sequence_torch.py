"""Recurrent layers, attention and the transformer encoder agree with PyTorch: the same
state dict loads both ways, and outputs and every gradient (inputs, initial states, every
parameter) match, on the CPU and on the GPU."""

from __future__ import annotations

import numpy as np
import pytest

import engine
from engine import Tensor, nn
from engine.nn import functional as F
from tests.sequence_helpers import compare, device_params, need_device

torch = pytest.importorskip("torch")
tnn = torch.nn
rng = np.random.default_rng(3)


def randn(*shape: int) -> np.ndarray:
    return rng.standard_normal(shape).astype(np.float32)


@pytest.fixture(params=device_params())
def device(request):
    need_device(request.param)
    return request.param


RECURRENT = [
    # (class name, kwargs)
    ("RNN", dict(num_layers=1)),
    ("RNN", dict(num_layers=2, nonlinearity="relu", bidirectional=True)),
    ("RNN", dict(num_layers=1, bias=False, batch_first=True)),
    ("LSTM", dict(num_layers=1)),
    ("LSTM", dict(num_layers=2, bidirectional=True, batch_first=True)),
    ("LSTM", dict(num_layers=2, bias=False, dropout=0.3)),
    ("GRU", dict(num_layers=1, batch_first=True)),
    ("GRU", dict(num_layers=2, bidirectional=True)),
    ("GRU", dict(num_layers=1, bias=False, bidirectional=True)),
]


def _inputs(kind: str, kw: dict, T: int, B: int, I: int, H: int, states: bool) -> list:
    D = 2 if kw.get("bidirectional") else 1
    x = randn(B, T, I) if kw.get("batch_first") else randn(T, B, I)
    if not states:
        return [x]
    n = kw.get("num_layers", 1) * D
    return [x, randn(n, B, H)] + ([randn(n, B, H)] if kind == "LSTM" else [])


def _call(kind: str, states: bool):
    def call(m, xs):
        if not states:
            return m(xs[0])
        return m(xs[0], (xs[1], xs[2])) if kind == "LSTM" else m(xs[0], xs[1])
    return call


@pytest.mark.parametrize("kind,kw", RECURRENT)
@pytest.mark.parametrize("states", [False, True])
def test_recurrent_layers_match_torch(kind, kw, states, device):
    I, H = 5, 7
    ours = getattr(nn, kind)(I, H, **kw).eval()  # eval: dropout between layers is off
    theirs = getattr(tnn, kind)(I, H, **kw).eval()
    compare(ours, theirs, _inputs(kind, kw, 6, 3, I, H, states), device,
            call=_call(kind, states))


@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
def test_unbatched_input_and_torch_weights_load(kind, device):
    theirs = getattr(tnn, kind)(4, 3, num_layers=2)
    ours = getattr(nn, kind)(4, 3, num_layers=2)
    ours.load_state_dict(theirs.state_dict())  # torch tensors straight in
    x = randn(5, 4)
    ours.to(device)
    out, h = ours(Tensor(x, device=device))
    with torch.no_grad():
        out_t, h_t = theirs(torch.from_numpy(x))
    np.testing.assert_allclose(out.numpy(), out_t.numpy(), rtol=1e-4, atol=1e-5)
    for a, b in zip(h if kind == "LSTM" else [h], h_t if kind == "LSTM" else [h_t]):
        assert a.shape == tuple(b.shape) == (2, 3)
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-5)


def test_state_dict_names_and_shapes_are_torchs():
    for kind in ("RNN", "LSTM", "GRU"):
        kw = dict(num_layers=2, bidirectional=True)
        ours = getattr(nn, kind)(3, 4, **kw).state_dict()
        theirs = getattr(tnn, kind)(3, 4, **kw).state_dict()
        assert list(ours) == list(theirs)
        assert [v.shape for v in ours.values()] == [tuple(v.shape) for v in theirs.values()]
    ours = nn.TransformerEncoderLayer(8, 2, 16).state_dict()
    theirs = tnn.TransformerEncoderLayer(8, 2, 16).state_dict()
    assert list(ours) == list(theirs)
    kw = dict(add_bias_kv=True, kdim=3, vdim=5)
    ours, theirs = nn.MultiheadAttention(8, 2, **kw), tnn.MultiheadAttention(8, 2, **kw)
    assert [(k, v.shape) for k, v in ours.state_dict().items()] == \
        [(k, tuple(v.shape)) for k, v in theirs.state_dict().items()]


def test_dropout_between_layers_acts_only_in_training():
    engine.manual_seed(0)
    m = nn.LSTM(3, 4, num_layers=2, dropout=0.5)
    x = Tensor(randn(6, 2, 3))
    m.eval()
    a = m(x)[0].numpy()
    np.testing.assert_array_equal(a, m(x)[0].numpy())
    m.train()
    b = m(x)[0].numpy()
    assert not np.allclose(a, b)
    single = nn.LSTM(3, 4, num_layers=1, dropout=0.5).train()  # no layer after the last
    single.eval()
    e = single(x)[0].numpy()
    single.train()
    np.testing.assert_array_equal(e, single(x)[0].numpy())


@pytest.mark.parametrize("kind,kw", [("RNNCell", {}), ("RNNCell", dict(nonlinearity="relu")),
                                     ("LSTMCell", {}), ("GRUCell", {}),
                                     ("GRUCell", dict(bias=False))])
@pytest.mark.parametrize("states", [False, True])
def test_cells_match_torch(kind, kw, states, device):
    ours, theirs = getattr(nn, kind)(5, 4, **kw), getattr(tnn, kind)(5, 4, **kw)
    inputs = [randn(3, 5)] + ([randn(3, 4)] + ([randn(3, 4)] if kind == "LSTMCell" else [])
                              if states else [])

    def call(m, xs):
        if not states:
            return m(xs[0])
        return m(xs[0], (xs[1], xs[2])) if kind == "LSTMCell" else m(xs[0], xs[1])
    compare(ours, theirs, inputs, device, call=call)


# -- attention ------------------------------------------------------------------------------

MHA_CASES = [
    dict(batch_first=False),
    dict(batch_first=True),
    dict(batch_first=True, bias=False),
    dict(batch_first=False, kdim=5, vdim=3),
    dict(batch_first=True, add_bias_kv=True),
    dict(batch_first=False, add_zero_attn=True, kdim=5, vdim=3),
    dict(batch_first=True, add_bias_kv=True, add_zero_attn=True),
]


@pytest.mark.parametrize("kw", MHA_CASES)
@pytest.mark.parametrize("average", [True, False])
def test_multihead_attention_matches_torch(kw, average, device):
    E, heads, L, S, B = 8, 2, 4, 6, 3
    ours, theirs = nn.MultiheadAttention(E, heads, **kw), tnn.MultiheadAttention(E, heads, **kw)
    kd, vd = kw.get("kdim", E), kw.get("vdim", E)

    def shaped(n: int, d: int) -> np.ndarray:
        return randn(B, n, d) if kw.get("batch_first") else randn(n, B, d)
    inputs = [shaped(L, E), shaped(S, kd), shaped(S, vd)]
    compare(ours, theirs, inputs, device,
            call=lambda m, xs: m(*xs, average_attn_weights=average))


MASKS = {
    "bool attn_mask": lambda L, S, B, h: dict(attn_mask=rng.random((L, S)) < 0.3),
    "float attn_mask": lambda L, S, B, h: dict(attn_mask=randn(L, S)),
    "3-D attn_mask": lambda L, S, B, h: dict(attn_mask=rng.random((B * h, L, S)) < 0.3),
    "bool key_padding_mask": lambda L, S, B, h: dict(
        key_padding_mask=np.array([[False] * (S - 2) + [True] * 2] * B)),
    "float key_padding_mask": lambda L, S, B, h: dict(key_padding_mask=randn(B, S)),
    "both": lambda L, S, B, h: dict(attn_mask=rng.random((L, S)) < 0.2,
                                    key_padding_mask=rng.random((B, S)) < 0.2),
}


@pytest.mark.parametrize("mask", list(MASKS))
@pytest.mark.parametrize("extra", [{}, dict(add_bias_kv=True, add_zero_attn=True)])
def test_multihead_attention_masks_match_torch(mask, extra, device):
    E, h, L, S, B = 8, 2, 5, 5, 3
    masks = MASKS[mask](L, S, B, h)
    for v in masks.values():  # never a fully masked row (NaN in both, nothing to compare)
        if v.dtype == bool:
            v[..., 0] = False
    ours, theirs = nn.MultiheadAttention(E, h, **extra), tnn.MultiheadAttention(E, h, **extra)

    def call(m, xs):
        import torch as t_
        if isinstance(m, nn.Module):
            mk = {k: Tensor(v, device=device) for k, v in masks.items()}
        else:
            mk = {k: t_.from_numpy(v) for k, v in masks.items()}
        return m(*xs, **mk)
    compare(ours, theirs, [randn(L, B, E), randn(S, B, E), randn(S, B, E)], device, call=call)


def test_multihead_attention_unbatched_and_need_weights_false(device):
    ours, theirs = nn.MultiheadAttention(6, 3), tnn.MultiheadAttention(6, 3)
    x = randn(4, 6)
    compare(ours, theirs, [x, x, x], device)
    out, w = ours(*(Tensor(x, device=device),) * 3, need_weights=False)
    assert w is None and out.shape == (4, 6)


@pytest.mark.parametrize("case", ["plain", "causal", "bool", "float", "scale", "4-D"])
def test_scaled_dot_product_attention_matches_torch(case, device):
    q, k, v = randn(2, 5, 4), randn(2, 6, 4), randn(2, 6, 3)
    kw: dict = {}
    if case == "causal":
        k, v = randn(2, 5, 4), randn(2, 5, 3)
        kw = dict(is_causal=True)
    elif case == "bool":
        m = rng.random((5, 6)) < 0.6
        m[:, 0] = True
        kw = dict(attn_mask=m)
    elif case == "float":
        kw = dict(attn_mask=randn(5, 6))
    elif case == "scale":
        kw = dict(scale=0.3)
    elif case == "4-D":
        q, k, v = randn(2, 3, 5, 4), randn(2, 3, 6, 4), randn(2, 3, 6, 4)
    ts = [Tensor(a, requires_grad=True, device=device) for a in (q, k, v)]
    tt = [torch.tensor(a, requires_grad=True) for a in (q, k, v)]
    ek = {n: (Tensor(m, device=device) if isinstance(m, np.ndarray) else m)
          for n, m in kw.items()}
    tk = {n: (torch.from_numpy(m) if isinstance(m, np.ndarray) else m) for n, m in kw.items()}
    oe = F.scaled_dot_product_attention(*ts, **ek)
    ot = torch.nn.functional.scaled_dot_product_attention(*tt, **tk)
    np.testing.assert_allclose(oe.numpy(), ot.detach().numpy(), rtol=1e-4, atol=1e-5)
    w = randn(*oe.shape)
    (oe * Tensor(w, device=device)).sum().backward()
    (ot * torch.from_numpy(w)).sum().backward()
    for a, b in zip(ts, tt):
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-4, atol=1e-5)


# -- transformer ----------------------------------------------------------------------------

@pytest.mark.parametrize("kw", [dict(), dict(batch_first=True, norm_first=True),
                                dict(activation="gelu", bias=False)])
@pytest.mark.parametrize("mask", [False, True])
def test_transformer_encoder_layer_matches_torch(kw, mask, device):
    d, h, ff, L, B = 8, 2, 16, 5, 3
    ours = nn.TransformerEncoderLayer(d, h, ff, dropout=0.0, **kw)
    theirs = tnn.TransformerEncoderLayer(d, h, ff, dropout=0.0, **kw)
    x = randn(B, L, d) if kw.get("batch_first") else randn(L, B, d)
    causal = np.triu(np.ones((L, L), bool), 1)

    def call(m, xs):
        if not mask:
            return m(xs[0])
        if isinstance(m, nn.Module):
            return m(xs[0], src_mask=Tensor(causal, device=device))
        return m(xs[0], src_mask=torch.from_numpy(causal))
    compare(ours, theirs, [x], device, call=call)


def test_transformer_encoder_stack_matches_torch(device):
    layer = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True)
    ours = nn.TransformerEncoder(layer, 2, norm=nn.LayerNorm(8))
    theirs = tnn.TransformerEncoder(tnn.TransformerEncoderLayer(8, 2, 16, dropout=0.0,
                                                                batch_first=True), 2,
                                    norm=tnn.LayerNorm(8), enable_nested_tensor=False)
    compare(ours, theirs, [randn(3, 4, 8)], device)


@pytest.mark.parametrize("shape", [(6,), (2, 3)])
def test_layer_norm_matches_torch(shape, device):
    ours, theirs = nn.LayerNorm(shape), tnn.LayerNorm(shape)
    with torch.no_grad():
        theirs.weight.normal_()
        theirs.bias.normal_()
    ours.load_state_dict(theirs.state_dict())
    compare(ours, theirs, [randn(4, 5, *shape)], device)


def test_positional_encoding_is_vaswanis():
    pe = nn.PositionalEncoding(6, max_len=10)
    out = pe(Tensor(np.zeros((10, 1, 6), np.float32))).numpy()[:, 0]
    t, i = 7, 1
    assert out[t, 2 * i] == pytest.approx(np.sin(t / 10000 ** (2 * i / 6)), rel=1e-5)
    assert out[t, 2 * i + 1] == pytest.approx(np.cos(t / 10000 ** (2 * i / 6)), rel=1e-5)
    bf = nn.PositionalEncoding(6, max_len=10, batch_first=True)
    np.testing.assert_allclose(bf(Tensor(np.zeros((2, 10, 6), np.float32))).numpy()[1], out)
    assert pe.state_dict()["pe"].shape == (10, 6)
    with pytest.raises(ValueError, match="sequence length 11 is over max_len=10"):
        pe(Tensor(np.zeros((11, 1, 6), np.float32)))

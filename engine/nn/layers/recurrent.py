"""Recurrent layers with PyTorch's names, arguments, parameter layout and outputs:
RNN (tanh or ReLU), LSTM and GRU over whole sequences, and their one-step cells.

A recurrent network "cycles information through a loop": the hidden state h_t is computed
from the input x_t and h_{t-1} with the same weights at every step. Parameters are named
and shaped as in PyTorch (`weight_ih_l0` (G*H, I), `bias_hh_l1_reverse`, ...; gate order
LSTM i, f, g, o and GRU r, z, n), so `load_state_dict(torch_model.state_dict())` works.
"""

from __future__ import annotations

import math
from typing import Any

from ...tensor import Tensor
from .. import init
from .. import sequence_functional as SF
from ..module import Module
from ._util import empty_parameter

_TITLES = {"RNN_TANH": "RNN", "RNN_RELU": "RNN", "LSTM": "LSTM", "GRU": "GRU"}


def _check_input(name: str, x: Any, input_size: int, layout: str, cell: bool = False) -> None:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name}: input must be a Tensor, got {type(x).__name__} (packed "
                        "sequences are not supported: pad the batch and pass a Tensor)")
    ranks = (1, 2) if cell else (2, 3)
    if x.ndim not in ranks:
        raise ValueError(f"{name}: expected a {ranks[1]}-D input {layout} (or {ranks[0]}-D "
                         f"without the batch dim), got a {x.ndim}-D input of shape {x.shape}")
    if x.shape[-1] != input_size:
        raise ValueError(f"{name}: input has {x.shape[-1]} features (last dim of shape "
                         f"{x.shape}) but input_size={input_size}")
    if x.dtype.kind != "f":
        raise TypeError(f"{name}: input must be floating point, got {x.dtype}; convert with "
                        ".float()")


def _check_state(name: str, what: str, t: Any, want: tuple[int, ...], like: Tensor,
                 meaning: str) -> Tensor:
    if not isinstance(t, Tensor):
        raise TypeError(f"{name}: {what} must be a Tensor, got {type(t).__name__}")
    if tuple(t.shape) != want:
        raise ValueError(f"{name}: {what} must have shape {want} ({meaning}), got "
                         f"{tuple(t.shape)}")
    if t.dtype != like.dtype:
        raise TypeError(f"{name}: {what} dtype {t.dtype} does not match the input's "
                        f"{like.dtype}")
    return t if t.device == like.device else t.to(like.device)


class RNNBase(Module):
    """What RNN, LSTM and GRU share: parameters, initialisation, checks and the forward."""

    def __init__(self, mode: str, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, proj_size: int = 0, device: str | None = None,
                 dtype: Any = None) -> None:
        super().__init__()
        name = _TITLES[mode]
        if int(hidden_size) <= 0 or int(input_size) <= 0 or int(num_layers) <= 0:
            raise ValueError(f"{name}: input_size, hidden_size and num_layers must be "
                             f"positive, got {input_size}, {hidden_size}, {num_layers}")
        if not 0.0 <= float(dropout) <= 1.0:
            raise ValueError(f"{name}: dropout must be in [0, 1], got {dropout}")
        if proj_size:
            raise NotImplementedError(f"{name}: proj_size is not supported (use a Linear "
                                      "layer on the output instead)")
        self.mode = mode
        self.input_size, self.hidden_size = int(input_size), int(hidden_size)
        self.num_layers, self.bias = int(num_layers), bool(bias)
        self.batch_first, self.dropout = bool(batch_first), float(dropout)
        self.bidirectional, self.proj_size = bool(bidirectional), 0
        self.fused = True  # False: run the step-by-step Tensor-op reference instead
        G, H = SF.MODES[mode], self.hidden_size
        D = 2 if bidirectional else 1
        self._flat_weights_names: list[str] = []
        for layer in range(self.num_layers):
            for d in range(D):
                sfx = f"_l{layer}" + ("_reverse" if d else "")
                n_in = self.input_size if layer == 0 else H * D
                shapes = [("weight_ih", (G * H, n_in)), ("weight_hh", (G * H, H))]
                if bias:
                    shapes += [("bias_ih", (G * H,)), ("bias_hh", (G * H,))]
                for base, shape in shapes:
                    setattr(self, base + sfx, empty_parameter(shape, device, dtype))
                    self._flat_weights_names.append(base + sfx)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """PyTorch's default: every weight and bias from U(-1/sqrt(H), 1/sqrt(H))."""
        k = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            init.uniform_(p, -k, k)

    def flatten_parameters(self) -> None:
        """No-op (PyTorch compacts cuDNN weights here; kept so torch code runs)."""

    @property
    def all_weights(self) -> list[list[Tensor]]:
        per = 4 if self.bias else 2
        ws = [getattr(self, n) for n in self._flat_weights_names]
        return [ws[i:i + per] for i in range(0, len(ws), per)]

    def _weights(self) -> list[tuple[Tensor | None, ...]]:
        return [tuple(w) + (None, None) if len(w) == 2 else tuple(w) for w in self.all_weights]

    def _state_shape(self, batch: int | None) -> tuple[int, ...]:
        n = self.num_layers * (2 if self.bidirectional else 1)
        return (n, self.hidden_size) if batch is None else (n, batch, self.hidden_size)

    def forward(self, input: Tensor, hx: Any = None) -> tuple[Tensor, Any]:  # noqa: A002
        name = _TITLES[self.mode]
        layout = "(N, L, H_in)" if self.batch_first else "(L, N, H_in)"
        _check_input(name, input, self.input_size, layout)
        unbatched = input.ndim == 2
        x = input.unsqueeze(1) if unbatched else \
            (input.transpose(0, 1) if self.batch_first else input)
        T, B = x.shape[0], x.shape[1]
        if T == 0:
            raise ValueError(f"{name}: the sequence is empty (length 0, input shape "
                             f"{input.shape})")
        want = self._state_shape(None if unbatched else B)
        meaning = "num_layers * num_directions, " + ("" if unbatched else "batch, ") + \
            "hidden_size"
        h0 = c0 = None  # None: zero states, made inside the scan
        if self.mode == "LSTM":
            if hx is not None:
                if not isinstance(hx, (tuple, list)) or len(hx) != 2:
                    raise TypeError(f"{name}: hx must be a tuple (h_0, c_0), got "
                                    f"{type(hx).__name__}")
                h0 = _check_state(name, "h_0", hx[0], want, x, meaning)
                c0 = _check_state(name, "c_0", hx[1], want, x, meaning)
        elif hx is not None:
            h0 = _check_state(name, "h_0", hx, want, x, meaning)
        if unbatched:
            h0 = h0.unsqueeze(1) if h0 is not None else None
            c0 = c0.unsqueeze(1) if c0 is not None else None
        out, h_n, c_n = SF.recurrent_layer(self.mode, x, h0, c0, self._weights(),
                                           self.num_layers, self.bidirectional, self.dropout,
                                           self.training, fused_scan=self.fused)
        if unbatched:
            out, h_n = out.squeeze(1), h_n.squeeze(1)
            c_n = c_n.squeeze(1) if c_n is not None else None
        elif self.batch_first:
            out = out.transpose(0, 1)
        return out, ((h_n, c_n) if self.mode == "LSTM" else h_n)

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if self.mode == "RNN_RELU":
            s += ", nonlinearity='relu'"
        if not self.bias:
            s += ", bias=False"
        if self.batch_first:
            s += ", batch_first=True"
        if self.dropout:
            s += f", dropout={self.dropout}"
        if self.bidirectional:
            s += ", bidirectional=True"
        return s


class RNN(RNNBase):
    """Elman RNN: h_t = tanh(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh) (or ReLU).
    Returns (output, h_n): output (L, N, D*H) (batch first if asked), h_n (layers*D, N, H)."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 nonlinearity: str = "tanh", bias: bool = True, batch_first: bool = False,
                 dropout: float = 0.0, bidirectional: bool = False, device: str | None = None,
                 dtype: Any = None) -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNN: nonlinearity must be 'tanh' or 'relu', got "
                             f"{nonlinearity!r}")
        self.nonlinearity = nonlinearity
        super().__init__("RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU", input_size,
                         hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         device=device, dtype=dtype)


class LSTM(RNNBase):
    """Long short-term memory (Hochreiter & Schmidhuber 1997): a cell state c_t that gates
    write (i), forget (f) and read (o), so gradients can flow across hundreds of steps.
    Returns (output, (h_n, c_n))."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, proj_size: int = 0, device: str | None = None,
                 dtype: Any = None) -> None:
        super().__init__("LSTM", input_size, hidden_size, num_layers, bias, batch_first,
                         dropout, bidirectional, proj_size, device, dtype)


class GRU(RNNBase):
    """Gated recurrent unit (Cho et al. 2014): reset and update gates, no cell state.
    Returns (output, h_n)."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, device: str | None = None,
                 dtype: Any = None) -> None:
        super().__init__("GRU", input_size, hidden_size, num_layers, bias, batch_first,
                         dropout, bidirectional, device=device, dtype=dtype)


# -- cells -----------------------------------------------------------------------------------

class _CellBase(Module):
    def __init__(self, mode: str, input_size: int, hidden_size: int, bias: bool,
                 device: str | None, dtype: Any) -> None:
        super().__init__()
        self.mode = mode
        self.input_size, self.hidden_size, self.bias = int(input_size), int(hidden_size), bias
        G = SF.MODES[mode]
        self.weight_ih = empty_parameter((G * hidden_size, input_size), device, dtype)
        self.weight_hh = empty_parameter((G * hidden_size, hidden_size), device, dtype)
        if bias:
            self.bias_ih = empty_parameter((G * hidden_size,), device, dtype)
            self.bias_hh = empty_parameter((G * hidden_size,), device, dtype)
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        k = 1.0 / math.sqrt(hidden_size)
        for p in self.parameters():
            init.uniform_(p, -k, k)

    def _prepare(self, x: Tensor, states: list[Any]
                 ) -> tuple[Tensor, list[Tensor | None], bool]:
        name = type(self).__name__
        _check_input(name, x, self.input_size, "(N, H_in)", cell=True)
        unbatched = x.ndim == 1
        xb = x.unsqueeze(0) if unbatched else x
        want = (self.hidden_size,) if unbatched else (xb.shape[0], self.hidden_size)
        meaning = "hidden_size" if unbatched else "batch, hidden_size"
        out: list[Tensor | None] = []
        for what, s in zip(("h_0", "c_0"), states):
            if s is not None:  # None: a zero state (the cells need no zero tensor)
                s = _check_state(name, what, s, want, xb, meaning)
                s = s.unsqueeze(0) if unbatched else s
            out.append(s)
        return xb, out, unbatched

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        return s + (", bias=False" if not self.bias else "")


class RNNCell(_CellBase):
    """One Elman step: h' = tanh(x W_ih^T + b_ih + h W_hh^T + b_hh) (or ReLU)."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 nonlinearity: str = "tanh", device: str | None = None,
                 dtype: Any = None) -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNNCell: nonlinearity must be 'tanh' or 'relu', got "
                             f"{nonlinearity!r}")
        self.nonlinearity = nonlinearity
        super().__init__("RNN_TANH", input_size, hidden_size, bias, device, dtype)

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:  # noqa: A002
        x, (h,), unbatched = self._prepare(input, [hx])
        cell = SF.rnn_tanh_cell if self.nonlinearity == "tanh" else SF.rnn_relu_cell
        out = cell(x, h, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)
        return out.squeeze(0) if unbatched else out


class LSTMCell(_CellBase):
    """One LSTM step: returns (h', c')."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 device: str | None = None, dtype: Any = None) -> None:
        super().__init__("LSTM", input_size, hidden_size, bias, device, dtype)

    def forward(self, input: Tensor, hx: Any = None) -> tuple[Tensor, Tensor]:  # noqa: A002
        if hx is not None and (not isinstance(hx, (tuple, list)) or len(hx) != 2):
            raise TypeError(f"LSTMCell: hx must be a tuple (h_0, c_0), got {type(hx).__name__}")
        x, (h, c), unbatched = self._prepare(input, list(hx) if hx is not None else [None, None])
        h2, c2 = SF.lstm_cell(x, (h, c), self.weight_ih, self.weight_hh, self.bias_ih,
                              self.bias_hh)
        return (h2.squeeze(0), c2.squeeze(0)) if unbatched else (h2, c2)


class GRUCell(_CellBase):
    """One GRU step: returns h'."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 device: str | None = None, dtype: Any = None) -> None:
        super().__init__("GRU", input_size, hidden_size, bias, device, dtype)

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:  # noqa: A002
        x, (h,), unbatched = self._prepare(input, [hx])
        out = SF.gru_cell(x, h, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)
        return out.squeeze(0) if unbatched else out

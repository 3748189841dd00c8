"""Sequence models of the demos, and ways to look inside them.

- `RowClassifier`: an RNN, LSTM or GRU reads a 28x28 digit one row per step and a linear
  head reads its last hidden state (row-by-row MNIST).
- `RowAttention`: the 28 rows as tokens (linear embedding + positional encoding), a
  transformer encoder layer, then attention pooling: one learned query weighs the rows,
  so the weights say which rows the classifier looked at.
- `AddingRegressor`: an RNN or LSTM answering the adding problem from its last state.
- `look_inside`: hidden states over time, LSTM gate activations, attention weights.
- `hidden_gradient_norms`: |dL/dh_t| for every step t, the gradient that reaches step t
  from the loss at the end (vanishing in an RNN, kept alive by an LSTM's cell).
- `train_steps`: a training loop that yields after every step (loss, gradient norm before
  clipping, optional clipping), for pages that draw while training.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import numpy as np

from . import nn
from .autograd import no_grad
from .nn import functional as F
from .nn import sequence_functional as SF
from .random import generator
from .tensor import Tensor

ROW_KINDS = ("RNN", "LSTM", "GRU", "attention")
ROWS, PIXELS, CLASSES = 28, 28, 10
# the architectures of the shipped models (training/train_seq_*.py; webapp/models/seq_*)
SHIPPED = {"LSTM": dict(hidden=128),
           "attention": dict(hidden=64, heads=4, ff=128, layers=2, dropout=0.1)}


class RowClassifier(nn.Module):
    """(N, 28, 28) rows -> (N, 10) logits via `rnn` (batch first) and `fc`."""

    def __init__(self, kind: str = "LSTM", hidden: int = 128, layers: int = 1,
                 features: int = PIXELS, classes: int = CLASSES,
                 device: str | None = None) -> None:
        super().__init__()
        if kind not in ("RNN", "LSTM", "GRU"):
            raise ValueError(f"RowClassifier: kind must be RNN, LSTM or GRU, got {kind!r}")
        self.kind = kind
        self.rnn = getattr(nn, kind)(features, hidden, num_layers=layers, batch_first=True,
                                     device=device)
        self.fc = nn.Linear(hidden, classes, device=device)

    def forward(self, x: Tensor) -> Tensor:
        out, _ = self.rnn(x)
        return self.fc(out[:, -1])


class RowAttention(nn.Module):
    """(N, 28, 28) rows -> (N, 10) logits: embed, encode, pool by attention, classify."""

    def __init__(self, d_model: int = 64, heads: int = 4, ff: int = 128, layers: int = 1,
                 dropout: float = 0.1, features: int = PIXELS, classes: int = CLASSES,
                 max_len: int = ROWS, device: str | None = None) -> None:
        super().__init__()
        self.kind = "attention"
        self.embed = nn.Linear(features, d_model, device=device)
        self.pos = nn.PositionalEncoding(d_model, max_len=max_len, batch_first=True,
                                         device=device)
        self.encoder = nn.ModuleList([
            nn.TransformerEncoderLayer(d_model, heads, ff, dropout=dropout, batch_first=True,
                                       device=device)
            for _ in range(layers)])
        self.key = nn.Linear(d_model, d_model, device=device)
        self.query = nn.Parameter(np.zeros(d_model, np.float32), device=device)
        self.fc = nn.Linear(d_model, classes, device=device)

    def encode(self, x: Tensor) -> Tensor:
        h = self.pos(self.embed(x))
        for layer in self.encoder:
            h = layer(h)
        return h

    def pool_weights(self, h: Tensor) -> Tensor:
        """(N, T) softmax over the rows of <key(h_t), query> / sqrt(d)."""
        d = h.shape[-1]
        scores = self.key(h) @ self.query.reshape(d, 1)  # (N, T, 1)
        return F.softmax(scores * (1.0 / math.sqrt(d)), 1).reshape(h.shape[0], h.shape[1])

    def forward(self, x: Tensor) -> Tensor:
        h = self.encode(x)
        w = self.pool_weights(h)
        pooled = (w.reshape(h.shape[0], 1, h.shape[1]) @ h).reshape(h.shape[0], h.shape[2])
        return self.fc(pooled)


class AddingRegressor(nn.Module):
    """(N, T, 2) -> (N,) the predicted sum, from the last hidden state."""

    def __init__(self, kind: str = "LSTM", hidden: int = 32, recurrent_scale: float = 1.0,
                 nonlinearity: str = "tanh") -> None:
        super().__init__()
        if kind not in ("RNN", "LSTM", "GRU"):
            raise ValueError(f"AddingRegressor: kind must be RNN, LSTM or GRU, got {kind!r}")
        self.kind = kind
        extra = {"nonlinearity": nonlinearity} if kind == "RNN" else {}
        self.rnn = getattr(nn, kind)(2, hidden, batch_first=True, **extra)
        self.fc = nn.Linear(hidden, 1)
        if recurrent_scale != 1.0:  # larger recurrent weights: exploding gradients
            w = self.rnn.weight_hh_l0
            w.data = (w * float(recurrent_scale)).data

    def forward(self, x: Tensor) -> Tensor:
        out, _ = self.rnn(x)
        return self.fc(out[:, -1]).reshape(-1)


def row_model(kind: str, hidden: int = 64, **kw: Any) -> nn.Module:
    """The row-by-row digit reader of a kind: RNN, LSTM, GRU or attention."""
    if kind == "attention":
        return RowAttention(d_model=hidden, **kw)
    return RowClassifier(kind, hidden, **kw)


def shipped_model(kind: str, state: dict[str, Any], device: str = "cpu") -> nn.Module:
    """A shipped row reader ("LSTM" or "attention") with the weights of `state` (e.g. the
    state dict of its ONNX file, whose initializers keep the model's names), on `device`.

    Made and loaded on the CPU, then moved once: on the default device (the GPU in a
    browser) it was on the GPU, where the Sequences page's look inside one drawing reads
    back every step (145 readbacks, 10-26 s of the first reading on SwiftShader)."""
    with nn.init.no_init():  # every weight is loaded next
        model = row_model(kind, **SHIPPED[kind], device="cpu")
    model.load_state_dict(state)
    return model.to(device).eval()


def _device(model: nn.Module) -> str:
    return next(iter(model.parameters())).device


def _as_batch(x: np.ndarray, model: nn.Module) -> Tensor:
    x = np.asarray(x, np.float32)
    return Tensor(x[None] if x.ndim == 2 else x, device=_device(model))


# -- looking inside --------------------------------------------------------------------------

def _steps(rnn: Any, x: Tensor, probe: bool = False
           ) -> tuple[list[Tensor], list[dict[str, Tensor]], list[Tensor]]:
    """A one-layer RNN/LSTM/GRU run step by step with its cells (the reference math):
    hidden states, LSTM/GRU gate activations per step, and (with `probe`) a zero tensor
    added to every h_t, whose gradient is dL/dh_t."""
    if rnn.num_layers != 1 or rnn.bidirectional:
        raise ValueError("looking inside needs a one-layer, one-direction recurrent layer")
    w_ih, w_hh = rnn.weight_ih_l0, rnn.weight_hh_l0
    b_ih, b_hh = (rnn.bias_ih_l0, rnn.bias_hh_l0) if rnn.bias else (None, None)
    gx = F.linear(x, w_ih, b_ih)  # (N, T, G*H)
    h = c = None
    hs, gates, probes = [], [], []
    for t in range(x.shape[1]):
        gh = SF.recurrent_projection(h, w_hh, b_hh)
        g = gx[:, t]
        step: dict[str, Tensor] = {}
        if rnn.mode == "LSTM":
            h, c = SF.lstm_gates(g, gh, c, step)
        elif rnn.mode == "GRU":
            h = SF.gru_gates(g, gh, h, step)
        else:
            h = SF.rnn_gates(g, gh, "tanh" if rnn.mode == "RNN_TANH" else "relu")
        if step:
            gates.append(step)
        if probe:
            p = Tensor(np.zeros(h.shape, h.dtype), device=h.device, requires_grad=True)
            probes.append(p)
            h = h + p
        hs.append(h)
    return hs, gates, probes


def look_inside(model: nn.Module, x: np.ndarray) -> dict[str, Any]:
    """What a row reader does with one digit x (28, 28): class probabilities, and for
    recurrent models the hidden state per step (T, H) (and LSTM/GRU gates {name: (T, H)}),
    for the attention model the pooling weights over rows (T,) and the encoder's
    self-attention (T, T) averaged over heads."""
    was = model.training
    model.eval()
    xb = _as_batch(x, model)
    try:
        with no_grad():
            probs = F.softmax(model(xb), -1).numpy()[0]
            out: dict[str, Any] = {"probs": probs.astype(np.float64)}
            if isinstance(model, RowAttention):
                h = model.pos(model.embed(xb))
                maps = []
                for layer in model.encoder:
                    src = layer.norm1(h) if layer.norm_first else h
                    maps.append(layer.self_attn(src, src, src, need_weights=True)[1].numpy()[0])
                    h = layer(h)
                out["attention"] = model.pool_weights(h).numpy()[0]
                out["self_attention"] = maps[0]
            else:
                hs, gates, _ = _steps(model.rnn, xb)
                out["hidden"] = np.stack([h.numpy()[0] for h in hs])
                out["gates"] = {k: np.stack([g[k].numpy()[0] for g in gates])
                                for k in (gates[0] if gates else {})}
    finally:
        model.train(was)
    return out


def hidden_gradient_norms(model: nn.Module, x: np.ndarray, y: np.ndarray,
                          loss_fn: Callable[[Tensor, Tensor], Tensor]) -> np.ndarray:
    """(T,) mean over the batch of |dL/dh_t|: how much gradient from the loss at the last
    step reaches each step's hidden state (for models with `rnn` and a head `fc`)."""
    xb = _as_batch(x, model)
    hs, _, probes = _steps(model.rnn, xb, probe=True)
    out = model.fc(hs[-1])
    if isinstance(model, AddingRegressor):
        out = out.reshape(-1)
    yt = Tensor(np.asarray(y), device=xb.device)
    loss_fn(out, yt).backward()
    norms = [np.sqrt((p.grad.numpy().astype(np.float64) ** 2).sum(-1)).mean() for p in probes]
    model.zero_grad()
    return np.asarray(norms)


# -- training that yields ----------------------------------------------------------------------

def train_steps(model: nn.Module, loss_fn: Callable[[Tensor, Tensor], Tensor], opt: Any,
                x: np.ndarray, y: np.ndarray, steps: int, batch_size: int = 64,
                clip: float | None = None) -> Iterator[dict[str, float]]:
    """`steps` optimizer steps on random batches of (x, y), yielding after each one
    {"step", "loss", "grad_norm"} (the gradient's norm before clipping). `clip` clips the
    gradient's total norm (engine.nn.utils.clip_grad_norm_). A non-finite loss is reported
    and ends the run (the weights have exploded)."""
    dev = _device(model)
    rng = generator()
    params = [p for p in model.parameters() if p.requires_grad]
    model.train()
    for step in range(int(steps)):
        idx = rng.integers(0, len(x), min(batch_size, len(x)))
        xb, yb = Tensor(x[idx], device=dev), Tensor(y[idx], device=dev)
        opt.zero_grad()
        loss = loss_fn(model(xb), yb)
        value = float(loss.item())
        if not math.isfinite(value):
            yield {"step": step, "loss": value, "grad_norm": math.inf}
            return
        loss.backward()
        if clip:
            norm = nn.utils.clip_grad_norm_(params, clip)
        else:
            with no_grad():
                norm = sum((p.grad * p.grad).sum() for p in params if p.grad is not None)
                norm = norm.sqrt()
        opt.step()
        yield {"step": step, "loss": value, "grad_norm": float(norm.item())}


def race(models: dict[str, nn.Module], x: np.ndarray, y: np.ndarray, x_test: np.ndarray,
         y_test: np.ndarray, epochs: int, batch_size: int = 64, lr: float = 3e-3
         ) -> Iterator[tuple[str, Any]]:
    """Train several classifiers side by side on the same data, one step of each in turn
    (Adam, cross-entropy); yields ("step", (name, step, loss)) after every step and
    ("epoch", (name, epoch, test accuracy)) after every epoch of each."""
    from . import optim

    steps = max(1, -(-len(x) // batch_size))
    opts = {k: optim.Adam(m.parameters(), lr=lr) for k, m in models.items()}
    for epoch in range(int(epochs)):
        runs = {k: train_steps(m, F.cross_entropy, opts[k], x, y, steps, batch_size)
                for k, m in models.items()}
        for i in range(steps):
            for k, run in runs.items():
                rec = next(run, None)
                if rec is not None:
                    yield "step", (k, epoch * steps + i, rec["loss"])
        for k, m in models.items():
            acc = float((predict(m, x_test).argmax(1) == y_test).mean())
            yield "epoch", (k, epoch + 1, acc)


ADDING_RUNS = (("RNN", False), ("RNN", True), ("LSTM", False), ("LSTM", True))


def run_name(kind: str, clipped: bool) -> str:
    return f"{kind} + clipping" if clipped else kind


def adding_models(hidden: int, recurrent_scale: float, device: str, seed: int,
                  nonlinearity: str = "tanh") -> dict[str, nn.Module]:
    """The four runs' models (RNN and LSTM, each with and without clipping); the two of a
    kind start from the same weights, so clipping is the only difference."""
    from .random import manual_seed

    out = {}
    for kind in ("RNN", "LSTM"):
        manual_seed(seed)
        base = AddingRegressor(kind, hidden, recurrent_scale, nonlinearity)
        for clipped in (False, True):
            m = AddingRegressor(kind, hidden, 1.0, nonlinearity)
            m.load_state_dict(base.state_dict())
            out[run_name(kind, clipped)] = m.to(device)
    return out


def adding_race(length: int, steps: int, hidden: int = 32, recurrent_scale: float = 1.0,
                lr: float = 0.01, clip: float = 1.0, device: str = "cpu", seed: int = 0,
                nonlinearity: str = "tanh", optimizer: str = "adam", n_train: int = 2000,
                n_test: int = 500, batch_size: int = 64) -> Iterator[tuple[str, Any]]:
    """The vanishing/exploding-gradient experiment on the adding problem of `length`:
    ("profile", (name, |dL/dh_t| per step)) for each model at initialisation, then the
    four runs trained one step each in turn with ("step", (name, step, loss, gradient norm
    before clipping)) (`optimizer` "adam" or "sgd": plain SGD shows what exploding
    gradients do to a step, Adam rescales its steps itself), then for each ("result",
    (name, test MSE, accuracy, diverged, |dL/dh_t| per step after training)).
    `nonlinearity` is the RNN's (a ReLU RNN with recurrent_scale > 1 shows exploding
    activations and gradients)."""
    from . import optim
    from .data.sequence_tasks import adding_accuracy, adding_problem

    x, y = adding_problem(n_train, length, seed + 1)
    xt, yt = adding_problem(n_test, length, seed + 2)
    models = adding_models(hidden, recurrent_scale, device, seed, nonlinearity)
    probe = slice(0, min(128, n_test))
    for name in ("RNN", "LSTM"):
        yield "profile", (name, hidden_gradient_norms(models[name], xt[probe], yt[probe],
                                                      F.mse_loss))
    if optimizer not in ("adam", "sgd"):
        raise ValueError(f"optimizer must be 'adam' or 'sgd', got {optimizer!r}")
    make = optim.Adam if optimizer == "adam" else optim.SGD
    runs = {name: train_steps(m, F.mse_loss, make(m.parameters(), lr=lr), x, y, steps,
                              batch_size, clip=clip if name.endswith("clipping") else None)
            for name, m in models.items()}
    diverged = dict.fromkeys(models, False)
    # The exploding lesson is meant to overflow: its divergence is reported as a result,
    # so NumPy's overflow warnings are silenced around the steps (never across a yield).
    quiet = partial(np.errstate, over="ignore", invalid="ignore")
    for _ in range(int(steps)):
        for name, run in runs.items():
            if diverged[name]:
                continue
            with quiet():
                rec = next(run, None)
            if rec is None:
                continue
            if not math.isfinite(rec["loss"]):
                diverged[name] = True
            yield "step", (name, rec["step"], rec["loss"], rec["grad_norm"])
    for name, m in models.items():
        with quiet():
            pred = predict(m, xt)
            mse = float(np.mean((pred - yt) ** 2))
        ok = math.isfinite(mse)
        prof = hidden_gradient_norms(m, xt[probe], yt[probe], F.mse_loss) if ok else None
        yield "result", (name, mse, adding_accuracy(pred, yt) if ok else 0.0,
                         diverged[name] or not ok, prof)


def predict(model: nn.Module, x: np.ndarray, batch_size: int = 500) -> np.ndarray:
    """model(x) in eval mode, batched, as a host array."""
    was = model.training
    model.eval()
    dev = _device(model)
    try:
        with no_grad():
            outs = [model(Tensor(np.asarray(x[i:i + batch_size], np.float32),
                             device=dev)).numpy() for i in range(0, len(x), batch_size)]
    finally:
        model.train(was)
    return np.concatenate(outs)

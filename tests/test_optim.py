"""Optimizers and schedulers: updates and learning rates equal PyTorch's; losses decrease."""

from __future__ import annotations

import numpy as np
import pytest

from engine import Tensor, optim
from engine.optim import lr_scheduler

SHAPES = [(7, 5), (5,), (3, 2, 4)]

# (engine class, torch class name, kwargs) -- kwargs are passed identically to both
CASES = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.1, weight_decay=0.01)),
    ("SGD", dict(lr=0.05, momentum=0.9)),
    ("SGD", dict(lr=0.05, momentum=0.9, dampening=0.3, weight_decay=1e-3)),
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-2)),
    ("Adagrad", dict(lr=0.1)),
    ("Adagrad", dict(lr=0.1, weight_decay=0.05, eps=1e-6)),
    ("Adagrad", dict(lr=0.1, lr_decay=0.01, initial_accumulator_value=0.1)),
    ("RMSprop", dict(lr=0.01)),
    ("RMSprop", dict(lr=0.01, alpha=0.9, weight_decay=0.01)),
    ("RMSprop", dict(lr=0.01, momentum=0.9, eps=1e-6)),
    ("Adam", dict(lr=0.01)),
    ("Adam", dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)),
    ("AdamW", dict(lr=0.01)),
    ("AdamW", dict(lr=0.01, betas=(0.85, 0.995), weight_decay=0.3)),
]


def _ids(case):
    name, kw = case
    return name + "-" + "-".join(f"{k}={v}" for k, v in kw.items())


@pytest.mark.parametrize("case", CASES, ids=[_ids(c) for c in CASES])
def test_update_matches_torch(case):
    torch = pytest.importorskip("torch")
    name, kw = case
    rng = np.random.default_rng(0)
    init = [rng.standard_normal(s).astype(np.float32) for s in SHAPES]
    grads = [[rng.standard_normal(s).astype(np.float32) for s in SHAPES] for _ in range(6)]

    ours = [Tensor(a, requires_grad=True) for a in init]
    theirs = [torch.tensor(a, requires_grad=True) for a in init]
    opt = getattr(optim, name)(ours, **kw)
    topt = getattr(torch.optim, name)(theirs, **kw)
    for step_grads in grads:
        opt.zero_grad()
        topt.zero_grad()
        for p, tp, g in zip(ours, theirs, step_grads, strict=True):
            p.grad = Tensor(g)
            tp.grad = torch.tensor(g)
        opt.step()
        topt.step()
    for p, tp in zip(ours, theirs, strict=True):
        assert p.dtype == np.float32
        np.testing.assert_allclose(p.numpy(), tp.detach().numpy(), rtol=1e-5, atol=1e-6)


def test_param_groups_use_their_own_lr_and_skip_missing_grads():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    a, b, c = (rng.standard_normal((4, 3)).astype(np.float32) for _ in range(3))
    ours = [Tensor(x, requires_grad=True) for x in (a, b, c)]
    theirs = [torch.tensor(x, requires_grad=True) for x in (a, b, c)]
    opt = optim.SGD([{"params": ours[:2]}, {"params": [ours[2]], "lr": 0.5}], lr=0.1,
                    momentum=0.9)
    topt = torch.optim.SGD([{"params": theirs[:2]}, {"params": [theirs[2]], "lr": 0.5}],
                           lr=0.1, momentum=0.9)
    for i in range(3):
        g = rng.standard_normal((4, 3)).astype(np.float32)
        for k in (0, 2) if i != 1 else (2,):  # parameter 1 never gets a gradient
            ours[k].grad, theirs[k].grad = Tensor(g), torch.tensor(g)
        opt.step()
        topt.step()
    for p, tp in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(p.numpy(), tp.detach().numpy(), rtol=1e-5, atol=1e-6)
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.5]
    np.testing.assert_array_equal(ours[1].numpy(), b)


def _torch_lrs(torch, make, steps, opt_name="SGD", **okw):
    p = torch.zeros(2, requires_grad=True)
    opt = getattr(torch.optim, opt_name)([p], **okw)
    sched = make(torch.optim.lr_scheduler, opt)
    out = []
    for _ in range(steps):
        p.grad = torch.zeros(2)
        opt.step()
        sched.step()
        g = opt.param_groups[0]
        out.append((sched.get_last_lr()[0], g.get("momentum"), g.get("betas")))
    return out


def _our_lrs(make, steps, opt_name="SGD", **okw):
    p = Tensor(np.zeros(2, np.float32), requires_grad=True)
    opt = getattr(optim, opt_name)([p], **okw)
    sched = make(lr_scheduler, opt)
    out = []
    for _ in range(steps):
        p.grad = Tensor(np.zeros(2, np.float32))
        opt.step()
        sched.step()
        g = opt.param_groups[0]
        out.append((sched.get_last_lr()[0], g.get("momentum"), g.get("betas")))
    return out


SCHEDULES = {
    "step": (lambda m, o: m.StepLR(o, step_size=3, gamma=0.5), 20, "SGD", {}),
    "cosine": (lambda m, o: m.CosineAnnealingLR(o, T_max=10, eta_min=1e-3), 35, "SGD", {}),
    "cosine-eta0": (lambda m, o: m.CosineAnnealingLR(o, T_max=7), 20, "SGD", {}),
    "onecycle-sgd": (lambda m, o: m.OneCycleLR(o, max_lr=0.5, total_steps=40), 39, "SGD",
                     dict(momentum=0.9)),
    "onecycle-adam-epochs": (lambda m, o: m.OneCycleLR(o, max_lr=0.01, epochs=3,
                                                       steps_per_epoch=11), 32, "Adam", {}),
    "onecycle-3phase-linear": (lambda m, o: m.OneCycleLR(
        o, max_lr=1.0, total_steps=25, pct_start=0.25, anneal_strategy="linear",
        three_phase=True, div_factor=10.0, final_div_factor=100.0), 24, "SGD",
        dict(momentum=0.5)),
    "onecycle-no-momentum": (lambda m, o: m.OneCycleLR(o, max_lr=0.1, total_steps=10,
                                                       cycle_momentum=False), 9, "Adagrad",
                             {}),
}


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_scheduler_lrs_match_torch(name):
    torch = pytest.importorskip("torch")
    make, steps, opt_name, okw = SCHEDULES[name]
    okw = {"lr": 0.1, **okw}
    expected = _torch_lrs(torch, make, steps, opt_name, **okw)
    got = _our_lrs(make, steps, opt_name, **okw)
    for e, g in zip(expected, got, strict=True):
        assert g[0] == e[0]  # the same float recurrences, so exactly equal
        assert g[1] == e[1]
        assert (g[2] is None) == (e[2] is None)
        if e[2] is not None:
            assert tuple(g[2]) == tuple(e[2])


def test_onecycle_overrun_and_bad_args():
    p = Tensor(np.zeros(2, np.float32), requires_grad=True)
    opt = optim.SGD([p], lr=0.1, momentum=0.9)
    s = lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=3)
    for _ in range(3):
        s.step()
    with pytest.raises(ValueError, match="total_steps=3"):
        s.step()
    with pytest.raises(ValueError, match="total_steps"):
        lr_scheduler.OneCycleLR(opt, max_lr=0.1)
    with pytest.raises(ValueError, match="cycle_momentum"):
        lr_scheduler.OneCycleLR(optim.Adagrad([p]), max_lr=0.1, total_steps=5)


# -- convergence: logistic regression on separable data --------------------------------

def _logreg_loss(w, b, x, y):
    z = x @ w + b
    # log(1 + exp(-y z)) written stably: relu(-yz) + log(1 + exp(-|yz|))
    yz = z * y
    return ((-yz).relu() + ((-(yz.abs())).exp() + 1.0).log()).mean()


OPTIMIZERS = {
    "SGD": dict(lr=0.5),
    "SGD-nesterov": dict(lr=0.2, momentum=0.9, nesterov=True),
    "Adagrad": dict(lr=0.3),
    "RMSprop": dict(lr=0.02, momentum=0.5),
    "Adam": dict(lr=0.05),
    "AdamW": dict(lr=0.05, weight_decay=0.01),
}


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_loss_decreases(name):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((128, 6)).astype(np.float32)
    y = np.sign(x @ rng.standard_normal(6) + 0.3).astype(np.float32)
    X, Y = Tensor(x), Tensor(y)
    w = Tensor(0.1 * rng.standard_normal(6).astype(np.float32), requires_grad=True)
    b = Tensor(np.full((), 0.1, np.float32), requires_grad=True)
    cls = getattr(optim, name.split("-")[0])
    opt = cls([w, b], **OPTIMIZERS[name])
    losses = []
    for _ in range(60):
        opt.zero_grad()
        loss = _logreg_loss(w, b, X, Y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses[::10]
    assert np.all(np.isfinite(losses))


# -- state -------------------------------------------------------------------------------

def _run(opt, params, grads):
    for g in grads:
        for p, gi in zip(params, g, strict=True):
            p.grad = Tensor(gi)
        opt.step()


@pytest.mark.parametrize("name,kw", [("SGD", dict(lr=0.1, momentum=0.9)),
                                     ("Adagrad", {}), ("RMSprop", dict(momentum=0.5)),
                                     ("Adam", {}), ("AdamW", dict(lr=0.01))])
def test_state_dict_round_trip(name, kw):
    rng = np.random.default_rng(5)
    init = [rng.standard_normal(s).astype(np.float32) for s in SHAPES]
    grads = [[rng.standard_normal(s).astype(np.float32) for s in SHAPES] for _ in range(6)]
    cls = getattr(optim, name)

    ref = [Tensor(a, requires_grad=True) for a in init]
    ref_opt = cls(ref, **kw)
    _run(ref_opt, ref, grads)

    first = [Tensor(a, requires_grad=True) for a in init]
    opt1 = cls(first, **kw)
    _run(opt1, first, grads[:3])
    sd = opt1.state_dict()
    # plain data only: numbers, tuples, bools and NumPy arrays (savable without pickle)
    for st in sd["state"].values():
        for v in st.values():
            assert isinstance(v, (int, float, np.ndarray)), type(v)
    second = [Tensor(p.numpy(), requires_grad=True) for p in first]
    opt2 = cls(second, **kw)
    opt2.load_state_dict(sd)
    _run(opt2, second, grads[3:])
    for p, q in zip(ref, second, strict=True):
        np.testing.assert_allclose(p.numpy(), q.numpy(), rtol=1e-6, atol=1e-7)
    # the saved arrays are copies, not views of live state
    _run(opt1, first, grads[3:4])
    assert not all(np.array_equal(a, b) for a, b in zip(
        [v for st in sd["state"].values() for v in st.values() if isinstance(v, np.ndarray)],
        [v for st in opt1.state_dict()["state"].values() for v in st.values()
         if isinstance(v, np.ndarray)], strict=True))


def test_load_state_dict_rejects_mismatch():
    a = Tensor(np.ones((2, 2), np.float32), requires_grad=True)
    opt = optim.Adam([a])
    a.grad = Tensor(np.ones((2, 2), np.float32))
    opt.step()
    sd = opt.state_dict()
    b = Tensor(np.ones(3, np.float32), requires_grad=True)
    with pytest.raises(ValueError, match="shape"):
        optim.Adam([b]).load_state_dict(sd)
    with pytest.raises(ValueError, match="parameters"):
        optim.Adam([a, b]).load_state_dict(sd)


def test_zero_grad_and_bad_params():
    a = Tensor(np.ones(3, np.float32), requires_grad=True)
    opt = optim.SGD([a], lr=0.1)
    a.grad = Tensor(np.ones(3, np.float32))
    opt.zero_grad(set_to_none=False)
    np.testing.assert_array_equal(a.grad.numpy(), np.zeros(3))
    opt.zero_grad()
    assert a.grad is None
    with pytest.raises(ValueError, match="empty"):
        optim.SGD([], lr=0.1)
    with pytest.raises(TypeError, match="list"):
        optim.SGD(a, lr=0.1)
    with pytest.raises(ValueError, match="more than one"):
        optim.SGD([{"params": [a]}, {"params": [a]}], lr=0.1)
    with pytest.raises(ValueError, match="Nesterov"):
        optim.SGD([a], lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="learning rate"):
        optim.Adam([a], lr=-1.0)


def test_state_follows_parameter_device_change(monkeypatch):
    """If a parameter is rebound to another device (module.to), state is moved lazily."""
    a = Tensor(np.ones(3, np.float32), requires_grad=True)
    opt = optim.Adam([a], lr=0.1)
    a.grad = Tensor(np.ones(3, np.float32))
    opt.step()
    st = opt.state[a]
    st["_device"] = "elsewhere"  # pretend the buffers live on a device that is now gone
    opt.step()
    assert opt.state[a]["_device"] == "cpu"
    assert opt.state[a]["step"] == 1  # re-created, since the old device cannot be read


def test_state_follows_parameter_dtype_change():
    """module.double() rebinds p.data as float64; the buffers follow (values kept)."""
    a = Tensor(np.ones(3, np.float32), requires_grad=True)
    opt = optim.SGD([a], lr=0.1, momentum=0.9)
    a.grad = Tensor(np.ones(3, np.float32))
    opt.step()
    a.data = a.data.astype(np.float64)
    a.grad = Tensor(np.ones(3), dtype="float64")
    opt.step()
    buf = opt.state[a]["momentum_buffer"]
    assert buf.dtype == np.float64
    np.testing.assert_allclose(buf, 1.9)
    np.testing.assert_allclose(a.numpy(), 1 - 0.1 - 0.19)


@pytest.mark.parametrize("make, message", [
    (lambda ps: optim.SGD(ps, lr=-0.1), "SGD: invalid learning rate -0.1 (must be >= 0)"),
    (lambda ps: optim.SGD(ps, momentum=-1.0), "SGD: invalid momentum -1.0 (must be >= 0)"),
    (lambda ps: optim.Adagrad(ps, initial_accumulator_value=-2.0),
     "Adagrad: invalid initial_accumulator_value -2.0 (must be >= 0)"),
    (lambda ps: optim.Adam(ps, eps=-1e-8), "Adam: invalid eps -1e-08 (must be >= 0)"),
    (lambda ps: optim.AdamW(ps, weight_decay=-0.5),
     "AdamW: invalid weight_decay -0.5 (must be >= 0)"),
    (lambda ps: optim.RMSprop(ps, alpha=1.5), "RMSprop: invalid alpha 1.5 (must be in [0, 1])"),
    (lambda ps: optim.RMSprop(ps, lr=-1.0, alpha=1.5),  # checked in order: lr first
     "RMSprop: invalid learning rate -1.0 (must be >= 0)"),
])
def test_bad_hyperparameters_are_named(make, message):
    a = Tensor(np.ones(3, np.float32), requires_grad=True)
    with pytest.raises(ValueError) as err:
        make([a])
    assert str(err.value) == message

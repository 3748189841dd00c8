"""engine.compile: cached inference plans replay exactly what the eager forward computes.

A plan is recorded once per input shape and replayed on raw arrays; these tests pin that
its outputs equal the eager model's bit for bit (LeNet-5, a ResNet with batch norm and
residual adds, an LSTM reader with multi-output ops), that it sees new weights, and that
everything a recording cannot capture runs the model eagerly instead.
"""

from __future__ import annotations

import numpy as np
import pytest

import engine
from engine import Tensor, models, nn, no_grad
from engine.sequences import RowClassifier


def _x(*shape: int, seed: int = 0) -> Tensor:
    return Tensor(np.random.default_rng(seed).random(shape, dtype=np.float32))


def _same(compiled, model, x: Tensor) -> None:
    with no_grad():
        want, got = model(x).numpy(), compiled(x).numpy()
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("make,shape", [
    (models.lenet5, (1, 1, 28, 28)),
    (lambda: models.cifar_resnet(4), (2, 3, 32, 32)),
    (lambda: RowClassifier("LSTM", hidden=16), (3, 28, 28)),
], ids=["lenet5", "resnet", "lstm"])
def test_replay_equals_the_eager_forward(make, shape):
    engine.manual_seed(0)
    model = make().eval()
    compiled = engine.compile(model)
    for seed in range(2):  # the second call replays the cached plan
        _same(compiled, model, _x(*shape, seed=seed))
    assert len(compiled.plans) == 1 and None not in compiled.plans.values()
    assert engine.compile(model).plans is compiled.plans  # kept with the model


def test_new_weights_and_new_shapes_are_seen():
    model = models.lenet5().eval()
    compiled = engine.compile(model)
    x = _x(1, 1, 28, 28)
    _same(compiled, model, x)
    with no_grad():
        model[0].weight.copy_(model[0].weight * 2.0)  # in place
        model[9].weight.set_(Tensor(np.ones((84, 120), np.float32)))  # a new array
    _same(compiled, model, x)
    _same(compiled, model, _x(4, 1, 28, 28))  # a second shape: a second plan
    assert len(compiled.plans) == 2
    model.double()  # float64 parameters, float32 input: the eager error, not a replay
    with no_grad(), pytest.raises(TypeError, match="dtype"):
        compiled(x)


def test_replaced_parts_are_seen_and_plans_do_not_keep_the_model():
    import gc
    import weakref

    model = models.lenet5().eval()
    compiled = engine.compile(model)
    x = _x(1, 1, 28, 28)

    def replayed_as_eager(compiled: engine.plan.CompiledModel, model: nn.Module) -> None:
        for _ in range(2):  # the first call after a change runs eagerly, the next replays
            _same(compiled, model, x)
        assert len(compiled.plans) == 1 and None not in compiled.plans.values()

    replayed_as_eager(compiled, model)
    names = [n for n, _ in model.named_children()]
    model.add_module("9", nn.Linear(120, 84).eval())  # a new layer in the same place
    replayed_as_eager(compiled, model)
    setattr(model, "1", nn.Tanh().eval())  # a swapped activation, no parameters involved
    replayed_as_eager(compiled, model)
    assert [n for n, _ in model.named_children()] == names  # replaced where they were
    assert isinstance(model[1], nn.Tanh)
    model[9].weight = nn.Parameter(Tensor(np.ones((84, 120), np.float32)))  # a new Parameter
    replayed_as_eager(compiled, model)
    gone = weakref.ref(model)
    del model, compiled
    gc.collect()
    assert gone() is None  # the plans (kept in a weak dictionary) do not keep it alive


def test_training_grad_and_hooks_run_eagerly():
    model = models.lenet5()
    compiled = engine.compile(model)
    x = _x(2, 1, 28, 28)
    assert compiled(x).requires_grad  # training mode, grad on: a graph, as model(x)
    model.eval()
    assert compiled(x).requires_grad  # eval, but grad enabled: still a graph
    seen = []
    handle = model[1].register_forward_hook(lambda m, i, o: seen.append(o.shape))
    with no_grad():
        compiled(x)
    handle.remove()
    assert seen == [(2, 6, 28, 28)] and not compiled.plans


class _Branchy(nn.Module):
    """Branches on a value (a host read) and builds a tensor outside the recorded ops."""

    def __init__(self, how: str) -> None:
        super().__init__()
        self.how = how
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        if self.how == "branch":
            return self.fc(x) if float(x.sum()) > 0 else -self.fc(x)
        return self.fc(x.detach()) * 2.0  # detach: not a recorded op


@pytest.mark.parametrize("how", ["branch", "detach"])
def test_what_a_recording_cannot_capture_is_not_replayed(how):
    model = _Branchy(how).eval()
    compiled = engine.compile(model)
    for sign in (1.0, -1.0):
        x = Tensor(np.full((2, 4), sign, np.float32))
        _same(compiled, model, x)
    assert list(compiled.plans.values()) == [None]

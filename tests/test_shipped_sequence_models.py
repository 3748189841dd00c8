"""The shipped sequence models, evaluated on the full MNIST test set (read row by row)
through ONNX Runtime and through the engine (the same file): accuracy targets, agreement
of the two, and the model cards stating what ships."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import engine.onnx
from engine import sequences
from engine.data import load_mnist
from engine.data.sequence_tasks import mnist_rows
from tests.data_helpers import real_data
from tests.test_shipped_models import MODELS, check_model

onnx = pytest.importorskip("onnx")


@pytest.mark.data
@pytest.mark.parametrize("name,target", [("seq_lstm", 0.98), ("seq_attention", 0.98)])
def test_row_by_row_models_reach_their_targets_on_mnist_test(name, target):
    real_data("mnist")
    x, y = load_mnist(split="test")
    check_model(name, mnist_rows(x), y, target)


@pytest.mark.parametrize("name,kind,op", [("seq_lstm", "LSTM", "LSTM"),
                                          ("seq_attention", "attention", "Softmax")])
def test_shipped_files_hold_the_models_and_their_cards(name, kind, op):
    proto = onnx.load(str(MODELS / f"{name}.onnx"))
    assert op in {n.op_type for n in proto.graph.node}
    card = json.loads((MODELS / f"{name}.json").read_text())
    assert card["command"].startswith(f"python build.py train {name}")
    md = (MODELS / f"{name}.md").read_text()
    assert f"{100 * card['test_accuracy']:.2f}%" in md and card["command"] in md
    # the file's initializers keep the model's names: the page rebuilds the module
    state = engine.onnx.load(MODELS / f"{name}.onnx", device="cpu").state_dict()
    model = sequences.shipped_model(kind, state)
    assert model.num_parameters() == card["parameters"]


def test_shipped_lstm_runs_the_fused_scan():
    from engine import fused
    from engine.autograd import trace

    m = engine.onnx.load(Path(MODELS) / "seq_lstm.onnx", device="cpu")
    with trace() as tr:
        m(np.zeros((2, 28, 28), np.float32))
    assert sum(1 for r in tr.records if r[0] is fused.recurrent_scan) == 1


@pytest.mark.parametrize("name,kind", [("seq_lstm", "LSTM"), ("seq_attention", "attention")])
def test_a_shipped_reader_is_made_on_the_cpu_without_touching_the_default_device(
        monkeypatch, name, kind):
    """In a browser the default device is the GPU: a shipped reader made there was looked
    inside on the GPU, one readback per step (the Sequences page's first reading waited
    10-26 s on SwiftShader). Here the default device refuses any array."""
    from engine import backends
    from engine.backends.cpu import CpuBackend

    class Refusing(CpuBackend):
        def from_numpy(self, a):
            raise AssertionError("the default device was used")

    state = engine.onnx.load(MODELS / f"{name}.onnx", device="cpu").state_dict()
    monkeypatch.setenv("DEMYSTIFY_DEVICE", "gpu")
    with backends.override("gpu", Refusing()):
        model = sequences.shipped_model(kind, state)
        assert {p.device for p in model.parameters()} == {"cpu"}
        assert {b.device for _, b in model.named_buffers()} <= {"cpu"}
        seen = sequences.look_inside(model, np.zeros((28, 28), np.float32))
    assert seen["probs"].shape == (10,)

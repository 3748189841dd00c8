"""The Sequences page without a browser: what it computes through the engine, its limits,
and its live jobs both on a server (threads) and as in Pyodide (the event loop)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import engine
from engine import nn, sequences
from engine.data.sequence_tasks import adding_accuracy, adding_problem, mnist_rows
from tests.gpu_helpers import gpu_backend_or_skip
from webapp import sequences as page
from webapp import sequences_gradients as G
from webapp import sequences_rows as R
from webapp.common import png_data_url

ROOT = Path(__file__).resolve().parents[1]


def drawn_one() -> str:
    img = np.full((280, 280), 255, np.uint8)
    img[40:240, 130:150] = 0
    return png_data_url(img)


def run_job(demo, timeout_s: float = 180) -> None:
    """Start a demo's job and poll it as the page's periodic callback would."""
    demo._start()
    deadline = time.monotonic() + timeout_s
    while demo.job is not None:
        assert time.monotonic() < deadline, "the job did not finish"
        time.sleep(0.1)
        demo._poll()


def test_tasks():
    x, y = adding_problem(50, 40, seed=3)
    assert x.shape == (50, 40, 2) and y.shape == (50,)
    assert (x[..., 1].sum(1) == 2).all()
    first, second = (np.argsort(-x[..., 1], 1)[:, :2].min(1), np.argsort(-x[..., 1], 1)[:, :2]
                     .max(1))
    assert (first < 20).all() and (second >= 20).all()  # one mark in each half
    np.testing.assert_allclose(y, (x[..., 0] * x[..., 1]).sum(1), rtol=1e-6)
    assert adding_accuracy(y + 0.03, y) == 1.0 and adding_accuracy(y + 0.05, y) == 0.0
    with pytest.raises(ValueError, match="length must be 2..1000"):
        adding_problem(1, 5000)
    rows = mnist_rows(np.full((2, 28, 28), 255, np.uint8))
    assert rows.dtype == np.float32 and rows.max() == 1.0


def test_rows_side_by_side_training_and_reading_a_drawing():
    demo = R.RowsDemo(digits=300, epochs=2, hidden=16)
    run_job(demo)
    assert "finished" in demo.status.object, demo.status.object
    for k in R.KINDS:
        assert len(demo.loss_src[k].data["loss"]) == 2 * 5  # ceil(300 / 64) steps per epoch
        accs = demo.acc_src[k].data["acc"]
        assert len(accs) == 2 and all(0.0 <= a <= 1.0 for a in accs)
    assert demo.source == "trained here" and set(demo.trained) == set(R.KINDS)
    demo.canvas.image = drawn_one()  # the drawing is read by the models trained here
    assert "trained here" in demo.result.object
    assert all(k in demo.result.object for k in R.KINDS)
    assert demo.hidden_srcs["LSTM"].data["image"][0].shape == (16, 28)
    assert len(demo.gate_src["forget"].data["v"]) == 28
    w = demo.att_src.data["w"]
    assert len(w) == 28 and abs(sum(w) - 1.0) < 1e-4


def test_shipped_models_read_a_drawn_one():
    x, seen = R.read_drawing(drawn_one(), R.shipped())
    assert x.shape == (28, 28)
    for kind in ("LSTM", "attention"):
        assert int(np.argmax(seen[kind]["probs"])) == 1, kind
    gates = seen["LSTM"]["gates"]
    assert set(gates) == {"input", "forget", "candidate", "output"}
    assert all(g.shape == (28, 128) for g in gates.values())
    assert seen["attention"]["self_attention"].shape == (28, 28)


def test_look_inside_matches_the_fused_forward():
    """The step-by-step view (cells) computes what the model's fused forward computes."""
    engine.manual_seed(2)
    x = mnist_rows(np.random.default_rng(0).integers(0, 255, (28, 28))[None])[0]
    for kind in ("RNN", "LSTM", "GRU", "attention"):
        m = sequences.row_model(kind, 12).eval()
        info = sequences.look_inside(m, x)
        with engine.no_grad():
            out = m(engine.Tensor(x[None]))
            p = nn.functional.softmax(out, -1).numpy()[0]
        np.testing.assert_allclose(info["probs"], p, rtol=1e-5, atol=1e-6)
        if kind != "attention":
            with engine.no_grad():
                seq, _ = m.rnn(engine.Tensor(x[None]))
            np.testing.assert_allclose(info["hidden"], seq.numpy()[0], rtol=1e-5, atol=1e-6)


def test_hidden_gradient_norms_are_the_gradients_of_the_hidden_states():
    """|dL/dh_t| from the probes equals the finite-difference sensitivity direction: for
    the last step it is |dL/dh_T| computed directly through the head."""
    engine.manual_seed(0)
    m = sequences.AddingRegressor("LSTM", 6)
    x, y = adding_problem(8, 12, seed=1)
    g = sequences.hidden_gradient_norms(m, x, y, nn.functional.mse_loss)
    assert g.shape == (12,) and (g > 0).all()
    with engine.no_grad():
        seq, _ = m.rnn(engine.Tensor(x))
    h = engine.Tensor(seq.numpy()[:, -1], requires_grad=True)
    nn.functional.mse_loss(m.fc(h).reshape(-1), engine.Tensor(y)).backward()
    want = np.sqrt((h.grad.numpy() ** 2).sum(-1)).mean()
    assert g[-1] == pytest.approx(want, rel=1e-5)


def test_gradients_experiment_reports_profiles_steps_and_results():
    demo = G.GradientsDemo(length=16, steps=50, hidden=8)
    run_job(demo)
    assert "finished" in demo.status.object
    for name in ("RNN", "LSTM"):
        assert len(demo.profile_src[name].data["t"]) == 16
    for name in G.RUN_COLORS:
        assert len(demo.loss_src[name].data["v"]) == 50
        assert len(demo.after_src[name].data["g"]) == 16
    assert demo.table.object.count("<tr>") == 5 and "%" in demo.table.object


def test_exploding_preset_diverges_without_clipping_only():
    events = list(sequences.adding_race(30, 120, 16, recurrent_scale=3.0, lr=0.01, clip=1.0,
                                        nonlinearity="relu", optimizer="sgd"))
    results = {p[0]: p for k, p in events if k == "result"}
    profile = dict(p for k, p in events if k == "profile")
    assert profile["RNN"][0] > 10 * profile["RNN"][-1]  # the gradient grows going back
    assert results["RNN"][3] is True  # diverged
    assert results["RNN + clipping"][3] is False and np.isfinite(results["RNN + clipping"][1])


def test_settings_over_the_limits_are_refused_with_the_limit():
    demo = G.GradientsDemo(length=G.MAX_LENGTH + 1)
    demo._start()
    assert demo.job is None and demo.error.visible
    assert f"limit of {G.MAX_LENGTH} steps" in demo.error.object
    assert "this page&#x27;s limit" in demo.error.object  # escaped once, as plain text
    with pytest.raises(ValueError, match="too short"):
        G.check_settings(dict(length=1, steps=10, clip=1.0))
    with pytest.raises(ValueError, match="training digits must be 100..5000"):
        R.train_job(dict(digits=9000, epochs=1, hidden=8, device="CPU", seed=0))


def test_a_job_can_be_cancelled():
    demo = G.GradientsDemo(length=40, steps=3000, hidden=8)
    demo._start()
    time.sleep(0.5)
    demo.job.cancel()
    deadline = time.monotonic() + 60
    while demo.job is not None:
        assert time.monotonic() < deadline
        time.sleep(0.1)
        demo._poll()
    assert "cancelled" in demo.status.object


def test_a_closed_tab_cancels_its_job(monkeypatch):
    from webapp import common

    demo = R.RowsDemo(digits=2000, epochs=10, hidden=32)
    demo._start()
    job = demo.job
    monkeypatch.setattr(common, "session_connected", lambda: False)  # the tab is gone
    for _ in range(30):  # the page's poller keeps running a few seconds
        demo._poll()
    assert demo.job is None and job.cancelled.is_set()
    assert job.finished.wait(60)
    assert job.drain()[-1] == ("done", "cancelled")


def test_page_builds_with_its_url_settings():
    view = page.page()
    assert view is not None
    p = page.SequencesPage()
    assert isinstance(p.rows, R.RowsDemo) and isinstance(p.gradients, G.GradientsDemo)
    p.gradients.preset("exploding")
    assert (p.gradients.activation, p.gradients.optimizer, p.gradients.scale) == \
        ("relu", "SGD", 3.0)


@pytest.mark.gpu
def test_training_on_the_gpu():
    gpu_backend_or_skip()
    demo = R.RowsDemo(digits=200, epochs=1, hidden=8, device="GPU")
    run_job(demo)
    assert "finished" in demo.status.object
    assert next(demo.trained["LSTM"].parameters()).device == "gpu"
    demo.canvas.image = drawn_one()
    assert "LSTM" in demo.result.object


BROWSER_LIKE = r"""
import asyncio, sys, threading, time, types
sys.modules["onnx"] = None
sys.modules["onnxruntime"] = None
def no_threads(self):
    raise RuntimeError("can't start new thread")
threading.Thread.start = no_threads
sys.modules["js"] = types.SimpleNamespace(location=types.SimpleNamespace(search="?embed=true"))
from webapp import common
common.IN_BROWSER = True
from webapp import sequences, sequences_gradients as G, sequences_rows as R
sequences.page()
import numpy as np
from webapp.common import png_data_url
img = np.full((280, 280), 255, np.uint8)
img[40:240, 130:150] = 0
x, seen = R.read_drawing(png_data_url(img), R.shipped())
print("shipped", int(np.argmax(seen["LSTM"]["probs"])), int(np.argmax(seen["attention"]["probs"])))

async def main():
    for demo in (G.GradientsDemo(length=12, steps=50, hidden=8),
                 R.RowsDemo(digits=200, epochs=1, hidden=8)):
        demo._start()
        while demo.job is not None:
            await asyncio.sleep(0.02)
            demo._poll()
        print(type(demo).__name__, demo.status.object)

asyncio.run(main())
"""


def test_page_works_as_in_pyodide_without_threads_and_onnx():
    out = subprocess.run([sys.executable, "-c", BROWSER_LIKE], cwd=ROOT, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "shipped 1 1" in out.stdout, out.stdout
    assert "GradientsDemo <span class='adding-done'>finished" in out.stdout, out.stdout
    assert "RowsDemo <span class='rows-done'>finished" in out.stdout, out.stdout

"""engine.train.fit, evaluate, predict and engine.save/load_state."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

import engine
from engine import backends, nn, optim
from engine.backends import DeviceError
from engine.backends.cpu import CpuBackend
from engine.train import DivergenceWarning, History, TrainingDiverged, evaluate, fit, predict
from tests.data_helpers import real_data

F = nn.functional


def _mnist_dir() -> Path:
    """$DEMYSTIFY_DATA/mnist, skipping (or failing under CI) when it is absent."""
    return real_data("mnist", "train-images-idx3-ubyte.gz").parent


def _blobs(n: int = 384, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    centers = np.array([[0, 0], [3, 0], [0, 3]], np.float32)
    x = (rng.standard_normal((n, 2)) * 0.6).astype(np.float32) + centers[y]
    return x, y.astype(np.int64)


def _small_model() -> nn.Module:
    engine.manual_seed(0)
    return nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 3))


# -- the real thing -----------------------------------------------------------------------

@pytest.mark.data
def test_mlp_reaches_97_percent_on_mnist(tmp_path):
    from engine.data import load_mnist

    root = _mnist_dir()
    xtr, ytr = load_mnist(root, "train")
    xte, yte = load_mnist(root, "test")

    def norm(x):
        return ((x.astype(np.float32) / 255.0) - 0.1307) / 0.3081

    xtr, xte = norm(xtr), norm(xte)
    engine.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 10))
    opt = optim.Adam(model.parameters(), lr=5e-3)
    epochs, batch = 4, 256
    sched = optim.lr_scheduler.OneCycleLR(opt, max_lr=5e-3, epochs=epochs,
                                          steps_per_epoch=-(-len(xtr) // batch))
    t0 = time.perf_counter()
    hist = fit(model, F.cross_entropy, opt, (xtr, ytr), val=(xte[:2000], yte[:2000]),
               epochs=epochs, batch_size=batch, scheduler=sched, progress=False)
    seconds = time.perf_counter() - t0
    loss, acc = evaluate(model, xte, yte)
    print(f"\nMNIST MLP: {len(xtr)} train, {epochs} epochs in {seconds:.2f}s "
          f"(incl. validation); test accuracy {acc:.4f}, loss {loss:.4f}")
    assert acc >= 0.97, f"test accuracy {acc:.4f}"
    assert hist.epochs == epochs and hist.stopped_reason is None
    assert hist["accuracy"][-1] > hist["accuracy"][0]
    assert len(hist["val_accuracy"]) == epochs and hist["val_accuracy"][-1] > 0.95

    # save / load round trip gives the same predictions
    path = tmp_path / "mlp.npz"
    engine.save(model, path)
    fresh = nn.Sequential(nn.Flatten(), nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 10))
    fresh.load_state_dict(engine.load_state(path))
    np.testing.assert_array_equal(predict(fresh, xte[:500]), predict(model, xte[:500]))


# -- history, callbacks, stopping --------------------------------------------------------

class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, int, int]] = []
        self.epoch_logs: list[dict] = []

    def on_train_begin(self, info):
        self.events.append(("begin", info.epoch, info.step))

    def on_step(self, info):
        assert np.isfinite(info.loss) and info.lr > 0
        self.events.append(("step", info.epoch, info.step))

    def on_epoch_end(self, info):
        self.epoch_logs.append(dict(info.logs))
        self.events.append(("epoch", info.epoch, info.step))

    def on_train_end(self, info):
        self.events.append(("end", info.epoch, info.step))


def test_history_callbacks_and_validation():
    x, y = _blobs()
    model = _small_model()
    opt = optim.SGD(model.parameters(), lr=0.2, momentum=0.9)
    rec = Recorder()
    seen_events = []
    hist = fit(model, F.cross_entropy, opt, (x, y), val=_blobs(120, seed=1), epochs=3,
               batch_size=64, callbacks=[rec, lambda info: seen_events.append(info.event)],
               progress=False)
    assert isinstance(hist, History)
    steps = -(-len(x) // 64)
    assert set(hist) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert all(len(v) == 3 for v in hist.values())
    assert len(hist.steps) == 3 * steps
    assert [s["step"] for s in hist.steps] == list(range(3 * steps))
    assert {s["epoch"] for s in hist.steps} == {0, 1, 2}
    assert all(s["lr"] == 0.2 for s in hist.steps)
    # the epoch loss is the sample-weighted mean of that epoch's step losses
    first = [s["loss"] for s in hist.steps[:steps]]
    weights = [64] * (steps - 1) + [len(x) - 64 * (steps - 1)]
    assert hist["loss"][0] == pytest.approx(np.average(first, weights=weights), rel=1e-6)
    assert hist["loss"][-1] < hist["loss"][0]
    assert hist["val_accuracy"][-1] > 0.9
    assert rec.events[0] == ("begin", 0, 0) and rec.events[-1][0] == "end"
    assert [e for e in rec.events if e[0] == "epoch"] == [("epoch", i, (i + 1) * steps - 1)
                                                         for i in range(3)]
    assert rec.epoch_logs[-1] == {k: v[-1] for k, v in hist.items()}
    assert seen_events.count("on_step") == 3 * steps and seen_events[-1] == "on_train_end"
    assert hist.stopped_reason is None and not hist.diverged and hist.device == "cpu"


def test_callback_can_stop_training():
    x, y = _blobs()
    model = _small_model()
    opt = optim.Adam(model.parameters(), lr=0.01)

    def cancel_after_five(info):
        if info.event == "on_step" and info.step == 4:
            info.stop = True
            info.stop_reason = "cancelled by the user"

    hist = fit(model, F.cross_entropy, opt, (x, y), epochs=5, batch_size=32,
               callbacks=cancel_after_five, progress=False)
    assert len(hist.steps) == 5
    assert hist.stopped_reason == "cancelled by the user"
    assert hist.epochs == 0  # epoch lists hold completed epochs only

    class StopAtEpochEnd:
        def on_epoch_end(self, info):
            info.stop = True

    hist = fit(model, F.cross_entropy, opt, (x, y), epochs=5, batch_size=32,
               callbacks=[StopAtEpochEnd()], progress=False)
    assert hist.epochs == 1 and hist.stopped_reason == "stopped by a callback"


def test_divergence_stops_and_keeps_last_good_weights():
    x, y = _blobs()
    model = _small_model()
    opt = optim.SGD(model.parameters(), lr=1e6)  # absurd: the loss explodes to NaN
    losses = []
    with pytest.warns(DivergenceWarning, match="lower learning rate"):
        with np.errstate(all="ignore"):
            hist = fit(model, F.cross_entropy, opt, (x, y), epochs=3, batch_size=32,
                       callbacks=lambda info: losses.append(info.loss)
                       if info.event == "on_step" else None, progress=False)
    assert hist.diverged and "diverged" in hist.stopped_reason
    assert len(hist.steps) < 3 * 12
    weights = [p.numpy() for p in model.parameters()]
    assert all(np.isfinite(w).all() for w in weights)
    # the restored weights are the ones that produced the last finite loss
    with engine.no_grad():
        redo = F.cross_entropy(model(engine.Tensor(x)), engine.Tensor(y))
    assert np.isfinite(redo.item())

    model = _small_model()
    with pytest.raises(TrainingDiverged, match="learning rate") as err:
        with np.errstate(all="ignore"):
            fit(model, F.cross_entropy, optim.SGD(model.parameters(), lr=1e6), (x, y),
                epochs=3, batch_size=32, progress=False, on_diverge="raise")
    assert err.value.history is not None and err.value.history.diverged


def test_nonfinite_weights_are_caught_at_epoch_end():
    x, y = _blobs(64)
    model = _small_model()

    class Poison:  # an optimizer whose update writes NaN while the loss was finite
        param_groups = [{"lr": 0.1}]

        def zero_grad(self):
            model.zero_grad()

        def step(self):
            for p in model.parameters():
                p.data[...] = np.nan

    with pytest.warns(DivergenceWarning, match="parameters or buffers became NaN"):
        hist = fit(model, F.cross_entropy, Poison(), (x, y), epochs=2, batch_size=64,
                   progress=False)
    assert hist.diverged
    assert all(np.isfinite(p.numpy()).all() for p in model.parameters())


def _all_finite(model: nn.Module) -> bool:
    return all(np.isfinite(t.numpy()).all() for t in [*model.parameters(), *model.buffers()]
               if t.dtype.kind == "f")


@pytest.mark.parametrize("device", ["cpu", pytest.param("gpu", marks=pytest.mark.gpu)])
def test_poisoned_buffers_are_never_restored(device):
    """Batch norm's running variance overflows while the loss stays finite (batch
    statistics normalise the huge inputs): every per-step snapshot holds an inf buffer,
    so the guard goes back to the epoch start, where everything was finite, and says so.
    On the GPU the epoch-start copy is uploaded back into the device tensors."""
    if device == "gpu":
        from tests.gpu_helpers import gpu_backend_or_skip

        gpu_backend_or_skip()
    x, y = _blobs(128)
    engine.manual_seed(0)
    model = nn.Sequential(nn.BatchNorm1d(2), nn.Linear(2, 16), nn.ReLU(),
                          nn.Linear(16, 3)).to(device)
    with pytest.warns(DivergenceWarning, match="start of epoch 1 .step 1."):
        with np.errstate(all="ignore"):
            hist = fit(model, F.cross_entropy, optim.SGD(model.parameters(), lr=0.1),
                       (x * np.float32(1e20), y), epochs=2, batch_size=32, progress=False)
    assert hist.diverged and "parameters or buffers became NaN/inf" in hist.stopped_reason
    assert _all_finite(model) and all(p.device == device for p in model.parameters())


def test_divergence_with_batch_norm_at_lr_1e6_leaves_a_usable_model():
    """The finding as reported: the Playground's MLP with batch norm at lr=1e6 on the
    MNIST subset. Afterwards every parameter and statistic is finite and evaluation gives
    a sane loss (the reported 580,588 came from 62 inf running variances)."""
    with np.load(Path(__file__).parents[1] / "webapp" / "assets" / "mnist_subset.npz",
                 allow_pickle=False) as z:
        x = (z["x_train"].reshape(len(z["x_train"]), -1) / np.float32(255)).astype(np.float32)
        y = z["y_train"].astype(np.int64)
    engine.manual_seed(0)
    model = nn.Sequential(nn.Linear(784, 64), nn.BatchNorm1d(64), nn.ReLU(),
                          nn.Linear(64, 64), nn.BatchNorm1d(64), nn.ReLU(), nn.Linear(64, 10))
    with pytest.warns(DivergenceWarning, match=r"restored to those (of step|at the start)"):
        with np.errstate(all="ignore"):
            hist = fit(model, F.cross_entropy, optim.SGD(model.parameters(), lr=1e6),
                       (x, y), epochs=2, batch_size=64, progress=False)
    assert hist.diverged and _all_finite(model)
    loss, _ = evaluate(model, x[:500], y[:500])
    assert np.isfinite(loss) and loss < 10, loss


def test_schedulers_inside_fit():
    x, y = _blobs(128)
    model = _small_model()
    opt = optim.SGD(model.parameters(), lr=0.1)
    sched = optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    hist = fit(model, F.cross_entropy, opt, (x, y), epochs=3, batch_size=64,
               scheduler=sched, scheduler_step="epoch", progress=False)
    assert [s["lr"] for s in hist.steps] == [0.1, 0.1, 0.05, 0.05, 0.025, 0.025]

    model = _small_model()
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    sched = optim.lr_scheduler.OneCycleLR(opt, max_lr=0.5, total_steps=6)
    hist = fit(model, F.cross_entropy, opt, (x, y), epochs=3, batch_size=64,
               scheduler=sched, progress=False)
    lrs = [s["lr"] for s in hist.steps]
    assert lrs[0] == pytest.approx(0.5 / 25) and max(lrs) > 0.4 and lrs[-1] < lrs[0]


def test_other_data_sources_and_metrics():
    x, y = _blobs(96)

    class Dataset:
        def __len__(self):
            return len(x)

        def __getitem__(self, i):
            return x[i], y[i]

    model = _small_model()
    opt = optim.Adam(model.parameters(), lr=0.05)
    hist = fit(model, F.cross_entropy, opt, Dataset(), epochs=2, batch_size=32,
               progress=False)
    assert len(hist.steps) == 6 and len(hist["accuracy"]) == 2

    def batches():
        for i in range(0, len(x), 48):
            yield x[i:i + 48], y[i:i + 48]

    hist = fit(model, F.cross_entropy, opt, batches, epochs=2, progress=False)
    assert len(hist.steps) == 4

    # regression: no accuracy by default; a custom metric by name
    xr = x.astype(np.float32)
    yr = (xr.sum(1, keepdims=True) * 0.5).astype(np.float32)
    reg = nn.Linear(2, 1)

    def mae(out, target):
        return (out - target).abs().mean()

    hist = fit(reg, F.mse_loss, optim.SGD(reg.parameters(), lr=0.05), (xr, yr), epochs=4,
               batch_size=16, metrics={"mae": mae}, val=(xr, yr), progress=False)
    assert set(hist) == {"loss", "mae", "val_loss", "val_mae"}
    assert hist["mae"][-1] < hist["mae"][0]


def test_evaluate_and_predict_restore_train_mode():
    x, y = _blobs(100)
    model = nn.Sequential(nn.Linear(2, 8), nn.Dropout(0.5), nn.ReLU(), nn.Linear(8, 3))
    model.train()
    out = predict(model, x, batch_size=32)
    assert out.shape == (100, 3) and model.training
    np.testing.assert_array_equal(out, predict(model, x, batch_size=7))  # eval: no dropout
    loss, acc = evaluate(model, x, y, batch_size=30)
    assert 0.0 <= acc <= 1.0 and np.isfinite(loss) and model.training
    expect = (out.argmax(1) == y).mean()
    assert acc == pytest.approx(expect)


def test_bad_arguments():
    x, y = _blobs(10)
    model = _small_model()
    opt = optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="samples"):
        fit(model, F.cross_entropy, opt, (x, y[:5]), progress=False)
    with pytest.raises(ValueError, match="scheduler_step"):
        fit(model, F.cross_entropy, opt, (x, y), scheduler_step="sometimes", progress=False)
    with pytest.raises(TypeError, match=r"\(X, y\)"):
        fit(model, F.cross_entropy, opt, 42, progress=False)


# -- a lost GPU --------------------------------------------------------------------------

class FlakyBackend(CpuBackend):
    """A stand-in "gpu" that dies after `budget` matmuls; afterwards every call fails."""

    name = "gpu"

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.lost = False

    def __getattribute__(self, name):
        if name not in ("lost", "budget", "name", "__class__", "__dict__") and \
                object.__getattribute__(self, "lost"):
            raise DeviceError("flaky test device was lost")
        return object.__getattribute__(self, name)

    def matmul(self, a, b, trans_a=False, trans_b=False):
        self.budget -= 1
        if self.budget < 0:
            self.lost = True
            raise DeviceError("flaky test device was lost")
        return super().matmul(a, b, trans_a, trans_b)


@pytest.fixture
def flaky_gpu(monkeypatch):
    """A flaky "gpu" in a registry of its own (retiring it must not leak into other
    tests); starting a fresh GPU fails unless a test registers a factory that works."""
    dev = FlakyBackend(budget=10_000)

    def no_gpu():
        raise DeviceError("no adapter (test)")

    monkeypatch.setattr(backends, "_backends", {"cpu": backends._backends["cpu"], "gpu": dev})
    monkeypatch.setattr(backends, "_factories", {"gpu": no_gpu})
    monkeypatch.setattr(backends, "_failures", {})
    monkeypatch.setattr(backends, "_lost", {})
    monkeypatch.setattr(backends, "_notified", False)
    return dev


def test_lost_device_falls_back_to_cpu(flaky_gpu, capsys):
    x, y = _blobs()
    model = _small_model().to("gpu")
    assert all(p.device == "gpu" for p in model.parameters())
    opt = optim.Adam(model.parameters(), lr=0.05)
    flaky_gpu.budget = 6 * 12 + 20  # ~ dies in the second epoch (6 matmuls per step)
    hist = fit(model, F.cross_entropy, opt, (x, y), val=_blobs(60, 1), epochs=4,
               batch_size=32, progress=False)
    assert flaky_gpu.lost
    assert hist.device == "cpu" and hist.stopped_reason is None
    assert all(p.device == "cpu" for p in model.parameters())
    assert hist.epochs == 4 and hist["val_accuracy"][-1] > 0.9
    assert "continuing on the CPU" in capsys.readouterr().err
    assert all(st["_device"] == "cpu" for st in opt.state.values())


def test_a_lost_gpu_is_retired(flaky_gpu, capsys, monkeypatch):
    """After the loss "auto" means the CPU (with a notice) and "gpu" tries one fresh
    device, then says the GPU was lost; a device that comes back is used again."""
    x, y = _blobs()
    model = _small_model().to("gpu")
    flaky_gpu.budget = 30
    fit(model, F.cross_entropy, optim.SGD(model.parameters(), lr=0.05), (x, y), epochs=2,
        batch_size=32, progress=False)
    assert flaky_gpu.lost and backends.lost_reason("gpu") == "flaky test device was lost"
    capsys.readouterr()
    assert backends.resolve("auto") == "cpu"
    assert "was lost while in use (flaky test device was lost)" in capsys.readouterr().err
    assert engine.Tensor(np.ones(2), device="auto").device == "cpu"
    with pytest.raises(DeviceError, match=r"lost while in use .*starting it again failed"):
        backends.resolve("gpu")
    with pytest.raises(DeviceError, match="lost"):  # asked again: no second restart
        engine.Tensor(np.ones(2), device="gpu")

    fresh = CpuBackend()  # the driver came back: a fresh device starts
    backends.retire("gpu", "second loss")
    monkeypatch.setitem(backends._factories, "gpu", lambda: fresh)
    assert backends.resolve("gpu") == "gpu" and backends.get("gpu") is fresh
    assert "a fresh device started" in capsys.readouterr().err
    assert backends.lost_reason("gpu") is None and backends.resolve("auto") == "gpu"


def test_lost_device_raises_without_fallback(flaky_gpu):
    x, y = _blobs()
    model = _small_model().to("gpu")
    opt = optim.SGD(model.parameters(), lr=0.05)
    flaky_gpu.budget = 30
    with pytest.raises(DeviceError, match="lost"):
        fit(model, F.cross_entropy, opt, (x, y), epochs=2, batch_size=32, progress=False,
            fallback_to_cpu=False)


# -- save / load --------------------------------------------------------------------------

def test_save_load_round_trip_and_errors(tmp_path):
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
    model(engine.Tensor(np.random.default_rng(0).standard_normal((8, 3))))  # move BN stats
    path = tmp_path / "weights.npz"
    engine.save(model, path)
    state = engine.load_state(path)
    assert list(state) == list(model.state_dict())
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(state[k], v)
    engine.save(model.state_dict(), tmp_path / "sd")  # a dict works; .npz is appended
    assert set(engine.load_state(tmp_path / "sd.npz")) == set(state)
    assert set(engine.load_state(tmp_path / "sd")) == set(state)
    other = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
    other.load_state_dict(state)
    for k, v in other.state_dict().items():
        np.testing.assert_array_equal(state[k], v)

    with pytest.raises(FileNotFoundError, match="nope.npz"):
        engine.load_state(tmp_path / "nope.npz")
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"this is not a zip archive")
    with pytest.raises(ValueError, match="not an .npz"):
        engine.load_state(bad)
    trunc = tmp_path / "trunc.npz"
    trunc.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ValueError, match="npz"):
        engine.load_state(trunc)
    npy = tmp_path / "one.npy"
    np.save(npy, np.zeros(3))
    with pytest.raises(ValueError, match="single .npy"):
        engine.load_state(npy)
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, obj=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ValueError, match="pickle"):
        engine.load_state(pickled)
    with pytest.raises(TypeError, match="not numeric"):
        engine.save({"w": {"nested": 1}}, tmp_path / "x.npz")

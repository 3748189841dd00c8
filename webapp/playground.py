"""Playground: train a small network live and compare runs (old vs modern deep learning).

Training runs in a background thread through `engine.fit`; its callbacks put progress in
a queue that a periodic callback of the session drains into the Bokeh plots, so the page
never freezes, and Cancel sets a flag the next step reads (`info.stop = True`). Settings
live in the URL (`?act=relu&opt=adam...`), so a configuration can be shared.
"""

from __future__ import annotations

import asyncio
import html
import io
import queue
import threading
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import panel as pn
import param
from bokeh.models import ColumnDataSource, LinearColorMapper
from bokeh.palettes import Category10_10
from bokeh.plotting import figure

from webapp.common import (
    ASSETS,
    CSS,
    GPU_LOCK,
    IN_BROWSER,
    NO_ONNX_EXPORT,
    error_alert,
    log,
    on_session_end,
    once,
    onnx_export_available,
    onnx_file,
    session_connected,
    shell,
    show_error,
)

DATASETS = ["MNIST subset", "spirals", "moons", "circles"]
ACTIVATIONS = ["tanh", "sigmoid", "ReLU", "leaky ReLU"]
INITS = ["constant", "Glorot", "He"]
REGS = ["none", "L1", "L2", "dropout", "batch norm"]
OPTIMIZERS = ["batch GD", "SGD", "momentum", "AdaGrad", "RMSProp", "Adam"]
DEVICES = ["CPU", "GPU"]
MAX_CONCURRENT_RUNS = 2
CLOSED_TAB_POLLS = 20  # polls (5 s) without a connection: the tab is gone, not reloading
_run_slots = threading.BoundedSemaphore(MAX_CONCURRENT_RUNS)

# the most recent finished model of any session, for the Engine page (ONNX download)
LATEST: dict[str, Any] = {}
_latest_lock = threading.Lock()


@once
def mnist_subset() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    with np.load(ASSETS / "mnist_subset.npz", allow_pickle=False) as z:
        def flat(a: np.ndarray) -> np.ndarray:
            return (a.reshape(len(a), -1) / np.float32(255)).astype(np.float32)

        return flat(z["x_train"]), z["y_train"], flat(z["x_test"]), z["y_test"]


def dataset(name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    if name == "MNIST subset":
        return mnist_subset()
    from engine.data.toy import make_toy

    x, y = make_toy(name, 800, noise=0.08, seed=1)
    xv, yv = make_toy(name, 400, noise=0.08, seed=2)
    return x, y, xv, yv


def build_model(cfg: dict[str, Any], n_in: int, n_out: int) -> Any:
    """An MLP from the settings: depth hidden layers of `width` units."""
    from engine import nn

    act = {"tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "ReLU": nn.ReLU,
           "leaky ReLU": lambda: nn.LeakyReLU(0.05)}[cfg["activation"]]
    layers: list[Any] = []
    d = n_in
    for _ in range(cfg["depth"]):
        layers.append(nn.Linear(d, cfg["width"]))
        if cfg["reg"] == "batch norm":
            layers.append(nn.BatchNorm1d(cfg["width"]))
        layers.append(act())
        if cfg["reg"] == "dropout":
            layers.append(nn.Dropout(0.2))
        d = cfg["width"]
    layers.append(nn.Linear(d, n_out))
    model = nn.Sequential(*layers)
    for m in model.modules():
        if isinstance(m, nn.Linear):
            if cfg["init"] == "constant":
                nn.init.constant_(m.weight, 0.05)
            elif cfg["init"] == "Glorot":
                nn.init.xavier_uniform_(m.weight)
            else:
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            nn.init.zeros_(m.bias)
    return model


def build_optimizer(cfg: dict[str, Any], params: Any) -> Any:
    from engine import optim

    lr, name = cfg["lr"], cfg["optimizer"]
    if name in ("batch GD", "SGD"):
        return optim.SGD(params, lr=lr)
    if name == "momentum":
        return optim.SGD(params, lr=lr, momentum=0.9)
    if name == "AdaGrad":
        return optim.Adagrad(params, lr=lr)
    if name == "RMSProp":
        return optim.RMSprop(params, lr=lr)
    return optim.Adam(params, lr=lr)


def make_loss(cfg: dict[str, Any], model: Any) -> Any:
    from engine import nn

    weights = [m.weight for m in model.modules() if isinstance(m, nn.Linear)]
    reg = cfg["reg"]

    def loss(out: Any, y: Any) -> Any:
        value = nn.functional.cross_entropy(out, y)
        if reg == "L2":
            for w in weights:
                value = value + 1e-3 * (w * w).sum()
        elif reg == "L1":
            for w in weights:
                value = value + 1e-4 * w.abs().sum()
        return value

    return loss


def latest_model() -> tuple[Any, np.ndarray, str] | None:
    """(a fresh CPU copy of the latest finished Playground model of any session, an example
    input, its label), or None before the first run."""
    with _latest_lock:
        if "state" not in LATEST:
            return None
        cfg, state, shape = LATEST["cfg"], LATEST["state"], LATEST["shape"]
        example, label = LATEST["example"], LATEST["label"]
    model = build_model(cfg, *shape)
    model.load_state_dict(state)
    return model.eval(), example, label


class Run:
    """One training run in a background thread, reporting through a queue."""

    def __init__(self, number: int, cfg: dict[str, Any]) -> None:
        self.number, self.cfg = number, dict(cfg)
        self.events: queue.Queue[tuple[str, Any]] = queue.Queue()
        self.cancelled = threading.Event()
        self.model: Any = None
        self.thread = threading.Thread(target=self._main, daemon=True,
                                       name=f"playground-run-{number}")

    def start(self) -> None:
        """A thread on a server. In the browser (no threads) a task on the worker's event
        loop that yields after every epoch, so the page gets each epoch's curves and Cancel
        between epochs."""
        if IN_BROWSER:
            asyncio.get_event_loop().create_task(self._main_async())
        else:
            self.thread.start()

    async def _main_async(self) -> None:
        for _ in self._main_epochs():
            await asyncio.sleep(0)  # let the page's poller and widgets run

    def label(self) -> str:
        c = self.cfg
        return (f"#{self.number} {c['activation']}, {c['init']}, {c['reg']}, "
                f"{c['optimizer']} lr={c['lr']:g}, {c['depth']}x{c['width']}")

    def _main(self) -> None:
        for _ in self._main_epochs():
            pass

    def _main_epochs(self) -> Iterator[None]:
        """The run, pausing (yield) after every epoch."""
        from engine import random as engine_random

        if not _run_slots.acquire(timeout=0.1):
            self.events.put(("status", "waiting for a free training slot…"))
            while not _run_slots.acquire(timeout=0.5):
                if self.cancelled.is_set():
                    self.events.put(("done", "cancelled before it started"))
                    return
        gpu = self.cfg["device"] == "GPU"
        try:
            if gpu and not GPU_LOCK.acquire(blocking=False):
                self.events.put(("status", "waiting for the GPU (another run uses it)…"))
                while not GPU_LOCK.acquire(timeout=0.5):
                    if self.cancelled.is_set():
                        self.events.put(("done", "cancelled before it started"))
                        return
            try:
                with engine_random.seeded(self.cfg["seed"]):  # this run's own stream
                    yield from self._train()
            finally:
                if gpu:
                    GPU_LOCK.release()
        except Exception as exc:  # noqa: BLE001  (reported on the page)
            self.events.put(("error", f"{type(exc).__name__}: {exc}"))
        finally:
            _run_slots.release()
            if self.cancelled.is_set():
                log.info("Playground run #%d stopped (cancelled); its training slot is "
                         "free", self.number)

    def _train(self) -> Iterator[None]:
        import engine
        from engine import explain

        cfg = self.cfg
        device = "gpu" if cfg["device"] == "GPU" else "cpu"
        try:
            device = engine.backends.resolve(device)
        except engine.DeviceError as exc:
            self.events.put(("status", f"no GPU ({exc}); training on the CPU"))
            device = "cpu"
        x, y, xv, yv = dataset(cfg["data"])
        engine.manual_seed(cfg["seed"])
        n_out = int(y.max()) + 1
        model = build_model(cfg, x.shape[1], n_out).to(device)
        self.model = model
        opt = build_optimizer(cfg, model.parameters())
        batch = len(x) if cfg["optimizer"] == "batch GD" else 64
        probe = xv[:300]
        grid = None
        if x.shape[1] == 2:
            grid = explain.grid_2d((-1.8, 1.8), (-1.8, 1.8), 60)
        run = self
        done = {"epochs": 0, "per_epoch": 0}  # fit runs one epoch at a time

        class Callbacks:
            def on_train_begin(self, info: Any) -> None:
                done["per_epoch"] = info.steps_per_epoch
                run.events.put(("begin", {"steps": info.steps_per_epoch, "device": info.device}))

            def on_step(self, info: Any) -> None:
                first = done["epochs"] * done["per_epoch"]  # this fit's first step
                run.events.put(("step", (first + info.step, info.loss,
                                         done["epochs"] + info.epoch, info.batch)))
                if run.cancelled.is_set():
                    info.stop, info.stop_reason = True, "cancelled"

            def on_epoch_end(self, info: Any) -> None:
                extra: dict[str, Any] = {"stats": explain.unit_stats(model, probe)}
                if grid is not None:
                    p = explain.probabilities(model, grid[0])[:, 1]
                    extra["boundary"] = p.reshape(tuple(grid[1]))
                run.events.put(("epoch", (done["epochs"] + info.epoch, dict(info.logs), extra)))
                if run.cancelled.is_set():
                    info.stop, info.stop_reason = True, "cancelled"

        t0 = time.perf_counter()
        loss_fn, why, on = make_loss(cfg, model), "finished", device
        for _ in range(cfg["epochs"]):  # one epoch per fit: the browser yields in between
            if self.cancelled.is_set():
                why = "cancelled"
                break
            hist = engine.fit(model, loss_fn, opt, (x, y), val=(xv, yv), epochs=1,
                              batch_size=batch, callbacks=[Callbacks()], progress=False)
            done["epochs"] += 1
            on = hist.device
            if hist.stopped_reason:
                why = hist.stopped_reason
                break
            yield
        model.eval()
        with _latest_lock:  # host copies: other sessions rebuild it with latest_model()
            LATEST.update(cfg=dict(cfg), state=model.state_dict(), shape=(x.shape[1], n_out),
                          example=xv[:1], label=self.label())
        self.events.put(("done", f"{why} in {time.perf_counter() - t0:.1f} s on {on}"))


class PlaygroundPage(pn.viewable.Viewer):
    """Settings, Train / Cancel, live curves of every run, dead and saturated units."""

    data = param.Selector(default="MNIST subset", objects=DATASETS)
    activation = param.Selector(default="ReLU", objects=ACTIVATIONS)
    init = param.Selector(default="He", objects=INITS)
    reg = param.Selector(default="none", objects=REGS, label="Regularisation")
    optimizer = param.Selector(default="Adam", objects=OPTIMIZERS)
    lr = param.Number(default=0.003, bounds=(1e-5, 2.0), label="Learning rate")
    depth = param.Integer(default=2, bounds=(1, 8), label="Hidden layers")
    width = param.Integer(default=64, bounds=(4, 256), label="Units per layer")
    epochs = param.Integer(default=3, bounds=(1, 30))
    device = param.Selector(default="CPU", objects=DEVICES)
    seed = param.Integer(default=0, bounds=(0, 10**6))

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        if pn.state.location is not None:
            pn.state.location.sync(self, {
                "data": "data", "activation": "act", "init": "init", "reg": "reg",
                "optimizer": "opt", "lr": "lr", "depth": "depth", "width": "width",
                "epochs": "epochs", "device": "device", "seed": "seed"})
        self.runs: list[Run] = []
        self.active: Run | None = None
        self.sources: dict[int, ColumnDataSource] = {}
        self.acc_sources: dict[int, ColumnDataSource] = {}
        self.poller: Any = None
        self._unconnected_polls = 0
        on_session_end(self._end_session)
        self.error = error_alert()
        self.train_btn = pn.widgets.Button(name="Train", button_type="primary", width=100,
                                           css_classes=["train-button"])
        self.cancel_btn = pn.widgets.Button(name="Cancel", button_type="danger", width=100,
                                            disabled=True, css_classes=["cancel-button"])
        self.clear_btn = pn.widgets.Button(name="Clear runs", width=100)
        self.progress = pn.indicators.Progress(value=0, max=100, width=260, bar_color="primary")
        self.status = pn.pane.HTML("<span class='muted'>choose settings and press Train</span>",
                                   stylesheets=[CSS], css_classes=["run-status"],
                                   sizing_mode="stretch_width")
        self.download = pn.widgets.FileDownload(callback=self._onnx_bytes,
                                                filename="playground.onnx",
                                                label="Download model (ONNX)", disabled=True,
                                                button_type="light", width=200)
        if not onnx_export_available():
            self.download.label = NO_ONNX_EXPORT
        self.loss_fig = figure(title="training loss per step", height=300,
                               sizing_mode="stretch_width", y_axis_type="log",
                               x_axis_label="step", tools="pan,wheel_zoom,box_zoom,reset")
        self.acc_fig = figure(title="validation accuracy per epoch", height=300,
                              sizing_mode="stretch_width", y_range=(0, 1),
                              x_axis_label="epoch", tools="pan,wheel_zoom,box_zoom,reset")
        self.units_src = ColumnDataSource({"layer": [], "dead": [], "saturated": []})
        self.units_fig = figure(title="dead and saturated units per hidden layer (last run)",
                                height=260,
                                sizing_mode="stretch_width", x_range=[], y_range=(0, 1),
                                toolbar_location=None)
        self.units_fig.vbar(x="layer", top="dead", width=0.35, color="#cf222e",
                            legend_label="dead", source=self.units_src)
        self.units_fig.vbar(x="layer", top="saturated", width=0.35, color="#bf8700",
                            legend_label="saturated", source=self.units_src, alpha=0.6)
        self.boundary_src = ColumnDataSource({"image": [np.zeros((2, 2))]})
        self.points_src = ColumnDataSource({"x": [], "y": [], "color": []})
        bfig = figure(title="decision boundary (2-D data)", width=300, height=300,
                      x_range=(-1.8, 1.8), y_range=(-1.8, 1.8), toolbar_location=None)
        bfig.image(image="image", x=-1.8, y=-1.8, dw=3.6, dh=3.6, source=self.boundary_src,
                   color_mapper=LinearColorMapper(palette=["#9ecae1", "#deebf7", "#fee6ce",
                                                           "#fdae6b"], low=0, high=1))
        bfig.scatter("x", "y", color="color", size=3, source=self.points_src)
        self.boundary = pn.Column(pn.pane.Bokeh(bfig), visible=False)
        self.train_btn.on_click(self._start)
        self.cancel_btn.on_click(self._cancel)
        self.clear_btn.on_click(self._clear)
        self.param.watch(self._show_points, "data")
        self._show_points()
        w = 260
        widgets = pn.Column(
            *(pn.widgets.Select.from_param(self.param[k], width=w)
              for k in ("data", "activation", "init", "reg", "optimizer")),
            pn.widgets.FloatInput.from_param(self.param.lr, step=0.001, width=w),
            *(pn.widgets.IntSlider.from_param(self.param[k], width=w)
              for k in ("depth", "width", "epochs")),
            pn.widgets.RadioButtonGroup.from_param(self.param.device, button_type="light"),
            pn.widgets.IntInput.from_param(self.param.seed, width=w),
        )
        self._layout = pn.Row(
            pn.Column(widgets, pn.Row(self.train_btn, self.cancel_btn), self.clear_btn,
                      self.download, width=290),
            pn.Column(self.error, pn.Row(self.progress, self.status, sizing_mode="stretch_width"),
                      pn.pane.Bokeh(self.loss_fig, sizing_mode="stretch_width"),
                      pn.pane.Bokeh(self.acc_fig, sizing_mode="stretch_width"),
                      pn.Row(pn.pane.Bokeh(self.units_fig, sizing_mode="stretch_width"),
                             self.boundary, sizing_mode="stretch_width"),
                      sizing_mode="stretch_width"),
            sizing_mode="stretch_width",
        )

    def config(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("data", "activation", "init", "reg",
                                             "optimizer", "lr", "depth", "width", "epochs",
                                             "device", "seed")}

    def _show_points(self, *_: Any) -> None:
        toy = self.data != "MNIST subset"
        self.boundary.visible = toy
        if toy:
            x, y, _, _ = dataset(self.data)
            self.points_src.data = {"x": x[:, 0], "y": x[:, 1],
                                    "color": np.where(y == 1, "#d94801", "#2171b5")}
            self.boundary_src.data = {"image": [np.full((2, 2), 0.5)]}

    # -- runs ------------------------------------------------------------------------------
    def _start(self, _: Any = None) -> None:
        if self.active is not None:
            return
        show_error(self.error, "")
        run = Run(len(self.runs) + 1, self.config())
        self.runs.append(run)
        self.active = run
        color = Category10_10[(run.number - 1) % 10]
        src = ColumnDataSource({"step": [], "loss": []})
        acc = ColumnDataSource({"epoch": [], "acc": []})
        self.sources[run.number], self.acc_sources[run.number] = src, acc
        self.loss_fig.line("step", "loss", source=src, color=color, legend_label=run.label())
        self.acc_fig.line("epoch", "acc", source=acc, color=color, legend_label=run.label())
        self.acc_fig.scatter("epoch", "acc", source=acc, color=color, size=6)
        for fig in (self.loss_fig, self.acc_fig):
            fig.legend.location = "top_right" if fig is self.loss_fig else "bottom_right"
            fig.legend.label_text_font_size = "8pt"
            fig.legend.click_policy = "hide"
        self.train_btn.disabled, self.cancel_btn.disabled = True, False
        self.progress.value = 0
        self.status.object = f"run {run.number}: starting…"
        self._steps_total = None
        run.start()
        self.poller = pn.state.add_periodic_callback(self._poll, period=250)

    def _cancel(self, _: Any = None) -> None:
        if self.active is not None:
            self.active.cancelled.set()
            self.status.object = f"run {self.active.number}: cancelling…"

    def _end_session(self, why: str = "its session ended") -> None:
        """The tab closed: cancel the run (its thread frees the training slot at its next
        step) and let go of every run's model."""
        if self.active is not None:
            self.active.cancelled.set()
            log.info("a Playground tab is gone (%s): run #%d is cancelled", why,
                     self.active.number)
        if self.poller is not None:
            try:
                self.poller.stop()
            except Exception:  # noqa: BLE001  (the session is being torn down)
                pass
        self.active, self.poller = None, None
        self.runs.clear()

    def _clear(self, _: Any = None) -> None:
        if self.active is not None:
            return
        for fig in (self.loss_fig, self.acc_fig):
            fig.renderers = []
            if fig.legend:
                fig.legend.items = []
        self.sources.clear()
        self.acc_sources.clear()

    def _poll(self) -> None:
        run = self.active
        if run is None:
            return
        self._unconnected_polls = 0 if session_connected() is not False else \
            self._unconnected_polls + 1
        if self._unconnected_polls >= CLOSED_TAB_POLLS:
            self._end_session("no connection for 5 s")
            return
        steps, losses = [], []
        while True:
            try:
                kind, payload = run.events.get_nowait()
            except queue.Empty:
                break
            if kind == "step":
                step, loss, epoch, batch = payload
                if np.isfinite(loss) and loss > 0:
                    steps.append(step)
                    losses.append(loss)
                if self._steps_total:
                    done = epoch * self._steps_total + batch + 1
                    self.progress.value = int(100 * done / (self._steps_total * run.cfg["epochs"]))
                self.status.object = (f"run {run.number}: epoch {epoch + 1}/{run.cfg['epochs']}, "
                                      f"loss {loss:.4f}")
            elif kind == "begin":
                self._steps_total = payload["steps"]
            elif kind == "epoch":
                self._on_epoch(run, *payload)
            elif kind == "status":
                self.status.object = f"run {run.number}: {html.escape(payload)}"
            elif kind in ("done", "error"):
                self._flush(run, steps, losses)
                steps, losses = [], []
                self._finish(run, kind, payload)
                return
        self._flush(run, steps, losses)

    def _flush(self, run: Run, steps: list[int], losses: list[float]) -> None:
        if steps:
            self.sources[run.number].stream({"step": steps, "loss": losses})

    def _on_epoch(self, run: Run, epoch: int, logs: dict[str, float],
                  extra: dict[str, Any]) -> None:
        self.acc_sources[run.number].stream({"epoch": [epoch + 1],
                                             "acc": [logs.get("val_accuracy", np.nan)]})
        stats = extra["stats"]
        layers = [f"{i + 1}" for i in range(len(stats))]
        self.units_fig.x_range.factors = layers
        self.units_src.data = {"layer": layers, "dead": [s["dead"] for s in stats],
                               "saturated": [s["saturated"] for s in stats]}
        if "boundary" in extra:
            self.boundary_src.data = {"image": [extra["boundary"]]}

    def _finish(self, run: Run, kind: str, message: str) -> None:
        if self.poller is not None:
            self.poller.stop()
            self.poller = None
        self.active = None
        self.train_btn.disabled, self.cancel_btn.disabled = False, True
        if kind == "error":
            show_error(self.error, f"Run {run.number} failed: {message}")
            self.status.object = f"run {run.number}: failed"
            return
        self.progress.value = 100 if message.startswith("finished") else self.progress.value
        accs = self.acc_sources[run.number].data["acc"]
        acc = f", validation accuracy {accs[-1]:.3f}" if len(accs) else ""
        self.status.object = (f"<span class='run-done'>run {html.escape(run.label())}: "
                              f"{html.escape(message)}{acc}</span>")
        self.download.disabled = run.model is None or not onnx_export_available()

    def _onnx_bytes(self) -> Any:
        run = next((r for r in reversed(self.runs) if r.model is not None), None)
        if run is None:
            return io.BytesIO(b"")
        x, _, _, _ = dataset(run.cfg["data"])
        return onnx_file(run.model, x[:1])

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout


def page() -> pn.viewable.Viewable:
    return shell("playground", "Playground", PlaygroundPage,
                 "Train a small fully connected network here, live. Try the 1990s recipe "
                 "(sigmoid, constant or Glorot init, SGD) against the modern one (ReLU, He "
                 "init, Adam, batch norm) and watch the curves, dead units and saturation.")


if __name__.startswith("bokeh"):
    page().servable(title="Demystify · Playground")

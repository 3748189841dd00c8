"""Sequences page, part 1: read a digit row by row (28 steps of 28 pixels).

An RNN, an LSTM and a small attention model are trained live, side by side, on a subset
of MNIST; a digit the learner draws is then read by each, showing the hidden state over
time, the LSTM's gates, and the attention weights over the rows. Before anything is
trained here, the shipped models (trained on all of MNIST) read the drawing.
"""

from __future__ import annotations

import html
from functools import partial
from typing import Any

import numpy as np
import panel as pn
import param
from bokeh.models import ColumnDataSource, LinearColorMapper
from bokeh.plotting import figure

from webapp.canvas import DrawCanvas
from webapp.common import (
    ASSETS,
    CSS,
    MODELS,
    device_lock,
    error_alert,
    once,
    show_error,
)
from webapp.sequences_jobs import JobHost, LiveJob, resolve_device

KINDS = ("RNN", "LSTM", "attention")
COLORS = {"RNN": "#cf222e", "LSTM": "#1f6feb", "attention": "#8250df"}
GATE_COLORS = {"input": "#2da44e", "forget": "#bf8700", "output": "#1f6feb"}
MAX_DIGITS = 5000  # the training subset shipped with the app


@once
def subset() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The shipped MNIST subset as row sequences: 5,000 training and 1,000 test digits."""
    from engine.data.sequence_tasks import mnist_rows

    with np.load(ASSETS / "mnist_subset.npz", allow_pickle=False) as z:
        return (mnist_rows(z["x_train"]), z["y_train"].astype(np.int64),
                mnist_rows(z["x_test"]), z["y_test"].astype(np.int64))


@once
def shipped() -> dict[str, Any]:
    """The shipped row readers (ONNX files; their initializers keep the models' names)."""
    import engine.onnx
    from engine.sequences import shipped_model

    out = {}
    for kind, name in (("LSTM", "seq_lstm"), ("attention", "seq_attention")):
        onnx_model = engine.onnx.load(MODELS / f"{name}.onnx", device="cpu")
        out[kind] = shipped_model(kind, onnx_model.state_dict())
    return out


def read_drawing(data_url: str, models: dict[str, Any]) -> tuple[np.ndarray, dict[str, Any]]:
    """Canvas PNG -> (28x28 MNIST-style rows, {model: what it saw})."""
    from engine.data.images import decode_data_url, decode_image
    from engine.data.transforms import mnist_preprocess
    from engine.sequences import look_inside

    pixels = decode_image(decode_data_url(data_url), "L", max_pixels=1_000_000)
    x = mnist_preprocess(pixels)
    out = {}
    for kind, model in models.items():
        with device_lock(next(model.parameters()).device):
            out[kind] = look_inside(model, x)
    return x, out


def train_job(cfg: dict[str, Any]) -> tuple[LiveJob, dict[str, Any], str]:
    """A job training the three readers side by side; (job, its models, a device note)."""
    import engine
    from engine.sequences import race, row_model

    n = int(cfg["digits"])
    if not 100 <= n <= MAX_DIGITS:
        raise ValueError(f"training digits must be 100..{MAX_DIGITS}, got {n}")
    device, note = resolve_device(cfg["device"])
    engine.manual_seed(int(cfg["seed"]))
    hidden = int(cfg["hidden"])
    models = {k: row_model(k, hidden, **({"heads": 4, "ff": 2 * hidden, "dropout": 0.0}
                                         if k == "attention" else {})).to(device)
              for k in KINDS}
    x, y, xt, yt = subset()

    def make():
        return race(models, x[:n], y[:n], xt, yt, int(cfg["epochs"]), batch_size=64)
    return LiveJob(make, device, "sequences-rows"), models, note


def _heatmap(title: str, width: int = 420, height: int = 180) -> tuple[Any, ColumnDataSource]:
    fig = figure(title=title, width=width, height=height, x_range=(0.5, 28.5),
                 toolbar_location=None, x_axis_label="row (time step)")
    src = ColumnDataSource({"image": [np.zeros((2, 2))], "dh": [1.0], "y": [0.0]})
    fig.image(image="image", x=0.5, y="y", dw=28, dh="dh", source=src,
              color_mapper=LinearColorMapper(palette="RdBu11", low=1, high=-1))
    fig.yaxis.axis_label = "hidden unit"
    return fig, src


class RowsDemo(JobHost, pn.viewable.Viewer):
    """Train RNN vs LSTM vs attention live; draw a digit and look inside each."""

    digits = param.Integer(default=2000, bounds=(100, MAX_DIGITS), step=100,
                           label="Training digits")
    epochs = param.Integer(default=2, bounds=(1, 10))
    hidden = param.Integer(default=64, bounds=(8, 128), label="Hidden units (d_model)")
    device = param.Selector(default="CPU", objects=["CPU", "GPU"])
    seed = param.Integer(default=0, bounds=(0, 10**6))
    source = param.Selector(default="shipped models", objects=["shipped models", "trained here"])

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.trained: dict[str, Any] = {}
        self.error = error_alert()
        self.error.css_classes = [*self.error.css_classes, "rows-error"]
        self.canvas = DrawCanvas(size=224, pixels=280, pen=20, throttle_ms=200)
        self.canvas.param.watch(self._on_drawing, "image")
        self.train_btn = pn.widgets.Button(label="Train side by side", color="primary",
                                           css_classes=["rows-train"])
        self.cancel_btn = pn.widgets.Button(label="Cancel", color="danger",
                                            disabled=True, css_classes=["rows-cancel"])
        self.init_jobs(self.train_btn, self.cancel_btn, "rows")
        self.status = pn.pane.HTML("<span class='muted'>press Train, or draw a digit for the "
                                   "shipped models</span>", stylesheets=[CSS],
                                   css_classes=["rows-status"], sizing_mode="stretch_width")
        self.result = pn.pane.HTML("", stylesheets=[CSS], css_classes=["rows-result"],
                                   min_width=260)
        self.loss_fig = figure(title="training loss per step", height=240, y_axis_type="log",
                               sizing_mode="stretch_width", x_axis_label="step",
                               tools="pan,wheel_zoom,reset")
        self.acc_fig = figure(title="test accuracy (1,000 digits) per epoch", height=240,
                              y_range=(0, 1), sizing_mode="stretch_width",
                              x_axis_label="epoch", tools="pan,wheel_zoom,reset")
        self.loss_src = {k: ColumnDataSource({"step": [], "loss": []}) for k in KINDS}
        self.acc_src = {k: ColumnDataSource({"epoch": [], "acc": []}) for k in KINDS}
        for k in KINDS:
            self.loss_fig.line("step", "loss", source=self.loss_src[k], color=COLORS[k],
                               legend_label=k)
            self.acc_fig.line("epoch", "acc", source=self.acc_src[k], color=COLORS[k],
                              legend_label=k)
            self.acc_fig.scatter("epoch", "acc", source=self.acc_src[k], color=COLORS[k],
                                 size=7)
        self.acc_fig.legend.location = "bottom_right"
        for f in (self.loss_fig, self.acc_fig):
            f.legend.click_policy = "hide"
            f.legend.background_fill_alpha = 0.6
        self._build_views()
        w = 240
        settings = pn.Column(
            pn.widgets.IntSlider.from_param(self.param.digits, width=w),
            pn.widgets.IntSlider.from_param(self.param.epochs, width=w),
            pn.widgets.IntSlider.from_param(self.param.hidden, width=w),
            pn.widgets.RadioButtonGroup.from_param(self.param.device, color="light"),
            pn.Row(self.train_btn, self.cancel_btn))
        self._layout = pn.Column(
            self.error,
            pn.Row(settings, pn.Column(pn.Row(self.status, sizing_mode="stretch_width"),
                                       pn.Row(pn.pane.Bokeh(self.loss_fig),
                                              pn.pane.Bokeh(self.acc_fig),
                                              sizing_mode="stretch_width"),
                                       sizing_mode="stretch_width"),
                   sizing_mode="stretch_width"),
            pn.pane.Markdown("**Draw a digit**: each model reads it from the top row down."),
            pn.Row(pn.Column(self.canvas,
                             pn.widgets.RadioButtonGroup.from_param(self.param.source,
                                                                    color="light")),
                   self.result, pn.pane.Bokeh(self.digit_fig), pn.pane.Bokeh(self.att_fig)),
            pn.Row(pn.pane.Bokeh(self.hidden_figs["LSTM"]),
                   pn.pane.Bokeh(self.hidden_figs["RNN"])),
            pn.Row(pn.pane.Bokeh(self.gate_fig), pn.pane.Bokeh(self.self_fig)),
            sizing_mode="stretch_width")
        self.param.watch(lambda _: self._on_drawing(), "source")

    def _build_views(self) -> None:
        self.digit_fig = figure(title="input rows", width=200, height=220, x_range=(0, 28),
                                y_range=(0, 28), toolbar_location=None)
        self.digit_fig.axis.visible = False
        self.digit_src = ColumnDataSource({"image": [np.zeros((28, 28))]})
        self.digit_fig.image(image="image", x=0, y=0, dw=28, dh=28, source=self.digit_src,
                             color_mapper=LinearColorMapper(palette="Greys256", low=1, high=0))
        self.att_fig = figure(title="attention over rows", width=200, height=220,
                              y_range=self.digit_fig.y_range, x_range=(0, 0.3),
                              toolbar_location=None)
        self.att_fig.yaxis.visible = False
        self.att_src = ColumnDataSource({"y": [], "w": []})
        self.att_fig.hbar(y="y", right="w", height=0.8, source=self.att_src,
                          color=COLORS["attention"])
        self.hidden_figs, self.hidden_srcs = {}, {}
        for k in ("LSTM", "RNN"):
            self.hidden_figs[k], self.hidden_srcs[k] = _heatmap(f"{k} hidden state over time")
        self.gate_fig = figure(title="LSTM gates: mean activation per row", width=420,
                               height=200, x_range=(0.5, 28.5), y_range=(0, 1),
                               toolbar_location=None, x_axis_label="row (time step)")
        self.gate_src = {g: ColumnDataSource({"t": [], "v": []}) for g in GATE_COLORS}
        for g, c in GATE_COLORS.items():
            self.gate_fig.line("t", "v", source=self.gate_src[g], color=c, legend_label=g,
                               line_width=2)
        self.gate_fig.legend.location = "bottom_right"
        self.gate_fig.legend.background_fill_alpha = 0.6
        self.self_fig = figure(title="self-attention (layer 1)", width=260,
                               height=240, x_range=(0, 28), y_range=(0, 28),
                               toolbar_location=None)
        self.self_src = ColumnDataSource({"image": [np.zeros((28, 28))]})
        self.self_fig.image(image="image", x=0, y=0, dw=28, dh=28, source=self.self_src,
                            color_mapper=LinearColorMapper(palette="Viridis256", low=0))
        self.self_fig.xaxis.axis_label = "attends to row"
        self.self_fig.yaxis.axis_label = "row (flipped)"

    # -- training --------------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("digits", "epochs", "hidden", "device", "seed")}

    def _start(self, _: Any = None) -> None:
        if self.job is not None:
            return
        show_error(self.error, "")
        try:
            job, models, note = train_job(self.config())
        except Exception as exc:  # noqa: BLE001  (shown, never a crash)
            show_error(self.error, f"Could not start: {exc}")
            return
        for k in KINDS:
            self.loss_src[k].data = {"step": [], "loss": []}
            self.acc_src[k].data = {"epoch": [], "acc": []}
        self._pending_models = models
        self.launch(job, html.escape(note or f"training on {job.device}…"))

    def on_events(self, events: list[tuple[str, Any]]) -> None:
        steps: dict[str, tuple[list, list]] = {k: ([], []) for k in KINDS}
        for kind, payload in events:
            if kind == "step":
                k, step, loss = payload
                if np.isfinite(loss) and loss > 0:
                    steps[k][0].append(step)
                    steps[k][1].append(loss)
            elif kind == "epoch":
                k, epoch, acc = payload
                self.acc_src[k].stream({"epoch": [epoch], "acc": [acc]})
                self.status.object = (f"epoch {epoch}/{self.epochs}: {html.escape(k)} "
                                      f"{100 * acc:.1f}% on the test digits")
        self._flush(steps)

    def _flush(self, steps: dict[str, tuple[list, list]]) -> None:
        for k, (s, v) in steps.items():
            if s:
                self.loss_src[k].stream({"step": s, "loss": v})

    def on_end(self, kind: str, message: str) -> None:
        if kind == "error":
            show_error(self.error, f"Training failed: {message}")
            self.status.object = "failed"
            return
        accs = {k: self.acc_src[k].data["acc"] for k in KINDS}
        summary = ", ".join(f"{k} {100 * a[-1]:.1f}%" for k, a in accs.items() if len(a))
        self.status.object = (f"<span class='rows-done'>{html.escape(message)}: "
                              f"{html.escape(summary)}</span>")
        if message == "finished":
            self.trained = self._pending_models
            self.source = "trained here"  # redraws the current drawing with them

    # -- the drawing ----------------------------------------------------------------------
    def current_models(self) -> dict[str, Any]:
        if self.source == "trained here" and self.trained:
            return self.trained
        return shipped()

    def _on_drawing(self, *_: Any) -> None:
        url = self.canvas.image
        if not url:
            self.result.object = ""
            return
        try:
            x, seen = read_drawing(url, self.current_models())
        except Exception as exc:  # noqa: BLE001
            show_error(self.error, f"Could not read the drawing: {exc}")
            return
        show_error(self.error, "")
        # show() writes Bokeh sources directly; a canvas event is processed without the
        # document lock, so run it on the next tick, where Bokeh holds the lock (at once
        # where there is no server session: the browser build, tests).
        pn.state.execute(partial(self.show, x, seen), schedule=True)

    def show(self, x: np.ndarray, seen: dict[str, Any]) -> None:
        rows = []
        for k in KINDS:
            if k not in seen:
                rows.append(f"<tr><td>{k}</td><td colspan=2 class='muted'>train one here"
                            "</td></tr>")
                continue
            p = seen[k]["probs"]
            d = int(np.argmax(p))
            rows.append(f"<tr><td style='color:{COLORS[k]}'><b>{k}</b></td>"
                        f"<td class='big' style='font-size:1.6em'>{d}</td>"
                        f"<td class='muted'>{100 * p[d]:.1f}%</td></tr>")
        mine = self.source == "trained here" and bool(self.trained)
        which = "trained here" if mine else "shipped (trained on all of MNIST)"
        self.result.object = (f"<div class='muted'>models: {which}</div><table "
                              f"class='row-predictions'>{''.join(rows)}</table>")
        self.digit_src.data = {"image": [x[::-1].astype(np.float64)]}
        if "attention" in seen:
            w = seen["attention"]["attention"]
            self.att_src.data = {"y": list(27.5 - np.arange(28)), "w": list(map(float, w))}
            self.att_fig.x_range.end = float(max(0.1, w.max() * 1.1))
            self.self_src.data = {"image": [seen["attention"]["self_attention"][::-1]
                                            .astype(np.float64)]}
        for k, src in self.hidden_srcs.items():
            if k in seen:
                h = seen[k]["hidden"].T  # (H, T)
                src.data = {"image": [h.astype(np.float64)], "dh": [float(h.shape[0])],
                            "y": [0.0]}
                self.hidden_figs[k].y_range.start, self.hidden_figs[k].y_range.end = \
                    0, h.shape[0]
        if "LSTM" in seen:
            gates = seen["LSTM"]["gates"]
            t = list(range(1, 29))
            for g, src in self.gate_src.items():
                src.data = {"t": t, "v": list(map(float, gates[g].mean(1)))}

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout

"""Sequences page, part 2: vanishing and exploding gradients, measured on the adding
problem (the answer is the sum of two marked numbers, one in each half of a sequence
whose length the learner chooses).

For an RNN and an LSTM the page plots |dL/dh_t|, the gradient that reaches step t from
the loss at the end, before and after training; then four runs (RNN and LSTM, each with
and without gradient clipping) train side by side, with their loss, their gradient norm
per step and the accuracy they reach.
"""

from __future__ import annotations

import html
import math
from typing import Any

import numpy as np
import panel as pn
import param
from bokeh.models import ColumnDataSource
from bokeh.plotting import figure

from webapp.common import CSS, error_alert, show_error
from webapp.sequences_jobs import JobHost, LiveJob, resolve_device

MAX_LENGTH = 300  # the longest sequence this page trains on (the step loop is in Python)
MAX_STEPS = 3000
RUN_COLORS = {"RNN": "#cf222e", "RNN + clipping": "#fb8f44", "LSTM": "#1f6feb",
              "LSTM + clipping": "#54aeff"}


def check_settings(cfg: dict[str, Any]) -> None:
    """Refuse what the page cannot do in reasonable time, naming the limit."""
    length, steps = int(cfg["length"]), int(cfg["steps"])
    if length > MAX_LENGTH:
        raise ValueError(f"sequence length {length} is over this page's limit of "
                         f"{MAX_LENGTH} steps; choose 2..{MAX_LENGTH}")
    if length < 2:
        raise ValueError(f"sequence length {length} is too short; choose 2..{MAX_LENGTH}")
    if not 1 <= steps <= MAX_STEPS:
        raise ValueError(f"{steps} training steps: choose 1..{MAX_STEPS}")
    if not float(cfg["clip"]) > 0:
        raise ValueError(f"the clipping threshold must be positive, got {cfg['clip']}")


def experiment(cfg: dict[str, Any]) -> tuple[LiveJob, str]:
    """The job running `engine.sequences.adding_race` with the page's settings."""
    from engine.sequences import adding_race

    check_settings(cfg)
    device, note = resolve_device(cfg["device"])

    def make():
        return adding_race(int(cfg["length"]), int(cfg["steps"]), int(cfg["hidden"]),
                           float(cfg["scale"]), float(cfg["lr"]), float(cfg["clip"]),
                           device, int(cfg["seed"]), nonlinearity=cfg["activation"],
                           optimizer=cfg["optimizer"].lower())
    return LiveJob(make, device, "sequences-adding"), note


class GradientsDemo(JobHost, pn.viewable.Viewer):
    """Adding problem: gradient reaching each step, four runs with and without clipping."""

    length = param.Integer(default=30, label="Sequence length")
    steps = param.Integer(default=600, bounds=(50, MAX_STEPS), step=50,
                          label="Training steps")
    hidden = param.Integer(default=32, bounds=(8, 128), label="Hidden units")
    scale = param.Number(default=1.0, bounds=(0.25, 4.0), step=0.25,
                         label="RNN/LSTM recurrent weight scale")
    activation = param.Selector(default="tanh", objects=["tanh", "relu"],
                                label="RNN nonlinearity")
    optimizer = param.Selector(default="Adam", objects=["Adam", "SGD"])
    lr = param.Selector(default=0.01, objects=[0.001, 0.003, 0.01, 0.03, 0.1],
                        label="Learning rate")
    clip = param.Number(default=1.0, bounds=(0.01, 100.0), label="Clip gradient norm at")
    device = param.Selector(default="CPU", objects=["CPU", "GPU"])
    seed = param.Integer(default=0, bounds=(0, 10**6))

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.error = error_alert()
        self.error.css_classes = [*self.error.css_classes, "adding-error"]
        self.run_btn = pn.widgets.Button(label="Measure and train", color="primary",
                                         css_classes=["adding-train"])
        self.cancel_btn = pn.widgets.Button(label="Cancel", color="danger",
                                            disabled=True, css_classes=["adding-cancel"])
        self.init_jobs(self.run_btn, self.cancel_btn, "gradients")
        self.status = pn.pane.HTML("<span class='muted'>choose a length and press the "
                                   "button</span>", stylesheets=[CSS],
                                   css_classes=["adding-status"], sizing_mode="stretch_width")
        self.table = pn.pane.HTML("", stylesheets=[CSS], css_classes=["adding-results"])
        self.grad_fig = figure(title="|dL/dh_t|: gradient reaching step t (solid: at "
                               "initialisation, dashed: after training)", height=280,
                               y_axis_type="log", sizing_mode="stretch_width",
                               x_axis_label="time step t", tools="pan,wheel_zoom,reset")
        self.loss_fig = figure(title="training loss (mean squared error)", height=260,
                               y_axis_type="log", sizing_mode="stretch_width",
                               x_axis_label="step", tools="pan,wheel_zoom,reset")
        self.norm_fig = figure(title="gradient norm before clipping", height=260,
                               y_axis_type="log", sizing_mode="stretch_width",
                               x_axis_label="step", tools="pan,wheel_zoom,reset")
        self.profile_src: dict[str, ColumnDataSource] = {}
        self.after_src: dict[str, ColumnDataSource] = {}
        for name in ("RNN", "LSTM"):
            self.profile_src[name] = ColumnDataSource({"t": [], "g": []})
            self.grad_fig.line("t", "g", source=self.profile_src[name], legend_label=name,
                               color=RUN_COLORS[name], line_width=2)
        for name in RUN_COLORS:
            self.after_src[name] = ColumnDataSource({"t": [], "g": []})
            self.grad_fig.line("t", "g", source=self.after_src[name], line_dash="dashed",
                               legend_label=f"{name}, trained", color=RUN_COLORS[name])
        self.grad_fig.legend.location = "top_left"
        self.loss_src = {n: ColumnDataSource({"step": [], "v": []}) for n in RUN_COLORS}
        self.norm_src = {n: ColumnDataSource({"step": [], "v": []}) for n in RUN_COLORS}
        for n, c in RUN_COLORS.items():
            self.loss_fig.line("step", "v", source=self.loss_src[n], color=c, legend_label=n)
            self.norm_fig.line("step", "v", source=self.norm_src[n], color=c, legend_label=n)
        for f in (self.grad_fig, self.loss_fig, self.norm_fig):
            f.legend.label_text_font_size = "8pt"
            f.legend.background_fill_alpha = 0.6
            f.legend.click_policy = "hide"
        vanish = pn.widgets.Button(label="Vanishing", color="light", width=115,
                                   css_classes=["preset-vanishing"])
        explode = pn.widgets.Button(label="Exploding", color="light", width=115,
                                    css_classes=["preset-exploding"])
        vanish.on_click(lambda _: self.preset("vanishing"))
        explode.on_click(lambda _: self.preset("exploding"))
        w = 240
        settings = pn.Column(
            pn.pane.Markdown("Presets:", margin=(0, 10)), pn.Row(vanish, explode),
            pn.widgets.IntInput.from_param(self.param.length, width=w, start=2),
            pn.widgets.IntSlider.from_param(self.param.steps, width=w),
            pn.widgets.IntSlider.from_param(self.param.hidden, width=w),
            pn.widgets.FloatSlider.from_param(self.param.scale, width=w),
            pn.widgets.RadioButtonGroup.from_param(self.param.activation, color="light"),
            pn.widgets.RadioButtonGroup.from_param(self.param.optimizer, color="light"),
            pn.widgets.Select.from_param(self.param.lr, width=w),
            pn.widgets.FloatInput.from_param(self.param.clip, width=w, step=0.1),
            pn.widgets.RadioButtonGroup.from_param(self.param.device, color="light"),
            pn.Row(self.run_btn, self.cancel_btn))
        self._layout = pn.Column(
            self.error,
            pn.Row(settings, pn.Column(self.status, pn.pane.Bokeh(self.grad_fig), self.table,
                                       sizing_mode="stretch_width"),
                   sizing_mode="stretch_width"),
            pn.Row(pn.pane.Bokeh(self.loss_fig), pn.pane.Bokeh(self.norm_fig),
                   sizing_mode="stretch_width"),
            sizing_mode="stretch_width")

    def config(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("length", "steps", "hidden", "scale",
                                             "activation", "optimizer", "lr", "clip",
                                             "device", "seed")}

    def preset(self, name: str) -> None:
        """The two lessons: gradients that vanish (a plain tanh RNN, Adam) and gradients
        that explode (ReLU, recurrent weights x3, plain SGD: without clipping it diverges)."""
        if name == "vanishing":
            self.param.update(activation="tanh", scale=1.0, optimizer="Adam", lr=0.01,
                              steps=600)
        else:
            self.param.update(activation="relu", scale=3.0, optimizer="SGD", lr=0.01,
                              steps=300)

    def _start(self, _: Any = None) -> None:
        if self.job is not None:
            return
        show_error(self.error, "")
        try:
            job, note = experiment(self.config())
        except ValueError as exc:
            show_error(self.error, str(exc))
            return
        for src in (*self.profile_src.values(), *self.after_src.values()):
            src.data = {"t": [], "g": []}
        for src in (*self.loss_src.values(), *self.norm_src.values()):
            src.data = {"step": [], "v": []}
        self.results: dict[str, tuple] = {}
        self.table.object = ""
        self.launch(job, html.escape(note or f"measuring on {job.device}…"))

    def on_events(self, events: list[tuple[str, Any]]) -> None:
        batch: dict[str, tuple[list, list, list]] = {n: ([], [], []) for n in RUN_COLORS}
        for kind, payload in events:
            if kind == "profile":
                name, g = payload
                self.profile_src[name].data = {"t": list(range(1, len(g) + 1)),
                                               "g": _positive(g)}
            elif kind == "step":
                name, step, loss, norm = payload
                s, lo, no = batch[name]
                if math.isfinite(loss) and loss > 0:
                    s.append(step)
                    lo.append(loss)
                    no.append(norm if math.isfinite(norm) and norm > 0 else float("nan"))
                self.status.object = f"training: step {step + 1}/{self.steps}"
            elif kind == "result":
                name, mse, acc, diverged, prof = payload
                self.results[name] = (mse, acc, diverged)
                if prof is not None:
                    self.after_src[name].data = {"t": list(range(1, len(prof) + 1)),
                                                 "g": _positive(prof)}
                self.table.object = self._table()
        self._flush(batch)

    def _flush(self, batch: dict[str, tuple[list, list, list]]) -> None:
        for name, (s, lo, no) in batch.items():
            if s:
                self.loss_src[name].stream({"step": s, "v": lo})
                self.norm_src[name].stream({"step": s, "v": no})

    def _table(self) -> str:
        rows = "".join(
            f"<tr><td style='color:{RUN_COLORS[n]}'><b>{html.escape(n)}</b></td>"
            f"<td>{'diverged' if d else f'{mse:.4f}'}</td><td>{100 * acc:.1f}%</td></tr>"
            for n, (mse, acc, d) in self.results.items())
        return ("<table class='adding-table'><tr><th>run</th><th>test MSE</th>"
                "<th>accuracy (|error| &lt; 0.04)</th></tr>" + rows + "</table>"
                "<div class='muted'>always answering 1.0 gives MSE 0.167</div>")

    def on_end(self, kind: str, message: str) -> None:
        if kind == "error":
            show_error(self.error, f"The experiment failed: {message}")
            self.status.object = "failed"
            return
        self.status.object = f"<span class='adding-done'>{html.escape(message)}</span>"

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout


def _positive(g: Any) -> list[float]:
    """Values for a log axis: zeros (fully vanished) drawn as NaN gaps, never log(0)."""
    return [float(v) if v > 0 else float("nan") for v in np.asarray(g, np.float64)]

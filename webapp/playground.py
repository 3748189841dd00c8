"""Playground: build a small network, watch every unit learn, compare old and new ideas.

Train tab: the data (2-D sets, MNIST, your CSV file), the input features, the network and
the training settings; the network drawn live (every hidden unit a tile of what it
computes over the input plane, links by weight), the decision surface behind the data,
a random forest beside it, and the model to take away (ONNX, or a Python script for the
engine or PyTorch). Contrasts tab: the seeds' five "traditional vs deep learning"
experiments, each run side by side and summed up in a result card.

Runs train off the page (playground_run); a periodic callback drains their events into
the drawings (playground_view). Every setting lives in the URL (`?data=xor&act=tanh...`),
so a configuration can be shared; an uploaded file cannot travel in a URL.
"""

from __future__ import annotations

import html
import io
import queue
from collections.abc import Callable
from typing import Any

import numpy as np
import panel as pn
import param
from bokeh.models import ColumnDataSource
from bokeh.palettes import Category10_10
from bokeh.plotting import figure

from engine.mlp import ACTIVATIONS, FEATURES, INITS, OPTIMIZERS, REGS, Recipe
from webapp.common import (
    CSS,
    NO_ONNX_EXPORT,
    NO_ONNX_LABEL,
    error_alert,
    file_input,
    in_background,
    log,
    on_session_end,
    onnx_export_available,
    onnx_file,
    run_poll,
    session_connected,
    session_task,
    shell,
    show_error,
    start_poller,
)
from webapp.playground_data import DATASETS, LEGACY
from webapp.playground_experiments import CARD_CSS, EXPERIMENTS, result_card
from webapp.playground_run import Result, Run, Settings
from webapp.playground_view import RunView

DEVICES = ["CPU", "GPU"]
TASKS = ["auto", "classification", "regression"]
MAX_CSV_BYTES = 4 * 2**20
POLL_MS = 200
CLOSED_TAB_POLLS = 25  # polls (5 s) without a connection: the tab is gone, not reloading
PAGE_CSS = CSS + CARD_CSS + """
.run-metric {font-family: monospace;}
.unit-dead {color: #cf222e;} .unit-saturated {color: #bf8700;}
"""
URL = {"data": "data", "noise": "noise", "split": "split", "batch": "batch",
       "features": "feats", "activation": "act", "init": "init", "reg": "reg",
       "penalty": "rate", "optimizer": "opt", "lr": "lr", "depth": "depth", "width": "width",
       "epochs": "epochs", "device": "device", "seed": "seed", "task": "task",
       "label": "label", "forest": "forest", "experiment": "exp", "tab": "tab"}


class Curves:
    """Training loss per step and the validation metric per epoch, one line per run."""

    def __init__(self, height: int = 230) -> None:
        self.loss = figure(title="training loss per step", height=height,
                           sizing_mode="stretch_width", y_axis_type="log", x_axis_label="step",
                           tools="pan,wheel_zoom,box_zoom,reset")
        self.metric = figure(title="validation accuracy per epoch", height=height,
                             sizing_mode="stretch_width", x_axis_label="epoch",
                             tools="pan,wheel_zoom,box_zoom,reset")
        self.sources: dict[int, tuple[ColumnDataSource, ColumnDataSource]] = {}

    def add(self, run: Run) -> None:
        color = Category10_10[(run.number - 1) % 10]
        steps = ColumnDataSource({"step": [], "loss": []})
        epochs = ColumnDataSource({"epoch": [], "value": []})
        self.sources[run.number] = (steps, epochs)
        label = run.label()
        self.loss.line("step", "loss", source=steps, color=color, legend_label=label)
        self.metric.line("epoch", "value", source=epochs, color=color, legend_label=label)
        self.metric.scatter("epoch", "value", source=epochs, color=color, size=5)
        regression = run.recipe.task == "regression"
        self.metric.title.text = ("validation loss (MSE) per epoch" if regression
                                  else "validation accuracy per epoch")
        for fig, where in ((self.loss, "top_right"), (self.metric, "bottom_right")):
            fig.legend.location = where
            fig.legend.label_text_font_size = "8pt"
            fig.legend.click_policy = "hide"

    def steps(self, run: Run, steps: list[int], losses: list[float]) -> None:
        if steps:
            self.sources[run.number][0].stream({"step": steps, "loss": losses})

    def epoch(self, run: Run, epoch: int, logs: dict[str, float]) -> None:
        key = "val_loss" if run.recipe.task == "regression" else "val_accuracy"
        self.sources[run.number][1].stream({"epoch": [epoch + 1],
                                            "value": [logs.get(key, np.nan)]})

    def clear(self) -> None:
        for fig in (self.loss, self.metric):
            fig.renderers = []
            if fig.legend:
                fig.legend.items = []
        self.sources.clear()

    def panes(self) -> pn.Column:
        return pn.Column(pn.pane.Bokeh(self.loss, sizing_mode="stretch_width"),
                         pn.pane.Bokeh(self.metric, sizing_mode="stretch_width"),
                         sizing_mode="stretch_width")


class PlaygroundPage(pn.viewable.Viewer):
    """Settings, Train / Cancel, the network drawn live, exports, the five contrasts."""

    data = param.Selector(default="circle", objects=[*DATASETS, *LEGACY])  # old links too
    noise = param.Integer(default=0, bounds=(0, 50), label="Noise (%)")
    split = param.Integer(default=50, bounds=(10, 90), label="Training rows (%)")
    batch = param.Integer(default=16, bounds=(1, 512), label="Batch size")
    features = param.ListSelector(default=["x1", "x2"], objects=list(FEATURES))
    activation = param.Selector(default="ReLU", objects=list(ACTIVATIONS))
    init = param.Selector(default="He", objects=list(INITS), label="Initialisation")
    reg = param.Selector(default="none", objects=list(REGS), label="Regularisation")
    penalty = param.Number(default=1e-3, bounds=(0, 1), label="L1/L2 strength")
    optimizer = param.Selector(default="Adam", objects=list(OPTIMIZERS))
    lr = param.Number(default=0.01, bounds=(1e-5, 2.0), label="Learning rate")
    depth = param.Integer(default=2, bounds=(1, 8), label="Hidden layers")
    width = param.Integer(default=8, bounds=(1, 256), label="Units per layer")
    epochs = param.Integer(default=30, bounds=(1, 300))
    device = param.Selector(default="CPU", objects=DEVICES)
    seed = param.Integer(default=0, bounds=(0, 10**6))
    task = param.Selector(default="auto", objects=TASKS, label="Task (CSV)")
    label = param.String(default="", label="Label column (CSV)")
    forest = param.Boolean(default=True, label="Also train a random forest")
    experiment = param.Selector(default="activation", objects=list(EXPERIMENTS))
    tab = param.Selector(default="train", objects=["train", "contrasts"])

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        if pn.state.location is not None:
            pn.state.location.sync(self, URL)
        self.runs: list[Run] = []
        self.active: Run | None = None
        self.view: RunView | None = None      # where the active run is drawn
        self.curves: Curves | None = None
        self.then: Callable[[Run], None] | None = None
        self.poller: Any = None
        self.pending: list[Callable[[], None]] = []
        self._unconnected_polls = 0
        on_session_end(self._end_session)
        self.table: Any = None
        self.csv: tuple[bytes, str] | None = None
        self.last: Run | None = None          # the latest finished run of the Train tab
        self.error = error_alert()
        self.train_view, self.train_curves = RunView(), Curves()
        self.sides = (RunView(compact=True), RunView(compact=True))
        self.exp_curves = Curves(220)
        self.cards: dict[str, str] = {}
        self._build_widgets()
        self._layout = self._build_layout()
        self._data_changed()
        pn.state.onload(self._start_polling)

    # -- widgets and layout ----------------------------------------------------------------
    def _button(self, label: str, css: str, color: str = "light", **kw: Any) -> Any:
        return pn.widgets.Button(label=label, color=color, css_classes=[css], **kw)

    def _build_widgets(self) -> None:
        w = 255
        self.train_btn = self._button("Train", "train-button", "primary", width=100)
        self.cancel_btn = self._button("Cancel", "cancel-button", "danger", width=100,
                                       disabled=True)
        self.clear_btn = self._button("Clear runs", "clear-button", width=100)
        self.train_btn.on_click(self._start)
        self.cancel_btn.on_click(self._cancel)
        self.clear_btn.on_click(self._clear)
        self.progress = pn.indicators.Progress(value=0, max=100, width=240, bar_color="primary")
        self.status = pn.pane.HTML("<span class='muted'>choose settings and press Train</span>",
                                   stylesheets=[PAGE_CSS], css_classes=["run-status"],
                                   sizing_mode="stretch_width")
        self.upload = file_input(".csv,.tsv,.txt,text/csv", MAX_CSV_BYTES, self._on_csv,
                                 self.error)
        self.csv_info = pn.pane.HTML("", css_classes=["csv-info"], stylesheets=[PAGE_CSS])
        self.label_select = pn.widgets.Select(options=[], width=w, label="Label column (CSV)",
                                              css_classes=["label-select"])
        self.label_select.param.watch(lambda e: setattr(self, "label", e.new or ""), "value")
        self.downloads = [
            pn.widgets.FileDownload(callback=self._onnx_bytes, filename="playground.onnx",
                                    label="Download model (ONNX)", disabled=True,
                                    color="light", width=w, css_classes=["onnx-download"]),
            pn.widgets.FileDownload(callback=lambda: self._script("engine"),
                                    filename="playground_model.py", disabled=True,
                                    label="Download as a Python script (engine)",
                                    color="light", width=w, css_classes=["script-download"]),
            pn.widgets.FileDownload(callback=lambda: self._script("torch"),
                                    filename="playground_model_torch.py", disabled=True,
                                    label="Download as a Python script (PyTorch)",
                                    color="light", width=w, css_classes=["torch-download"]),
        ]
        if not onnx_export_available():  # the browser build: say why, in few words
            self.downloads[0].label = NO_ONNX_LABEL
            self.downloads[0].description = NO_ONNX_EXPORT
        sel = pn.widgets.Select
        self.data_select = sel.from_param(self.param.data, width=w, name="Data",
                                          options={v: k for k, v in DATASETS.items()})
        self.feature_buttons = pn.widgets.MultiChoice.from_param(
            self.param.features, options={v[0]: k for k, v in FEATURES.items()},
            width=w, name="", css_classes=["feature-choice"])
        # (no FlexBox in these Tabs: with one, Panel 1.9 never marked the session loaded,
        # so no onload and no periodic callback ran)
        self.csv_box = pn.Column(self.upload, self.csv_info, self.label_select,
                                 pn.widgets.RadioButtonGroup.from_param(self.param.task),
                                 visible=False)
        slider = pn.widgets.IntSlider.from_param
        self.settings = pn.Column(
            "#### Data", self.data_select, self.csv_box,
            slider(self.param.noise, width=w), slider(self.param.split, width=w),
            slider(self.param.batch, width=w),
            "#### Input features", self.feature_buttons,
            "#### Network",
            slider(self.param.depth, width=w), slider(self.param.width, width=w),
            *(sel.from_param(self.param[k], width=w) for k in ("activation", "init", "reg")),
            pn.widgets.FloatInput.from_param(self.param.penalty, step=1e-4, width=w),
            "#### Training",
            sel.from_param(self.param.optimizer, width=w),
            pn.widgets.FloatInput.from_param(self.param.lr, step=0.001, width=w),
            slider(self.param.epochs, width=w),
            pn.widgets.RadioButtonGroup.from_param(self.param.device),
            pn.widgets.IntInput.from_param(self.param.seed, width=w),
            pn.widgets.Checkbox.from_param(self.param.forest),
            width=275)
        self.exp_buttons = []
        for key, exp in EXPERIMENTS.items():
            btn = self._button(f"Run: {exp.title}", f"exp-{key}", width=240)
            btn.on_click(lambda _e, k=key: self._run_experiment(k))
            self.exp_buttons.append(btn)
        self.exp_intro = pn.pane.HTML("", stylesheets=[PAGE_CSS], sizing_mode="stretch_width")
        self.side_titles = (pn.pane.HTML("<b>traditional</b>"), pn.pane.HTML("<b>modern</b>"))
        self.cards_pane = pn.pane.HTML("", stylesheets=[PAGE_CSS], css_classes=["cards"],
                                       sizing_mode="stretch_width")
        self.param.watch(self._data_changed, "data")
        self.param.watch(self._reparse, ["task", "label"])
        self.param.watch(lambda e: self._show_experiment(), "experiment")

    def _build_layout(self) -> pn.viewable.Viewable:
        v = self.train_view
        train = pn.Row(
            pn.Column(self.settings, pn.Row(self.train_btn, self.cancel_btn), self.clear_btn,
                      *self.downloads, width=280),
            pn.Column(pn.Row(v.network_pane, pn.Column(v.surface_pane, v.forest_pane)),
                      v.detail, v.weights_pane, self.train_curves.panes(),
                      sizing_mode="stretch_width"),
            sizing_mode="stretch_width")
        side = [pn.Column(self.side_titles[i], s.surface_pane, s.weights_pane,
                          s.network_pane, s.detail, width=400)
                for i, s in enumerate(self.sides)]
        contrasts = pn.Column(
            pn.pane.Markdown("Each button trains the traditional recipe, then the modern "
                             "one, on the same data with the same seed; the card below is "
                             "written from what they measured."),
            pn.Row(*self.exp_buttons[:3]), pn.Row(*self.exp_buttons[3:]), self.exp_intro,
            pn.Row(*side), self.exp_curves.panes(), self.cards_pane,
            sizing_mode="stretch_width")
        self.tabs = pn.Tabs(("Train", train), ("Five contrasts", contrasts),
                            active=["train", "contrasts"].index(self.tab),
                            sizing_mode="stretch_width")
        self.tabs.param.watch(lambda e: setattr(self, "tab", ["train", "contrasts"][e.new]),
                              "active")
        # the browser build applies the URL's settings after the page is built
        self.param.watch(lambda e: setattr(self.tabs, "active",
                                           ["train", "contrasts"].index(e.new)), "tab")
        self._show_experiment()
        return pn.Column(self.error, pn.Row(self.progress, self.status,
                                            sizing_mode="stretch_width"),
                         self.tabs, sizing_mode="stretch_width")

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout

    # -- data ------------------------------------------------------------------------------
    def _data_changed(self, *_: Any) -> None:
        if self.data in LEGACY:  # a link from before: the set's name now
            self.data = LEGACY[self.data]
            return
        self.csv_box.visible = self.data == "csv"
        plane = self.data not in ("mnist",) and not (self.data == "csv" and self.table is not
                                                     None and self.table.x.shape[1] != 2)
        self.feature_buttons.disabled = not plane

    def _reparse(self, *_: Any) -> None:
        """A new label column or task for the uploaded file (unless that is what it has)."""
        t = self.table
        if self.csv is None or (t is not None and self.label in ("", t.label)
                                and self.task in ("auto", t.task)
                                and (self.task != "auto" or t.task == t.detected)):
            return
        session_task(self._parse_csv(*self.csv))

    async def _on_csv(self, data: bytes, name: str) -> None:
        """Runs as the session's task (file_input); the file is parsed off the event loop."""
        self.csv = (data, name)
        if await self._parse_csv(data, name, label=""):  # a new file: its last column
            if self.label:
                self.label = ""
            if self.data != "csv":
                self.data = "csv"
        self._data_changed()

    async def _parse_csv(self, data: bytes, name: str, label: str | None = None) -> bool:
        from engine.data.tabular import CSVError, read_csv

        label = self.label if label is None else label
        try:
            table = await in_background(read_csv, data, label or None, self.task)
        except CSVError as exc:
            self.table = None
            show_error(self.error, f"Could not use {name}: {exc}")
            self.csv_info.object = ""
            return False
        show_error(self.error, "")
        self.table = table
        columns = [*table.features, table.label]
        if list(self.label_select.options) != columns:
            self.label_select.options = columns
        self.label_select.value = table.label
        self.csv_info.object = (f"<span class='csv-task'>{html.escape(name)}: "
                                f"{html.escape(table.describe())}</span>")
        return True

    def recipe(self, task: str, plane: bool) -> Recipe:
        feats = tuple(f for f in FEATURES if f in self.features) if plane else ()
        if plane and not feats:
            raise ValueError("choose at least one input feature")
        return Recipe(features=feats, hidden=(self.width,) * self.depth,
                      activation=self.activation, init=self.init, reg=self.reg,
                      penalty=self.penalty, task=task, optimizer=self.optimizer, lr=self.lr,
                      batch_size=self.batch, epochs=self.epochs, seed=self.seed)

    def settings_now(self) -> Settings:
        from engine.data.toy import PLAYGROUND_SETS

        if self.data == "csv":
            if self.table is None:
                raise ValueError("upload a CSV file first: a header row, numeric feature "
                                 "columns and a label column")
            task, plane = self.table.task, self.table.x.shape[1] == 2
        elif self.data == "mnist":
            task, plane = "classification", False
        else:
            task, plane = PLAYGROUND_SETS[self.data], True
        return Settings(self.data, self.recipe(task, plane), noise=self.noise / 100,
                        train_fraction=self.split / 100, device=self.device,
                        forest=self.forest, table=self.table if self.data == "csv" else None)

    # -- runs ------------------------------------------------------------------------------
    def _launch(self, settings: Settings, view: RunView, curves: Curves,
                then: Callable[[Run], None], clear: bool = False) -> Run:
        run = Run(len(self.runs) + 1, settings)
        self.runs.append(run)
        self.active, self.view, self.curves, self.then = run, view, curves, then
        self._busy(True)
        self.progress.value = 0
        self.status.object = f"run {run.number}: starting…"
        self._steps_total = None

        def begin() -> None:
            if clear:
                curves.clear()
            curves.add(run)
            run.start()

        self._later(begin)
        return run

    def _later(self, fn: Callable[[], None]) -> None:
        """Run fn at the next poll. New Bokeh renderers must be made under the document's
        lock, which a periodic callback holds and a button's click handler does not."""
        self.pending.append(fn)

    def _start_polling(self) -> None:
        """The session's one periodic callback, from page load on (a button's click handler
        cannot start one reliably): it drains the active run's events into the drawings."""
        if self.poller is None:
            self.poller = start_poller(self._poll, POLL_MS, busy=False)

    def _busy(self, busy: bool) -> None:
        self.train_btn.disabled = busy
        self.cancel_btn.disabled = not busy
        for b in self.exp_buttons:
            b.disabled = busy

    def _start(self, _: Any = None) -> None:
        if self.active is not None:
            return
        show_error(self.error, "")
        try:
            settings = self.settings_now()
        except ValueError as exc:
            show_error(self.error, str(exc))
            return
        self._launch(settings, self.train_view, self.train_curves, self._train_done)

    def _cancel(self, _: Any = None) -> None:
        if self.active is not None:
            self.active.cancelled.set()
            self.then = None  # an experiment stops here too
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
        self.active, self.poller, self.then, self.last = None, None, None, None
        self.runs.clear()
        self.pending.clear()

    def _clear(self, _: Any = None) -> None:
        if self.active is None:
            self._later(self.train_curves.clear)

    def _poll(self) -> None:
        run_poll(self._drain, self.error, "Drawing the run")

    def _drain(self) -> None:
        """Drain the active run's events: the curves get every step, the drawing only the
        latest snapshot and the status line only the latest step (the redraw throttle)."""
        while self.pending:
            self.pending.pop(0)()
        run = self.active
        if run is None:
            return
        connected = session_connected()
        self._unconnected_polls = 0 if connected is not False else self._unconnected_polls + 1
        if self._unconnected_polls >= CLOSED_TAB_POLLS:
            self._end_session("no connection for 5 s")
            return
        if connected is False:
            return  # nothing is drawn for a tab that is gone (or reloading): no writes to a
            # closed websocket; the events wait in the queue
        steps: list[int] = []
        losses: list[float] = []
        snap = last = None
        end: tuple[str, Any] | None = None
        while end is None:
            try:
                kind, payload = run.events.get_nowait()
            except queue.Empty:
                break
            if kind == "step":
                last = payload
                if np.isfinite(payload[1]) and payload[1] > 0:
                    steps.append(payload[0])
                    losses.append(payload[1])
            elif kind == "begin":
                n = len(payload["dataset"].x_train)
                self._steps_total = -(-n // run.recipe.batch_for(n))
                self.view.begin(payload)
            elif kind == "epoch":
                self.curves.epoch(run, *payload)
            elif kind == "snapshot":
                snap = payload
            elif kind == "forest":
                self.view.forest(payload, run.result.short() if run.result else "")
            elif kind == "status":
                self.status.object = f"run {run.number}: {html.escape(payload)}"
            elif kind in ("done", "error", "cancelled"):
                end = (kind, payload)
        try:
            self.curves.steps(run, steps, losses)
            if snap is not None:
                self.view.draw(snap)
            if last is not None and end is None:
                self._show_step(run, *last)
        finally:  # the run's end lands even if its drawing failed
            if end is not None:
                self._finish(run, *end)

    def _show_step(self, run: Run, step: int, loss: float, epoch: int, batch: int) -> None:
        if self._steps_total:
            done = epoch * self._steps_total + batch + 1
            self.progress.value = min(100, int(100 * done / (
                self._steps_total * run.recipe.epochs)))
        self.status.object = (f"run {run.number}: epoch {epoch + 1}/{run.recipe.epochs},"
                              f" loss {loss:.4f}")

    def _finish(self, run: Run, kind: str, payload: Any) -> None:
        self.active = None
        then, self.then = self.then, None
        if kind in ("error", "cancelled"):
            self._busy(False)
            if kind == "error":
                show_error(self.error, f"Run {run.number} failed: {payload}")
            self.status.object = f"run {run.number}: {'failed' if kind == 'error' else payload}"
            return
        result: Result = payload
        if result.why == "finished":
            self.progress.value = 100
        self.status.object = (
            f"<span class='run-done'>run {html.escape(run.label())}: {html.escape(result.why)}"
            f" in {result.train_s:.1f} s on {html.escape(result.device_name)}: "
            f"<span class='run-metric'>{html.escape(result.metric_text)}</span></span>")
        if then is not None:
            then(run)
        if self.active is None:
            self._busy(False)

    def _train_done(self, run: Run) -> None:
        self.last = run
        for d in self.downloads:
            d.disabled = False
        if not onnx_export_available():
            self.downloads[0].disabled = True

    # -- the five contrasts ----------------------------------------------------------------
    def _show_experiment(self) -> None:
        exp = EXPERIMENTS[self.experiment]
        self.exp_intro.object = (f"<b>{html.escape(exp.title)}</b>: {html.escape(exp.idea)}")
        self.side_titles[0].object = f"<b>traditional</b>: {html.escape(exp.traditional.label)}"
        self.side_titles[1].object = f"<b>modern</b>: {html.escape(exp.modern.label)}"

    def _run_experiment(self, key: str) -> None:
        if self.active is not None:
            return
        show_error(self.error, "")
        exp = EXPERIMENTS[key].with_seed(self.seed)

        def settings(side: Any) -> Settings:
            return Settings(exp.data, side.recipe, noise=exp.noise, device=side.device,
                            forest=False, name=side.label)

        def after_modern(trad: Run, modern: Run) -> None:
            if trad.result and modern.result:
                self.cards[key] = result_card(exp, trad.result, modern.result, self.seed)
                self.cards_pane.object = "".join(self.cards.values())

        def after_traditional(trad: Run) -> None:
            self._launch(settings(exp.modern), self.sides[1], self.exp_curves,
                         lambda modern: after_modern(trad, modern))

        self._launch(settings(exp.traditional), self.sides[0], self.exp_curves,
                     after_traditional, clear=True)
        self.experiment = key  # last: its URL update must not come between Bokeh edits

    # -- take it with you ------------------------------------------------------------------
    def _onnx_bytes(self) -> Any:
        run = self.last
        if run is None or run.finished is None:
            return io.BytesIO(b"")
        return onnx_file(run.finished.model(), run.finished.example)

    def _script(self, flavour: str) -> io.BytesIO:
        from engine.export_script import script

        run = self.last
        if run is None or run.finished is None or run.dataset is None or run.result is None:
            return io.BytesIO(b"")
        ds, built = run.dataset, run.built
        src = script(run.recipe, built.features, built.n_out, run.finished.state,
                     ds.arrays(), flavour, title=f"Demystify Playground run {run.label()}",
                     measured=run.result.metric_text, classes=ds.classes)
        return io.BytesIO(src.encode())


def page() -> pn.viewable.Viewable:
    return shell("playground", "Playground", PlaygroundPage,
                 "Build a small network and watch every unit learn: what each neuron "
                 "computes over the input plane, the links by weight, the decision surface. "
                 "Bring your own CSV file, compare with a random forest, take the model "
                 "with you, and run the five contrasts that explain why modern deep "
                 "learning works.")


if __name__.startswith("bokeh"):
    page().servable(title="Demystify · Playground")

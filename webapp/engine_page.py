"""Engine: devices, the backend in use, per-op timings of a training step, ONNX in and out.

Named engine_page (not engine) so `panel serve webapp/engine_page.py` cannot shadow the
engine package.
"""

from __future__ import annotations

import html
import io
from typing import Any

import numpy as np
import panel as pn
from bokeh.models import ColumnDataSource
from bokeh.plotting import figure

from webapp.common import (
    ASSETS,
    CSS,
    MAX_ONNX_BYTES,
    MODELS,
    NO_ONNX_EXPORT,
    NO_ONNX_LABEL,
    available_devices,
    bokeh_update,
    compute_device,
    device_lock,
    error_alert,
    file_input,
    in_background,
    onnx_export_available,
    onnx_file,
    onnx_limits,
    shell,
    show_error,
)

TABLE_CSS = """
table.kv {border-collapse: collapse;}
table.kv td, table.kv th {padding: 3px 10px; border-bottom: 1px solid #d0d7de; text-align: left;}
pre.report {font-size: 0.85em; white-space: pre-wrap;}
"""


def _mnist(n: int) -> tuple[np.ndarray, np.ndarray]:
    """The first n shipped MNIST test digits as a network input (N, 1, 28, 28), labels."""
    from engine.data.transforms import image_batch

    with np.load(ASSETS / "mnist_samples.npz", allow_pickle=False) as z:
        return image_batch(z["images"][:n]), z["labels"][:n]


def profile_step(device: str, use_latest: bool) -> tuple[list[tuple[str, int, float]], float,
                                                         str]:
    """Time one training step (forward, backward, Adam) per Backend primitive."""
    from engine.models import load_lenet5
    from engine.profile import profile_train_step
    from webapp.playground_state import LATEST

    latest = LATEST.model() if use_latest else None
    if latest is not None:
        model, example, label = latest
        what = f"Playground run {label}, batch of 32 copies of one input"
        x, y = np.repeat(example, 32, axis=0), np.zeros(32, np.int64)
    else:
        model = load_lenet5(MODELS / "lenet5.onnx")
        what = "LeNet-5 (a copy of the Digits model), batch of 32 digits"
        x, y = _mnist(32)
    with device_lock(device):
        prof = profile_train_step(model, x, y, device)
    return prof.table(), prof.wall, what


def run_onnx(data: bytes) -> tuple[str, str]:
    """(op-support report, result) for an uploaded ONNX file; runs only supported graphs.

    Nothing in the file is executed as code: the engine reads the protobuf and maps each
    node to its own implementation of that op; what it may cost is bounded by
    `onnx_limits()` (checked before anything is allocated)."""
    import engine.onnx
    from engine import explain
    from engine.onnx.info import describe, format_description

    limits = onnx_limits()
    info = describe(data, limits=limits)
    report = format_description(info)
    if not info["supported"]:
        return report, "not run: the engine does not support every op in this model"
    shape = info["inputs"][0]["shape"] if info["inputs"] else None
    if not shape or len(info["inputs"]) != 1:
        return report, "not run: the demo runs models with one image input"
    dims = [1 if not isinstance(d, int) or d <= 0 else d for d in shape]
    x, what = _example_input(dims)
    model = engine.onnx.load(data, device=compute_device()[0], limits=limits)
    with device_lock():
        out = explain.probabilities(model, x) if x.ndim >= 2 else None
    if out is None or out.shape[0] != 1:
        return report, "ran, but the output is not one row of class scores"
    top = np.argsort(-out[0])[:5]
    rows = "".join(f"<tr><td>{i}</td><td>{100 * out[0, i]:.1f}%</td></tr>" for i in top)
    return report, (f"<div class='onnx-ran'>ran on {html.escape(what)}: output "
                    f"{out.shape[1]} classes, top-5 (softmax of the outputs):</div>"
                    f"<table class='kv'><tr><th>class</th><th>p</th></tr>{rows}</table>")


def _example_input(dims: list[int]) -> tuple[np.ndarray, str]:
    """A shipped test image shaped for the model's input, or a grey one."""
    from engine.data.transforms import image_batch

    if dims[1:] in ([1, 28, 28], [784]):
        x, labels = _mnist(1)
        flat = dims[1:] == [784]
        return (x.reshape(1, -1) if flat else x), \
            f"MNIST test digit (a {int(labels[0])})" + (", flattened" if flat else "")
    if dims[1:] == [3, 32, 32]:
        with np.load(ASSETS / "cifar10_samples.npz", allow_pickle=False) as z:
            return image_batch(z["images"][:1]), \
                f"CIFAR-10 test image ({z['classes'][z['labels'][0]]})"
    if int(np.prod(dims)) > 4_000_000:
        raise ValueError(f"the model's input {dims} is too large for this demo")
    return np.full(dims, 0.5, np.float32), f"a grey input of shape {tuple(dims)}"


class EnginePage(pn.viewable.Viewer):
    """Devices, per-op timings, ONNX download and upload."""

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.error = error_alert()
        dev, desc, note = compute_device()
        rows = "".join(
            f"<tr><td>{html.escape(d['name'])}</td><td>{html.escape(d['adapter'])}</td>"
            f"<td>{'in use by the demos' if d['name'] == dev else ''}</td></tr>"
            for d in available_devices())
        self.devices = pn.pane.HTML(
            f"<table class='kv devices'><tr><th>device</th><th>backend</th><th></th></tr>"
            f"{rows}</table>" + (f"<p class='muted'>{html.escape(note)}</p>" if note else ""),
            stylesheets=[CSS, TABLE_CSS])
        names = [d["name"].upper() for d in available_devices()]
        self.device = pn.widgets.RadioButtonGroup(options=names, value=dev.upper(),
                                                  color="light")
        self.use_latest = pn.widgets.Checkbox(label="profile the latest Playground model "
                                              "(else LeNet-5)", value=False)
        self.profile_btn = pn.widgets.Button(label="Time one training step", width=200,
                                             color="primary")
        self.profile_info = pn.pane.HTML("", stylesheets=[CSS])
        self.prof_src = ColumnDataSource({"op": [], "ms": [], "calls": []})
        self.prof_fig = figure(y_range=[], height=300, sizing_mode="stretch_width",
                               title="time per Backend primitive in one step (ms)",
                               toolbar_location=None, tooltips=[("calls", "@calls"),
                                                                 ("ms", "@ms{0.00}")])
        self.prof_fig.hbar(y="op", right="ms", height=0.7, source=self.prof_src,
                           color="#1f6feb")
        self.download = pn.widgets.FileDownload(callback=self._latest_onnx,
                                                filename="playground.onnx", color="light",
                                                label="Download the latest Playground model "
                                                "(ONNX)", width=340)
        if not onnx_export_available():
            self.download.disabled, self.download.label = True, NO_ONNX_LABEL
            self.download.description = NO_ONNX_EXPORT
        self.upload = file_input(".onnx", MAX_ONNX_BYTES, self._on_file, self.error)
        self.report = pn.pane.HTML("", stylesheets=[CSS, TABLE_CSS], css_classes=["onnx-report"],
                                   sizing_mode="stretch_width")
        self.result = pn.pane.HTML("", stylesheets=[CSS, TABLE_CSS], css_classes=["onnx-result"])
        self.profile_btn.on_click(self._profile)
        self._layout = pn.Column(
            self.error,
            pn.pane.Markdown("### Devices"), self.devices,
            pn.pane.Markdown("### Per-op timings"),
            pn.Row(self.device, self.use_latest, self.profile_btn), self.profile_info,
            pn.pane.Bokeh(self.prof_fig, sizing_mode="stretch_width"),
            pn.pane.Markdown("### ONNX"),
            self.download,
            pn.pane.Markdown(f"**Upload an ONNX model** (up to {MAX_ONNX_BYTES // 2**20} MB) "
                             "to see which ops the engine supports and run it on a test "
                             "image. Nothing in the file is executed as code."),
            self.upload, self.result, self.report,
            sizing_mode="stretch_width",
        )

    async def _profile(self, _: Any) -> None:
        self.profile_btn.disabled = True
        self.profile_info.object = "timing…"
        try:
            table, wall, what = await in_background(
                profile_step, self.device.value.lower(), self.use_latest.value)
        except Exception as exc:  # noqa: BLE001
            show_error(self.error, f"Profiling failed: {exc}")
            self.profile_info.object = ""
            return
        finally:
            self.profile_btn.disabled = False
        show_error(self.error, "")
        table = table[:20]
        ops = [name for name, _, _ in table][::-1]
        data = {"op": ops, "ms": [1000 * s for _, _, s in table][::-1],
                "calls": [c for _, c, _ in table][::-1]}

        def draw() -> None:
            self.prof_fig.y_range.factors = ops
            self.prof_src.data = data

        bokeh_update(draw)
        total = sum(s for _, _, s in table)
        self.profile_info.object = (
            f"<span class='profile-done'>{html.escape(what)} on "
            f"{self.device.value}: {1000 * wall:.1f} ms for the step, "
            f"{1000 * total:.1f} ms inside Backend primitives</span>"
            + ("<div class='muted'>On the GPU, primitives only queue work: the wait for the "
               "device shows up in to_numpy (reading the loss) and synchronize.</div>"
               if self.device.value == "GPU" else ""))

    def _latest_onnx(self) -> io.BytesIO:
        from webapp.playground_state import LATEST

        latest = LATEST.model()
        if latest is None:
            show_error(self.error, "No Playground model yet: train one on the Playground page "
                       "first.")
            return io.BytesIO(b"")
        model, example, _ = latest
        return onnx_file(model, example)

    async def _on_file(self, data: bytes, name: str) -> None:
        """Runs as the session's task (file_input): decoded and run off the event loop."""
        self.result.object = "reading…"
        try:
            report, result = await in_background(run_onnx, data)
        except Exception as exc:  # noqa: BLE001  (a friendly message, never a crash)
            show_error(self.error, f"Could not use {name}: {exc}")
            self.result.object = ""
            self.report.object = ""
            return
        show_error(self.error, "")
        self.report.object = f"<pre class='report'>{html.escape(report)}</pre>"
        self.result.object = result

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout


def page() -> pn.viewable.Viewable:
    return shell("engine", "Engine", EnginePage,
                 "The engine under the demos: which devices it found, where a training step "
                 "spends its time, and ONNX import and export.")


if __name__.startswith("bokeh"):
    page().servable(title="Demystify · Engine")

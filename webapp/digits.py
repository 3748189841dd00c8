"""Digits: draw a digit, LeNet-5 reads it live, and shows how a CNN sees it."""

from __future__ import annotations

import logging

import numpy as np
import panel as pn
import param
from bokeh.models import ColumnDataSource, LinearColorMapper
from bokeh.plotting import figure

from webapp import digit_reader, quickstart, warmup
from webapp.canvas import DrawCanvas
from webapp.common import (
    CSS,
    bokeh_update,
    device_lock,
    error_alert,
    in_background,
    once_per_device,
    session_task,
    shell,
    show_error,
)

CLASSES = [str(d) for d in range(10)]
TILE_GAP = 2


@once_per_device
def lenet(device: str) -> object:
    """The shipped LeNet-5 (ONNX) as an engine Sequential, so each layer can be shown."""
    return digit_reader.load(device)


def read_digit(data_url: str) -> tuple[np.ndarray, np.ndarray, list[tuple[str, np.ndarray]]]:
    """Canvas PNG -> (28x28 MNIST-style input, class probabilities, layer outputs)."""
    net = lenet()
    with device_lock():
        return digit_reader.read(net, data_url)


def tile(maps: np.ndarray, cols: int) -> np.ndarray:
    """(C, H, W) feature maps, each scaled to [0, 1], laid out in a grid with gaps."""
    c, h, w = maps.shape
    rows = -(-c // cols)
    out = np.full((rows * (h + TILE_GAP) - TILE_GAP, cols * (w + TILE_GAP) - TILE_GAP), np.nan)
    for i, m in enumerate(maps):
        lo, hi = float(m.min()), float(m.max())
        r, k = divmod(i, cols)
        out[r * (h + TILE_GAP):r * (h + TILE_GAP) + h, k * (w + TILE_GAP):k * (w + TILE_GAP) + w] \
            = (m - lo) / (hi - lo) if hi > lo else 0.0
    return out[::-1]


def _image_fig(title: str, width: int, height: int, palette: str) -> tuple[object, object]:
    # no axes, grids or tools at all (hidden ones are still models the page serialises
    # and the browser builds views for: 66 of the page's 197, with the bars' tools; and a
    # drag panned the image)
    fig = figure(title=title, width=width, height=height, x_range=(0, 1), y_range=(0, 1),
                 toolbar_location=None, tools="", x_axis_type=None, y_axis_type=None)
    src = ColumnDataSource({"image": [np.full((2, 2), np.nan)], "dw": [1], "dh": [1]})
    mapper = LinearColorMapper(palette=palette, low=0, high=1, nan_color=(0, 0, 0, 0))
    fig.image(image="image", x=0, y=0, dw="dw", dh="dh", source=src, color_mapper=mapper)
    return fig, src


class DigitsPage(pn.viewable.Viewer):
    """Draw a digit; LeNet-5 predicts while you draw; see the input and feature maps."""

    prediction = param.Integer(default=None, allow_None=True, doc="the predicted digit")

    def __init__(self, **params: object) -> None:
        super().__init__(**params)
        # a drawing made on the static site's quick-start pad, read here again
        handed = quickstart.take("digits")
        self.canvas = DrawCanvas(**digit_reader.CANVAS,
                                 seed=handed["strokes"] if handed else [])
        self.error = error_alert()
        self.result = pn.pane.HTML(self._result_html(None), stylesheets=[CSS],
                                   css_classes=["digit-result"], min_width=220)
        self.bars_src = ColumnDataSource({"digit": CLASSES, "p": [0.0] * 10,
                                          "color": ["#8c959f"] * 10})
        bars = figure(x_range=CLASSES, y_range=(0, 1), height=220, width=360,
                      title="probability per class", toolbar_location=None, tools="")
        bars.vbar(x="digit", top="p", width=0.8, color="color", source=self.bars_src)
        bars.xgrid.visible = False
        self.input_fig, self.input_src = _image_fig("network input (28x28)", 200, 200,
                                                    "Greys256")
        self.map_figs = []
        self.map_srcs = []
        for title, w, h in (("conv 1: 6 feature maps (28x28)", 640, 130),
                            ("conv 2: 16 feature maps (10x10)", 640, 180)):
            fig, src = _image_fig(title, w, h, "Viridis256")
            self.map_figs.append(fig)
            self.map_srcs.append(src)
        self._drawn = 0  # counts drawings: only the latest one's prediction is shown
        self._pending: str | None = None  # the newest drawing not yet read
        if handed:  # read once the page is drawn (_prime), as a drawing made here
            self.canvas.param.update(image=handed["image"], strokes=len(handed["strokes"]))
            self._pending = handed["image"]
        self._reading = False  # a reader task is running (it reads the newest drawing next)
        self.canvas.param.watch(self._on_image, "image")
        warmup.after_render(self._prime)
        self._layout = pn.Column(
            self.error,
            pn.FlexBox(
                pn.Column(pn.pane.HTML("<p><b>Draw a digit</b> (mouse, finger or pen)</p>"),
                          self.canvas),
                pn.Column(self.result, pn.pane.Bokeh(bars)),
                pn.pane.Bokeh(self.input_fig),
            ),
            pn.pane.HTML("<h3>How a CNN sees it: the output of each convolution (after "
                         "ReLU), brighter = stronger</h3>"),
            *(pn.pane.Bokeh(f) for f in self.map_figs),
            sizing_mode="stretch_width",
        )

    @staticmethod
    def _result_html(pred: int | None, p: float = 0.0) -> str:
        if pred is None:
            return ('<div class="muted">prediction</div><div class="big prediction">–</div>'
                    '<div class="muted">draw to start</div>')
        return (f'<div class="muted">prediction</div><div class="big prediction">{pred}</div>'
                f'<div class="muted confidence">{100 * p:.1f}% sure</div>')

    def _on_image(self, event: param.parameterized.Event) -> None:
        self._drawn += 1  # a newer drawing makes any prediction still running stale
        self._pending = event.new or None
        if event.new:
            if not self._reading:
                self._reading = True
                session_task(self._read_newest())
            return
        self.prediction = None
        self.result.object = self._result_html(None)
        self.bars_src.data = {"digit": CLASSES, "p": [0.0] * 10, "color": ["#8c959f"] * 10}
        for src in (self.input_src, *self.map_srcs):
            src.data = {"image": [np.full((2, 2), np.nan)], "dw": [1], "dh": [1]}

    async def _prime(self) -> None:
        """Read a sample drawing once and drop the result: the first real drawing then
        finds Pillow imported, LeNet-5 loaded and the GPU's readbacks made, instead of
        paying for them (the static site runs this while the browser draws the page)."""
        if self._reading:  # a drawing came first; it pays the first-time costs itself
            return
        self._reading = True
        if self._pending is None:  # else a handed-over drawing is the warm-up
            try:
                await in_background(read_digit, digit_reader.sample_drawing())
            except Exception as exc:  # noqa: BLE001  (the first drawing shows any error)
                logging.getLogger("demystify.webapp").warning("digits warm-up failed: %s",
                                                              exc)
        await self._read_newest()

    async def _read_newest(self) -> None:
        """One reading at a time, always of the newest drawing: a stroke sends a drawing
        every 150 ms, and reading each one (all but the last soon stale) would delay the
        last one's result behind them (in the browser a GPU readback yields to the event
        loop, so they would all run at once)."""
        try:
            while self._pending is not None:
                data_url, drawn, self._pending = self._pending, self._drawn, None
                await self._predict(data_url, drawn)
        finally:
            self._reading = False

    async def _predict(self, data_url: str, drawn: int) -> None:
        """Decode and predict off the event loop (other sessions keep being served); shown
        unless a newer drawing (or a cleared canvas) came meanwhile."""
        try:
            x, probs, layers = await in_background(read_digit, data_url)
        except Exception as exc:  # noqa: BLE001  (shown to the user, never a crash)
            if drawn == self._drawn:
                show_error(self.error, f"Could not read the drawing: {exc}")
            return
        if drawn != self._drawn:
            return
        show_error(self.error, "")
        pred = int(np.argmax(probs))
        self.prediction = pred
        self.result.object = self._result_html(pred, float(probs[pred]))
        convs = [out[0] for name, out in layers if "ReLU" in name and out.ndim == 4][:2]
        bars = {"digit": CLASSES, "p": [float(p) for p in probs],
                "color": ["#1f6feb" if i == pred else "#8c959f" for i in range(10)]}
        maps = [{"image": [tile(m, cols)], "dw": [1], "dh": [1]}
                for m, cols in zip(convs, (6, 8))]

        def draw() -> None:
            if drawn != self._drawn:
                return
            self.bars_src.data = bars
            self.input_src.data = {"image": [x[::-1].astype(np.float64)], "dw": [1], "dh": [1]}
            for src, data in zip(self.map_srcs, maps):
                src.data = data

        bokeh_update(draw)

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout


def page() -> pn.viewable.Viewable:
    return shell("digits", "Digits", DigitsPage,
                 "LeNet-5, trained by this engine (99.36% on the MNIST test set), reads "
                 "your digit as you draw. The input is centred and scaled like MNIST.")


if __name__.startswith("bokeh"):
    page().servable(title="Demystify · Digits")

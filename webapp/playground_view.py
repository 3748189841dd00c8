"""The Playground's drawings: the network (every hidden unit a tile of what it computes
over the input plane, links coloured and sized by their weights), the decision surface
behind the data, and MNIST's first-layer weights as 28x28 images.

Only drawing happens here: the numbers come from a run's snapshots (engine.mlp.snapshot);
this module turns them into RGBA images and Bokeh data sources. Colours follow
TensorFlow Playground: blue for positive, orange for negative, white for zero.
"""

from __future__ import annotations

import html
from typing import Any

import numpy as np
from bokeh.models import ColumnDataSource, HoverTool, TapTool
from bokeh.palettes import Category10_10
from bokeh.plotting import figure

from webapp.playground_run import GRID, MAX_DRAWN_UNITS

BLUE = np.array([8, 119, 189], np.float64)
ORANGE = np.array([245, 147, 34], np.float64)
WHITE = np.array([255, 255, 255], np.float64)
DEAD, SATURATED, ALIVE = "#cf222e", "#bf8700", "#8c959f"
TILE_GRID = GRID // 2
LABEL_PX = 40  # two 9pt lines of a column label, in pixels


def _pack(rgb: np.ndarray, alpha: int = 255) -> np.ndarray:
    """(H, W, 3) floats 0..255 -> (H, W) uint32 RGBA for Bokeh's image_rgba."""
    out = np.empty(rgb.shape[:2] + (4,), np.uint8)
    out[..., :3] = np.clip(rgb, 0, 255).astype(np.uint8)
    out[..., 3] = alpha
    return out.view(np.uint32)[..., 0]


def diverging(v: np.ndarray) -> np.ndarray:
    """Values in [-1, 1] -> orange (-1), white (0), blue (+1), as uint32 RGBA."""
    v = np.clip(np.nan_to_num(v), -1, 1)[..., None]
    rgb = np.where(v >= 0, WHITE + v * (BLUE - WHITE), WHITE - v * (ORANGE - WHITE))
    return _pack(rgb)


def value_colours(y: np.ndarray, scale: float) -> list[str]:
    """Regression targets as hex colours on the diverging scale (|y| / scale)."""
    v = np.clip(np.asarray(y, np.float64) / scale, -1, 1)[:, None]
    rgb = np.where(v >= 0, WHITE + v * (BLUE - WHITE), WHITE - v * (ORANGE - WHITE))
    return ["#" + "".join(f"{int(c):02x}" for c in row) for row in rgb]


def class_colours(k: int) -> list[str]:
    if k == 2:
        return ["#f59322", "#0877bd"]
    return [Category10_10[i % 10] for i in range(k)]


def _hex_rgb(c: str) -> np.ndarray:
    return np.array([int(c[i:i + 2], 16) for i in (1, 3, 5)], np.float64)


def surface_rgba(output: np.ndarray, task: str, n: int, scale: float = 1.0) -> np.ndarray:
    """An (n, n) image of the output over the plane: two classes on the diverging scale
    (p of class 1), more classes as the likeliest class's colour faded by confidence,
    regression values on the diverging scale divided by `scale`."""
    if task != "classification":
        return diverging(output[:, 0].reshape(n, n) / max(scale, 1e-9))
    k = output.shape[1]
    if k == 2:
        return diverging((2 * output[:, 1] - 1).reshape(n, n))
    cols = np.stack([_hex_rgb(c) for c in class_colours(k)])
    best = output.argmax(axis=1)
    conf = ((output.max(axis=1) - 1 / k) / (1 - 1 / k))[:, None]
    rgb = WHITE + 0.8 * conf * (cols[best] - WHITE)
    return _pack(rgb.reshape(n, n, 3))


def tile_image(a: np.ndarray, n: int) -> np.ndarray:
    """A unit's activations over the (n x n) grid -> a (n/2 x n/2) tile, scaled by the
    largest |value| so every tile uses the full colour range (a dead unit stays white)."""
    img = a.reshape(n, n)[::2, ::2]
    peak = float(np.abs(img).max())
    return diverging(img / peak if peak > 1e-9 else img * 0)


def flat_tile(colour: str) -> np.ndarray:
    return _pack(np.broadcast_to(_hex_rgb(colour), (2, 2, 3)).copy(), 255)


def weight_mosaic(w: np.ndarray, side: int, cols: int = 8) -> np.ndarray:
    """First-layer weights (units, side*side) as one image: a tile per unit, each scaled
    by its own largest |weight| (blue positive, orange negative)."""
    units = len(w)
    rows = -(-units // cols)
    gap = 2
    img = np.zeros((rows * (side + gap), cols * (side + gap)), np.float64)
    mask = np.zeros(img.shape, bool)
    for i, unit in enumerate(w):
        r, c = divmod(i, cols)
        peak = float(np.abs(unit).max()) or 1.0
        tile = (unit.reshape(side, side) / peak)[::-1]  # image rows top-down -> Bokeh's y-up
        y0 = (rows - 1 - r) * (side + gap)
        x0 = c * (side + gap)
        img[y0:y0 + side, x0:x0 + side] = tile
        mask[y0:y0 + side, x0:x0 + side] = True
    rgba = diverging(img)
    rgba[~mask] = _pack(np.full((1, 1, 3), 246.0))[0, 0]
    return rgba


def _fig(title: str, width: int, height: int, **kw: Any) -> Any:
    fig = figure(title=title, width=width, height=height, toolbar_location=None, **kw)
    fig.axis.visible = False
    fig.grid.visible = False
    fig.outline_line_color = None
    return fig


class NetworkView:
    """Columns of tiles (inputs, each hidden layer, outputs) joined by weighted links."""

    COL, ROW = 2.4, 1.3  # spacing of columns and rows (a tile is 1 x 1)

    def __init__(self, title: str = "the network", max_width: int = 430) -> None:
        self.max_width = max_width
        self.tiles = ColumnDataSource({"image": [], "x": [], "y": []})
        self.boxes = ColumnDataSource({"x": [], "y": [], "name": [], "range": [], "state": [],
                                       "line": [], "layer": [], "unit": []})
        self.links = ColumnDataSource({"x0": [], "y0": [], "x1": [], "y1": [], "color": [],
                                       "width": []})
        self.labels = ColumnDataSource({"x": [], "y": [], "text": []})
        self.fig = _fig(title, 560, 360)
        self.fig.segment("x0", "y0", "x1", "y1", line_color="color", line_width="width",
                         line_alpha=0.75, source=self.links)
        self.fig.image_rgba(image="image", x="x", y="y", dw=1, dh=1, source=self.tiles)
        boxes = self.fig.rect("x", "y", width=1, height=1, source=self.boxes,
                              fill_alpha=0, line_color="line", line_width=2,
                              nonselection_fill_alpha=0, selection_fill_alpha=0.15,
                              selection_line_color="#111111", nonselection_line_alpha=1)
        self.fig.text("x", "y", text="text", source=self.labels, text_font_size="9pt",
                      text_align="center", text_baseline="bottom")
        self.fig.add_tools(HoverTool(renderers=[boxes], tooltips=[
            ("unit", "@name"), ("values on the training rows", "@range"),
            ("state", "@state")]), TapTool(renderers=[boxes]))
        self.info: dict[str, Any] | None = None
        self.positions: list[list[tuple[float, float]]] = []

    def setup(self, info: dict[str, Any]) -> None:
        """Place the columns for a new run (its inputs, hidden widths and outputs)."""
        self.info = info
        n_in = len(info["inputs"])
        cols = [min(n_in, MAX_DRAWN_UNITS) if n_in <= MAX_DRAWN_UNITS else 1]
        cols += [min(w, MAX_DRAWN_UNITS) for w in info["widths"]]
        cols.append(min(info["n_out"], MAX_DRAWN_UNITS))
        tallest = max(cols)
        self.positions = []
        for c, n in enumerate(cols):
            top = (tallest - n) * self.ROW / 2
            self.positions.append([(c * self.COL, top + (n - 1 - i) * self.ROW)
                                   for i in range(n)])
        texts = [f"{n_in}\ninputs" if n_in > MAX_DRAWN_UNITS else "inputs"]
        texts += [f"{w} {info.get('activation', '')}".strip()
                  + (f"\n({MAX_DRAWN_UNITS} drawn)" if w > MAX_DRAWN_UNITS else "")
                  for w in info["widths"]]
        texts.append("output")
        height = tallest * self.ROW
        self.labels.data = {"x": [c * self.COL + 0.5 for c in range(len(cols))],
                            "y": [height + 0.1] * len(cols), "text": texts}
        x0, x1 = -1.6, (len(cols) - 1) * self.COL + 1.3
        y0, y1 = -0.4, height + 1.4  # provisional: it sets the scale below
        # pixels per tile
        px = max(14.0, min(44.0, (self.max_width - 20) / (x1 - x0), 600 / (y1 - y0)))
        y1 = height + 0.1 + LABEL_PX / px  # room for two-line column labels at any scale
        self.fig.x_range.start, self.fig.x_range.end = x0, x1
        self.fig.y_range.start, self.fig.y_range.end = y0, y1
        self.fig.width = int((x1 - x0) * px) + 20
        self.fig.height = int((y1 - y0) * px) + 40
        self.links.data = {k: [] for k in self.links.data}
        self.boxes.selected.indices = []
        self._draw_inputs()

    def _draw_inputs(self) -> None:
        info = self.info
        assert info is not None
        names = info["inputs"]
        plane = info.get("plane_inputs")
        images, xs, ys, text_x, text_y, text = [], [], [], [], [], []
        for i, (x, y) in enumerate(self.positions[0]):
            if len(names) > MAX_DRAWN_UNITS:
                images.append(flat_tile("#d0d7de"))
            elif plane is not None:
                images.append(tile_image(plane[:, i], GRID))
            else:
                images.append(flat_tile("#eaeef2"))
            xs.append(x)
            ys.append(y)
            if len(names) <= MAX_DRAWN_UNITS:
                text_x.append(x - 0.75)
                text_y.append(y + 0.3)
                text.append(names[i])
        self._inputs = {"image": images, "x": xs, "y": ys}
        self.tiles.data = dict(self._inputs)
        lab = dict(self.labels.data)
        self.labels.data = {"x": list(lab["x"]) + text_x, "y": list(lab["y"]) + text_y,
                            "text": list(lab["text"]) + text}

    def update(self, snap: dict[str, Any]) -> None:
        """Redraw every tile, box and link from a run's snapshot."""
        info = self.info
        if info is None:
            return
        images = list(self._inputs["image"])
        xs, ys = list(self._inputs["x"]), list(self._inputs["y"])
        box: dict[str, list[Any]] = {k: [] for k in self.boxes.data}
        for li, layer in enumerate(snap["layers"]):
            for ui, (x, y) in enumerate(self.positions[li + 1]):
                dead, sat = bool(layer["dead"][ui]), bool(layer["saturated"][ui])
                if layer["grid"] is not None:
                    images.append(tile_image(layer["grid"][:, ui], GRID))
                else:
                    images.append(flat_tile("#ffd8d3" if dead else "#fff1c2" if sat
                                            else "#cfe6f7"))
                xs.append(x)
                ys.append(y)
                state = "dead (never active)" if dead else \
                    "saturated (stuck near ±1)" if sat else "active"
                box["x"].append(x + 0.5)
                box["y"].append(y + 0.5)
                box["name"].append(f"hidden layer {li + 1}, unit {ui + 1} ({layer['kind']})")
                box["range"].append(f"{layer['low'][ui]:.3g} … {layer['high'][ui]:.3g}")
                box["state"].append(state)
                box["line"].append(DEAD if dead else SATURATED if sat else ALIVE)
                box["layer"].append(li)
                box["unit"].append(ui)
        out = snap.get("output")
        for ui, (x, y) in enumerate(self.positions[-1]):
            if out is not None and info["task"] == "classification":
                images.append(diverging((2 * out[:, ui] - 1).reshape(GRID, GRID)[::2, ::2]))
            elif out is not None:
                images.append(tile_image(out[:, ui], GRID))
            else:
                images.append(flat_tile("#eaeef2"))
            xs.append(x)
            ys.append(y)
        self.tiles.data = {"image": images, "x": xs, "y": ys}
        selected = list(self.boxes.selected.indices)
        self.boxes.data = box
        self.boxes.selected.indices = [i for i in selected if i < len(box["x"])]
        self._draw_links(snap["weights"])

    def _draw_links(self, weights: list[np.ndarray]) -> None:
        link: dict[str, list[Any]] = {k: [] for k in self.links.data}
        skip_first = len(self.info["inputs"]) > MAX_DRAWN_UNITS if self.info else False
        for li, w in enumerate(weights):
            if li == 0 and skip_first:
                continue
            src, dst = self.positions[li], self.positions[li + 1]
            w = w[:len(dst), :len(src)]
            peak = float(np.abs(w).max()) or 1.0
            for j, (x1, y1) in enumerate(dst):
                for i, (x0, y0) in enumerate(src):
                    v = float(w[j, i])
                    link["x0"].append(x0 + 1)
                    link["y0"].append(y0 + 0.5)
                    link["x1"].append(x1)
                    link["y1"].append(y1 + 0.5)
                    link["color"].append("#0877bd" if v >= 0 else "#f59322")
                    link["width"].append(0.3 + 3.5 * abs(v) / peak)
        self.links.data = link

    def selected_unit(self) -> tuple[int, int] | None:
        idx = self.boxes.selected.indices
        if not idx or idx[0] >= len(self.boxes.data["layer"]):
            return None
        i = idx[0]
        return int(self.boxes.data["layer"][i]), int(self.boxes.data["unit"][i])


class SurfaceView:
    """The output (or one chosen unit) over the input plane, the data on top."""

    def __init__(self, title: str = "decision surface", size: int = 360) -> None:
        self.image = ColumnDataSource({"image": [np.zeros((2, 2), np.uint32)]})
        self.train = ColumnDataSource({"x": [], "y": [], "color": []})
        self.test = ColumnDataSource({"x": [], "y": [], "color": []})
        self.fig = _fig(title, size, size)
        self.fig.axis.visible = True
        self.glyph = self.fig.image_rgba(image="image", x=-6, y=-6, dw=12, dh=12,
                                         source=self.image)
        self.fig.scatter("x", "y", fill_color="color", line_color="white", size=6,
                         source=self.train)
        self.fig.scatter("x", "y", fill_color="color", line_color="black", size=6,
                         source=self.test)
        self.title = title
        self.task, self.scale = "classification", 1.0

    def setup(self, dataset: Any) -> None:
        """Show a data set's points (2-D data only) and clear the surface."""
        x0, x1, y0, y1 = dataset.extent
        self.glyph.glyph.update(x=x0, y=y0, dw=x1 - x0, dh=y1 - y0)
        self.fig.x_range.start, self.fig.x_range.end = x0, x1
        self.fig.y_range.start, self.fig.y_range.end = y0, y1
        self.task = dataset.task
        if dataset.task == "classification":
            cols = np.array(class_colours(max(dataset.n_classes, 2)))
            colour = lambda y: list(cols[np.asarray(y, np.int64)])  # noqa: E731
        else:
            self.scale = float(np.abs(dataset.y_train).max()) or 1.0
            colour = lambda y: value_colours(y, self.scale)  # noqa: E731
        self.train.data = {"x": dataset.x_train[:, 0], "y": dataset.x_train[:, 1],
                           "color": colour(dataset.y_train)}
        self.test.data = {"x": dataset.x_test[:, 0], "y": dataset.x_test[:, 1],
                          "color": colour(dataset.y_test)}
        self.image.data = {"image": [np.full((2, 2), _pack(WHITE[None, None])[0, 0])]}

    def show(self, output: np.ndarray | None, title: str | None = None) -> None:
        if output is not None:
            self.image.data = {"image": [surface_rgba(output, self.task, GRID, self.scale)]}
        if title is not None:
            self.fig.title.text = f"{title} (black rims: test rows)"

    def show_unit(self, activations: np.ndarray, title: str) -> None:
        peak = float(np.abs(activations).max()) or 1.0
        self.image.data = {"image": [diverging(activations.reshape(GRID, GRID) / peak)]}
        self.fig.title.text = title


class WeightsView:
    """The first layer's weights as images (MNIST: what each unit looks for)."""

    def __init__(self, side: int = 28, width: int = 560) -> None:
        self.side, self.width = side, width
        self.image = ColumnDataSource({"image": [np.zeros((2, 2), np.uint32)], "dw": [1],
                                       "dh": [1]})
        # Bokeh titles do not wrap: the narrow (contrast) view gets the short one.
        title = ("first layer: each unit's 784 weights as a 28×28 image (blue +, orange −)"
                 if width >= 520 else "first layer: 28×28 weights per unit (blue +, orange −)")
        self.fig = _fig(title, width, 300, match_aspect=True)
        self.fig.image_rgba(image="image", x=0, y=0, dw="dw", dh="dh", source=self.image)

    def show(self, w: np.ndarray) -> None:
        img = weight_mosaic(w, self.side)
        h, wd = img.shape
        self.fig.x_range.start, self.fig.x_range.end = 0, wd
        self.fig.y_range.start, self.fig.y_range.end = 0, h
        self.fig.height = int(40 + self.width * h / wd)
        self.image.data = {"image": [img], "dw": [wd], "dh": [h]}


def unit_detail(snap: dict[str, Any], layer: int, unit: int) -> str:
    """One sentence about a unit: its value range on the training rows and its state."""
    lay = snap["layers"][layer]
    lo, hi = float(lay["low"][unit]), float(lay["high"][unit])
    state = ("<b class='unit-dead'>dead</b>: it outputs 0 for every training row, so no "
             "gradient reaches its weights" if lay["dead"][unit] else
             "<b class='unit-saturated'>saturated</b>: stuck near its limits on most rows, "
             "where its gradient is almost 0" if lay["saturated"][unit] else "active")
    return (f"<span class='unit-detail'>hidden layer {layer + 1}, unit {unit + 1} "
            f"({html.escape(lay['kind'])}): values {lo:.3g} … {hi:.3g} on the training rows; "
            f"{state}.</span>")


class RunView:
    """A run drawn live: the network, the decision surface (2-D data) or the first
    layer's weights (images), the random forest beside it, the chosen unit's details."""

    def __init__(self, compact: bool = False) -> None:
        import panel as pn

        self.compact = compact
        self.network = NetworkView(max_width=380 if compact else 430)
        self.surface = SurfaceView("decision surface", 300)
        self.forest_surface = SurfaceView("random forest", 220)
        self.weights = WeightsView(width=380 if compact else 560)
        self.detail = pn.pane.HTML("", css_classes=["unit-info"], sizing_mode="stretch_width")
        self.forest_note = pn.pane.HTML("", css_classes=["forest-result"], width=290)
        self.snap: dict[str, Any] | None = None
        self.info: dict[str, Any] | None = None
        self.network.boxes.selected.on_change("indices", self._on_select)
        # visibility is toggled on Columns: Panel's Bokeh pane fails when its own changes
        self.surface_pane = pn.Column(pn.pane.Bokeh(self.surface.fig), visible=False)
        self.forest_plot = pn.Column(pn.pane.Bokeh(self.forest_surface.fig))
        self.forest_pane = pn.Column(self.forest_plot, self.forest_note, visible=False)
        self.weights_pane = pn.Column(pn.pane.Bokeh(self.weights.fig), visible=False)
        self.network_pane = pn.pane.Bokeh(self.network.fig)
        self.draws = 0  # snapshots drawn (the tests wait on this, never on time)

    def begin(self, info: dict[str, Any]) -> None:
        self.info, self.snap = info, None
        self.network.setup(info)
        ds = info["dataset"]
        self.surface_pane.visible = ds.plane
        if ds.plane:
            self.surface.setup(ds)
            self.surface.show(None, "decision surface" if ds.task == "classification"
                              else "predicted value")
        self.weights_pane.visible = bool(info["image_side"])
        self.forest_pane.visible = False
        self.forest_note.object = ""
        self.detail.object = ""

    def draw(self, snap: dict[str, Any]) -> None:
        self.snap = snap
        self.network.update(snap)
        if "images" in snap:
            self.weights.show(snap["images"])
        self._show_surface()
        self.draws += 1

    def _show_surface(self) -> None:
        snap = self.snap
        if snap is None or not self.surface_pane.visible:
            return
        chosen = self.network.selected_unit()
        grid = snap["layers"][chosen[0]]["grid"] if chosen else None
        if chosen and grid is not None:
            self.surface.show_unit(grid[:, chosen[1]], f"hidden layer {chosen[0] + 1}, unit "
                                   f"{chosen[1] + 1} (click elsewhere for the output)")
        else:
            self.surface.show(snap["output"], "decision surface"
                              if self.surface.task == "classification" else "predicted value")

    def _on_select(self, attr: str, old: Any, new: Any) -> None:
        chosen = self.network.selected_unit()
        if self.snap is not None and chosen is not None:
            self.detail.object = unit_detail(self.snap, *chosen)
        else:
            self.detail.object = ""
        self._show_surface()

    def forest(self, result: dict[str, Any], net_text: str) -> None:
        info = self.info
        if info is None:
            return
        ds = info["dataset"]
        metric = (f"{100 * result['metric']:.2f}% test accuracy" if ds.task == "classification"
                  else f"test MSE {result['metric']:.4f}")
        self.forest_note.object = (
            f"<b>Random forest</b> ({result['trees']} trees, NumPy): {metric} in "
            f"{result['train_s']:.2f} s<br><b>Network</b>: {html.escape(net_text)}")
        if ds.plane and result["surface"] is not None:
            self.forest_surface.setup(ds)
            self.forest_surface.show(result["surface"])
        self.forest_pane.visible = True
        self.forest_plot.visible = ds.plane

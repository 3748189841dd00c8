"""Art restoration: damage a painting (or your image), restore it with a factorization machine.

The FM (engine.fm.image) learns from the observed pixels how each pixel relates to its
neighbourhood; the page shows that live: the loss per epoch while it fits (with Cancel),
the features and learned weights of the pixel under the mouse, and damaged / FM /
biharmonic / original side by side with PSNR and SSIM. A run is a thread on a server and
a task that yields between epochs in the browser (Pyodide has no threads)."""

from __future__ import annotations

import asyncio
import html
import queue
import threading
from typing import Any

import numpy as np
import panel as pn
import param
from bokeh.events import MouseMove, Tap
from bokeh.models import ColumnDataSource, Range1d
from bokeh.plotting import figure

from webapp.canvas import DrawCanvas
from webapp.common import (
    ASSETS,
    CSS,
    IN_BROWSER,
    MAX_IMAGE_BYTES,
    available_devices,
    device_lock,
    error_alert,
    file_input,
    in_background,
    on_session_end,
    once,
    png_data_url,
    rgba,
    run_poll,
    shell,
    show_error,
    start_poller,
)

SIDE = 256
PAINTINGS = {"The Starry Night (van Gogh, 1889; public domain)": "starry_night.jpg"}
KINDS = ["brush strokes", "random pixel loss", "blocks"]
PANELS = (("damaged", "damaged"), ("restored", "FM restoration"), ("fm", "FM alone"),
          ("biharmonic", "biharmonic fill"), ("original", "original"))
FIG = 232
ART_CSS = """
table.scores {border-collapse: collapse; margin: 4px 0;}
table.scores td, table.scores th {padding: 2px 10px; text-align: right;
                                  border-bottom: 1px solid #d0d7de;}
table.scores td:first-child, table.scores th:first-child {text-align: left;}
.cells {display: inline-block; margin: 2px 10px 2px 0; vertical-align: top;}
.cells table {border-collapse: collapse;}
.cells td {width: 22px; height: 22px; font-size: 9px; text-align: center;
           border: 1px solid #fff;}
.cells .centre {outline: 2px solid #1f6feb;}
"""


@once
def default_painting() -> np.ndarray:
    from engine.data.images import decode_image

    return decode_image(ASSETS / PAINTINGS[next(iter(PAINTINGS))], "RGB")


def fit_image(data: bytes, name: str) -> np.ndarray:
    """An uploaded image scaled so its longer side is at most SIDE pixels."""
    from engine.data.images import decode_image
    from engine.data.transforms import resize

    rgb = decode_image(data, "RGB", max_pixels=25_000_000, name=name)
    h, w = rgb.shape[:2]
    if max(h, w) > SIDE:
        s = SIDE / max(h, w)
        rgb = resize(rgb, (max(8, round(h * s)), max(8, round(w * s))), "lanczos")
    if min(rgb.shape[:2]) < 8:
        raise ValueError(f"the image is {rgb.shape[1]}x{rgb.shape[0]}; need at least 8x8")
    return rgb


def make_mask(kind: str, shape: tuple[int, ...], fraction: float, seed: int) -> np.ndarray:
    from engine import inpaint

    if kind == "brush strokes":
        return inpaint.scratch_mask(shape, n=10, width=5, seed=seed)
    if kind == "blocks":
        return inpaint.block_mask(shape, n=5, size=max(8, min(shape[:2]) // 7), seed=seed)
    return inpaint.random_mask(shape, fraction, seed=seed)


def painted_mask(data_url: str, original: np.ndarray) -> np.ndarray:
    """Pixels the user painted over on the canvas (where it differs from the painting)."""
    from engine.data.images import decode_data_url, decode_image

    drawn = decode_image(decode_data_url(data_url), "RGB", size=original.shape[:2],
                         max_pixels=4_000_000)
    return (np.abs(drawn.astype(np.int16) - original.astype(np.int16)).max(axis=2) > 40)


class Run:
    """One restoration (engine.inpaint.restore_steps) reporting through a queue."""

    def __init__(self, image: np.ndarray, mask: np.ndarray, device: str, seed: int) -> None:
        self.image, self.mask, self.device, self.seed = image, mask, device, seed
        self.events: queue.Queue[tuple[str, Any]] = queue.Queue()
        self.cancelled = threading.Event()

    def start(self) -> None:
        if IN_BROWSER:
            asyncio.get_event_loop().create_task(self._main_async())
        else:
            threading.Thread(target=self._main, daemon=True, name="art-restore").start()

    def _steps(self) -> Any:
        from engine.inpaint import restore_steps

        try:
            with device_lock(self.device):
                yield from restore_steps(self.image, self.mask, seed=self.seed,
                                         device=self.device, cancel=self.cancelled.is_set)
        except Exception as exc:  # noqa: BLE001  (reported on the page)
            yield "error", f"{type(exc).__name__}: {exc}"

    def _main(self) -> None:
        for event in self._steps():
            self.events.put(event)

    async def _main_async(self) -> None:
        for event in self._steps():
            self.events.put(event)
            await asyncio.sleep(0)  # the page's poller and Cancel run in between


def cells_html(values: list[float], weights: list[float], radius: int, title: str) -> str:
    """Two (2R+1)^2 grids: the neighbourhood cells' values and the FM's weights."""
    n = 2 * radius + 1

    def grid(v: list[float], scale: float, label: str) -> str:
        rows = []
        for i in range(n):
            tds = []
            for j in range(n):
                x = v[i * n + j]
                t = max(-1.0, min(1.0, x / scale)) if scale > 0 else 0.0
                col = (f"rgba(207,34,46,{abs(t):.2f})" if t > 0 else
                       f"rgba(31,111,235,{abs(t):.2f})")
                cls = " class='centre'" if i == j == radius else ""
                tds.append(f"<td{cls} style='background:{col}' title='{x:+.3f}'>"
                           f"{x:+.2f}</td>")
            rows.append("<tr>" + "".join(tds) + "</tr>")
        return f"<div class='cells'><div>{label}</div><table>{''.join(rows)}</table></div>"

    sv = max(abs(x) for x in values) or 1.0
    sw = max(abs(x) for x in weights) or 1.0
    return (f"<div><b>{html.escape(title)}</b></div>" + grid(values, sv, "cell value x_j") +
            grid(weights, sw, "FM weight w_j + &lt;v_j, v_c&gt;"))


class ArtPage(pn.viewable.Viewer):
    """Damage, restore, compare: damaged / FM / FM alone / biharmonic / original."""

    kind = param.Selector(default="random pixel loss", objects=KINDS)
    fraction = param.Number(default=0.6, bounds=(0.05, 0.95))
    device = param.Selector(default="CPU", objects=["CPU", "GPU"])

    def __init__(self, **params: object) -> None:
        super().__init__(**params)
        self.error = error_alert()
        self.original = default_painting()
        self.mask = np.zeros(self.original.shape[:2], bool)
        self.user_mask = np.zeros_like(self.mask)
        self.seed = 0
        self.run: Run | None = None
        self.poller: Any = None
        self.result: Any = None
        self._damaged_psnr = float("nan")
        self.painting = pn.widgets.Select(label="Painting", options=list(PAINTINGS), width=320)
        self.upload = file_input("image/*", MAX_IMAGE_BYTES, self._on_file, self.error)
        self.kind_w = pn.widgets.RadioButtonGroup.from_param(self.param.kind,
                                                             color="light")
        self.fraction_w = pn.widgets.FloatSlider.from_param(self.param.fraction,
                                                            label="pixels lost", step=0.05,
                                                            width=250)
        gpu = any(d.get("name") == "gpu" for d in available_devices())
        self.device_w = pn.widgets.RadioButtonGroup.from_param(
            self.param.device, color="light", disabled=not gpu)
        self.damage_btn = pn.widgets.Button(label="Damage", color="warning", width=110,
                                            css_classes=["damage-button"])
        self.restore_btn = pn.widgets.Button(label="Restore", color="success", width=110,
                                             css_classes=["restore-button"])
        self.cancel_btn = pn.widgets.Button(label="Cancel", color="danger", width=100,
                                            disabled=True, css_classes=["cancel-button"])
        self.progress = pn.indicators.Progress(value=0, max=100, width=200, visible=False,
                                               css_classes=["restore-progress"])
        self.status = pn.pane.HTML("", css_classes=["restore-status"],
                                   sizing_mode="stretch_width")  # long notes wrap
        self.scores = pn.pane.HTML("", stylesheets=[CSS], css_classes=["psnr"])
        self.table = pn.pane.HTML("", stylesheets=[ART_CSS], css_classes=["scores"])
        self.explain = pn.pane.HTML("<p class='muted'>Restore, then move the mouse over an "
                                    "image to see the FM's features of that pixel.</p>",
                                    stylesheets=[CSS, ART_CSS], css_classes=["pixel-features"],
                                    min_width=420)
        self.canvas = DrawCanvas(size=SIDE, pixels=SIDE, pen=10, ink="#ff00ff", paper="",
                                 throttle_ms=400)
        self.srcs: dict[str, ColumnDataSource] = {}
        self.figs = {}
        xr, yr = Range1d(0, 1), Range1d(0, 1)
        for key, title in PANELS:
            fig = figure(title=title, width=FIG, height=FIG, x_range=xr, y_range=yr,
                         tools="pan,wheel_zoom,reset", toolbar_location="below")
            fig.axis.visible = False
            fig.grid.visible = False
            src = ColumnDataSource({"image": [np.zeros((1, 1), np.uint32)], "dw": [1],
                                    "dh": [1]})
            fig.image_rgba(image="image", x=0, y=0, dw="dw", dh="dh", source=src)
            fig.on_event(MouseMove, self._on_mouse)
            fig.on_event(Tap, self._on_mouse)
            self.srcs[key], self.figs[key] = src, fig
        self.loss_src = ColumnDataSource({"epoch": [], "loss": []})
        self.loss_fig = figure(title="FM training loss (mean squared error per epoch)",
                               width=420, height=230, tools="", toolbar_location=None,
                               x_axis_label="epoch", y_axis_label="loss")
        self.loss_fig.line("epoch", "loss", source=self.loss_src, line_width=2)
        self.loss_fig.scatter("epoch", "loss", source=self.loss_src, size=6)
        self.damage_btn.on_click(lambda _: self._damage(new_seed=True))
        self.restore_btn.on_click(self._restore)
        self.cancel_btn.on_click(self._cancel)
        self.painting.param.watch(lambda e: self._set_image(default_painting()), "value")
        self.canvas.param.watch(self._on_paint, "image")
        self.param.watch(lambda _: self._damage(new_seed=False), ["kind", "fraction"])
        self._layout = pn.Column(
            self.error,
            pn.Row(self.painting, pn.Column(
                pn.pane.Markdown(f"**or upload an image** (up to {MAX_IMAGE_BYTES // 2**20} "
                                 "MB; scaled to 256 px)", margin=(0, 5)), self.upload)),
            pn.Row(self.kind_w, self.fraction_w, self.device_w),
            pn.Row(self.damage_btn, self.restore_btn, self.cancel_btn, self.progress,
                   self.status),
            self.scores,
            pn.FlexBox(*(pn.pane.Bokeh(self.figs[k]) for k, _ in PANELS)),
            pn.FlexBox(self.table, pn.pane.Bokeh(self.loss_fig), self.explain),
            pn.pane.Markdown("**Paint your own damage** on the painting (magenta), then "
                             "press Restore."),
            self.canvas,
            sizing_mode="stretch_width",
        )
        self._set_image(self.original)
        on_session_end(self._cancel)  # a closed tab's run stops at its next epoch

    # -- images -------------------------------------------------------------------------
    def _show(self, key: str, img: np.ndarray | None) -> None:
        if img is None:
            data = {"image": [np.zeros((1, 1), np.uint32)], "dw": [1], "dh": [1]}
        else:
            h, w = img.shape[:2]
            data = {"image": [rgba(img)], "dw": [w / max(h, w)], "dh": [h / max(h, w)]}
        self.srcs[key].data = data

    def _set_image(self, img: np.ndarray) -> None:
        self.original = img
        h, w = img.shape[:2]
        self.user_mask = np.zeros((h, w), bool)
        self.canvas.pixels = max(h, w)
        self.canvas.backdrop = png_data_url(img)
        self.canvas.clear_count += 1
        for key, _ in PANELS:
            self._show(key, None)
        self._show("original", img)
        self._damage(new_seed=False)

    async def _on_file(self, data: bytes, name: str) -> None:
        try:  # decoded off the event loop: a large upload must not stall other sessions
            img = await in_background(fit_image, data, name)
        except Exception as exc:  # noqa: BLE001  (a friendly message, never a crash)
            show_error(self.error, f"Could not use {name}: {exc}")
            return
        show_error(self.error, "")
        self._set_image(img)

    def _on_paint(self, event: param.parameterized.Event) -> None:
        try:
            self.user_mask = (painted_mask(event.new, self.original) if event.new
                              else np.zeros_like(self.user_mask))
        except Exception as exc:  # noqa: BLE001
            show_error(self.error, f"Could not read the strokes: {exc}")
            return
        self._damage(new_seed=False)

    def _damage(self, new_seed: bool) -> None:
        from engine.inpaint import apply_mask, psnr

        if new_seed:
            self.seed += 1
        self.mask = make_mask(self.kind, self.original.shape, self.fraction, self.seed) \
            | self.user_mask
        damaged = apply_mask(self.original, self.mask, fill=0)
        self.result = None
        self._show("damaged", damaged)
        for key in ("restored", "fm", "biharmonic"):
            self._show(key, None)
        p = psnr(damaged / 255.0, self.original / 255.0)
        self.scores.object = (f"{100 * self.mask.mean():.0f}% of pixels lost · damaged PSNR "
                              f"<b class='psnr-damaged'>{p:.2f}</b> dB")
        self.table.object = ""
        self._damaged_psnr = p

    # -- the restoration run --------------------------------------------------------------
    def _restore(self, _: object = None) -> None:
        if self.run is not None:
            return
        show_error(self.error, "")
        device = "gpu" if self.device == "GPU" else "cpu"
        self.run = Run(self.original, self.mask.copy(), device, self.seed)
        self.loss_src.data = {"epoch": [], "loss": []}
        self.restore_btn.disabled, self.cancel_btn.disabled = True, False
        self.progress.value, self.progress.visible = 0, True
        self.status.object = "starting…"
        self.run.start()
        self.poller = start_poller(self._poll, 200)

    def _cancel(self, _: object = None) -> None:
        if self.run is not None:
            self.run.cancelled.set()
            self.status.object = "cancelling: restoring with the FM fitted so far…"

    def _poll(self) -> None:
        run_poll(self._drain, self.error, "Drawing the restoration")

    def _drain(self) -> None:
        run = self.run
        if run is None:
            return
        epochs, losses = [], []
        while True:
            try:
                kind, data = run.events.get_nowait()
            except queue.Empty:
                break
            if kind == "stage":
                self.status.object = html.escape(data) + "…"
            elif kind == "epoch":
                ep, total, loss = data
                epochs.append(ep)
                losses.append(loss)
                self.progress.value = int(100 * ep / total)
                self.status.object = f"fitting the FM: epoch {ep}/{total}, loss {loss:.5f}"
            elif kind in ("done", "error"):
                if epochs:
                    self.loss_src.stream({"epoch": epochs, "loss": losses})
                self._finish(kind, data)
                return
        if epochs:
            self.loss_src.stream({"epoch": epochs, "loss": losses})

    def _finish(self, kind: str, data: Any) -> None:
        if self.poller is not None:
            self.poller.stop()
            self.poller = None
        self.run = None
        self.restore_btn.disabled, self.cancel_btn.disabled = False, True
        self.progress.visible = False
        if kind == "error":
            show_error(self.error, f"Restoration failed: {data}")
            self.status.object = "failed"
            return
        self._show_result(data)

    def _show_result(self, r: Any) -> None:
        from engine.inpaint import psnr, ssim

        self.result = r
        ref = self.original / 255.0
        imgs = {"restored": r.result, "fm": r.fm, "biharmonic": r.biharmonic}
        for key, img in imgs.items():
            self._show(key, np.round(np.clip(img, 0, 1) * 255).astype(np.uint8))
        damaged = np.where(self.mask[..., None], 0.0, ref)
        rows = [("damaged", damaged), ("FM restoration", r.result), ("FM alone", r.fm),
                ("biharmonic fill", r.biharmonic)]
        if r.nonlocal_fill is not None:
            rows.insert(3, ("patch groups alone", r.nonlocal_fill))
        self.table.object = ("<table class='scores'><tr><th></th><th>PSNR dB</th><th>SSIM</th>"
                             "</tr>" + "".join(
                                 f"<tr><td>{name}</td><td>{psnr(img, ref):.2f}</td>"
                                 f"<td>{ssim(img, ref):.4f}</td></tr>" for name, img in rows)
                             + "</table>")
        p = psnr(r.result, ref)
        secs = sum(r.seconds.values())
        note = " (cancelled early)" if r.cancelled else ""
        self.scores.object = (f"{100 * self.mask.mean():.0f}% of pixels lost · damaged PSNR "
                              f"<b class='psnr-damaged'>{self._damaged_psnr:.2f}</b> dB → "
                              f"restored PSNR <b class='psnr-restored'>{p:.2f}</b> dB")
        how = ("the biharmonic fill corrected by a second FM learned on held-out pixels"
               if r.second is not None else f"FM weight in the blend {r.blend:.2f}")
        if r.nonlocal_fill is not None:
            how += (" from the first FM and the similar-patch groups' low-rank fill "
                    "(texture seen elsewhere in the image)")
        self.status.object = f"done in {secs:.1f} s{note}: {how}"

    # -- what the FM sees at one pixel ----------------------------------------------------
    def _on_mouse(self, event: Any) -> None:
        r = self.result
        if r is None or r.model is None or event.x is None or event.y is None:
            return
        h, w = self.original.shape[:2]
        side = max(h, w)
        x, y = int(event.x * side), int((1.0 - event.y) * side) - (side - h)
        if not (0 <= x < w and 0 <= y < h):
            return
        self.explain.object = self.pixel_html(y, x)

    def pixel_html(self, y: int, x: int) -> str:
        from engine.fm.image import explain_pixel

        r = self.result
        parts = explain_pixel(r.model, r.features, y, x)
        lost = bool(self.mask[y, x])
        head = (f"<p><b>pixel ({x}, {y})</b>: {'missing' if lost else 'observed'}; "
                f"cells of {r.features.cell}x{r.features.cell} pixels (the pixel itself never "
                "counts). The FM predicts base + bias + sum x_j × weight_j:</p><table "
                "class='scores'><tr><th>channel</th><th>base</th><th>bias</th><th>Σ x·w</th>"
                "<th>FM</th><th>true</th></tr>")
        body = "".join(
            f"<tr><td>{p['channel']}</td><td>{p['base']:.3f}</td><td>{p['bias']:+.3f}</td>"
            f"<td>{p['prediction'] - p['base'] - p['bias']:+.3f}</td>"
            f"<td>{p['prediction']:.3f}</td><td>{self.original[y, x, i] / 255:.3f}</td></tr>"
            for i, p in enumerate(parts))
        g = parts[1] if len(parts) > 1 else parts[0]
        grids = cells_html(g["values"], g["weights"], r.features.radius,
                           f"channel {g['channel']}: neighbourhood cells and weights")
        groups = ""
        if r.nonlocal_fill is not None:
            v = ", ".join(f"{c:.3f}" for c in r.nonlocal_fill[y, x])
            groups = ("<p>similar-patch groups' fill here (what the look-alike patches, "
                      f"matched nearby, show at this place): {v}</p>")
        return head + body + "</table>" + groups + grids

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout


def page() -> pn.viewable.Viewable:
    return shell("art", "Art restoration", ArtPage,
                 "Lose pixels, then restore them from the pixels that are left: a "
                 "factorization machine learns from the observed pixels how each pixel "
                 "relates to its neighbourhood and predicts the missing ones; a smoothness "
                 "prior (biharmonic fill) helps where it has nothing to go on. PSNR and SSIM "
                 "measure how close each image is to the original.")


if __name__.startswith("bokeh"):
    page().servable(title="Demystify · Art restoration")

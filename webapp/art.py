"""Art restoration: damage a painting (or your image), restore it with engine.inpaint."""

from __future__ import annotations

import numpy as np
import panel as pn
import param
from bokeh.models import ColumnDataSource, Range1d
from bokeh.plotting import figure

from webapp.canvas import DrawCanvas
from webapp.common import (
    ASSETS,
    CSS,
    MAX_IMAGE_BYTES,
    bokeh_update,
    decode_data_url,
    error_alert,
    file_input,
    in_background,
    once,
    png_data_url,
    rgba,
    shell,
    show_error,
)

SIDE = 256
PAINTINGS = {"The Starry Night (van Gogh, 1889; public domain)": "starry_night.jpg"}
KINDS = ["brush strokes", "random pixel loss", "blocks"]


@once
def default_painting() -> np.ndarray:
    from engine.data.images import decode_image

    return decode_image(ASSETS / PAINTINGS[next(iter(PAINTINGS))], "RGB")


def fit_image(data: bytes, name: str) -> np.ndarray:
    """An uploaded image scaled so its longer side is at most SIDE pixels."""
    from PIL import Image

    from engine.data.images import decode_image

    rgb = decode_image(data, "RGB", max_pixels=25_000_000, name=name)
    h, w = rgb.shape[:2]
    if max(h, w) > SIDE:
        s = SIDE / max(h, w)
        rgb = np.asarray(Image.fromarray(rgb).resize((max(8, round(w * s)), max(8, round(h * s))),
                                                     Image.Resampling.LANCZOS))
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
    from engine.data.images import decode_image

    drawn = decode_image(decode_data_url(data_url), "RGB", size=original.shape[:2],
                         max_pixels=4_000_000)
    return (np.abs(drawn.astype(np.int16) - original.astype(np.int16)).max(axis=2) > 40)


class ArtPage(pn.viewable.Viewer):
    """Damage, restore, compare: damaged / restored / original with PSNR."""

    kind = param.Selector(default="random pixel loss", objects=KINDS)
    fraction = param.Number(default=0.6, bounds=(0.05, 0.95))

    def __init__(self, **params: object) -> None:
        super().__init__(**params)
        self.error = error_alert()
        self.original = default_painting()
        self.mask = np.zeros(self.original.shape[:2], bool)
        self.user_mask = np.zeros_like(self.mask)
        self.seed = 0
        self.painting = pn.widgets.Select(name="Painting", options=list(PAINTINGS), width=320)
        self.upload = file_input("image/*", MAX_IMAGE_BYTES, self._on_file, self.error)
        self.kind_w = pn.widgets.RadioButtonGroup.from_param(self.param.kind,
                                                             button_type="light")
        self.fraction_w = pn.widgets.FloatSlider.from_param(self.param.fraction,
                                                            name="pixels lost", step=0.05,
                                                            width=250)
        self.damage_btn = pn.widgets.Button(name="Damage", button_type="warning", width=110,
                                            css_classes=["damage-button"])
        self.restore_btn = pn.widgets.Button(name="Restore", button_type="success", width=110,
                                             css_classes=["restore-button"])
        self.progress = pn.indicators.Progress(active=False, visible=False, width=200)
        self.scores = pn.pane.HTML("", stylesheets=[CSS], css_classes=["psnr"])
        self.canvas = DrawCanvas(size=SIDE, pixels=SIDE, pen=10, ink="#ff00ff", paper="",
                                 throttle_ms=400)
        self.srcs = {}
        figs = []
        xr, yr = Range1d(0, 1), Range1d(0, 1)
        for key, title in (("damaged", "damaged"), ("restored", "restored"),
                           ("original", "original")):
            fig = figure(title=title, width=SIDE, height=SIDE, x_range=xr, y_range=yr,
                         tools="pan,wheel_zoom,reset", toolbar_location="below")
            fig.axis.visible = False
            fig.grid.visible = False
            src = ColumnDataSource({"image": [np.zeros((1, 1), np.uint32)], "dw": [1],
                                    "dh": [1]})
            fig.image_rgba(image="image", x=0, y=0, dw="dw", dh="dh", source=src)
            self.srcs[key] = src
            figs.append(pn.pane.Bokeh(fig))
        self.damage_btn.on_click(lambda _: self._damage(new_seed=True))
        self.restore_btn.on_click(self._restore)
        self.painting.param.watch(lambda e: self._set_image(default_painting()), "value")
        self.canvas.param.watch(self._on_paint, "image")
        self.param.watch(lambda _: self._damage(new_seed=False), ["kind", "fraction"])
        self._layout = pn.Column(
            self.error,
            pn.Row(self.painting, pn.Column(
                pn.pane.Markdown(f"**or upload an image** (up to {MAX_IMAGE_BYTES // 2**20} "
                                 "MB; scaled to 256 px)", margin=(0, 5)), self.upload)),
            pn.Row(self.kind_w, self.fraction_w),
            pn.Row(self.damage_btn, self.restore_btn, self.progress, self.scores),
            pn.FlexBox(*figs),
            pn.pane.Markdown("**Paint your own damage** on the painting (magenta), then "
                             "press Restore."),
            self.canvas,
            sizing_mode="stretch_width",
        )
        self._set_image(self.original)

    def _set_image(self, img: np.ndarray) -> None:
        self.original = img
        h, w = img.shape[:2]
        self.user_mask = np.zeros((h, w), bool)
        self.canvas.pixels = max(h, w)
        self.canvas.backdrop = png_data_url(img)
        self.canvas.clear_count += 1
        for src in self.srcs.values():
            src.data = {"image": [np.zeros((1, 1), np.uint32)], "dw": [1], "dh": [1]}
        self.srcs["original"].data = {"image": [rgba(img)], "dw": [w / max(h, w)],
                                      "dh": [h / max(h, w)]}
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
        h, w = damaged.shape[:2]
        self.srcs["damaged"].data = {"image": [rgba(damaged)], "dw": [w / max(h, w)],
                                     "dh": [h / max(h, w)]}
        self.srcs["restored"].data = {"image": [np.zeros((1, 1), np.uint32)], "dw": [1],
                                      "dh": [1]}
        p = psnr(damaged / 255.0, self.original / 255.0)
        self.scores.object = (f"{100 * self.mask.mean():.0f}% of pixels lost · damaged PSNR "
                              f"<b class='psnr-damaged'>{p:.2f}</b> dB")
        self._damaged_psnr = p

    async def _restore(self, _: object) -> None:
        from engine.inpaint import inpaint, psnr

        self.restore_btn.disabled = True
        self.progress.visible = self.progress.active = True
        try:
            restored = await in_background(inpaint, self.original, self.mask)
        except Exception as exc:  # noqa: BLE001
            show_error(self.error, f"Restoration failed: {exc}")
            return
        finally:
            self.restore_btn.disabled = False
            self.progress.visible = self.progress.active = False
        h, w = restored.shape[:2]
        data = {"image": [rgba(restored)], "dw": [w / max(h, w)], "dh": [h / max(h, w)]}
        bokeh_update(lambda: setattr(self.srcs["restored"], "data", data))
        p = psnr(restored / 255.0, self.original / 255.0)
        self.scores.object = (f"{100 * self.mask.mean():.0f}% of pixels lost · damaged PSNR "
                              f"<b class='psnr-damaged'>{self._damaged_psnr:.2f}</b> dB → "
                              f"restored PSNR <b class='psnr-restored'>{p:.2f}</b> dB")

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout


def page() -> pn.viewable.Viewable:
    return shell("art", "Art restoration", ArtPage,
                 "Lose pixels, then restore them from the pixels that are left: a smoothness "
                 "prior (biharmonic fill) blended with a low-rank model of the image's own "
                 "8x8 patches. PSNR measures how close each image is to the original.")


if __name__.startswith("bokeh"):
    page().servable(title="Demystify · Art restoration")

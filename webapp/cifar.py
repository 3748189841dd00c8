"""CIFAR-10: classify a sample or an uploaded photo; top-5 classes and an occlusion map."""

from __future__ import annotations

import html
import os
from pathlib import Path

import numpy as np
import panel as pn
import param
from bokeh.models import ColumnDataSource, LinearColorMapper
from bokeh.plotting import figure

from webapp.common import (
    ASSETS,
    CSS,
    IN_BROWSER,
    MAX_IMAGE_BYTES,
    MODELS,
    bokeh_update,
    error_alert,
    file_input,
    in_background,
    once,
    once_per_device,
    rgba,
    session_task,
    shell,
    show_error,
)

SIDE = 32
PREVIEW = 256


def model_path() -> Path:
    """The shipped model; DEMYSTIFY_CIFAR10_MODEL points elsewhere (development only)."""
    return Path(os.environ.get("DEMYSTIFY_CIFAR10_MODEL", MODELS / "cifar10.onnx"))


@once
def samples() -> tuple[np.ndarray, np.ndarray, list[str]]:
    with np.load(ASSETS / "cifar10_samples.npz", allow_pickle=False) as z:
        return z["images"], z["labels"], [str(c) for c in z["classes"]]


@once_per_device
def classifier(device: str) -> object:
    import engine.onnx

    return engine.onnx.load(model_path(), device=device)


@once
def cpu_classifier() -> object:
    """The model on the CPU: what the browser classifies one image with (see classify)."""
    import engine.onnx

    return engine.onnx.load(model_path(), device="cpu")


def prepare_upload(data: bytes, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Uploaded bytes -> (preview uint8 RGB, 32x32 uint8 RGB of the centre square)."""
    from engine.data.images import decode_image
    from engine.data.transforms import center_square, fit_within

    rgb = decode_image(data, "RGB", max_pixels=25_000_000, name=name)
    return fit_within(rgb, PREVIEW), center_square(rgb, SIDE)


def classify(img32: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(class probabilities, occlusion saliency for the top class) of a 32x32 RGB image.

    In the browser on the CPU: one image and its 49 occluded copies are little work, and
    on WebGPU each readback is a round trip through a Promise (and the first of a shape
    records and checks a plan, three forwards): on SwiftShader the first result took 45 s
    there, against a few seconds with NumPy. A server computes where the demos do."""
    from engine import explain
    from engine.data.transforms import image_batch
    from webapp.common import device_lock

    x = image_batch(img32[None])[0]
    net, device = (cpu_classifier(), "cpu") if IN_BROWSER else (classifier(), None)
    with device_lock(device):
        probs = explain.probabilities(net, x[None])[0]
        sal = explain.occlusion_saliency(net, x, int(np.argmax(probs)), patch=8, stride=4)
    return probs, sal


class CifarPage(pn.viewable.Viewer):
    """Pick a test image or upload a photo; see the top-5 classes and where the net looked."""

    sample = param.Integer(default=0, bounds=(0, 299))

    def __init__(self, **params: object) -> None:
        super().__init__(**params)
        images, labels, classes = samples()
        self.classes = classes
        self.error = error_alert()
        options = {f"#{i}: {classes[labels[i]]}": i for i in range(0, 60)}
        self.picker = pn.widgets.Select(label="Test image", options=options, width=220)
        self.random = pn.widgets.Button(label="Random test image", width=160)
        self.upload = file_input("image/*", MAX_IMAGE_BYTES, self._on_file, self.error)
        self.status = pn.pane.HTML("", css_classes=["cifar-status"], stylesheets=[CSS])
        self.top5 = pn.pane.HTML("", css_classes=["top5"], stylesheets=[CSS], min_width=260)
        blank = [" " * i for i in range(1, 6)]
        self.bar_src = ColumnDataSource({"cls": blank, "p": [0.0] * 5})
        bars = figure(y_range=blank, x_range=(0, 1), height=200, width=340,
                      title="top-5 classes", toolbar_location=None)
        bars.hbar(y="cls", right="p", height=0.7, color="#1f6feb", source=self.bar_src)
        self.bars = bars
        self.preview_src = ColumnDataSource({"image": [np.zeros((1, 1), np.uint32)],
                                             "dw": [1], "dh": [1]})
        prev = figure(title="preview", width=PREVIEW, height=PREVIEW, x_range=(0, 1),
                      y_range=(0, 1), toolbar_location=None)
        prev.image_rgba(image="image", x=0, y=0, dw="dw", dh="dh", source=self.preview_src)
        self.sal_src = ColumnDataSource({"image": [np.zeros((1, 1))], "dw": [1], "dh": [1]})
        self.in_src = ColumnDataSource({"image": [np.zeros((1, 1), np.uint32)],
                                        "dw": [1], "dh": [1]})
        sal = figure(title="occlusion map (red = important)", width=PREVIEW,
                     height=PREVIEW, x_range=(0, 1), y_range=(0, 1), toolbar_location=None)
        sal.image_rgba(image="image", x=0, y=0, dw="dw", dh="dh", source=self.in_src)
        mapper = LinearColorMapper(palette=_heat_palette(), low=0, high=1)
        sal.image(image="image", x=0, y=0, dw="dw", dh="dh", source=self.sal_src,
                  color_mapper=mapper, alpha=0.55)
        for f in (prev, sal):
            f.axis.visible = False
            f.grid.visible = False
        self.picker.param.watch(lambda e: self._run_sample(e.new), "value")
        self.random.on_click(self._random)
        self._layout = pn.Column(
            self.error,
            pn.Row(self.picker, self.random, pn.Column(
                pn.pane.Markdown("**or upload a photo** (any size or format, up to "
                                 f"{MAX_IMAGE_BYTES // 2**20} MB)", margin=(0, 5)),
                self.upload)),
            self.status,
            pn.FlexBox(pn.pane.Bokeh(prev), pn.pane.Bokeh(sal),
                       pn.Column(self.top5, pn.pane.Bokeh(bars))),
            sizing_mode="stretch_width",
        )
        if not model_path().is_file():
            show_error(self.error, "The CIFAR-10 model is not shipped yet "
                       f"({model_path().name} is missing from webapp/models); train it with "
                       "`python build.py train cifar10`.")
        else:
            pn.state.onload(lambda: self._run_sample(0))

    def _random(self, _: object) -> None:
        i = int(np.random.default_rng().integers(0, len(samples()[0])))
        self._run_sample(i)

    def _run_sample(self, i: int) -> None:
        images, labels, classes = samples()
        img = images[int(i)]
        self._show(img, img, f"test image #{i}, labelled <b>{classes[labels[int(i)]]}</b>")

    async def _on_upload_async(self, data: bytes, name: str) -> None:
        try:
            preview, small = await in_background(prepare_upload, data, name)
        except Exception as exc:  # noqa: BLE001  (a friendly message, never a crash)
            show_error(self.error, f"Could not use {name or 'the file'}: {exc}")
            return
        await self._show_async(preview, small, f"your image <b>{html.escape(name)}</b> "
                               f"({preview.shape[1]}x{preview.shape[0]} preview, centre "
                               "square resized to 32x32)")

    def _on_file(self, data: bytes, name: str) -> object:
        return self._on_upload_async(data, name)  # file_input runs it as the session's task

    def _show(self, preview: np.ndarray, small: np.ndarray, what: str) -> None:
        session_task(self._show_async(preview, small, what))

    async def _show_async(self, preview: np.ndarray, small: np.ndarray, what: str) -> None:
        self.status.object = f"{what}: classifying…"
        try:
            probs, sal = await in_background(classify, small)
        except Exception as exc:  # noqa: BLE001
            show_error(self.error, f"Classification failed: {exc}")
            self.status.object = ""
            return
        show_error(self.error, "")
        top = np.argsort(-probs)[:5]
        names = [self.classes[i] for i in top]
        self.top5.object = "<ol class='top5-list'>" + "".join(
            f"<li><b>{html.escape(n)}</b> {100 * probs[i]:.1f}%</li>"
            for n, i in zip(names, top)) + "</ol>"
        self.status.object = what  # last: once it says done, the top-5 is there
        s = np.clip(sal, 0, None)
        s = s / s.max() if s.max() > 0 else s

        def draw() -> None:
            self.bars.y_range.factors = names[::-1]
            self.bar_src.data = {"cls": names[::-1],
                                 "p": [float(probs[i]) for i in top[::-1]]}
            self.preview_src.data = {"image": [rgba(preview)], "dw": [1], "dh": [1]}
            self.in_src.data = {"image": [rgba(small)], "dw": [1], "dh": [1]}
            self.sal_src.data = {"image": [s[::-1]], "dw": [1], "dh": [1]}

        bokeh_update(draw)

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout


def _heat_palette() -> list[str]:
    """Transparent-looking blue for 'unimportant' to red for 'important'."""
    from bokeh.palettes import RdYlBu11

    return list(RdYlBu11)[::-1]


def page() -> pn.viewable.Viewable:
    return shell("cifar10", "CIFAR-10", CifarPage,
                 "A small ResNet trained by this engine on CIFAR-10 (32x32 photos, ten "
                 "classes). The map shows how much the top class's probability drops when "
                 "each part of the image is hidden.")


if __name__.startswith("bokeh"):
    page().servable(title="Demystify · CIFAR-10")

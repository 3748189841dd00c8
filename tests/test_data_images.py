"""Decoding images (real test images, bytes, bad input) and the generic ImageFolder."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from PIL import Image

from engine.data import ImageError, ImageFolder, load_image
from engine.data import image_folder as image_folder_module
from tests.data_helpers import make_tar, make_zip, real_data


def _encode(img: np.ndarray, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format=fmt, **kw)
    return buf.getvalue()


@pytest.mark.data
def test_real_test_images():
    folder = real_data("images")
    for name in ("starry_night.jpg", "baboon.jpg", "fruits.jpg"):
        x = load_image(folder / name)
        assert x.dtype == np.float32 and x.ndim == 3 and x.shape[2] == 3
        assert 0.0 <= x.min() and x.max() <= 1.0 and x.std() > 0.05
        g = load_image((folder / name).read_bytes(), mode="L")
        assert g.shape == x.shape[:2] + (1,)
        lum = x @ np.array([0.299, 0.587, 0.114], np.float32)
        assert np.abs(g[:, :, 0] - lum).mean() < 0.01


def test_sources_modes_and_alpha(tmp_path):
    img = np.zeros((4, 6, 3), np.uint8)
    img[1, 2] = (255, 128, 0)
    blob = _encode(img)
    (tmp_path / "a.png").write_bytes(blob)
    for src in (tmp_path / "a.png", str(tmp_path / "a.png"), blob, io.BytesIO(blob)):
        x = load_image(src)
        assert x.shape == (4, 6, 3) and x.dtype == np.float32
        np.testing.assert_allclose(x[1, 2], [1.0, 128 / 255, 0.0], atol=1e-6)
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[0, 0] = (0, 0, 0, 255)  # opaque black ink, the rest transparent
    x = load_image(_encode(rgba), mode="L")
    assert x[0, 0, 0] == 0.0 and (x.ravel()[1:] == 1.0).all()  # composited over white


def test_bad_inputs_are_clear_errors(tmp_path):
    (tmp_path / "notes.jpg").write_text("not an image at all")
    with pytest.raises(ImageError, match="notes.jpg: not an image"):
        load_image(tmp_path / "notes.jpg")
    jpeg = _encode(np.full((64, 64, 3), 200, np.uint8), "JPEG")
    noisy = _encode(np.random.default_rng(0).integers(0, 256, (128, 128, 3), np.uint8), "JPEG")
    for cut in (jpeg[: len(jpeg) // 2], noisy[: len(noisy) * 2 // 3]):  # header / pixel data
        with pytest.raises(ImageError, match="corrupt or truncated"):
            load_image(cut)
    with pytest.raises(ImageError, match=r"64x64 = 4096 pixels is over the limit of 1000"):
        load_image(jpeg, max_pixels=1000)
    with pytest.raises(FileNotFoundError):
        load_image(tmp_path / "missing.png")
    with pytest.raises(ValueError, match="mode"):
        load_image(jpeg, mode="CMYK")


def _dataset(rng, sizes=((8, 8),) * 3):
    members = {}
    for split, n in (("train", 3), ("test", 2)):
        for cls in ("cat", "dog") if split == "test" else ("ant", "cat", "dog"):
            for i in range(n):
                h, w = sizes[i % len(sizes)]
                members[f"{split}/{cls}/{i}.png"] = _encode(
                    rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
    members["train/README.txt"] = b"ignored"
    members["train/cat/.hidden.png"] = b"ignored"
    return members


def _write(root, members):
    for name, blob in members.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(blob)
    return root


@pytest.mark.parametrize("form", ["folder", "tar.gz", "zip"])
def test_image_folder(form, tmp_path, monkeypatch):
    members = _dataset(np.random.default_rng(1))
    if form == "folder":
        root = _write(tmp_path / "ds", members)
    else:
        maker = make_tar if form == "tar.gz" else make_zip
        root = maker(tmp_path / f"ds.{form}", {f"mydata/{k}": v for k, v in members.items()})
    ds = ImageFolder(root, cache_dir=tmp_path / "cache", progress=False)
    assert ds.classes == ["ant", "cat", "dog"] and ds.splits == ["test", "train"]
    x, y = ds.load("train")
    assert x.shape == (9, 8, 8, 3) and x.dtype == np.uint8
    assert y.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    xt, yt = ds.load("test")
    assert yt.tolist() == [1, 1, 2, 2]  # labels shared across splits
    expected = np.asarray(Image.open(io.BytesIO(members["test/dog/1.png"])))
    np.testing.assert_array_equal(xt[3], expected)
    with pytest.raises(ValueError, match=r"no split 'val'.*\['test', 'train'\]"):
        ds.load("val")

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again instead of using the cache")

    monkeypatch.setattr(image_folder_module, "decode_image", no_decoding)
    again = ImageFolder(root, cache_dir=tmp_path / "cache", progress=False)
    np.testing.assert_array_equal(again.load("test")[0], xt)
    assert again.classes == ["ant", "cat", "dog"]


def test_image_folder_sizes_and_limits(tmp_path):
    root = _write(tmp_path / "ds", _dataset(np.random.default_rng(2), ((8, 8), (6, 10))))
    with pytest.raises(ImageError, match=r"images differ in size.*pass size=\(H, W\)"):
        ImageFolder(root, cache=False, progress=False).load("train")
    x, _ = ImageFolder(root, size=(5, 7), cache=False, progress=False).load("train")
    assert x.shape == (9, 5, 7, 3)
    g, _ = ImageFolder(root, size=4, mode="L", cache=False, progress=False).load("test")
    assert g.shape == (4, 4, 4)
    with pytest.raises(ImageError, match="over the limit of 50"):
        ImageFolder(root, size=4, max_pixels=50, cache=False, progress=False).load("train")
    with pytest.raises(FileNotFoundError, match="no images"):
        ImageFolder(_write(tmp_path / "empty", {"a/b.txt": b"x"}), progress=False).load()
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ImageFolder(tmp_path / "nowhere")


# -- formats and bit depths (hardening) -----------------------------------------------------

def _png48(rgb16: np.ndarray) -> bytes:
    """A 16-bit-per-channel RGB PNG, written by hand (Pillow cannot write one)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    h, w, _ = rgb16.shape
    rows = b"".join(b"\x00" + rgb16[y].astype(">u2").tobytes() for y in range(h))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def test_high_bit_depths_are_scaled_not_clipped():
    from engine.data.images import decode_image

    ramp16 = np.linspace(0, 65535, 256).astype(np.uint16)[None].repeat(4, 0)
    want = np.rint(ramp16 / 257).astype(np.uint8)
    for fmt in ("PNG", "TIFF"):  # Pillow opens both as mode I;16
        got = decode_image(_encode(ramp16, fmt), "L")
        np.testing.assert_array_equal(got, want)  # Pillow's convert gives 0, 255, 255...
    np.testing.assert_array_equal(decode_image(_encode(ramp16.astype(np.int32), "TIFF"), "L"),
                                  want)  # 32-bit integers holding 16-bit values
    ramp01 = np.linspace(0, 1, 256, dtype=np.float32)[None].repeat(4, 0)
    got = decode_image(_encode(ramp01, "TIFF"), "RGB")  # mode F: Pillow's gives all black
    np.testing.assert_array_equal(got[..., 0], np.rint(ramp01 * 255).astype(np.uint8))
    assert (got[..., 0] == got[..., 2]).all()
    wide = np.linspace(-5, 5, 11, dtype=np.float32)[None]  # not 0..1: its own min..max
    np.testing.assert_array_equal(decode_image(_encode(wide, "TIFF"), "L")[0],
                                  np.rint(np.linspace(0, 255, 11)).astype(np.uint8))
    rgb16 = np.zeros((2, 3, 3), np.uint16)
    rgb16[0, :, 0] = [0, 32896, 65535]  # 48-bit RGB PNG
    assert decode_image(_png48(rgb16), "RGB")[0, :, 0].tolist() == [0, 128, 255]


def test_only_the_allowed_formats_are_opened(tmp_path, monkeypatch):
    from PIL import EpsImagePlugin

    from engine.data.images import IMAGE_FORMATS, decode_image

    assert IMAGE_FORMATS == ("PNG", "JPEG", "GIF", "BMP", "WEBP", "TIFF")
    img = np.random.default_rng(0).integers(0, 256, (8, 8, 3), np.uint8)
    for fmt in IMAGE_FORMATS:
        extra = {"lossless": True} if fmt == "WEBP" else {}
        got = decode_image(_encode(img, fmt, **extra), "RGB")
        assert got.shape == (8, 8, 3)
        if fmt in ("PNG", "BMP", "TIFF", "WEBP"):
            np.testing.assert_array_equal(got, img)

    def never(*_args, **_kw):
        raise AssertionError("the EPS plugin was asked to read an upload (Ghostscript)")

    monkeypatch.setattr(EpsImagePlugin.EpsImageFile, "_open", never)
    monkeypatch.setattr(EpsImagePlugin, "Ghostscript", never)
    eps = (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 8 8\n"
           b"newpath 0 0 moveto 8 8 lineto stroke showpage\n%%EOF\n")
    pcx = _encode(img, "PCX")  # a format Pillow reads, but not one we accept
    for data, label in ((eps, "drawing.eps"), (pcx, "old.pcx")):
        with pytest.raises(ImageError, match=f"{label}: not an image in a format this "
                           r"reader accepts \(PNG, JPEG, GIF, BMP, WebP, TIFF\)"):
            decode_image(data, "RGB", name=label)


def test_data_urls_from_a_canvas_decode_and_others_are_refused():
    from engine.data.images import decode_data_url, decode_image

    buf = io.BytesIO()
    Image.fromarray(np.full((4, 5), 200, np.uint8), "L").save(buf, "PNG")
    url = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
    assert decode_data_url(url) == buf.getvalue()
    assert decode_image(decode_data_url(url), "L").tolist() == [[200] * 5] * 4
    for bad, words in [("data:text/html;base64,PGI+", "not an image data URL"),
                       ("data:image/png,rawbytes", "not an image data URL"),
                       ("https://example.com/x.png", "toDataURL"),
                       ("data:image/png;base64,!!notbase64", "invalid base64")]:
        with pytest.raises(ImageError, match=words):
            decode_data_url(bad)

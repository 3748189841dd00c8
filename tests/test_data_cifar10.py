"""CIFAR-10 from the official binary and python tarballs (built small here), their
extracted folders, image folders and archives, downloads, and the real JPEG copy."""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import time

import numpy as np
import pytest

from engine.data import cifar10, load_cifar10
from engine.data.locate import ChecksumError, DataUnavailableError, RemoteFile
from tests.data_helpers import (
    CIFAR_NAMES,
    cifar_binary_members,
    cifar_python_members,
    fake_cifar,
    make_tar,
    make_zip,
    real_data,
)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DEMYSTIFY_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def data():
    return fake_cifar(np.random.default_rng(0))


def _expected(data, split):
    parts = data[split]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def _png(img: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return buf.getvalue()


def _image_folder_members(data, prefix=""):
    members = {}
    for split in ("train", "test"):
        x, y = _expected(data, split)
        for i, (img, label) in enumerate(zip(x, y)):
            members[f"{prefix}{split}/{CIFAR_NAMES[label]}/{i:05d}.png"] = _png(img)
    for c in CIFAR_NAMES:  # a black filler per class: every class in every split
        members.setdefault(f"{prefix}test/{c}/99999.png", _png(np.zeros((32, 32, 3), np.uint8)))
        members.setdefault(f"{prefix}train/{c}/99999.png", _png(np.zeros((32, 32, 3), np.uint8)))
    return members


def _write_folder(root, members):
    for name, blob in members.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(blob)
    return root


@pytest.mark.parametrize("form", ["binary-tar", "python-tar", "binary-dir", "python-dir",
                                  "archive-as-root"])
def test_official_forms(form, data, tmp_path, cache):
    root = tmp_path / "cifar"
    root.mkdir()
    if form == "binary-tar":
        make_tar(root / "cifar-10-binary.tar.gz", cifar_binary_members(data))
    elif form == "python-tar":
        make_tar(root / "cifar-10-python.tar.gz", cifar_python_members(data))
    elif form == "binary-dir":
        _write_folder(root, cifar_binary_members(data))
    elif form == "python-dir":
        _write_folder(root, cifar_python_members(data))
    else:
        root = make_tar(tmp_path / "cifar-10-python.tar.gz", cifar_python_members(data))
    for split in ("train", "test"):
        x, y, classes = load_cifar10(root, split, progress=False)
        ex, ey = _expected(data, split)
        assert x.dtype == np.uint8 and x.shape == ex.shape and x.flags.c_contiguous
        assert y.dtype == np.int64
        np.testing.assert_array_equal(x, ex)
        np.testing.assert_array_equal(y, ey)
        assert classes == CIFAR_NAMES == cifar10.CIFAR10_CLASSES
    assert not cache.exists()  # official forms need no decode cache


@pytest.mark.parametrize("form", ["folder", "tar.gz", "zip"])
def test_image_folder_forms(form, data, tmp_path, cache):
    root = tmp_path / "cifar"
    if form == "folder":
        _write_folder(root, _image_folder_members(data))
    else:
        root.mkdir()
        maker = make_tar if form == "tar.gz" else make_zip
        maker(root / f"cifar10-jpeg.{form}", _image_folder_members(data, "cifar10-jpeg/"))
    for split in ("train", "test"):
        ex, ey = _expected(data, split)
        order = np.argsort(ey, kind="stable")  # image folders are ordered by class, name
        for _ in range(2):  # the second load comes from the .npz cache
            x, y, classes = load_cifar10(root, split, progress=False)
            real = x.reshape(len(x), -1).any(axis=1)  # drop the all-black filler images
            np.testing.assert_array_equal(x[real], ex[order])
            np.testing.assert_array_equal(y[real], ey[order])
            assert classes == CIFAR_NAMES
    assert list(cache.rglob("*.npz"))


def test_malicious_python_pickle_is_refused(data, tmp_path, cache):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    evil = pickle.dumps({b"data": Evil()}, protocol=2)
    root = tmp_path / "cifar"
    root.mkdir()
    make_tar(root / "cifar-10-python.tar.gz", cifar_python_members(data, evil=evil))
    assert len(load_cifar10(root, "train", progress=False)[0]) == 15  # clean batches load
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        load_cifar10(root, "test", progress=False)
    assert not marker.exists()


def test_corrupt_and_foreign_data(data, tmp_path, cache):
    members = cifar_binary_members(data)
    members["cifar-10-batches-bin/test_batch.bin"] += b"\x00" * 5
    root = tmp_path / "a"
    root.mkdir()
    make_tar(root / "cifar-10-binary.tar.gz", members)
    with pytest.raises(ValueError, match="truncated or corrupt"):
        load_cifar10(root, "test")
    other = {"train/cats/0.png": _png(np.zeros((32, 32, 3), np.uint8)),
             "test/dogs/0.png": _png(np.zeros((32, 32, 3), np.uint8))}
    with pytest.raises(ValueError, match="not CIFAR-10's"):
        load_cifar10(_write_folder(tmp_path / "b", other), "test", progress=False)
    with pytest.raises(ValueError, match="split"):
        load_cifar10(root, "validation")


def test_missing_data_says_what_to_put_where(tmp_path, cache, monkeypatch):
    with pytest.raises(DataUnavailableError, match=r"cifar-10-binary\.tar\.gz.*cifar10-jpeg"):
        load_cifar10(tmp_path / "empty")
    monkeypatch.delenv("DEMYSTIFY_DATA", raising=False)
    with pytest.raises(DataUnavailableError, match=rf"{cache / 'cifar10'}.*DEMYSTIFY_DATA"):
        load_cifar10()


def test_download_official_binary(local_server, data, tmp_path, cache, monkeypatch):
    served, url = local_server
    archive = make_tar(served / "cifar-10-binary.tar.gz", cifar_binary_members(data))
    md5 = hashlib.md5(archive.read_bytes()).hexdigest()
    monkeypatch.setattr(cifar10.sources, "CIFAR10_BINARY",
                        RemoteFile(archive.name, (url + archive.name,), md5=md5))
    x, y, _ = load_cifar10(tmp_path / "dl", "test", progress=False)
    np.testing.assert_array_equal(x, _expected(data, "test")[0])
    assert (tmp_path / "dl" / archive.name).is_file()
    monkeypatch.setattr(cifar10.sources, "CIFAR10_BINARY",
                        RemoteFile(archive.name, (url + archive.name,), md5="0" * 32))
    with pytest.raises(ChecksumError, match="md5"):
        load_cifar10(tmp_path / "dl2", "test", progress=False)
    assert not (tmp_path / "dl2" / archive.name).exists()


@pytest.mark.data
@pytest.mark.slow
def test_real_jpeg_copy(monkeypatch):
    """The shared JPEG copy, read in place from its .tar.gz. The first run decodes 60k
    JPEGs (~10-15 s on one core) into the per-user cache; later runs read the .npz."""
    folder = real_data("cifar10", "cifar10-jpeg.tar.gz").parent
    monkeypatch.setenv("DEMYSTIFY_DATA", str(folder.parent))
    t0 = time.perf_counter()
    x, y, classes = load_cifar10(split="train", progress=False)
    t1 = time.perf_counter()
    xt, yt, _ = load_cifar10(split="test", progress=False)
    t2 = time.perf_counter()
    print(f"CIFAR-10 train load {t1 - t0:.1f} s, test load {t2 - t1:.1f} s")
    assert classes == cifar10.CIFAR10_CLASSES
    assert x.shape == (50000, 32, 32, 3) and x.dtype == np.uint8
    assert xt.shape == (10000, 32, 32, 3) and yt.dtype == np.int64
    assert np.bincount(y).tolist() == [5000] * 10
    assert np.bincount(yt).tolist() == [1000] * 10
    sample = x[::25].astype(np.float32)
    assert 100 < sample.mean() < 140 and sample.std() > 50  # real photos, not blank
    assert len(np.unique(xt[:100].reshape(100, -1), axis=0)) == 100

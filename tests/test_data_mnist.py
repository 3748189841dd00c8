"""The MNIST IDX reader on the real files, and its errors."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from engine.data import load_mnist
from tests.data_helpers import real_data


def _mnist_dir() -> Path:
    """$DEMYSTIFY_DATA/mnist, skipping (or failing under CI) when it is absent."""
    return real_data("mnist", "train-images-idx3-ubyte.gz").parent


@pytest.mark.data
def test_real_files():
    root = _mnist_dir()
    x, y = load_mnist(root, "train")
    assert x.shape == (60000, 28, 28) and x.dtype == np.uint8
    assert y.shape == (60000,) and y.dtype == np.int64
    assert y[0] == 5 and list(y[:5]) == [5, 0, 4, 1, 9]
    assert y.min() == 0 and y.max() == 9 and len(np.unique(y)) == 10
    assert x.max() == 255 and x.min() == 0
    assert x.flags.writeable
    xt, yt = load_mnist(root, "test")
    assert xt.shape == (10000, 28, 28) and yt.shape == (10000,)
    assert yt[0] == 7 and set(np.unique(yt)) == set(range(10))


@pytest.mark.data
def test_default_root_from_environment(monkeypatch):
    root = _mnist_dir()
    monkeypatch.setenv("DEMYSTIFY_DATA", str(root.parent))
    _, y = load_mnist(split="test")
    assert len(y) == 10000


def test_missing_folder_names_files_and_variable(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte.gz"):
        load_mnist(tmp_path / "nowhere")
    monkeypatch.setenv("DEMYSTIFY_DATA", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="DEMYSTIFY_DATA"):
        load_mnist()
    monkeypatch.delenv("DEMYSTIFY_DATA")
    monkeypatch.setenv("DEMYSTIFY_CACHE", str(tmp_path / "cache"))  # no real cache either
    with pytest.raises(FileNotFoundError, match="DEMYSTIFY_DATA"):
        load_mnist()
    (tmp_path / "mnist").mkdir()
    with pytest.raises(FileNotFoundError, match="t10k-images-idx3-ubyte.gz"):
        load_mnist(tmp_path / "mnist", "test")
    with pytest.raises(ValueError, match="split"):
        load_mnist(tmp_path / "mnist", "validation")


def _idx(magic: int, dims: tuple[int, ...], payload: bytes) -> bytes:
    return (magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in dims)
            + payload)


def test_small_synthetic_files_and_validation(tmp_path):
    imgs = np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28)
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(_idx(2051, (2, 28, 28), imgs.tobytes()))
    with gzip.open(tmp_path / "t10k-labels-idx1-ubyte.gz", "wb") as f:
        f.write(_idx(2049, (2,), bytes([3, 9])))
    x, y = load_mnist(tmp_path, "test")  # plain and gzipped files both work
    np.testing.assert_array_equal(x, imgs)
    assert y.tolist() == [3, 9]

    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(_idx(2049, (2, 28, 28), imgs.tobytes()))
    with pytest.raises(ValueError, match="magic number 2049"):
        load_mnist(tmp_path, "test")
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(
        _idx(2051, (2, 28, 28), imgs.tobytes()[:-10]))
    with pytest.raises(ValueError, match="truncated"):
        load_mnist(tmp_path, "test")
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(_idx(2051, (2, 28, 28), imgs.tobytes()))
    with gzip.open(tmp_path / "t10k-labels-idx1-ubyte.gz", "wb") as f:
        f.write(_idx(2049, (2,), bytes([3, 12])))
    with pytest.raises(ValueError, match="out of range"):
        load_mnist(tmp_path, "test")
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(b"\x1f\x8bnot really gzip")
    with pytest.raises(ValueError, match="corrupt"):
        load_mnist(tmp_path, "test")

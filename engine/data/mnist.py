"""MNIST from the official IDX files (gzipped or not), validated by magic number and dims.

Layout expected under `root` (default `$DEMYSTIFY_DATA/mnist`, else the per-user cache;
see `engine.data.locate`): train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz,
t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz (the uncompressed names work too).
Missing files are downloaded there from public mirrors (MD5-checked, `engine.data.sources`)
unless `download=False` or DEMYSTIFY_OFFLINE is set.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

from . import sources
from .locate import DataUnavailableError, data_env_root, dataset_dir, fetch, unavailable

_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_IMAGES_MAGIC, _LABELS_MAGIC = 2051, 2049  # IDX: 0x0000, type 0x08 (ubyte), ndim 3 / 1


def data_root() -> Path | None:
    """The folder named by `DEMYSTIFY_DATA`, or None when the variable is unset."""
    return data_env_root()


def _find(root: Path, stem: str) -> Path:
    for name in (stem + ".gz", stem):
        if (root / name).is_file():
            return root / name
    raise FileNotFoundError(
        f"MNIST file {stem}.gz not found in {root}. Expected the official IDX files "
        f"{', '.join(s + '.gz' for pair in _FILES.values() for s in pair)} there; set "
        "DEMYSTIFY_DATA to the folder that contains mnist/, or pass root=")


def _read_idx(path: Path, magic: int, ndim: int) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as exc:
        raise ValueError(f"{path}: cannot read ({exc}); the file is corrupt or truncated, "
                         "download it again") from None
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path}: {len(raw)} bytes is too short for an IDX header")
    got = int.from_bytes(raw[:4], "big")
    if got != magic:
        raise ValueError(f"{path}: magic number {got} is not {magic}; this is not an MNIST "
                         f"IDX file with {ndim} dimension(s) of unsigned bytes")
    dims = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    size = int(np.prod(dims))
    if len(raw) - header != size:
        raise ValueError(f"{path}: header says {dims} = {size} bytes of data, file has "
                         f"{len(raw) - header}; the file is truncated or corrupt")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def load_mnist(root: str | os.PathLike | None = None, split: str = "train", *,
               download: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Images as uint8 (N, 28, 28) and labels as int64 (N,) for split "train" or "test"."""
    if split not in _FILES:
        raise ValueError(f"split must be 'train' or 'test', not {split!r}")
    root = dataset_dir("mnist", root)
    missing = [stem + ".gz" for stem in _FILES[split]
               if not any((root / n).is_file() for n in (stem + ".gz", stem))]
    for name in missing:
        try:
            fetch(sources.MNIST[name], root, dataset="MNIST", download=download)
        except DataUnavailableError as exc:
            raise unavailable("MNIST", missing, root, exc.reason) from None
    img_stem, lbl_stem = _FILES[split]
    images = _read_idx(_find(root, img_stem), _IMAGES_MAGIC, 3)
    labels = _read_idx(_find(root, lbl_stem), _LABELS_MAGIC, 1)
    if images.shape[1:] != (28, 28):
        raise ValueError(f"MNIST {split} images have shape {images.shape[1:]}, expected "
                         "(28, 28)")
    if len(images) != len(labels):
        raise ValueError(f"MNIST {split}: {len(images)} images but {len(labels)} labels")
    if labels.size and labels.max() > 9:
        raise ValueError(f"MNIST {split}: label {labels.max()} is out of range 0..9")
    return images.copy(), labels.astype(np.int64)

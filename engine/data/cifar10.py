"""CIFAR-10 from any of its common forms, read in place (no extraction).

Accepted, searched in this order in the dataset folder (`engine.data.locate`: root=,
else $DEMYSTIFY_DATA/cifar10, else the per-user cache):

1. the official binary release: `cifar-10-binary.tar.gz` or its folder `cifar-10-batches-bin/`
   (fixed-size records, no pickle: the preferred form, and what gets downloaded);
2. the official python release: `cifar-10-python.tar.gz` or `cifar-10-batches-py/`
   (Python 2 pickles, read with `safe_pickle.restricted_loads`, which can only build
   arrays and containers);
3. an image folder `train|test/<class>/*.jpg`, as a folder or an archive such as
   `cifar10-jpeg.tar.gz` (a JPEG re-encoding: pixels differ slightly from the official
   release). JPEG decoding is cached as .npz in the per-user cache.

`root` may also name one of these archives directly.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from . import sources
from .archives import is_archive, iter_members
from .image_folder import ImageFolder
from .locate import DataUnavailableError, cache_root, dataset_dir, fetch, unavailable
from .safe_pickle import restricted_loads

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                   "ship", "truck"]
_BATCHES = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}
_RECORD = 1 + 32 * 32 * 3
Loaded = tuple[np.ndarray, np.ndarray, list[str]]
_JPEG_NAMES = ("cifar10-jpeg.tar.gz", "cifar10-jpeg.tgz", "cifar10-jpeg.tar", "cifar10-jpeg.zip",
               "cifar10-jpeg")


def _parse_binary(data: bytes, name: str) -> tuple[np.ndarray, np.ndarray]:
    if len(data) % _RECORD:
        raise ValueError(f"CIFAR-10 binary batch {name}: {len(data)} bytes is not a whole "
                         f"number of {_RECORD}-byte records; the file is truncated or corrupt")
    rec = np.frombuffer(data, np.uint8).reshape(-1, _RECORD)
    images = rec[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)  # stored CHW
    return images, rec[:, 0].astype(np.int64)


def _get(d: object, key: str) -> object:
    """Python 2 pickles read with encoding='bytes' have bytes keys; accept both."""
    if not isinstance(d, dict):
        raise ValueError(f"CIFAR-10 python file holds a {type(d).__name__}, not a dict")
    if key.encode() in d:
        return d[key.encode()]
    if key in d:
        return d[key]
    raise ValueError(f"CIFAR-10 python batch has no {key!r} entry (keys: {list(d)[:6]})")


def _parse_python(data: bytes, name: str) -> tuple[np.ndarray, np.ndarray]:
    d = restricted_loads(data)
    raw = np.asarray(_get(d, "data"))
    labels = np.asarray(_get(d, "labels"), dtype=np.int64)
    if raw.dtype != np.uint8 or raw.ndim != 2 or raw.shape[1] != 3072:
        raise ValueError(f"CIFAR-10 python batch {name}: data is {raw.dtype}{raw.shape}, "
                         "expected uint8 (N, 3072)")
    if len(labels) != len(raw):
        raise ValueError(f"CIFAR-10 python batch {name}: {len(raw)} images, {len(labels)} "
                         "labels")
    return raw.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels


def _class_names(meta: bytes | None, python: bool) -> list[str]:
    if meta is None:
        return list(CIFAR10_CLASSES)
    if python:
        names = [n.decode() if isinstance(n, bytes) else str(n)
                 for n in _get(restricted_loads(meta), "label_names")]
    else:
        names = [line.strip() for line in meta.decode("ascii").splitlines() if line.strip()]
    return names


def _read_official(files: dict[str, bytes], split: str, python: bool, where: Path) -> Loaded:
    parts = []
    for batch in _BATCHES[split]:
        key = batch if python else batch + ".bin"
        if key not in files:
            raise ValueError(f"{where}: CIFAR-10 batch {key} is missing; the release is "
                             "incomplete, download it again")
        parts.append((_parse_python if python else _parse_binary)(files[key], key))
    images = np.ascontiguousarray(np.concatenate([p[0] for p in parts]))
    labels = np.concatenate([p[1] for p in parts])
    meta = files.get("batches.meta" if python else "batches.meta.txt")
    return images, labels, _class_names(meta, python)


def _official_from_archive(path: Path, split: str, python: bool) -> Loaded:
    wanted = {(b if python else b + ".bin") for b in _BATCHES[split]}
    wanted.add("batches.meta" if python else "batches.meta.txt")
    files = {name.rsplit("/", 1)[-1]: data for name, data in
             iter_members(path, lambda n: n.rsplit("/", 1)[-1] in wanted)}
    return _read_official(files, split, python, path)


def _official_from_folder(folder: Path, split: str, python: bool) -> Loaded:
    files = {}
    for f in folder.iterdir():
        if f.is_file() and f.name in {*(b + ("" if python else ".bin") for b in _BATCHES[split]),
                                      "batches.meta" if python else "batches.meta.txt"}:
            files[f.name] = f.read_bytes()
    return _read_official(files, split, python, folder)


def _from_image_folder(path: Path, split: str, cache: bool, progress: bool) -> Loaded:
    folder = ImageFolder(path, cache=cache, cache_dir=cache_root() / "cifar10", progress=progress)
    images, labels = folder.load(split)
    return images, labels, folder.classes


def _find_source(d: Path) -> tuple[str, Path] | None:
    """(kind, path) for the first CIFAR-10 form found in folder or file d, else None."""
    if d.is_file():
        name = d.name.lower()
        if "cifar-10-binary" in name:
            return "binary-archive", d
        if "cifar-10-python" in name:
            return "python-archive", d
        if is_archive(d):
            return "image-folder", d
        return None
    if not d.is_dir():
        return None
    for kind, name in (("binary-folder", "cifar-10-batches-bin"),
                       ("binary-archive", sources.CIFAR10_BINARY.name),
                       ("python-folder", "cifar-10-batches-py"),
                       ("python-archive", sources.CIFAR10_PYTHON.name)):
        if (d / name).exists():
            return kind, d / name
    for name in _JPEG_NAMES:
        if (d / name).exists():
            return "image-folder", d / name
    if (d / "train").is_dir() and (d / "test").is_dir():
        return "image-folder", d
    return None


def load_cifar10(root: str | os.PathLike | None = None, split: str = "train", *,
                 download: bool = True, cache: bool = True, progress: bool = True) -> Loaded:
    """CIFAR-10 `split` ("train" or "test") as (images, labels, class_names).

    images: uint8 (N, 32, 32, 3), HWC, RGB; labels: int64 (N,) indexing class_names.
    When no copy is found, the official binary tarball is downloaded (MD5-checked) into
    the dataset folder, unless `download=False` or DEMYSTIFY_OFFLINE is set.
    """
    if split not in _BATCHES:
        raise ValueError(f"split must be 'train' or 'test', not {split!r}")
    folder = dataset_dir("cifar10", root)
    found = _find_source(folder)
    if found is None:
        if folder.is_file():
            raise ValueError(f"{folder} is not a CIFAR-10 archive this loader reads "
                             f"({sources.CIFAR10_BINARY.name}, {sources.CIFAR10_PYTHON.name} "
                             "or an image-folder archive)")
        try:
            path = fetch(sources.CIFAR10_BINARY, folder, dataset="CIFAR-10",
                         progress=progress, download=download)
        except DataUnavailableError as exc:
            raise unavailable("CIFAR-10", [
                sources.CIFAR10_BINARY.name, sources.CIFAR10_PYTHON.name,
                "or an image folder train/<class>/*.jpg + test/<class>/*.jpg "
                "(or its archive, e.g. cifar10-jpeg.tar.gz)"], folder, exc.reason) from None
        found = ("binary-archive", path)
    kind, path = found
    if kind == "image-folder":
        images, labels, classes = _from_image_folder(path, split, cache, progress)
    elif kind.endswith("archive"):
        images, labels, classes = _official_from_archive(path, split, kind.startswith("python"))
    else:
        images, labels, classes = _official_from_folder(path, split, kind.startswith("python"))
    if images.shape[1:] != (32, 32, 3):
        raise ValueError(f"{path}: CIFAR-10 images must be 32x32 RGB, got {images.shape[1:]}")
    if classes != CIFAR10_CLASSES:
        raise ValueError(f"{path}: class names {classes} are not CIFAR-10's {CIFAR10_CLASSES}")
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise ValueError(f"{path}: CIFAR-10 labels must be 0..9, got {labels.min()}.."
                         f"{labels.max()}")
    return images, labels, classes

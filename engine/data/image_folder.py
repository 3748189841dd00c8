"""Image classification datasets laid out as `<split>/<class>/<image>`, from a folder or
an archive, decoded once and cached as `.npz` (no pickle).

Works for any user dataset of that shape (CIFAR-10's JPEG copy is one). Class names are
the sorted union of the class folders over all splits, so label k means the same class in
every split. Samples are ordered by (class, file name), independent of the order in which
a file system or an archive lists them.

Decoding tens of thousands of small images takes seconds, so the decoded arrays are
stored in the per-user cache, keyed by the source (archive size and mtime, or every file's
name, size and mtime for a folder) and the decoding options; a changed source gets a new
key. Archives are decoded in one sequential pass that fills the cache for every split.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from .archives import is_archive, iter_members
from .images import DEFAULT_MAX_PIXELS, ImageError, decode_image
from .locate import cache_root

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm")
_CACHE_FORMAT = 1


def _is_image_name(name: str) -> bool:
    base = name.rsplit("/", 1)[-1]
    return not base.startswith(".") and base.lower().endswith(IMAGE_EXTENSIONS)


class ImageFolder:
    """`root/<split>/<class>/*.{jpg,png,...}`; `root` is a folder or a .tar(.gz)/.zip.

    In an archive the layout may sit under one top folder (e.g. `cifar10-jpeg/train/...`).
    `size=(H, W)` (or an int) resizes every image; without it all images must share one
    size. `max_pixels` bounds each image before decoding. `load(split)` returns uint8
    images (N, H, W, 3) ((N, H, W) for mode "L") and int64 labels; `classes` names them.
    """

    def __init__(self, root: str | os.PathLike, size: int | tuple[int, int] | None = None, *,
                 mode: str = "RGB", max_pixels: int = DEFAULT_MAX_PIXELS, cache: bool = True,
                 cache_dir: str | os.PathLike | None = None, progress: bool = True) -> None:
        self.root = Path(root).expanduser()
        if not self.root.exists():
            raise FileNotFoundError(f"image folder {self.root} does not exist; expected "
                                    "<split>/<class>/<image> files there")
        self.size = (size, size) if isinstance(size, int) else (tuple(size) if size else None)
        if self.size is not None and (len(self.size) != 2 or min(self.size) < 1):
            raise ValueError(f"size must be a positive int or (H, W), not {size!r}")
        self.mode = mode
        self.max_pixels = max_pixels
        self.cache = cache
        self.cache_dir = Path(cache_dir) if cache_dir else cache_root() / "image_folder"
        self.progress = progress
        self._archive = self.root.is_file()
        if self._archive and not is_archive(self.root):
            raise ValueError(f"{self.root} is a file but not a .zip/.tar(.gz) archive; pass "
                             "the dataset folder or its archive")
        self._arrays: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._classes: list[str] | None = None
        self._split_names: list[str] | None = None

    # --- layout -------------------------------------------------------------------------
    def _folder_index(self) -> dict[str, list[tuple[str, str]]]:
        """split -> [(class, relative path)] for a folder, sorted; cheap (no decoding)."""
        index: dict[str, list[tuple[str, str]]] = {}
        def subdirs(p: Path) -> list[Path]:
            return sorted(d for d in p.iterdir() if d.is_dir() and not d.name.startswith("."))

        for split_dir in subdirs(self.root):
            items = []
            for cls_dir in subdirs(split_dir):
                for f in sorted(cls_dir.iterdir()):
                    if f.is_file() and _is_image_name(f.name):
                        items.append((cls_dir.name, f"{split_dir.name}/{cls_dir.name}/{f.name}"))
            if items:
                index[split_dir.name] = items
        if not index:
            raise FileNotFoundError(f"{self.root}: no images found as <split>/<class>/<image> "
                                    f"(image types: {', '.join(IMAGE_EXTENSIONS)})")
        return index

    @property
    def classes(self) -> list[str]:
        """Sorted class names over all splits (label k is classes[k])."""
        if self._classes is None:
            if self._archive:
                self._load_archive()
            else:
                self._classes = sorted({c for items in self._folder_index().values()
                                        for c, _ in items})
        assert self._classes is not None
        return self._classes

    @property
    def splits(self) -> list[str]:
        """Split folder names found (e.g. ["test", "train"])."""
        if self._archive:
            self._load_archive()
            return list(self._split_names or [])
        return sorted(self._folder_index())

    # --- caching ------------------------------------------------------------------------
    def _key(self, listing: Iterable[str]) -> str:
        h = hashlib.sha256()
        h.update(f"v{_CACHE_FORMAT}|{self.mode}|{self.size}|{self.max_pixels}\n".encode())
        for line in listing:
            h.update(line.encode("utf-8", "surrogateescape") + b"\n")
        return h.hexdigest()[:20]

    def _cache_file(self, key: str, split: str) -> Path:
        return self.cache_dir / f"{self.root.name}-{key}-{split}.npz"

    def _read_cache(self, path: Path) -> tuple[np.ndarray, np.ndarray, list[str]] | None:
        if not (self.cache and path.is_file()):
            return None
        try:
            with np.load(path, allow_pickle=False) as z:
                return z["images"], z["labels"].astype(np.int64), [str(c) for c in z["classes"]]
        except (OSError, ValueError, KeyError) as exc:
            warnings.warn(f"ignoring unreadable cache {path} ({exc}); decoding again",
                          stacklevel=3)
            return None

    def _write_cache(self, path: Path, images: np.ndarray, labels: np.ndarray,
                     classes: list[str]) -> None:
        if not self.cache:
            return
        tmp = path.with_name(path.name + f".{os.getpid()}.tmp.npz")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            np.savez(tmp, images=images, labels=labels, classes=np.array(classes, dtype=str))
            os.replace(tmp, path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            warnings.warn(f"could not write cache {path} ({exc}); the next load decodes "
                          "again", stacklevel=3)

    # --- decoding -----------------------------------------------------------------------
    def _bar(self, total: int | None, unit: str, desc: str) -> Any:
        if not self.progress:
            return None
        from tqdm import tqdm

        return tqdm(total=total, unit=unit, unit_scale=unit == "B", desc=desc,
                    file=sys.stderr, leave=False)

    def _stack(self, arrays: list[np.ndarray], names: list[str]) -> np.ndarray:
        if not arrays:
            shape = (0, *(self.size or (0, 0)))
            return np.zeros(shape + ((3,) if self.mode == "RGB" else ()), np.uint8)
        first = arrays[0].shape
        for a, n in zip(arrays, names):
            if a.shape != first:
                raise ImageError(
                    f"{self.root}: images differ in size: {names[0]} is {first[1]}x{first[0]}, "
                    f"{n} is {a.shape[1]}x{a.shape[0]}; pass size=(H, W) to resize them all")
        return np.stack(arrays)

    def _decode(self, data: bytes, name: str) -> np.ndarray:
        return decode_image(data, self.mode, max_pixels=self.max_pixels, size=self.size,
                            name=f"{self.root}:{name}" if self._archive else name)

    def _archive_key(self) -> tuple[str, Path]:
        st = self.root.stat()
        key = self._key([str(self.root.resolve()), str(st.st_size), str(st.st_mtime_ns)])
        return key, self.cache_dir / f"{self.root.name}-{key}.json"

    def _load_archive(self, split: str | None = None) -> None:
        """Read `split` (None: only the split and class names) from the cache, or decode
        every split of the archive in one pass and cache them all."""
        if self._split_names is not None and (split is None or split in self._arrays
                                              or split not in self._split_names):
            return
        key, index = self._archive_key()
        if self.cache and index.is_file():
            try:
                meta = json.loads(index.read_text())
                splits, classes = list(meta["splits"]), list(meta["classes"])
            except (OSError, ValueError, KeyError, TypeError):
                splits, classes = [], []
            if splits:
                if split is None or split not in splits:
                    self._split_names, self._classes = splits, classes
                    return
                cached = self._read_cache(self._cache_file(key, split))
                if cached is not None and cached[2] == classes:
                    self._split_names, self._classes = splits, classes
                    self._arrays[split] = (cached[0], cached[1])
                    return
        st = self.root.stat()
        found: dict[str, list[tuple[str, str, np.ndarray]]] = {}
        prefix: tuple[str, ...] | None = None
        bar = self._bar(st.st_size, "B", f"decode {self.root.name}")
        try:
            for name, data in iter_members(self.root, _is_image_name,
                                           on_progress=(lambda pos: bar.update(pos - bar.n))
                                           if bar is not None else None):
                parts = tuple(name.split("/"))
                if len(parts) < 3 or (prefix is not None and parts[:-3] != prefix):
                    raise ValueError(
                        f"{self.root}: member {name!r} does not fit the layout "
                        f"{'/'.join(prefix or ()) or '.'}/<split>/<class>/<image> of the "
                        "other images")
                prefix = parts[:-3]
                found.setdefault(parts[-3], []).append(
                    (parts[-2], parts[-1], self._decode(data, name)))
        finally:
            if bar is not None:
                bar.close()
        if not found:
            raise FileNotFoundError(f"{self.root}: no images found as <split>/<class>/<image>")
        classes = sorted({c for items in found.values() for c, _, _ in items})
        lookup = {c: i for i, c in enumerate(classes)}
        for name, items in found.items():
            items.sort(key=lambda t: (t[0], t[1]))
            images = self._stack([a for _, _, a in items], [f"{c}/{n}" for c, n, _ in items])
            labels = np.array([lookup[c] for c, _, _ in items], dtype=np.int64)
            self._arrays[name] = (images, labels)
            self._write_cache(self._cache_file(key, name), images, labels, classes)
        self._classes, self._split_names = classes, sorted(found)
        if self.cache:
            try:  # written last: its presence means every split's .npz is complete
                index.write_text(json.dumps({"splits": self._split_names, "classes": classes}))
            except OSError:
                pass

    def _load_folder_split(self, split: str) -> None:
        index = self._folder_index()
        if split not in index:
            raise ValueError(f"{self.root}: no split {split!r}; found {sorted(index)}")
        classes = sorted({c for items in index.values() for c, _ in items})
        items = index[split]
        listing = [str(self.root.resolve()), split, *classes]
        for _, rel in items:
            st = (self.root / rel).stat()
            listing.append(f"{rel}|{st.st_size}|{st.st_mtime_ns}")
        path = self._cache_file(self._key(listing), split)
        cached = self._read_cache(path)
        if cached is not None and cached[2] == classes:
            self._arrays[split], self._classes = (cached[0], cached[1]), classes
            return
        bar = self._bar(len(items), "img", f"decode {self.root.name}/{split}")
        arrays = []
        try:
            for _, rel in items:
                arrays.append(self._decode((self.root / rel).read_bytes(), rel))
                if bar is not None:
                    bar.update(1)
        finally:
            if bar is not None:
                bar.close()
        lookup = {c: i for i, c in enumerate(classes)}
        images = self._stack(arrays, [rel for _, rel in items])
        labels = np.array([lookup[c] for c, _ in items], dtype=np.int64)
        self._arrays[split], self._classes = (images, labels), classes
        self._write_cache(path, images, labels, classes)

    def load(self, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
        """uint8 images (N, H, W, 3) (or (N, H, W) for mode "L") and int64 labels."""
        if split not in self._arrays:
            if self._archive:
                self._load_archive(split)
                if split not in self._arrays:
                    raise ValueError(f"{self.root}: no split {split!r}; found "
                                     f"{sorted(self._arrays)}")
            else:
                self._load_folder_split(split)
        return self._arrays[split]

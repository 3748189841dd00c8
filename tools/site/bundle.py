"""The site's own wheels (the project's and the repacked ones), offline the release's plain
wheels too, and the bytecode overlay, as one gzipped tar of site-packages files that a
page's worker unpacks itself (assets/worker.js) instead of handing wheels to Pyodide.

Why: in a traced warm Digits visit Pyodide's loader spent about 2 of the 4.6 s of
"runtime + packages" unpacking wheels with Python's zipfile inside the runtime, one after
another, after Python had booted (NumPy's alone about 1 s), and then compiled and linked
every shared library of every package (README, static site). The worker inflates this
file with the browser's native DecompressionStream as it arrives, while the runtime
boots; a second visit reads the inflated tar back from Cache Storage; and the files are
only written into Pyodide's file system. A release's compiled extensions are then loaded
by Python's import (the runtime's own dlopen), only those a page imports.

The files go in two tars: the start set, written before the page's code runs, and the
packages no page imports before its first render (LATER), fetched at the same time but
written only after the page's after-render jobs, or at once by the first import that asks
for one (assets/boot.py). Files Python never reads at run time (type stubs, C headers and
sources) are left out of both. Why: writing the files into Pyodide's file system one by
one is a step of every start; the start tar has 2899 files instead of 3749 (537 come
later): a median 0.45 s instead of 0.55 s of six warm Digits visits (load 2.5-4.9;
0.84 against 1.25 s at load 2.5-7.6, `bench site` A/B).

Each name carries a digest of the contents, so a browser never reuses an old copy after
the site is rebuilt."""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
import zipfile
from pathlib import Path

from .common import BuildError


def plain(wheel: Path) -> bool:
    """Whether the wheel has only site-packages files (no NAME.data/ folder, whose files
    an installer puts elsewhere: Pyodide's loader installs such a wheel)."""
    with zipfile.ZipFile(wheel) as zf:
        return not any(".data/" in rel.split(".dist-info/")[0] for rel in zf.namelist())


# Top-level packages (import names) that no page imports before it is first drawn
# (measured in the browser: Digits, CIFAR-10, movies, art, playground, engine and
# sequences; any page that does import one only waits for its files to be written).
# narwhals is Panel's and Bokeh's data-frame layer, requests and its four dependencies come
# with Bokeh and pyodide-http's lazily patched requests, xyzservices with Bokeh's tile
# sources, contourpy with its contour plots.
LATER = ("narwhals", "requests", "urllib3", "certifi", "charset_normalizer", "idna",
         "xyzservices", "contourpy", "typing_extensions")
# read by type checkers and C compilers, never by Python at run time
NOT_RUN = (".pyi", "/py.typed", ".pxd", ".h", ".c")
NOT_RUN_DIRS = ("typings/",)  # stub-only top-level folder (from a repacked wheel)


def later(rel: str) -> bool:
    """Whether the site-packages file `rel` belongs to a LATER package (its .dist-info
    stays in the start set: metadata look-ups see every package installed from the start;
    a top-level module's bytecode goes with its module)."""
    top = rel.split("/", 1)[0]
    if top == "__pycache__":
        top = rel.split("/")[-1].split(".", 1)[0]
    return top.removesuffix(".py") in LATER


def runs(rel: str) -> bool:
    return not rel.endswith(NOT_RUN) and not rel.startswith(NOT_RUN_DIRS)


def _entries(wheels: list[Path], overlay: Path | None) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    for wheel in wheels:
        if not plain(wheel):
            raise BuildError(f"{wheel.name} has a NAME.data/ folder; the site's unpacker "
                             "installs plain wheels only")
    for archive in wheels + ([overlay] if overlay else []):
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                rel = info.filename
                if info.is_dir():
                    continue
                if rel.startswith("/") or ".." in rel.split("/"):
                    raise BuildError(f"{archive.name}: unsafe path {rel!r}")
                files[rel] = zf.read(info)
    return files


def write(wheels: list[Path], overlay: Path | None, folder: Path) -> tuple[Path, Path | None]:
    """folder/site-packages-DIGEST.tar.gz and folder/later-packages-DIGEST.tar.gz (None
    when no LATER package is there) holding the files of `wheels` and `overlay` that run,
    at their paths in site-packages."""
    files = {rel: data for rel, data in _entries(wheels, overlay).items() if runs(rel)}
    rest = {rel: data for rel, data in files.items() if later(rel)}
    start = _tar({rel: data for rel, data in files.items() if rel not in rest}, folder,
                 "site-packages")
    return start, (_tar(rest, folder, "later-packages") if rest else None)


def _tar(files: dict[str, bytes], folder: Path, stem: str) -> Path:
    """folder/STEM-DIGEST.tar.gz of `files` (deterministic: sorted, no dates, no
    owners)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for rel in sorted(files):
            info = tarfile.TarInfo(rel)
            info.size, info.mode, info.mtime = len(files[rel]), 0o644, 0
            tar.addfile(info, io.BytesIO(files[rel]))
    data = raw.getvalue()
    packed = io.BytesIO()
    with gzip.GzipFile(fileobj=packed, mode="wb", compresslevel=9, mtime=0) as gz:
        gz.write(data)
    digest = hashlib.sha256(data).hexdigest()[:12]
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / f"{stem}-{digest}.tar.gz"
    out.write_bytes(packed.getvalue())
    return out

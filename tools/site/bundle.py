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

The name carries a digest of the contents, so a browser never reuses an old copy after
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


def write(wheels: list[Path], overlay: Path | None, folder: Path) -> Path:
    """folder/site-packages-DIGEST.tar.gz holding every file of `wheels` and `overlay`
    at its path in site-packages (deterministic: sorted, no dates, no owners)."""
    files = _entries(wheels, overlay)
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
    out = folder / f"site-packages-{digest}.tar.gz"
    out.write_bytes(packed.getvalue())
    return out

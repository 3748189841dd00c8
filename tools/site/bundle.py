"""The site's own wheels (the project's and the repacked ones) and the release wheels'
bytecode overlay as one gzipped tar of site-packages files, which a page's worker unpacks
itself (assets/worker.js) instead of handing the wheels to Pyodide.

Why: on a warm visit Pyodide's loader unpacked every wheel with Python's zipfile inside
the runtime, one after another, after Python had booted: about a third of "runtime +
packages" in a traced Digits visit (README, static site). The worker fetches this file at
once and inflates it with the browser's native DecompressionStream while the runtime is
still downloading and compiling, and then only writes the files into Pyodide's file
system. Pyodide still installs its own release's wheels (NumPy's shared libraries among
them) as before.

The name carries a digest of the contents, so a browser never reuses an old copy after
the site is rebuilt (the wheels' own names change only with their versions)."""

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

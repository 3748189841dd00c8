"""Pyodide releases: the local folder an offline build vendors (any release: its version
is read from the folder), the CDN an online build loads from, and which of the wheels a
page needs come from the release itself.

A release's runtime and its wheels are built together; they are never mixed with another
release's (same ABI or not)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .common import BuildError, norm
from .wheels import Need

RUNTIME = ("pyodide.js", "pyodide.asm.js", "pyodide.asm.wasm", "python_stdlib.zip",
           "pyodide-lock.json")
OPTIONAL = ("pyodide.mjs", "package.json")


def _base(version: str) -> str:
    from packaging.version import Version

    return Version(version).base_version


def cdn_url(version: str) -> str:
    return f"https://cdn.jsdelivr.net/pyodide/v{version.lstrip('v')}/full/"


def panel_pyodide_version() -> str:
    """The Pyodide release the installed Panel targets (its default for online builds)."""
    from panel.io.convert import PYODIDE_VERSION

    return PYODIDE_VERSION.lstrip("v")


@dataclass
class Release:
    """A full Pyodide release folder (runtime + pyodide-lock.json + package wheels)."""

    path: Path
    version: str
    python: str
    lock: dict[str, dict[str, Any]]  # normalised name -> lock entry

    @classmethod
    def open(cls, given: str | None) -> Release:
        raw = given or os.environ.get("PYODIDE_DIST")
        if not raw:
            raise BuildError(
                "--offline needs a full Pyodide release folder: pass --pyodide-dist PATH or "
                "set PYODIDE_DIST (pyodide-VERSION.tar.bz2 from "
                "github.com/pyodide/pyodide/releases, unpacked; the npm `pyodide` package "
                "has only the core runtime, without numpy)")
        path = Path(raw).expanduser().resolve()
        missing = [n for n in RUNTIME if not (path / n).is_file()]
        if missing:
            raise BuildError(f"{path} is not a Pyodide release folder: missing "
                             f"{', '.join(missing)}")
        lock = json.loads((path / "pyodide-lock.json").read_text())
        info = lock.get("info", {})
        version = _base(str(info.get("version", "0")))  # may lag (0.28.0.dev0 in 0.29.3)
        if (path / "package.json").is_file():  # the release's own number
            version = json.loads((path / "package.json").read_text()).get("version", version)
        if not version:
            raise BuildError(f"{path}: no version in pyodide-lock.json or package.json")
        return cls(path, version, str(info.get("python", "")),
                   {norm(k): v for k, v in lock["packages"].items()})

    def satisfies(self, need: Need) -> bool:
        entry = self.lock.get(norm(need.name))
        return entry is not None and need.accepts(str(entry["version"]))

    def depends(self, names: list[str]) -> list[str]:
        """`names` and their dependencies in the lock file (normalised, sorted)."""
        todo, done = [norm(n) for n in names], set()
        while todo:
            name = todo.pop()
            if name in done:
                continue
            if name not in self.lock:
                raise BuildError(f"Pyodide {self.version} has no package {name}")
            done.add(name)
            todo.extend(norm(d) for d in self.lock[name].get("depends", []))
        return sorted(done)

    def files_for(self, packages: list[str]) -> list[str]:
        """The lock names of `packages` and their dependencies; fails naming every wheel
        the folder lacks (e.g. numpy in the npm core runtime)."""
        names = self.depends(packages)
        missing = [f"{self.lock[n]['file_name']} ({n})" for n in names
                   if not (self.path / self.lock[n]["file_name"]).is_file()]
        if missing:
            raise BuildError(f"the Pyodide {self.version} folder {self.path} lacks "
                             f"{', '.join(missing)}; the app needs them in the browser "
                             "(--offline needs the full release, not the npm core runtime)")
        return names

    def verified_wheel(self, name: str) -> Path:
        """The wheel of lock `name`, checked against the lock's sha256 (what Pyodide checks
        when it loads a package; a page that unpacks the wheel's files itself cannot)."""
        entry = self.lock[name]
        path = self.path / entry["file_name"]
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if entry.get("sha256") and digest != entry["sha256"]:
            raise BuildError(f"{path} does not match the sha256 in {self.path}'s "
                             "pyodide-lock.json; the folder is damaged or mixes releases")
        return path

    def copy(self, names: list[str], dest: Path) -> None:
        """Copy the runtime and the wheels of lock `names` (from files_for) into `dest`."""
        dest.mkdir(parents=True, exist_ok=True)
        for name in RUNTIME + OPTIONAL:
            if (self.path / name).is_file():
                shutil.copy2(self.path / name, dest / name)
        for n in names:
            shutil.copy2(self.path / self.lock[n]["file_name"],
                         dest / self.lock[n]["file_name"])


def plan(needs: dict[str, Need], release: Release | None) -> tuple[list[str], list[str]]:
    """(names installed from the Pyodide release, names repacked from .venv).

    Offline (a local release): the release's own wheel when its version meets every
    constraint, else the installed pure-Python one; a compiled package the release lacks
    stops the build with its name. Online (no local release): every pure-Python package
    is repacked (so the site needs no package index), compiled ones come from the
    release on the CDN by name."""
    from_release, repack, missing = [], [], []
    for key, need in sorted(needs.items()):
        if key == "demystify":
            continue
        if release is not None and release.satisfies(need):
            from_release.append(key)
        elif need.pure:
            repack.append(need.name)
        elif release is None and need.installed is None:
            from_release.append(key)  # a Pyodide-only package (pyodide-http)
        elif release is None:
            from_release.append(key)  # compiled: the release's build of it
        elif key in release.lock:
            have = release.lock[key]["version"]
            missing.append(f"{need.name}{','.join(s for s in need.specifiers if s)} "
                           f"(Pyodide {release.version} has {have})")
        else:
            missing.append(need.name)
    if missing:
        raise BuildError(f"the browser needs {', '.join(missing)}, which Pyodide "
                         f"{release.version} ({release.path}) does not provide and which is "
                         "not pure Python (so it cannot be repacked from .venv)")
    return from_release, repack

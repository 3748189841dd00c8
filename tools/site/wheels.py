"""The wheels a page installs: the project's own (built by pip, in an isolated build
environment, so only pyproject.toml's build requirements are needed) and pure-Python
dependencies repacked from what is installed in .venv (same versions as the server, and no
package index is asked)."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from .common import ROOT, BuildError, norm

# Declared dependencies the browser never imports, so never installed there: Panel 1.9
# declares pandas (imported only by its data-frame widgets and the admin page; its Pyodide
# module needs it only without pyodide-http, which the pages install) and
# panel-material-ui (an optional component set Panel itself never imports). The end-to-end
# tests run every page without them.
BROWSER_EXCLUDED = {"pandas": "Panel declares it; no page imports it",
                    "panel-material-ui": "Panel declares it; Panel never imports it"}
# What the browser needs beyond the declared dependencies: Panel's Pyodide module patches
# HTTP with pyodide-http (and would import pandas without it).
BROWSER_EXTRA = ["pyodide-http"]

# Folders of installed packages the browser never needs (served as static files, or
# server-only); dropping them keeps the repacked wheels small.
STRIP = {"panel": ("panel/dist/", "panel/tests/", "panel/examples/"),
         "bokeh": ("bokeh/server/static/", "bokeh/sampledata/")}
# The project's data files are not in its browser wheel: the site serves them as files and
# a page fetches only the ones it opens (see tools/site/data.py).
DATA_PREFIXES = ("webapp/models/", "webapp/assets/")
EMSCRIPTEN = {"sys_platform": "emscripten", "platform_system": "Emscripten",
              "os_name": "posix", "platform_machine": "wasm32",
              "implementation_name": "cpython", "extra": ""}


# --------------------------------------------------------------------------- the project


_OUTSIDE = {".git", ".venv", "node_modules", "build", "dist", ".pytest_cache", ".ruff_cache",
            ".hypothesis", ".gl", ".whl", "checkpoints", "logs", "tests/screenshots",
            "benchmarks/results"}  # what .gitignore names: environments, caches, outputs


def _not_sources(folder: str, names: list[str]) -> set[str]:
    rel = Path(folder).relative_to(ROOT)
    return {n for n in names if (rel / n).as_posix() in _OUTSIDE or n == "__pycache__"
            or n.endswith((".egg-info", ".pyc"))}


def build_project_wheel(dest: Path) -> Path:
    """`pip wheel . --no-deps` (build isolation: pip installs the build backend that
    pyproject.toml names); checks that the shaders and the demo files are inside."""
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        # built from a copy of the sources: setuptools stages files in build/ and
        # *.egg-info/ next to setup.py and never removes what left the source tree (a stale
        # build/ put a deleted module into the wheel), and two builds at once (the test
        # suite's workers) collided there ("File exists: build/bdist...")
        src = Path(tmp) / "src"
        shutil.copytree(ROOT, src, ignore=_not_sources)
        cmd = [sys.executable, "-m", "pip", "wheel", str(src), "--no-deps",
               "--disable-pip-version-check", "-q", "-w", tmp]
        proc = subprocess.run(cmd, cwd=src, capture_output=True, text=True)
        if proc.returncode:
            raise BuildError(f"`pip wheel . --no-deps` failed (exit code {proc.returncode}):"
                             f"\n{proc.stderr[-3000:]}")
        built = list(Path(tmp).glob("demystify-*.whl"))
        if not built:
            raise BuildError("pip wheel produced no demystify-*.whl")
        wheel = dest / built[0].name
        wheel.write_bytes(built[0].read_bytes())
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = [f"engine/shaders/{p.name}" for p in sorted((ROOT / "shaders").glob("*.wgsl"))
               if f"engine/shaders/{p.name}" not in names]
    missing += [rel for rel in data_files() if rel not in names]
    if missing:
        raise BuildError(f"the wheel {wheel.name} lacks {', '.join(missing[:8])}; rebuild "
                         "after checking setup.py / pyproject.toml package-data")
    return wheel


def data_files() -> list[str]:
    """The demo files the web app reads at run time (models, sample data), as paths inside
    the installed package (webapp/models/..., webapp/assets/...)."""
    return [p.relative_to(ROOT).as_posix() for prefix in DATA_PREFIXES
            for p in sorted((ROOT / prefix).glob("*")) if p.is_file()]


def browser_wheel(project_wheel: Path, dest: Path) -> Path:
    """The project wheel without its data files (the site serves those separately)."""
    dest.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(project_wheel) as zf:
        return rewrite_wheel(zf.read, zf.namelist(), dest / project_wheel.name,
                             keep=lambda rel: not rel.startswith(DATA_PREFIXES))


# --------------------------------------------------------------------------- dependencies


@dataclass
class Need:
    """A distribution the browser needs, with every version constraint put on it."""

    name: str
    specifiers: list[str] = field(default_factory=list)
    installed: str | None = None  # the version in .venv
    pure: bool = False  # installed as a py3-none-any wheel (repackable)

    def accepts(self, version: str) -> bool:
        from packaging.specifiers import SpecifierSet

        spec = SpecifierSet(",".join(s for s in self.specifiers if s))
        return spec.contains(version, prereleases=True)


def requirement_closure(roots: Iterable[str], provided: set[str] = frozenset()
                        ) -> dict[str, Need]:
    """{normalised name: Need} for `roots` and their dependencies in Pyodide (markers
    evaluated for Emscripten), read from the metadata of what is installed in .venv.
    Names in `provided` (a Pyodide release's own packages) that .venv lacks are taken as
    they are: Pyodide resolves their dependencies itself. BROWSER_EXCLUDED names are left
    out."""
    from importlib.metadata import PackageNotFoundError, distribution

    from packaging.requirements import Requirement

    needs: dict[str, Need] = {}
    todo: list[tuple[str, str]] = [(r, "") for r in roots]
    while todo:
        raw, spec = todo.pop()
        key = norm(raw)
        if key in BROWSER_EXCLUDED:
            continue
        need = needs.get(key)
        if need is not None:
            need.specifiers.append(spec)
            continue
        need = needs[key] = Need(raw, [spec])
        try:
            dist = distribution(raw)
        except PackageNotFoundError as exc:
            if key in provided:
                continue
            raise BuildError(f"{raw} is needed in the browser but not installed in .venv; "
                             "run `python build.py serve` once to install it") from exc
        need.name, need.installed = dist.metadata["Name"], dist.version
        need.pure = "Root-Is-Purelib: true" in (dist.read_text("WHEEL") or "")
        for line in dist.requires or []:
            req = Requirement(line)
            if req.marker is None or req.marker.evaluate(EMSCRIPTEN):
                todo.append((req.name, str(req.specifier)))
    return needs


# --------------------------------------------------------------------------- repacking


def _record_line(rel: str, data: bytes) -> tuple[str, str, str]:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
    return rel, f"sha256={digest.decode()}", str(len(data))


def rewrite_wheel(read: Callable[[str], bytes], names: Iterable[str], out: Path,
                  keep: Callable[[str], bool] = lambda rel: True) -> Path:
    """Write the wheel `out` from the files `names` (read with `read`) that `keep` accepts,
    with a RECORD that matches what is inside."""
    records, info_dir = [], None
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for rel in names:
            if rel.endswith("/"):
                continue
            if rel.endswith(".dist-info/RECORD"):
                info_dir = rel.rsplit("/", 1)[0]
                continue
            if not keep(rel):
                continue
            data = read(rel)
            zf.writestr(rel, data)
            records.append(_record_line(rel, data))
        if info_dir is None:
            raise BuildError(f"{out.name}: no .dist-info/RECORD; cannot repack it")
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerows(records + [(f"{info_dir}/RECORD", "",
                                                                    "")])
        zf.writestr(f"{info_dir}/RECORD", buf.getvalue())
    return out


def repack_installed(name: str, dest: Path) -> Path:
    """A py3-none-any wheel of an installed pure-Python distribution, from its RECORD."""
    from importlib.metadata import distribution

    dist = distribution(name)
    if "Root-Is-Purelib: true" not in (dist.read_text("WHEEL") or ""):
        raise BuildError(f"{name} is not pure Python, and the Pyodide release does not have "
                         "it either; it cannot run in the browser")
    site = Path(str(dist.locate_file("")))
    stem = f"{re.sub(r'[-.]+', '_', dist.metadata['Name'])}-{dist.version}"
    strip = STRIP.get(norm(name), ())
    files = {}
    for f in dist.files or []:
        rel = f.as_posix()
        if rel.startswith("..") or "__pycache__" in rel or rel.endswith(".pyc"):
            continue
        if rel.endswith(("INSTALLER", "direct_url.json", "REQUESTED")) or \
                any(rel.startswith(s) for s in strip):
            continue
        if (site / rel).is_file():
            files[rel] = site / rel
    return rewrite_wheel(lambda rel: files[rel].read_bytes() if rel in files else b"",
                         list(files) + [r.as_posix() for r in dist.files or []
                                        if r.as_posix().endswith(".dist-info/RECORD")],
                         dest / f"{stem}-py3-none-any.whl")

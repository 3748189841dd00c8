"""Precompiled bytecode: Python in the browser otherwise compiles every module it imports
(the standard library, NumPy's Python half, Panel, Bokeh, the engine) from source at each
page load.

The .pyc files must come from the very interpreter the pages run, so the Pyodide release
makes them itself, under Node (assets/compile_pyc.mjs), with an unchecked hash (unpacked
files' dates mean nothing). Sources always stay, for tracebacks. Three products:

- our wheels (the project's and the repacked ones) get __pycache__/ entries;
- the standard library zip gets a NAME.pyc beside each NAME.py (what zipimport reads);
  every original entry is kept as it is;
- the release's own wheels stay byte for byte what the release signed (Pyodide checks
  their sha256); their bytecode is a separate overlay zip of __pycache__/ entries that a
  page unpacks into site-packages after installing them.

Results are cached by the release and the inputs in dist/.cache/bytecode/."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import tempfile
import zipfile
from pathlib import Path

from .common import ASSETS, ROOT, BuildError, say
from .wheels import rewrite_wheel

CACHE = ROOT / "dist" / ".cache" / "bytecode"
STDLIB_DIR = "/lib/python313.zip"  # where Pyodide mounts python_stdlib.zip


def node() -> str | None:
    return shutil.which("node")


def _digest(*parts: bytes) -> str:
    h = hashlib.sha256()
    for p in parts + ((ASSETS / "compile_pyc.mjs").read_bytes(),):
        h.update(hashlib.sha256(p).digest())
    return h.hexdigest()[:24]


def _release_id(release_dir: Path) -> bytes:
    return (release_dir / "pyodide-lock.json").read_bytes() + \
        (release_dir / "pyodide.asm.js").read_bytes()[:1 << 16]


def _extract_sources(zf: zipfile.ZipFile, dest: Path) -> None:
    for rel in zf.namelist():
        if rel.endswith(".py"):
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            (dest / rel).write_bytes(zf.read(rel))


def _run(release_dir: Path, host: Path, jobs: list[dict[str, object]]) -> None:
    exe = node()
    assert exe is not None
    (host / "jobs.json").write_text(json.dumps(jobs))
    proc = subprocess.run([exe, str(ASSETS / "compile_pyc.mjs"), str(release_dir), str(host),
                           str(host / "jobs.json")], capture_output=True, text=True,
                          timeout=1200)
    if proc.returncode:
        raise BuildError(f"compiling bytecode with {release_dir} under Node failed: "
                         f"{(proc.stdout + proc.stderr)[-2000:]}")


def available() -> bool:
    if node() is None:
        say("no `node` on PATH: the site ships without precompiled bytecode (pages start "
            "slower); install Node.js (Debian: apt-get install nodejs) to get it")
        return False
    return True


def compile_wheels(wheels: list[Path], release_dir: Path) -> None:
    """Add __pycache__/ bytecode to each of our wheels, in place."""
    CACHE.mkdir(parents=True, exist_ok=True)
    rid = _release_id(release_dir)
    todo = {}
    for w in wheels:
        cached = CACHE / f"{_digest(rid, w.read_bytes())}-{w.name}"
        if cached.is_file():
            shutil.copy2(cached, w)
        else:
            todo[w] = cached
    if not todo:
        return
    say(f"compiling {len(todo)} wheel(s) to bytecode with Pyodide's own Python (Node)")
    with tempfile.TemporaryDirectory() as tmp:
        host = Path(tmp)
        for i, w in enumerate(todo):
            with zipfile.ZipFile(w) as zf:
                _extract_sources(zf, host / f"w{i}")
        _run(release_dir, host, [{"dir": f"w{i}", "ddir": "", "legacy": False}
                                 for i in range(len(todo))])
        for i, (w, cached) in enumerate(todo.items()):
            root = host / f"w{i}"
            pycs = {p.relative_to(root).as_posix(): p for p in root.rglob("*.pyc")}
            with zipfile.ZipFile(w) as zf:
                names = zf.namelist()
                files = {rel: zf.read(rel) for rel in names}
            files.update({rel: p.read_bytes() for rel, p in pycs.items()})
            record = [n for n in names if n.endswith(".dist-info/RECORD")]
            order = [n for n in names if n not in record] + sorted(pycs) + record
            rewrite_wheel(files.__getitem__, order, host / w.name)
            shutil.copy2(host / w.name, cached)
            shutil.copy2(cached, w)


def compile_release(release_dir: Path, wheel_files: list[str], stdlib_out: Path,
                    overlay: Path) -> None:
    """`stdlib_out`: the release's stdlib zip with NAME.pyc entries added; `overlay` (a
    zip): the __pycache__/ bytecode of the release wheels `wheel_files`. Each is cached on
    its own (online and offline builds need different wheels, the same standard library)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    stdlib = release_dir / "python_stdlib.zip"
    rid = _release_id(release_dir)
    cached_lib = CACHE / f"{_digest(rid, stdlib.read_bytes())}-python_stdlib.zip"
    cached_overlay = CACHE / f"{_digest(rid, json.dumps(sorted(wheel_files)).encode())}-pyc.zip"
    todo_lib, todo_overlay = not cached_lib.is_file(), not cached_overlay.is_file()
    if todo_lib or todo_overlay:
        what = (["the standard library"] if todo_lib else []) + \
            ([f"{len(wheel_files)} release wheel(s)"] if todo_overlay else [])
        say(f"compiling {' and '.join(what)} to bytecode with Pyodide's own Python (Node)")
        with tempfile.TemporaryDirectory() as tmp:
            host = Path(tmp)
            jobs: list[dict[str, object]] = []
            if todo_lib:
                with zipfile.ZipFile(stdlib) as zf:
                    _extract_sources(zf, host / "stdlib")
                jobs.append({"dir": "stdlib", "ddir": STDLIB_DIR, "legacy": True})
            if todo_overlay:
                for i, name in enumerate(wheel_files):
                    with zipfile.ZipFile(release_dir / name) as zf:
                        _extract_sources(zf, host / f"r{i}")
                    jobs.append({"dir": f"r{i}", "ddir": "", "legacy": False})
            _run(release_dir, host, jobs)
            if todo_lib:
                with zipfile.ZipFile(stdlib) as src, \
                        zipfile.ZipFile(host / "lib.zip", "w", zipfile.ZIP_DEFLATED) as dst:
                    for info in src.infolist():
                        dst.writestr(info, src.read(info.filename))
                    root = host / "stdlib"
                    for p in sorted(root.rglob("*.pyc")):
                        dst.write(p, p.relative_to(root).as_posix())
                shutil.copy2(host / "lib.zip", cached_lib)
            if todo_overlay:
                with zipfile.ZipFile(host / "pyc.zip", "w", zipfile.ZIP_DEFLATED) as dst:
                    for i in range(len(wheel_files)):
                        root = host / f"r{i}"
                        for p in sorted(root.rglob("*.pyc")):
                            dst.write(p, p.relative_to(root).as_posix())
                shutil.copy2(host / "pyc.zip", cached_overlay)
    for dest in (stdlib_out, overlay):
        dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(cached_lib, stdlib_out)
    shutil.copy2(cached_overlay, overlay)

#!/usr/bin/env python3
"""Demystify's one entry point: set up a virtual environment and run things in it.

    python build.py serve [--port N] [--no-show]   run the web app (every page)
    python build.py test [pytest args...]          run the test suite
    python build.py bench [NAME [args...]]         run (or list) a benchmark
    python build.py train NAME [args...]           run a training script
    python build.py site [--out DIR] [--offline --pyodide-dist PATH] [--pwa]
                                                   static browser build (Pyodide + WebGPU)
    python build.py slides [--out DIR] [--base URL]  reveal.js deck embedding two demos

Standard library only, so it runs on a fresh machine with just Python 3.11+.
The environment lives in .venv/ next to this file; the project is installed into it
in editable mode and reinstalled only when pyproject.toml, setup.py or the requested
extras change (a stamp file in .venv records what was installed).
Extra extras for test/bench/train: DEMYSTIFY_EXTRAS=oracle,... (comma-separated).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
STAMP = VENV / ".demystify-install.json"
MIN_PYTHON = (3, 11)

SERVE_EXTRAS = ["web", "gpu", "onnx"]
TEST_EXTRAS = ["test"]
PASSTHROUGH = {"test", "bench", "train", "site", "slides"}


def say(msg: str) -> None:
    print(f"build.py: {msg}", file=sys.stderr, flush=True)


def die(msg: str, code: int = 2) -> None:
    say(f"error: {msg}")
    sys.exit(code)


# ---------------------------------------------------------------- environment


def venv_python() -> Path:
    if os.name == "nt":
        return VENV / "Scripts" / "python.exe"
    return VENV / "bin" / "python"


def known_extras() -> set[str]:
    with open(ROOT / "pyproject.toml", "rb") as f:
        project = tomllib.load(f)["project"]
    return set(project.get("optional-dependencies", {}))


def env_extras() -> list[str]:
    raw = os.environ.get("DEMYSTIFY_EXTRAS", "")
    return [e.strip() for e in raw.split(",") if e.strip()]


def project_fingerprint() -> str:
    """Hash of everything that changes what `pip install -e .` does."""
    h = hashlib.sha256()
    for name in ("pyproject.toml", "setup.py"):
        path = ROOT / name
        if path.exists():
            h.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    # The editable install maps top-level packages found at install time, so a
    # package that gains its __init__.py later needs a reinstall.
    for pkg in ("engine", "webapp"):
        h.update(f"{pkg}:{(ROOT / pkg / '__init__.py').exists()}\0".encode())
    return h.hexdigest()


def read_stamp() -> dict:
    try:
        return json.loads(STAMP.read_text())
    except (OSError, ValueError):
        return {}


def create_venv() -> None:
    import venv

    say(f"creating virtual environment in {VENV} (Python {sys.version.split()[0]})")
    try:
        import ensurepip  # noqa: F401  (Debian strips it out of python3 without python3-venv)
    except ImportError:
        die(
            "this Python has no ensurepip, so it cannot create a virtual environment "
            "with pip. On Debian/Ubuntu: sudo apt-get install python3-venv"
        )
    try:
        venv.EnvBuilder(with_pip=True, clear=False).create(VENV)
    except (OSError, subprocess.CalledProcessError) as exc:
        die(f"could not create {VENV}: {exc}. Delete the folder and try again.")


def ensure_env(extras: list[str]) -> Path:
    """Make sure .venv exists and has the project installed with `extras`; return its python."""
    if sys.version_info < MIN_PYTHON:
        die(
            f"Python {'.'.join(map(str, MIN_PYTHON))}+ is required, this is "
            f"{sys.version.split()[0]} ({sys.executable}). Run build.py with a newer python."
        )
    known = known_extras()
    unknown = sorted(set(extras) - known)
    if unknown:
        die(
            f"unknown extra(s) {', '.join(unknown)} (from DEMYSTIFY_EXTRAS?); "
            f"pyproject.toml defines: {', '.join(sorted(known))}"
        )

    py = venv_python()
    if not py.exists():
        if VENV.exists():
            say(f"{VENV} exists but has no {py.relative_to(VENV)}; recreating it")
        create_venv()
        STAMP.unlink(missing_ok=True)

    fingerprint = project_fingerprint()
    stamp = read_stamp()
    installed = set(stamp.get("extras", [])) if stamp.get("fingerprint") == fingerprint else set()
    if stamp.get("fingerprint") == fingerprint and set(extras) <= installed:
        return py

    wanted = sorted(installed | set(extras))  # never drop extras another command needs
    spec = f".[{','.join(wanted)}]" if wanted else "."
    say(f"installing the project into .venv: pip install -e {spec}")
    cmd = [str(py), "-m", "pip", "install", "--disable-pip-version-check", "-q", "-e", spec]
    rc = subprocess.call(cmd, cwd=ROOT)
    if rc != 0:
        die(
            f"pip install failed (exit code {rc}); see the pip output above. "
            f"To start clean, delete {VENV} and run this command again.",
            rc,
        )
    STAMP.write_text(json.dumps({"fingerprint": fingerprint, "extras": wanted}, indent=1))
    return py


def run(cmd: list[str]) -> int:
    """Run cmd in the project root and return its exit code.

    Ctrl+C reaches the child too (same process group); wait for it to finish its own
    shutdown (pytest prints its summary, panel closes the server) instead of killing it.
    A second Ctrl+C terminates the child, a third kills it.
    """
    proc = subprocess.Popen(cmd, cwd=ROOT)
    interrupts = 0
    while True:
        try:
            return proc.wait()
        except KeyboardInterrupt:
            interrupts += 1
            if interrupts == 2:
                proc.terminate()
            elif interrupts >= 3:
                proc.kill()


# ------------------------------------------------------------------- commands


def cmd_serve(args: argparse.Namespace) -> int:
    py = ensure_env(SERVE_EXTRAS)
    cmd = [str(py), "-m", "webapp.server", "--port", str(args.port), "--address", args.address]
    if not args.no_show:
        cmd.append("--show")
    say(f"serving every page on http://localhost:{args.port}/app  (Ctrl+C stops)")
    return run(cmd)


def workers(rest: list[str]) -> list[str]:
    """pytest-xdist options for a whole-suite run: two workers where there are two cores
    (a browser test leaves a core idle while its page computes; tests/conftest.py keeps
    the tests of one shared build or server on one worker). A run that names tests or
    its own -n/-p options is left as given."""
    chosen = [a for a in rest if not a.startswith("-")]
    if chosen or any(a.startswith(("-n", "--numprocesses", "-p", "--dist")) for a in rest):
        return []
    n = min(os.cpu_count() or 1, 2)
    return ["-n", str(n), "--dist", "loadgroup"] if n > 1 else []


def cmd_test(rest: list[str]) -> int:
    py = ensure_env(TEST_EXTRAS + env_extras())
    return run([str(py), "-m", "pytest", *workers(rest), *rest])


def available(folder: str, prefix: str) -> list[str]:
    return sorted(p.stem[len(prefix) :] for p in (ROOT / folder).glob(f"{prefix}*.py"))


def cmd_script(kind: str, folder: str, rest: list[str]) -> int:
    names = available(folder, f"{kind}_")
    listing = ", ".join(names) if names else f"none yet (no {folder}/{kind}_*.py files)"
    if not rest or rest[0].startswith("-"):
        if kind == "bench" and not rest:
            print("available benchmarks:", listing)
            print("run one with: python build.py bench NAME [args...]")
            return 0
        die(f"usage: python build.py {kind} NAME [args...]; available: {listing}")
    name, args = rest[0], rest[1:]
    script = ROOT / folder / f"{kind}_{name}.py"
    if not script.is_file():
        die(
            f"no {kind} named {name!r} ({script.relative_to(ROOT)} does not exist); "
            f"available: {listing}"
        )
    py = ensure_env(TEST_EXTRAS + env_extras())
    return run([str(py), str(script.relative_to(ROOT)), *args])


def cmd_site(command: str, rest: list[str]) -> int:
    """site/slides: `python -m tools.site` in .venv (it needs Panel); it parses its own options."""
    py = ensure_env(SERVE_EXTRAS)
    return run([str(py), "-m", "tools.site", command, *rest])


# ----------------------------------------------------------------------- main


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python build.py",
        description="Demystify: set up the environment (.venv) and run the project.",
        epilog="Extras for test/bench/train: DEMYSTIFY_EXTRAS=oracle (comma-separated). "
        "Data folder: DEMYSTIFY_DATA.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    serve = sub.add_parser("serve", help="set up .venv and run the web app (panel serve)")
    serve.add_argument("--port", type=int, default=5006, help="port (default 5006)")
    serve.add_argument("--address", default="127.0.0.1",
                       help="interface to listen on (default 127.0.0.1; 0.0.0.0 for all)")
    serve.add_argument("--no-show", action="store_true", help="do not open a browser")
    sub.add_parser(
        "test",
        help="set up .venv and run pytest; arguments go to pytest",
        usage="python build.py test [pytest args...]  (use `test -- --help` for pytest's help)",
    )
    sub.add_parser(
        "bench",
        help="run benchmarks/bench_NAME.py; no NAME lists them",
        usage="python build.py bench [NAME [args...]]",
    )
    sub.add_parser(
        "train", help="run training/train_NAME.py", usage="python build.py train NAME [args...]"
    )
    sub.add_parser(
        "site",
        help="static browser build of the web app (Pyodide + WebGPU); see `site --help`",
        usage="python build.py site [--out DIR] [--offline [--pyodide-dist PATH]] [--pwa]",
    )
    sub.add_parser(
        "slides",
        help="reveal.js slide deck embedding two demos; see `slides --help`",
        usage="python build.py slides [--out DIR] [--base URL] [--demos SLUG SLUG]",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = make_parser()
    # test/bench/train/site/slides pass everything after the command through (argparse
    # would reorder or reject options meant for pytest or the script).
    own_help = argv[:1] in (["site"], ["slides"])  # tools/site prints their help
    if argv and argv[0] in PASSTHROUGH and (own_help or not (len(argv) > 1
                                                            and argv[1] in ("-h", "--help"))):
        command, rest = argv[0], argv[1:]
        if rest[:1] == ["--"]:
            rest = rest[1:]
        if command == "test":
            return cmd_test(rest)
        if command == "bench":
            return cmd_script("bench", "benchmarks", rest)
        if command in ("site", "slides"):
            return cmd_site(command, rest)
        return cmd_script("train", "training", rest)
    args = parser.parse_args(argv)
    if args.command == "serve":
        return cmd_serve(args)
    parser.print_help()  # test/bench/train with -h
    return 0


if __name__ == "__main__":
    sys.exit(main())

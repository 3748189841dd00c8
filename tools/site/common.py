"""What every part of the site build shares: paths, the user-facing error, output folders,
and the absolute-URL scan that proves an offline build fetches nothing from the web."""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ASSETS = Path(__file__).resolve().parent / "assets"
MARKER = ".demystify-build"

# Absolute URLs a page never fetches (XML namespaces, licence and doc links in comments).
HARMLESS = re.compile(r"https?://(www\.w3\.org|www\.apache\.org/licenses|opensource\.org"
                      r"|github\.com|bokeh\.org/?[\"'<\s]|holoviz\.org/?[\"'<\s])")
URL = re.compile(r"""https?://[^\s"'`<>()\\]+""")


class BuildError(RuntimeError):
    """A problem the user can fix; printed without a traceback."""


def say(msg: str) -> None:
    print(f"build.py: {msg}", file=sys.stderr, flush=True)


def norm(name: str) -> str:
    """A distribution name as package indexes compare them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def prepare_out(out: Path) -> None:
    """Create `out`, or empty it when it is one of our builds (never a foreign folder)."""
    if out.exists():
        if any(out.iterdir()) and not (out / MARKER).exists():
            raise BuildError(f"{out} exists and is not a Demystify build (no {MARKER}); "
                             "choose another --out or empty it yourself")
        shutil.rmtree(out)
    out.mkdir(parents=True)
    (out / MARKER).write_text("built by `python build.py`; the whole folder is replaced on "
                              "the next build\n")


def folder_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def absolute_urls(text: str) -> list[str]:
    return sorted({u for u in URL.findall(text) if not HARMLESS.match(u)})

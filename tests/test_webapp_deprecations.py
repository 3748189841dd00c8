"""No Panel or Bokeh deprecation warning comes from our code: every page is built with
every warning recorded, and one whose source line is in webapp/ or engine/ fails the test
(Panel 1.9 warns about `name=` on widgets, `button_type=` and the like: use `label=` and
`color=`). Warnings raised inside the libraries themselves are theirs, not ours."""

from __future__ import annotations

import importlib
import warnings
from pathlib import Path

import pytest

from webapp.server import MODULES as SERVED

ROOT = Path(__file__).resolve().parents[1]
OURS = (ROOT / "webapp", ROOT / "engine")
MODULES = ("app", *SERVED.values())  # the start page and every page the server serves


@pytest.mark.parametrize("name", MODULES)
def test_building_a_page_warns_about_nothing_deprecated(name):
    module = importlib.import_module(f"webapp.{name}")
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        module.page()
    ours = [f"{Path(w.filename).relative_to(ROOT)}:{w.lineno}: {w.category.__name__}: "
            f"{w.message}" for w in seen
            if issubclass(w.category, (DeprecationWarning, PendingDeprecationWarning,
                                       FutureWarning))
            and any(Path(w.filename).resolve().is_relative_to(p) for p in OURS)]
    assert not ours, "\n".join(ours)

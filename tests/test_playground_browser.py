"""The Playground in a real browser, on both builds: the served app (`panel serve`, as
tests/test_webapp_browser.py drives it) and the static site (Pyodide in the page's worker,
WebGPU on SwiftShader, as tests/test_browser_site.py drives it). Each test runs the same
user flow on each build: the network drawn as it trains (hover and click on a unit), the
contrasts each ending with a result card, CSV uploads (three text classes, a
regression target, each bad file's message) and the exported script reproducing the
page's accuracy. Conditions are waited on, never timings.

The static variants visit the one offline site the test run builds (tests/conftest.py's
`offline_site`; DEMYSTIFY_SITE names one already built) and are marked slow.
"""
# ruff: noqa: F811  (the server and browser fixtures come from test_webapp_browser)

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.test_webapp_browser import (  # noqa: F401  (fixtures)
    Visit,
    browser,
    server,
    server_process,
    text_of,
    wait_text,
)
from webapp.playground_experiments import EXPERIMENTS

pytestmark = pytest.mark.browser
ROOT = Path(__file__).resolve().parents[1]

# A signature of the network drawing's tile images (the one source with tiles in it).
TILES = """() => {
  for (const doc of Bokeh.documents) for (const m of doc.all_models) {
    const d = m.data;
    if (!d || !d.image || !d.x || !d.image.length || d.image.length < 4) continue;
    let sum = 0;
    for (const img of d.image) {
      const a = img.data || img;
      for (let i = 0; i < a.length; i += 7) sum = (sum + a[i]) % 1000000007;
    }
    return sum + ":" + d.image.length;
  }
  return null;
}"""

# Client coordinates of hidden unit `index`'s tile centre in "the network" figure.
UNIT_XY = """(index) => {
  const views = [];
  const walk = (v) => {
    if (!v) return;
    if (v.frame && v.model && v.model.title) views.push(v);
    if (v.child_views) for (const c of v.child_views) walk(c);
  };
  for (const r of Object.values(Bokeh.index)) walk(r);
  for (const v of views) {
    if (v.model.title.text !== "the network") continue;
    for (const r of v.model.renderers) {
      const d = r.data_source && r.data_source.data;
      if (!d || !d.name || d.name.length <= index) continue;
      v.el.scrollIntoView({block: "center"});
      const box = v.el.getBoundingClientRect();
      return {x: box.left + v.frame.x_scale.compute(d.x[index]),
              y: box.top + v.frame.y_scale.compute(d.y[index]), name: d.name[index]};
    }
  }
  return null;
}"""

TOOLTIPS = """() => {
  const out = [];
  const walk = (n) => {
    if (n.shadowRoot) walk(n.shadowRoot);
    for (const c of n.children || []) {
      if (String(c.className || "").includes("tooltip")) out.push(c.textContent);
      walk(c);
    }
  };
  walk(document.body);
  return out.join(" ");
}"""

TITLES = """() => {
  const out = [];
  for (const doc of Bokeh.documents) for (const m of doc.all_models)
    if (m.type === "Title") out.push(m.text);
  return out;
}"""


# -- the two builds --------------------------------------------------------------------------

@dataclass
class Build:
    """How to open the Playground on one build, and how long one interaction may take."""

    name: str                          # "served" or "static"
    open: Callable[[str], Any]         # URL query ("?data=xor") -> a visit, page live
    step_s: float                      # one click's answer (a run's epoch, an upload)
    run_s: float                       # one whole training run


@pytest.fixture(scope="module")
def static_site(offline_site) -> Iterator[str]:
    """The offline static build (tests/conftest.py: one per test run) on loopback."""
    from tests.site_helpers import serve

    with serve(offline_site) as url:
        yield url


@pytest.fixture(scope="module", params=["served", pytest.param("static", marks=pytest.mark.slow)])
def build(request) -> Iterator[Build]:
    if request.param == "served":
        base, chrome = request.getfixturevalue("server"), request.getfixturevalue("browser")
        yield Build("served", lambda query: Visit(chrome, base, "/playground" + query),
                    step_s=60, run_s=240)
        return
    base = request.getfixturevalue("static_site")
    from tests.site_helpers import Visit as SiteVisit

    # the module's one Chromium (WebGPU on SwiftShader): one Playwright per process
    context = request.getfixturevalue("browser").new_context(
        viewport={"width": 1280, "height": 900}, accept_downloads=True)
    context.route("**/*", lambda r: r.continue_() if r.request.url.startswith(
        (base, "data:", "blob:")) else r.abort())  # offline: nothing else answers

    def open_(query: str) -> Any:
        v = SiteVisit(context, base, "playground.html" + query)
        try:
            load = v.ready()
        except BaseException:
            v.close()
            raise
        assert load["webgpu"] is True, load  # the GPU side of the contrasts
        return v

    yield Build("static", open_, step_s=180, run_s=600)
    context.close()


@pytest.fixture
def visit(build: Build) -> Iterator[Callable[[str], Any]]:
    """Opens the Playground with a URL query on this test's build; closes it afterwards
    (its session ends, so no run outlives its test)."""
    opened: list[Any] = []

    def open_(query: str) -> Any:
        opened.append(build.open(query))
        return opened[-1]

    yield open_
    for v in opened:
        v.close()


def train(page: Any, timeout_s: float) -> str:
    page.locator(".train-button button").click()
    done = wait_text(page, ".run-status", r"finished|failed|cancelled|diverged",
                     timeout_s=timeout_s)
    assert "finished" in done, done
    return done


def metric(text: str) -> tuple[str, float]:
    m = re.search(r"(test accuracy|test MSE): ([0-9.]+)", text)
    assert m, text
    return m.group(0), float(m.group(2))


def test_the_network_is_drawn_as_it_trains(build, visit):
    # batch 1 for 300 epochs: minutes of steps; Cancel follows the third drawing at once
    # (hovering and clicking a unit first let a loaded machine's run finish before it)
    v = visit("?data=circle&epochs=300&batch=1&width=6&depth=2")
    page = v.page
    page.locator(".train-button button").click()
    seen: set[str] = set()
    deadline = time.monotonic() + build.run_s
    while len(seen) < 3:  # three different drawings while the status says it is training
        assert time.monotonic() < deadline, f"the tiles changed {len(seen)} times"
        sig = page.evaluate(TILES)
        if sig is not None and re.search(r"epoch \d+/300", text_of(page, ".run-status")):
            seen.add(sig)
        page.wait_for_timeout(100)
    page.locator(".cancel-button button").click()
    assert "cancelled" in wait_text(page, ".run-status", r"cancelled|finished", build.step_s)
    xy = page.evaluate(UNIT_XY, 0)
    assert xy["name"].startswith("hidden layer 1, unit 1")
    page.mouse.move(xy["x"], xy["y"])
    page.wait_for_function(f"() => ({TOOLTIPS})().includes('values on the training rows')")
    assert re.search(r"state: (active|dead)", page.evaluate(TOOLTIPS))
    page.mouse.click(xy["x"], xy["y"])
    info = wait_text(page, ".unit-info", r"hidden layer 1, unit 1 \(ReLU\): values",
                     build.step_s)
    assert "on the training rows" in info
    v.check(f"playground_network_{build.name}")


# The served build runs the three spiral contrasts (seconds each), the static build the two
# MNIST ones, the GPU side included. Each recipe is the same Python on both builds; each
# build's wiring (click -> two runs -> card -> buttons back) is proven on its own share,
# and running all five on both cost CI about two minutes more.
SERVED_CONTRASTS = ("activation", "init", "optimizer")


def test_each_contrast_ends_with_a_result_card(build, visit):
    v = visit("?tab=contrasts")
    page = v.page
    keys = [k for k in EXPERIMENTS if (k in SERVED_CONTRASTS) == (build.name == "served")]
    for key in keys:
        exp = EXPERIMENTS[key]
        page.locator(f".exp-{key} button").click()
        card = page.locator(f".result-card[data-experiment={key}]")
        card.wait_for(timeout=2 * build.run_s * 1000)
        text = card.inner_text()
        assert exp.title in text and text.count("test accuracy in") == 2, text
        assert re.search(r"(more accurate|won by|same accuracy|faster|no GPU here)", text)
        page.locator(f".exp-{key} button:not([disabled])").wait_for(
            timeout=build.step_s * 1000)
    assert page.locator(".result-card").count() == len(keys)
    if build.name == "static":  # the page has WebGPU (SwiftShader): its GPU side ran there
        device = page.locator(".result-card[data-experiment=device]").inner_text()
        assert "CPU (NumPy)" in device
        assert "no GPU here" not in device and "on GPU (" in device, device
    v.check(f"playground_contrasts_{build.name}")


def write_csv(path: Path, header: str, rows: list[str]) -> Path:
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def test_a_csv_with_three_text_classes_trains_to_a_good_accuracy(build, visit, tmp_path):
    rng = np.random.default_rng(1)
    names = ["setosa", "versicolor", "virginica"]
    rows = [f"{rng.normal(2 * (i % 3), 0.4):.3f},{rng.normal(-1.5 * (i % 3), 0.4):.3f},"
            f"{rng.normal(0, 1):.3f},{names[i % 3]}" for i in range(240)]
    path = write_csv(tmp_path / "flowers.csv", "sepal,petal,noise,species", rows)
    v = visit("?epochs=30")
    page = v.page
    page.locator("input[type=file]").set_input_files(str(path))
    info = wait_text(page, ".csv-info", r"3 classes", build.step_s)
    assert "setosa, versicolor, virginica" in info and "detected" in info
    done = train(page, build.run_s)
    name, acc = metric(done)
    assert name.startswith("test accuracy") and acc >= 0.9, done
    assert "data=csv" in page.url
    wait_text(page, ".forest-result", r"Random forest", build.step_s)
    v.check(f"playground_csv_{build.name}")


def test_a_regression_csv_shows_a_regression_loss(build, visit, tmp_path):
    rng = np.random.default_rng(2)
    rows = [f"{a:.3f},{b:.3f},{np.sin(a) + 0.5 * b + rng.normal(0, 0.05):.4f}"
            for a, b in rng.uniform(-3, 3, (300, 2))]
    path = write_csv(tmp_path / "wave.csv", "a,b,height", rows)
    v = visit("?epochs=40")
    page = v.page
    page.locator("input[type=file]").set_input_files(str(path))
    assert "regression" in wait_text(page, ".csv-info", r"regression", build.step_s)
    done = train(page, build.run_s)
    name, mse = metric(done)
    assert name.startswith("test MSE") and mse < 0.5, done
    titles = page.evaluate(TITLES)
    assert any(t.startswith("validation loss (MSE)") for t in titles), titles
    v.check(f"playground_regression_{build.name}")


BAD_FILES = [
    ("noheader.csv", "1,2,a\n" * 12, r"no header: the first row \(1, 2, a\)"),
    ("letters.csv", "a,b,y\n" + "1,2,x\n" * 4 + "1,two,y\n" + "1,2,x\n" * 6,
     r"row 6, column 'b': 'two' is not a number"),
    ("holes.csv", "a,b,y\n" + "1,2,x\n" * 2 + "1,,y\n" + "1,2,x\n" * 8,
     r"row 4, column 'b' has a missing value"),
    ("oneclass.csv", "a,b,y\n" + "1,2,same\n" * 12, r"only one class \('same'\)"),
    ("huge.csv", "a,b,y\n" + "1,2,x\n" * 10_001,
     r"more than 10,000 data rows \(row 10002 is over the limit\)"),
]


def test_each_bad_csv_shows_its_message(build, visit, tmp_path):
    v = visit("")
    page = v.page
    for name, text, pattern in BAD_FILES:
        path = tmp_path / name
        path.write_text(text)
        page.locator("input[type=file]").set_input_files(str(path))
        wait_text(page, ".error-alert", rf"Could not use {re.escape(name)}: .*{pattern}",
                  build.step_s)
    v.check(f"playground_bad_csv_{build.name}")


def test_the_exported_script_runs_and_reproduces_the_accuracy(build, visit, tmp_path):
    v = visit("?data=xor&epochs=20&feats=%5B%22x1%22%2C%22x2%22%2C%22x1x2%22%5D")
    page = v.page
    done = train(page, build.run_s)
    line, _ = metric(done)
    downloads = ((".script-download", "model_engine.py"), (".torch-download", "model_torch.py"))
    for css, name in downloads:
        button = page.locator(f"{css} button:not([disabled])")
        button.wait_for(timeout=build.step_s * 1000)  # enabled once the run finished
        # the script is written on the page's side (server or worker), then sent over
        with page.expect_download(timeout=build.step_s * 1000) as download:
            button.click()
        path = tmp_path / name
        download.value.save_as(path)
        if name == "model_torch.py":
            pytest.importorskip("torch")
        out = subprocess.run([sys.executable, str(path)], capture_output=True, text=True,
                             cwd=ROOT, timeout=300)
        assert out.returncode == 0, out.stderr[-2000:]
        assert out.stdout.strip() == line, (name, out.stdout, line)
    v.check(f"playground_export_{build.name}")

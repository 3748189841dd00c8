"""The GPU kernels under Chrome's WebGPU (SwiftShader), in Pyodide's core runtime.

The host records every kernel family's dispatches through the real GpuBackend and computes
the expected values with the NumPy CpuBackend (`selftest.build_cases`). Headless Chromium
loads the Pyodide core runtime from the npm `pyodide` package (no NumPy in it) from a
loopback server, gets the engine's Device modules and shaders/*.wgsl written into
Pyodide's virtual filesystem, and replays the cases on `BrowserDevice` over
`navigator.gpu`: every kernel must compile and match there, not only under wgpu-native.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from engine.backends.gpu import selftest
from tests.browser_helpers import NODE_PYODIDE, ROOT, chromium, require, webgpu_adapter
from tests.data_helpers import LocalServer

pytestmark = pytest.mark.browser

GPU_DIR = ROOT / "engine" / "backends" / "gpu"
MODULES = ("device.py", "browser.py", "selftest.py")

HARNESS = """<!doctype html><meta charset="utf-8"><title>kernel parity</title>
<script src="pyodide/pyodide.js"></script>
<script>
async function runSelftest(coverage = true) {
  const t0 = performance.now();
  const py = await loadPyodide({indexURL: new URL("pyodide/", location.href).href});
  const files = await (await fetch("files.json")).json();
  for (const [path, text] of Object.entries(files)) {
    py.FS.mkdirTree(path.substring(0, path.lastIndexOf("/")));
    py.FS.writeFile(path, text);
  }
  py.globals.set("CASES", await (await fetch("cases.json")).text());
  py.globals.set("SHADERS", await (await fetch("shaders.json")).text());
  py.globals.set("COVERAGE", coverage);
  const t1 = performance.now();
  const out = await py.runPythonAsync(`
import importlib.util, json, sys
sys.path.insert(0, "/home/pyodide/selftest")
assert importlib.util.find_spec("numpy") is None, "expected the NumPy-free core runtime"
from gpu import selftest
report = json.loads(await selftest.browser_main(CASES, SHADERS, COVERAGE))
report["numpy_imported"] = "numpy" in sys.modules
report["python"] = sys.version.split()[0]
json.dumps(report)
`);
  const report = JSON.parse(out);
  report.start_s = t0 / 1000;  // since the page was opened (navigation start)
  report.load_s = (t1 - t0) / 1000;
  report.run_s = (performance.now() - t1) / 1000;
  report.done_s = performance.now() / 1000;
  return report;
}
if (location.hash === "#auto") {  // cold start: begin as soon as the page opens
  runSelftest(false).then(r => window.__report = r, e => window.__report = {error: String(e)});
}
</script>"""


def replay_in_chromium(tmp_path: Path, cases: list[dict[str, Any]], auto: bool = False
                       ) -> tuple[dict[str, Any], str, list[str], float]:
    """Serve the harness, the Device modules, shaders and `cases` on loopback and replay
    the cases in headless Chromium. `auto` opens the page with #auto, so the replay starts
    at page open (cold start) and checks no entry-point coverage. Returns (report,
    adapter, console lines, wall seconds)."""
    require((NODE_PYODIDE / "pyodide.js").is_file(),
            f"the npm pyodide package is not installed ({NODE_PYODIDE} missing; run `npm ci` "
            "in the repository root)")
    site = tmp_path / "site"
    site.mkdir()
    (site / "pyodide").symlink_to(NODE_PYODIDE, target_is_directory=True)
    files = {f"/home/pyodide/selftest/gpu/{m}": (GPU_DIR / m).read_text() for m in MODULES}
    files["/home/pyodide/selftest/gpu/__init__.py"] = ""
    (site / "files.json").write_text(json.dumps(files))
    (site / "shaders.json").write_text(json.dumps(SHADERS))
    (site / "cases.json").write_text(json.dumps(cases))
    (site / "index.html").write_text(HARNESS)
    server = LocalServer(site)
    try:
        with chromium() as browser:
            page = browser.new_page()
            console: list[str] = []
            page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
            t0 = time.perf_counter()
            if auto:
                page.goto(server.url + "index.html#auto")
                page.wait_for_function("window.__report !== undefined", timeout=300_000)
                report = page.evaluate("window.__report")
                wall = time.perf_counter() - t0
                adapter = webgpu_adapter(page)
            else:
                page.goto(server.url + "index.html")
                adapter = webgpu_adapter(page)
                t0 = time.perf_counter()
                report = page.evaluate("runSelftest()")
                wall = time.perf_counter() - t0
    finally:
        server.close()
    assert "error" not in report, report.get("error", "") + "\n" + "\n".join(console[-20:])
    assert not report["numpy_imported"], "the Device modules imported NumPy"
    return report, adapter, console, wall


SHADERS = {p.stem: p.read_text() for p in sorted((ROOT / "shaders").glob("*.wgsl"))}


def test_kernel_parity_in_chromium_webgpu(tmp_path, capsys):
    cases = selftest.build_cases()
    report, adapter, console, wall = replay_in_chromium(tmp_path, cases)
    assert report["failures"] == [], "\n".join(report["failures"] + console[-20:])
    assert report["passed"] == report["cases"] == len(cases)
    if report["jspi"]:  # Chrome 137+: Tensor.numpy() works in the page without blocking it
        assert report["sync_read"], "synchronous readback through run_sync failed"
    assert report["entry_points"] == sum(len(selftest.entry_points(s))
                                         for s in SHADERS.values())
    with capsys.disabled():
        print(f"\nbrowser kernel parity: {report['passed']}/{report['cases']} cases, "
              f"{report['kernels']} pipelines over {report['entry_points']} entry points, "
              f"adapter {adapter!r} ({report['adapter']}), Pyodide Python "
              f"{report['python']}, JSPI sync readback {report['jspi']}; load "
              f"{report['load_s']:.1f}s, run {report['run_s']:.1f}s, wall {wall:.1f}s")


def test_shipped_lenet5_reads_a_drawn_digit_on_chromium_webgpu(tmp_path, capsys):
    """The shipped LeNet-5 (loaded from its ONNX file by the engine, as the Digits page
    does) reads a drawn 7 on Chrome's WebGPU: the host records every upload and dispatch
    the GpuBackend issues for the forward pass, the page replays them from a cold start
    and reads back the logits. Also the cold-start figure: page open -> prediction."""
    import numpy as np

    import engine
    import engine.onnx
    from engine.data.transforms import mnist_preprocess
    from tests.test_shipped_models import draw

    x = mnist_preprocess(draw([[(70, 60), (210, 60), (120, 240)]]))[None, None]

    def forward(device: str) -> engine.Tensor:
        model = engine.onnx.load(ROOT / "webapp" / "models" / "lenet5.onnx", device=device)
        with engine.no_grad():
            return model(engine.Tensor(x, device=device))

    case = selftest.record_tensors("lenet5 drawn 7", forward, atol=1e-4, report=True)
    shaders = {op[1] for op in case["ops"] if op[0] == "dispatch"}
    assert {"conv2d", "pooling", "matmul"} <= shaders, shaders  # the GPU path, not a copy
    report, adapter, console, wall = replay_in_chromium(tmp_path, [case], auto=True)
    assert report["failures"] == [], "\n".join(report["failures"] + console[-20:])
    logits = report["values"]["lenet5 drawn 7"][0]
    assert len(logits) == 10 and int(np.argmax(logits)) == 7, logits
    with capsys.disabled():
        print(f"\nLeNet-5 on Chrome WebGPU ({adapter!r}): drawn 7 -> {int(np.argmax(logits))}; "
              f"{sum(op[0] == 'dispatch' for op in case['ops'])} dispatches; cold start "
              f"page open -> prediction {report['done_s']:.1f}s (Pyodide "
              f"{report['load_s']:.1f}s, {report['kernels']} pipelines compiled in "
              f"{report['compile_s']:.2f}s, replay + readback {report['replay_s']:.2f}s)")

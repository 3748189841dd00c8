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
async function runSelftest() {
  const t0 = performance.now();
  const py = await loadPyodide({indexURL: new URL("pyodide/", location.href).href});
  const files = await (await fetch("files.json")).json();
  for (const [path, text] of Object.entries(files)) {
    py.FS.mkdirTree(path.substring(0, path.lastIndexOf("/")));
    py.FS.writeFile(path, text);
  }
  py.globals.set("CASES", await (await fetch("cases.json")).text());
  py.globals.set("SHADERS", await (await fetch("shaders.json")).text());
  const t1 = performance.now();
  const out = await py.runPythonAsync(`
import importlib.util, json, sys
sys.path.insert(0, "/home/pyodide/selftest")
assert importlib.util.find_spec("numpy") is None, "expected the NumPy-free core runtime"
from gpu import selftest
report = json.loads(await selftest.browser_main(CASES, SHADERS))
report["numpy_imported"] = "numpy" in sys.modules
report["python"] = sys.version.split()[0]
json.dumps(report)
`);
  const report = JSON.parse(out);
  report.load_s = (t1 - t0) / 1000;
  report.run_s = (performance.now() - t1) / 1000;
  return report;
}
</script>"""


def test_kernel_parity_in_chromium_webgpu(tmp_path, capsys):
    require((NODE_PYODIDE / "pyodide.js").is_file(),
            f"the npm pyodide package is not installed ({NODE_PYODIDE} missing; run `npm ci` "
            "in the repository root)")
    cases = selftest.build_cases()
    site = tmp_path / "site"
    site.mkdir()
    (site / "pyodide").symlink_to(NODE_PYODIDE, target_is_directory=True)
    files = {f"/home/pyodide/selftest/gpu/{m}": (GPU_DIR / m).read_text() for m in MODULES}
    files["/home/pyodide/selftest/gpu/__init__.py"] = ""
    shaders = {p.stem: p.read_text() for p in sorted((ROOT / "shaders").glob("*.wgsl"))}
    (site / "files.json").write_text(json.dumps(files))
    (site / "shaders.json").write_text(json.dumps(shaders))
    (site / "cases.json").write_text(json.dumps(cases))
    (site / "index.html").write_text(HARNESS)
    server = LocalServer(site)
    try:
        with chromium() as browser:
            page = browser.new_page()
            console: list[str] = []
            page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
            page.goto(server.url + "index.html")
            adapter = webgpu_adapter(page)
            t0 = time.perf_counter()
            report = page.evaluate("runSelftest()")
            wall = time.perf_counter() - t0
    finally:
        server.close()
    assert not report["numpy_imported"], "the Device modules imported NumPy"
    assert report["failures"] == [], "\n".join(report["failures"] + console[-20:])
    assert report["passed"] == report["cases"] == len(cases)
    if report["jspi"]:  # Chrome 137+: Tensor.numpy() works in the page without blocking it
        assert report["sync_read"], "synchronous readback through run_sync failed"
    assert report["entry_points"] == sum(len(selftest.entry_points(s))
                                         for s in shaders.values())
    with capsys.disabled():
        print(f"\nbrowser kernel parity: {report['passed']}/{report['cases']} cases, "
              f"{report['kernels']} pipelines over {report['entry_points']} entry points, "
              f"adapter {adapter!r} ({report['adapter']}), Pyodide Python "
              f"{report['python']}, JSPI sync readback {report['jspi']}; load "
              f"{report['load_s']:.1f}s, run {report['run_s']:.1f}s, wall {wall:.1f}s")

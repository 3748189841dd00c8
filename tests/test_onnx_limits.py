"""Hostile ONNX files cannot exhaust the loader: tiny files that expand at load or run time,
millions of empty nodes, reports that would list them all, names a megabyte long.

Every crafted file is built here with onnx.helper (or, for the 10-million-node file, by
appending raw protobuf bytes to one). The ones that would allocate gigabytes run in a
subprocess under an address-space cap (`resource.setrlimit(RLIMIT_AS)`): there, a missing
check shows up as a MemoryError instead of the `LimitError` naming the node, the shape and
the limit. A fuzzer over amplifying ops runs under the same cap.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import engine.onnx as eo
from engine.onnx import limits as onnx_limits

ROOT = Path(__file__).resolve().parents[1]
CAP_MB = 1024  # address space for the capped child: ~270 MB is Python, NumPy and Panel
N = helper.make_node


def model(nodes, inits=(), inputs=(("x", [1, 4]),), out="y") -> bytes:
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs],
        [helper.make_tensor_value_info(out, TensorProto.FLOAT, None)], list(inits))
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return m.SerializeToString()


def ints(name: str, values) -> TensorProto:
    return numpy_helper.from_array(np.array(values, np.int64), name)


def int_fill() -> TensorProto:
    return helper.make_tensor("v", TensorProto.INT64, [1], [0])


# -- the crafted files (finding 1) --------------------------------------------------------

CRAFTED = {
    # 200 bytes: Gather of 65536 indices into a (1, 16384) ConstantOfShape -> 4 GiB
    "gather": (model([N("ConstantOfShape", ["s1"], ["d"], name="rows"),
                      N("ConstantOfShape", ["s2"], ["i"], value=int_fill(), name="idx"),
                      N("Gather", ["d", "i"], ["y"], axis=0, name="gather")],
                     [ints("s1", [1, 16384]), ints("s2", [65536])]),
               "gather", "(65,536, 16,384)", "max_elements"),
    # an Add of (65536, 1) and (1, 65536) -> 16 GiB
    "add": (model([N("ConstantOfShape", ["s1"], ["a"]), N("ConstantOfShape", ["s2"], ["b"]),
                   N("Add", ["a", "b"], ["y"], name="outer sum")],
                  [ints("s1", [65536, 1]), ints("s2", [1, 65536])]),
            "outer sum", "(65,536, 65,536)", "max_elements"),
    "matmul": (model([N("ConstantOfShape", ["s1"], ["a"]), N("ConstantOfShape", ["s2"], ["b"]),
                      N("MatMul", ["a", "b"], ["y"], name="outer product")],
                     [ints("s1", [65536, 1]), ints("s2", [1, 65536])]),
               "outer product", "(65,536, 65,536)", "max_elements"),
    # the same 64 MB block concatenated 64 times -> 4 GiB
    "concat": (model([N("ConstantOfShape", ["s1"], ["a"]),
                      N("Concat", ["a"] * 64, ["y"], axis=0, name="cat")],
                     [ints("s1", [1 << 24])]),
               "cat", "(1,073,741,824,)", "max_elements"),
    # each value fits, together they do not: ten 128 MB folded values
    "chain": (model([N("ConstantOfShape", ["s1"], ["v0"])]
                    + [N("Relu", [f"v{i}"], [f"v{i + 1}"], name=f"relu{i}") for i in range(9)]
                    + [N("Sum", [f"v{i}" for i in range(10)], ["y"])],
                    [ints("s1", [1 << 25])]),
              "relu", "(33,554,432,)", "max_const_bytes"),
    # a 1 GiB constant: one tensor under max_elements, over the constants' budget
    "big constant": (model([N("ConstantOfShape", ["s1"], ["y"], name="fill")],
                           [ints("s1", [1 << 28])]),
                     "fill", "(268,435,456,)", "max_const_bytes"),
}

# found at run time (they depend on the input): shapes from the input, then a 4 GiB Add,
# and a chain of 256 MB values past the budget of one call
RUNTIME = {
    "runtime add": (model([N("ConstantOfShape", ["s"], ["b"]),
                           N("Add", ["x", "b"], ["y"], name="grow")],
                          [ints("s", [1, 65536])], inputs=(("x", ["n", 1]),)),
                    (65536, 1), "grow", "(65,536, 65,536)", "max_elements"),
    "runtime chain": (model([N("ConstantOfShape", ["s"], ["b"]),
                             N("Add", ["x", "b"], ["v0"])]
                            + [N("Relu", [f"v{i}"], [f"v{i + 1}"], name=f"r{i}")
                               for i in range(30)]
                            + [N("Identity", ["v30"], ["y"])],
                            [ints("s", [1, 8192])], inputs=(("x", ["n", 1]),)),
                      (8192, 1), "r", "(8,192, 8,192)", "max_run_bytes"),
}

CHILD = """
import json, resource, sys
cap = {cap} << 20
resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
import numpy as np
import engine.onnx as eo
from webapp import engine_page
files = json.load(open(sys.argv[1]))
for name, (path, shape) in files.items():
    data = open(path, "rb").read()
    for where in ("load", "page"):
        try:
            if where == "page":
                engine_page.run_onnx(data)
            else:
                m = eo.load(data, device="cpu")
                if shape:
                    m(np.zeros(shape, np.float32))
            out = ("ran", "")
        except Exception as exc:  # noqa: BLE001
            out = (type(exc).__name__, str(exc))
        print(json.dumps([name, where, *out]), flush=True)
peak = int(open("/proc/self/status").read().split("VmHWM:")[1].split()[0]) // 1024
print(json.dumps(["peak", peak]), flush=True)
"""


def run_capped(files: dict[str, tuple[bytes, tuple | None]], tmp_path: Path,
               code: str = CHILD) -> list:
    listing = {}
    for i, (name, (data, shape)) in enumerate(files.items()):
        path = tmp_path / f"{i}.onnx"
        path.write_bytes(data)
        listing[name] = (str(path), shape)
    (tmp_path / "files.json").write_text(json.dumps(listing))
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", code.format(cap=CAP_MB),
                          str(tmp_path / "files.json")], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("[")]


def test_expanding_files_are_refused_before_allocating(tmp_path):
    """Finding 1: a few hundred bytes asking for 1 to 16 GiB, at load and at run time,
    through the library and through the Engine page, under a 1 GiB address-space cap.
    Every one is a LimitError naming the node, the shape and the limit."""
    files = {name: (data, None) for name, (data, *_) in CRAFTED.items()}
    files.update({name: (data, shape) for name, (data, shape, *_) in RUNTIME.items()})
    assert max(len(d) for d, _ in files.values()) < 1000  # tiny files
    rows = run_capped(files, tmp_path)
    peak = rows.pop()[1]
    expect = {name: rest for name, (_, *rest) in CRAFTED.items()}
    expect.update({name: rest for name, (_, _, *rest) in RUNTIME.items()})
    seen = set()
    for name, where, kind, message in rows:
        node, shape, field = expect[name]
        seen.add((name, where))
        if where == "page" and name in RUNTIME:
            # the page runs a model on its own example input: refused or not, no MemoryError
            assert kind in ("ran", "LimitError"), (name, kind, message)
            continue
        assert kind == "LimitError", (name, where, kind, message)
        assert message.startswith("node '") and "Limits." in message, message
        assert len(message) < 600, message
        if where == "load":  # the library's limits: exactly this node, shape and limit
            assert message.startswith(f"node '{node}"), message
            assert shape in message and f"Limits.{field}" in message, message
    assert len(seen) == 2 * len(files)
    assert peak < CAP_MB, peak


def test_page_limits_are_tighter_than_the_librarys():
    from webapp.common import onnx_limits

    page, lib = onnx_limits(), eo.Limits()
    for field in ("max_bytes", "max_messages", "max_values", "max_nodes", "max_elements",
                  "max_const_bytes", "max_run_bytes"):
        assert getattr(page, field) <= getattr(lib, field), field
    with pytest.raises(eo.LimitError, match=r"node 'grow' \(Add\): a tensor of shape "
                       r"\(1,024, 65,536\) \(256.0 MB\).*limit of 1,000 bytes "
                       r"\(Limits.max_run_bytes\)"):
        tiny = eo.Limits(max_run_bytes=1000)
        eo.load(RUNTIME["runtime add"][0], device="cpu", limits=tiny)(
            np.zeros((1024, 1), np.float32))


# -- millions of nodes, bounded reports (finding 2) -----------------------------------------

def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def many_nodes(count: int, node: bytes = b"") -> bytes:
    """A valid model plus `count` extra nodes appended as raw protobuf (protobuf merges
    repeated fields), as a hostile writer would: NodeProto bytes `node` each."""
    graph = helper.make_graph([N("Relu", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    body = graph.SerializeToString() + (b"\x0a" + _varint(len(node)) + node) * count
    m.ClearField("graph")
    return m.SerializeToString() + b"\x3a" + _varint(len(body)) + body


def test_ten_million_empty_nodes_stop_at_the_message_budget():
    """Finding 2: 20 MB of empty nodes once took 95 s and 5.1 GB and then listed all
    10.5 million in an error; the reader now stops at its message budget."""
    data = many_nodes(10_500_000)
    assert len(data) > 20 * 2**20
    with pytest.raises(eo.LimitError, match=r"more than 1,000,000 protobuf messages.*"
                       r"Limits.max_messages") as err:
        eo.load(data, device="cpu", max_bytes=32 * 2**20)
    assert len(str(err.value)) < 300
    from webapp import engine_page

    page_sized = many_nodes(9_500_000)  # under the page's 20 MB upload limit
    with pytest.raises(eo.LimitError, match=r"200,000 protobuf messages"):
        engine_page.run_onnx(page_sized)


def test_many_unsupported_nodes_are_counted_not_all_listed():
    op = b"\x22\x03Foo" + b"\x1a\x01n"  # op_type "Foo", name "n"
    data = many_nodes(60_000, op)
    with pytest.raises(eo.UnsupportedOpError) as err:
        eo.load(data, device="cpu")
    msg = str(err.value)
    assert "60,000 node(s)" in msg and "… and 59,980 more" in msg, msg[:500]
    assert len(msg.splitlines()) < 30 and len(msg) < 5000
    assert len(err.value.ops) == 60_000  # the exception still holds every offender
    info = eo.describe(data)
    assert info["unsupported_count"] == 60_000 and len(info["unsupported"]) == 20
    from engine.onnx.info import format_description

    report = format_description(info)
    assert "NO, 60,000 unsupported node(s)" in report and "… and 59,980 more" in report
    assert len(report.splitlines()) < 60
    with pytest.raises(eo.LimitError, match=r"60,001 nodes, over the limit of 10,000"):
        eo.load(data, device="cpu", limits=eo.Limits(max_nodes=10_000))


def test_long_names_are_cut_in_messages():
    name = "A" * 1_000_000
    data = model([N("Celu", ["x"], ["y"], name=name)])
    with pytest.raises(eo.UnsupportedOpError) as err:
        eo.load(data, device="cpu")
    assert len(str(err.value)) < 2000 and "(1,000,000 characters)" in str(err.value)
    assert onnx_limits.listed(list(range(25))).endswith("19, … and 5 more")


def test_numbers_stored_one_by_one_are_budgeted():
    """Tensor data as float_data / int64_data (Python numbers, ~30 bytes each once read)
    counts against max_values; raw_data (one bytes object) does not."""
    vals = np.zeros(300_000, np.float32)
    packed = helper.make_tensor("w", TensorProto.FLOAT, [len(vals)], vals)  # float_data
    data = model([N("Identity", ["w"], ["y"])], [packed])
    with pytest.raises(eo.LimitError, match="Limits.max_values"):
        eo.load(data, device="cpu", limits=eo.Limits(max_values=200_000))
    raw = numpy_helper.from_array(vals, "w")
    eo.load(model([N("Identity", ["w"], ["y"])], [raw]), device="cpu",
            limits=eo.Limits(max_values=200_000))


# -- a fuzzer over amplifying ops, under the cap ------------------------------------------

FUZZ_CHILD = """
import json, resource, sys
cap = {cap} << 20
resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
import numpy as np
from onnx import TensorProto, helper, numpy_helper
import engine.onnx as eo

N = helper.make_node
OPS2 = ["Add", "Mul", "Sub", "MatMul", "Concat", "Where", "Max", "Sum", "Gather", "Expand",
        "Pow"]
limits = eo.Limits(max_elements=1 << 23, max_const_bytes=128 << 20, max_run_bytes=192 << 20)
rng = np.random.default_rng(int(sys.argv[1]))
outcomes = {{}}
for case in range(int(sys.argv[2])):
    dims = lambda: [int(2 ** rng.integers(0, 17)) for _ in range(rng.integers(1, 4))]
    inits = [numpy_helper.from_array(np.array(dims(), np.int64), f"s{{i}}") for i in range(3)]
    nodes = [N("ConstantOfShape", [f"s{{i}}"], [f"c{{i}}"]) for i in range(3)]
    names = ["x", "c0", "c1", "c2"]
    for k in range(int(rng.integers(1, 8))):
        op = str(rng.choice(OPS2))
        a, b = (str(rng.choice(names)) for _ in range(2))
        ins = {{"Where": [a, a, b], "Concat": [a] * int(rng.integers(1, 40)),
               "Gather": [a, "idx"], "Expand": [a, f"s{{k % 3}}"]}}.get(op, [a, b])
        attrs = {{"axis": 0}} if op in ("Concat", "Gather") else {{}}
        nodes.append(N(op, ins, [f"v{{k}}"], name=f"{{op}}{{k}}", **attrs))
        names.append(f"v{{k}}")
    nodes.append(N("Identity", [names[-1]], ["y"]))
    inits.append(numpy_helper.from_array(
        np.zeros(int(2 ** rng.integers(0, 17)), np.int64), "idx"))
    graph = helper.make_graph(nodes, "fuzz",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["a", "b"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    try:
        model = eo.load(m.SerializeToString(), device="cpu", limits=limits)
        model(np.zeros([int(2 ** rng.integers(0, 13)), 1], np.float32))
        kind = "ran"
    except eo.OnnxError as exc:
        kind = type(exc).__name__
    except MemoryError as exc:
        kind = "MemoryError"
    outcomes[kind] = outcomes.get(kind, 0) + 1
peak = int(open("/proc/self/status").read().split("VmHWM:")[1].split()[0]) // 1024
print(json.dumps({{"outcomes": outcomes, "peak": peak}}))
"""


def test_fuzzed_amplifying_graphs_stay_within_the_budget():
    """Random graphs of broadcasting, MatMul, Concat, Gather and Expand over big
    ConstantOfShape values and the input: each loads and runs within the limits or is
    refused with an OnnxError, and the child never passes the cap (no MemoryError)."""
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(FUZZ_CHILD).format(cap=CAP_MB),
                          "13", "300"], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.splitlines()[-1])
    outcomes = result["outcomes"]
    assert "MemoryError" not in outcomes, outcomes
    assert set(outcomes) <= {"ran", "LimitError", "ExecutionError", "ModelFileError"}, outcomes
    assert outcomes.get("LimitError", 0) >= 30 and outcomes.get("ran", 0) >= 10, outcomes
    assert result["peak"] < CAP_MB


# -- the same budget in the browser build ----------------------------------------------------

PYODIDE_HARNESS = """<!doctype html><meta charset="utf-8"><title>onnx limits</title>
<script src="pyodide/pyodide.js"></script>
<script>
async function run() {
  const py = await loadPyodide({indexURL: new URL("pyodide/", location.href).href});
  await py.loadPackage("numpy");
  const files = await (await fetch("files.json")).json();
  for (const [path, text] of Object.entries(files)) {
    py.FS.mkdirTree(path.substring(0, path.lastIndexOf("/")));
    py.FS.writeFile(path, text);
  }
  py.globals.set("CASES", await (await fetch("cases.json")).text());
  return await py.runPythonAsync(`
import base64, json, sys
sys.path.insert(0, "/home/pyodide/app")
import numpy as np
import engine.onnx as eo
assert sys.platform == "emscripten" and "onnx" not in sys.modules
out = {}
for name, (data, shape, limits) in json.loads(CASES).items():
    try:
        m = eo.load(base64.b64decode(data), device="cpu", limits=eo.Limits(**limits))
        if shape:
            m(np.zeros(shape, np.float32))
        out[name] = ["ran", ""]
    except eo.OnnxError as exc:
        out[name] = [type(exc).__name__, str(exc)]
json.dumps(out)
`);
}
</script>"""


@pytest.mark.browser
def test_the_budget_holds_in_pyodide(tmp_path):
    """The browser build runs this loader unchanged (the wire reader, no onnx package):
    the crafted files meet the same limits in Pyodide in headless Chromium."""
    import base64
    import dataclasses

    from tests.browser_helpers import chromium, require
    from tests.data_helpers import LocalServer
    from webapp.common import onnx_limits

    dist = os.environ.get("PYODIDE_DIST")
    if not dist or not (Path(dist) / "pyodide.js").is_file():
        pytest.skip("PYODIDE_DIST is not set: this test needs a full Pyodide distribution "
                    "(with NumPy)")
    page_limits = dataclasses.asdict(onnx_limits())
    cases = {name: (base64.b64encode(data).decode(), None, page_limits)
             for name, (data, *_) in CRAFTED.items()}
    cases.update({name: (base64.b64encode(data).decode(), shape, page_limits)
                  for name, (data, shape, *_) in RUNTIME.items()})
    cases["nodes"] = (base64.b64encode(many_nodes(1_000_000)).decode(), None, page_limits)
    cases["lenet"] = (base64.b64encode((ROOT / "webapp" / "models" / "lenet5.onnx")
                                       .read_bytes()).decode(), (1, 1, 28, 28), page_limits)
    site = tmp_path / "site"
    site.mkdir()
    (site / "pyodide").symlink_to(Path(dist), target_is_directory=True)
    files = {f"/home/pyodide/app/{p.relative_to(ROOT).as_posix()}": p.read_text()
             for p in sorted((ROOT / "engine").rglob("*.py"))}
    (site / "files.json").write_text(json.dumps(files))
    (site / "cases.json").write_text(json.dumps(cases))
    (site / "index.html").write_text(PYODIDE_HARNESS)
    server = LocalServer(site)
    try:
        with chromium() as browser:
            page = browser.new_page()
            console: list[str] = []
            page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
            page.goto(server.url + "index.html")
            page.set_default_timeout(300_000)
            out = json.loads(page.evaluate("run()"))
    finally:
        server.close()
    require(out, "\n".join(console[-20:]))
    assert out.pop("lenet") == ["ran", ""]
    kind, message = out.pop("nodes")
    assert kind == "LimitError" and "200,000 protobuf messages" in message, message
    for name, (kind, message) in out.items():
        assert kind == "LimitError" and message.startswith("node '"), (name, kind, message)
        assert "Limits." in message, message

"""ONNX's own backend node tests (`onnx.backend.test`) run against the engine.

The adapter (`engine.onnx.backend.EngineBackend`) loads each test model with
`engine.onnx.load` and runs it on the CPU. Every node test of every op in the table is
included; the exceptions below are features the engine does not have, each with its
reason. The test prints how many node tests pass.
"""

from __future__ import annotations

import re
import unittest
import warnings

import pytest

onnx_backend_test = pytest.importorskip("onnx.backend.test")

from engine.onnx.backend import EngineBackend  # noqa: E402
from engine.onnx.ops import OPS  # noqa: E402

EXCLUDED: dict[str, str] = {
    r"(?<![a-z])u?int(8|16)|uint(32|64)": "engine tensors are float32/float64/int32/int64/bool;"
                                          " 8/16-bit and unsigned integers are refused at load",
    r"float16|FLOAT16|BFLOAT16|FLOAT8|FLOAT4|INT4|INT2|UINT4|UINT2|e8m0":
        "half and low-precision float/int types are not engine dtypes",
    r"string|STRING": "string tensors",
    r"_3d_": "convolution and pooling are 1-D and 2-D only (the backend primitives are 2-D)",
    r"averagepool_2d_dilations": "AveragePool dilations (opset 19): the pool primitive has none",
    r"maxpool_with_argmax": "MaxPool's second output (Indices) is not supported",
    r"pow_types_int": "Pow is floating point only in the engine",
    r"batchnorm_.*training_mode": "training-mode BatchNormalization updates the running "
                                  "variance with the unbiased batch variance, as PyTorch "
                                  "does (the ONNX reference uses the biased one)",
    r"identity_(opt|sequence)|split_to_sequence": "optional and sequence types",
    r"(greater|less)_equal.*_expanded|range_.*_expanded":
        "the expanded form uses ops outside the table (Or, Loop)",
}


def _names(op: str) -> set[str]:
    snake = re.sub(r"(?<!^)(?=[A-Z])", "_", op).lower()
    return {snake, op.lower()} | ({"batchnorm"} if op == "BatchNormalization" else set()) \
        | ({"simple_rnn"} if op == "RNN" else set())


def test_onnx_node_conformance(capsys) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the generators warn about their own test data
        bt = onnx_backend_test.BackendTest(EngineBackend, __name__)
    for name in sorted({n for op in OPS for n in _names(op)}):
        bt.include(rf"^test_{name}(_.*)?_cpu$")
    for pattern in EXCLUDED:
        bt.exclude(pattern)
    suite = unittest.TestSuite()
    for case in bt.test_cases.values():
        suite.addTests(unittest.defaultTestLoader.loadTestsFromTestCase(case))
    with open("/dev/null", "w") as sink, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = unittest.TextTestRunner(stream=sink, verbosity=0).run(suite)
    passed = result.testsRun - len(result.failures) - len(result.errors) - len(result.skipped)
    with capsys.disabled():
        print(f"\nONNX node conformance: {passed} passed, {len(result.skipped)} not selected, "
              f"{len(EXCLUDED)} exclusion patterns")
    problems = [f"{t.id().rsplit('.', 1)[-1]}: {tb.strip().splitlines()[-1]}"
                for t, tb in result.failures + result.errors]
    assert not problems, "\n".join(problems[:40])
    assert passed >= 400

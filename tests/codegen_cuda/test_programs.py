"""codegen.cuda_runtime.CudaProgram: whole programs on a (simulated) CUDA device.

The programs of tests/codegen_cuda/_program_cases.py (an MLP training step with
cross-entropy and SGD momentum, one with MSE and plain SGD, LayerNorm forward and
backward, log_softmax with NLL, a program with a group that has no CUDA form) run in a
subprocess under Numba's CUDA simulator (conftest.py, _program_checks.py): outputs and
mutations must be the reference interpreter's. In this process, the nodes that run on
their reference implementations run on the NumPy-backed CuPy emulator
(tests/support/fake_cupy), whose arrays refuse implicit conversion to NumPy.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys

import numpy as np
import pytest

from codegen.cuda_runtime import CudaProgram, _conform
from ir.dtypes import float32
from ir.interpret import interpret
from ir.parser import parse
from ir.types import TensorType
from tests.codegen_cuda._program_cases import CASES
from tests.codegen_cuda.conftest import ROOT


@pytest.fixture(scope="module")
def results(cuda_checks) -> dict[str, dict]:
    return cuda_checks["programs"]


@pytest.mark.parametrize("name", sorted(CASES))
def test_programs_match_the_interpreter(results, name):
    result = results[name]
    assert not result["failures"], "\n".join(result["failures"])
    assert result["kernels"] > 0 and result["allocated"] > 0


def test_groups_without_a_cuda_form_run_node_by_node(results):
    result = results["group-without-cuda-form"]
    assert result["interpreted"] == 1 and result["kernels"] == 1
    # (the momentum step's bias group, sum(g, dim=0) beside buf * momentum, runs as kernels:
    # the nodes independent of the sum are computed in its finishing step)
    for name in ("layer-norm-forward-backward", "log-softmax-nll", "mlp-mse-sgd",
                 "mlp-cross-entropy-momentum"):
        assert results[name]["interpreted"] == 0, name


def test_linear_layers_run_their_epilogue_as_a_kernel(results):
    # addmm + relu (Linear then ReLU) and the gradient products with their SGD update:
    # the product on its reference implementation, the rest one elementwise kernel
    for name in ("mlp-mse-sgd", "mlp-cross-entropy-momentum"):
        assert results[name]["epilogue_kernels"] >= 2, name
        assert "_FusedStep" in results[name]["steps"]


def test_importing_the_runtime_needs_no_cuda_or_cupy():
    code = ("import sys, codegen.cuda_runtime; "
            "assert 'numba.cuda' not in sys.modules and 'cupy' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


REFERENCE_ONLY = """
graph f(%x: f32[4,6], %w: f32[5,6], %s: f64[] weak, %c: f32[5] const=[1, 2, 3, 4, 5]) {
  %0 = permute(%w)[dims=(1, 0)] : f32[6,5]
  %1 = matmul(%x, %0) : f32[4,5]
  %2 = mul(%1, %s) : f32[4,5]
  %3 = add(%2, %c) : f32[4,5]
  %4 = sum(%3)[dim=(0, 1), keepdim=False, dtype=None] : f32[]
  %5 = gt(%3, 0.0) : bool[4,5]
  return %3, %4, %5
}
"""


def test_reference_nodes_run_on_device_arrays():
    from tests.support.fake_cupy import FakeCupy
    cp = FakeCupy(n_devices=1)
    moved = []

    def to_device(x):
        moved.append(x)
        return cp.asarray(x)

    graph = parse(REFERENCE_ONLY)
    rng = np.random.default_rng(0)
    x, w = (rng.standard_normal(s).astype(np.float32) for s in ((4, 6), (5, 6)))
    want = interpret(graph, [x, w, 0.5, None]).outputs
    # no passes: no fused group, so no kernel (the emulator's arrays have no device memory)
    program = CudaProgram(graph, passes=[], alloc=cp.empty, to_device=to_device,
                          streams=contextlib.nullcontext)
    assert len(moved) == 1   # the constant, once, at build time
    for _ in range(2):
        outs, muts = program.run([cp.asarray(x), cp.asarray(w), 0.5, None])
        assert muts == []
        for got, ref in zip(outs, want):
            assert isinstance(got, cp.ndarray)
            assert got.dtype == ref.dtype and got.shape == ref.shape
            np.testing.assert_allclose(got.get(), ref, rtol=1e-6, atol=1e-6)
    assert len(moved) == 1


def test_host_results_are_moved_and_cast():
    from tests.support.fake_cupy import FakeCupy
    cp = FakeCupy(n_devices=1)
    t = TensorType((), float32)
    for host in (2, 2.5, np.float64(2.5), np.asarray(2.5)):
        got = _conform(host, t, cp.asarray)
        assert isinstance(got, cp.ndarray) and got.dtype == np.float32 and got.shape == ()
    with pytest.raises(AssertionError, match="type rule says"):
        _conform(cp.zeros(3, np.float32), t, cp.asarray)

"""Runs CUDA kernel cases on Numba's CUDA simulator and writes the results as JSON.

``python -m tests.codegen_cuda._sim_checks OUT.json [CASE ...]`` (every case when none
is named), with ``NUMBA_ENABLE_CUDASIM=1`` in the environment: the simulator is chosen
when Numba is first imported and holds for the whole process, which is why this runs
apart from the test session (tests/codegen_cuda/test_simulator.py starts it).

For every case (tests/codegen_cuda/_cases.py) the fused graph runs node by node on the
reference implementations; each ``fused`` node with a CUDA form also runs as kernels on
simulated device arrays (inputs keep their memory layout) and its outputs are compared
with the reference's. The result per case: its groups (kind, whether planned, why not,
the kernels' roles) and its failures, each naming the output's call or group.
"""

from __future__ import annotations

import os
import sys

if os.environ.get("NUMBA_ENABLE_CUDASIM") != "1":   # before anything imports numba
    raise SystemExit("set NUMBA_ENABLE_CUDASIM=1 to run the simulator checks")

import traceback  # noqa: E402
import warnings  # noqa: E402
from functools import partial  # noqa: E402

import numpy as np  # noqa: E402

from codegen.cache import load_kernel  # noqa: E402
from codegen.cuda import Unsupported, kernel_source, plan_cuda  # noqa: E402
from ir.graph import Value  # noqa: E402
from ir.interpret import run_node  # noqa: E402
from tests.codegen._every_op_cases import mismatch  # noqa: E402
from tests.codegen_cuda._cases import CASES, CLOSE, Case  # noqa: E402
from tests.codegen_cuda._runner import run_cases  # noqa: E402


def device_copy(x):
    """A simulated device array with ``x``'s values and memory layout (a Python scalar as
    it is)."""
    from numba import cuda
    if not isinstance(x, np.ndarray):
        return x
    if x.flags.c_contiguous or x.flags.f_contiguous:
        return cuda.to_device(x)
    # the simulator's device arrays wrap NumPy arrays: a strided copy stays strided
    from numba.cuda.simulator.cudadrv.devicearray import FakeCUDAArray
    span = sum((n - 1) * s for n, s in zip(x.shape, x.strides)) // x.itemsize + 1
    copy = np.lib.stride_tricks.as_strided(np.zeros(span, x.dtype), x.shape, x.strides)
    copy[...] = x
    return FakeCUDAArray(copy)


def compare_close(expected: np.ndarray, got: np.ndarray) -> str | None:
    """Why ``got`` differs from ``expected`` beyond the reduction tolerance (None if not)."""
    a, b = np.asarray(expected), np.asarray(got)
    if a.shape != b.shape or a.dtype != b.dtype:
        return f"expected {a.dtype}{list(a.shape)}, got {b.dtype}{list(b.shape)}"
    if a.dtype.kind != "f":
        bad = a != b
    else:
        tol = CLOSE[a.dtype.name]
        finite = np.abs(a[np.isfinite(a)])
        scale = max(1.0, float(finite.max())) if finite.size else 1.0
        with np.errstate(all="ignore"):
            close = np.abs(a.astype(np.float64) - b) <= tol * np.maximum(np.abs(a), scale)
        same = (np.isnan(a) & np.isnan(b)) | (np.isinf(a) & (a == b))
        bad = ~(close | same)
    return mismatch(a, b, bad)


def _owners(case: Case) -> dict[Value, str]:
    return {v: call.source for v, call in zip(case.graph.outputs, case.owners)}


def _meta(source) -> dict:
    """How a group's work is split (the worker kind, chunks, passes) as plain data."""
    meta = dict(source.meta)
    seg = meta.pop("segments", None)
    if seg is not None:
        meta.update(worker=seg.worker.kind, chunks=seg.chunks)
    return meta


def check(name: str, cache_dir: str) -> dict:
    """Run case ``name``; its groups and failures."""
    from tests.codegen._every_op_cases import compare
    case = CASES[name]()
    graph = case.graph
    owner = _owners(case)
    env: dict = dict(zip(graph.inputs, case.feeds))
    env.update(graph.constants)
    load = partial(load_kernel, cache_dir=cache_dir)
    groups, failures = [], []
    for node in graph.nodes:
        if any(isinstance(a, Value) and a not in env for a in node.inputs):
            continue   # downstream of a node whose reference raised
        args = [env[a] if isinstance(a, Value) else a for a in node.inputs]
        try:
            with np.errstate(all="ignore"):
                want = run_node(node, args)
        except Exception as e:   # the kernel cannot raise: nothing to compare
            groups.append({"kind": "error", "reason": repr(e)})
            continue
        env.update(zip(node.outputs, want))
        if node.op.name != "fused":
            continue
        body = node.attrs["body"]
        label = f"{node.attrs['kind']} group of {sorted({n.op.name for n in body.nodes})}"
        try:
            source = kernel_source(node, case.config)
        except Unsupported as e:
            groups.append({"kind": node.attrs["kind"], "planned": False, "reason": str(e),
                           "ops": sorted({n.op.name for n in body.nodes})})
            if case.must_plan:
                failures.append(f"{label}: no CUDA form: {e}")
            continue
        step = plan_cuda(node, load=load, config=case.config)
        groups.append({"kind": node.attrs["kind"], "planned": True, "roles": sorted(source.names),
                       "ops": sorted({n.op.name for n in body.nodes}), "meta": _meta(source)})
        try:
            # as the runtime runs steps: on an environment of (device) values
            device_env = {a: device_copy(env[a]) for a in node.input_values()}
            step.run(device_env)
            got = [device_env[v] for v in node.outputs]
        except Exception:
            failures.append(f"{label}: kernels raised:\n{traceback.format_exc()}")
            continue
        for v, w, g in zip(node.outputs, want, got):
            host = g.copy_to_host()
            why = compare(w, host, case.ulps) if case.ulps else compare_close(w, host)
            if why:
                failures.append(f"{owner.get(v) or label}: output {v.index}: {why}")
    return {"groups": groups, "failures": failures}


def main(argv: list[str]) -> None:
    warnings.simplefilter("ignore", RuntimeWarning)   # NumPy's overflow/invalid warnings
    run_cases(argv[0], argv[1:] or sorted(CASES), check, "cuda-sim-kernels-",
              lambda tb: {"groups": [], "failures": [tb]})


if __name__ == "__main__":
    main(sys.argv[1:])

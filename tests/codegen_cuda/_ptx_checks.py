"""Compiles every CUDA kernel of the cases to PTX (no GPU needed) and writes JSON results.

``python -m tests.codegen_cuda._ptx_checks OUT.json [CASE ...]``, without the
simulator. The simulator runs kernels as Python, so it cannot see typing errors
(a NumPy function Numba-CUDA does not type, an int where a float is due, a
shuffle of a type it cannot move); Numba's CUDA compiler to PTX (through libNVVM)
does. Arguments are typed from NumPy stand-ins with the layouts the kernels get on
a device (a strided input stays strided), for every variant of every group.

Without a GPU, numba 0.68's CUDA target asks the driver for the current device's
compute capability when it compiles a device function (``compile_device`` in
``numba/cuda/dispatcher.py``), which ``compile_ptx`` of a kernel calling one needs.
This process then answers that question with a stand-in device of compute
capability :data:`CC`; nothing else of the driver is used.

When PTX generation is impossible here (no libNVVM), OUT holds
``{"unavailable": reason}``.
"""

from __future__ import annotations

import os
import sys
import types
from functools import partial

if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
    raise SystemExit("the PTX checks need Numba's real CUDA target (unset NUMBA_ENABLE_CUDASIM)")

import numba  # noqa: E402
import numpy as np  # noqa: E402
from numba import cuda  # noqa: E402

from tests.codegen_cuda._runner import run_cases, write_results  # noqa: E402

CC = (8, 0)


def _probe() -> str | None:
    """Why PTX cannot be generated here (None when it can)."""
    def kernel(x):
        x[0] = 1.0
    try:
        cuda.compile_ptx(kernel, (numba.float32[::1],), cc=CC)
    except Exception as e:
        return f"{type(e).__name__}: {e}".strip()
    return None


def _stand_in_device() -> None:
    """Let device functions compile without a GPU (see the module docstring)."""
    if cuda.is_available():
        return
    import numba.cuda.dispatcher as dispatcher
    dispatcher.get_current_device = lambda: types.SimpleNamespace(compute_capability=CC)


def check(name: str, cache_dir: str) -> dict:
    from codegen.cache import load_kernel
    from codegen.cuda import Unsupported, kernel_source, plan_cuda
    from ir.graph import Value
    from ir.interpret import run_node
    from tests.codegen_cuda._cases import CASES
    case = CASES[name]()
    graph = case.graph
    env: dict = dict(zip(graph.inputs, case.feeds))
    env.update(graph.constants)
    load = partial(load_kernel, cache_dir=cache_dir)
    kernels, failures, features = 0, [], set()
    for node in graph.nodes:
        if any(isinstance(a, Value) and a not in env for a in node.inputs):
            continue
        args = [env[a] if isinstance(a, Value) else a for a in node.inputs]
        try:
            with np.errstate(all="ignore"):
                env.update(zip(node.outputs, run_node(node, args)))
        except Exception:
            continue
        if node.op.name != "fused":
            continue
        try:
            source = kernel_source(node, case.config)
        except Unsupported:
            continue
        step = plan_cuda(node, load=load, config=case.config, alloc=np.empty)
        for role, kernel in step.kernels.items():
            if type(kernel._cache).__name__ != "CUDACache":
                failures.append(f"{role}: not cached to disk ({type(kernel._cache).__name__})")
            if getattr(kernel._cache.save_overload, "__name__", "") != "save_and_record":
                failures.append(f"{role}: codegen.cache does not record its cache files")
        for variant in range(len(source.variants)):
            _, launches = step.prepare(args, variant)
            for ln, kargs in launches:
                sig = tuple(numba.typeof(a) for a in kargs)
                try:
                    ptx, _ = cuda.compile_ptx(step.kernels[ln.role].py_func, sig, cc=CC)
                except Exception as e:
                    failures.append(f"{node.attrs['kind']} group, kernel {ln.role} {sig}: "
                                    f"{type(e).__name__}: {str(e)[:2000]}")
                    continue
                kernels += 1
                features.update(f for f, text in (("shfl.down", "shfl.sync.down"),
                                                  ("shfl.idx", "shfl.sync.idx"),
                                                  ("bar.sync", "bar.sync"),
                                                  ("atom", "atom."), ("red", "red.global"))
                                if text in ptx)
    return {"kernels": kernels, "failures": failures, "ptx": sorted(features)}


def main(argv: list[str]) -> None:
    out, names = argv[0], argv[1:]
    reason = _probe()
    if reason is not None:
        write_results(out, {"unavailable": reason})
        return
    _stand_in_device()
    from tests.codegen_cuda._cases import CASES
    run_cases(out, names or sorted(CASES), check, "cuda-ptx-kernels-",
              lambda tb: {"kernels": 0, "failures": [tb]})


if __name__ == "__main__":
    main(sys.argv[1:])

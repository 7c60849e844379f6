"""Runs whole programs on :class:`codegen.cuda_runtime.CudaProgram` under Numba's CUDA
simulator and writes the results as JSON.

``python -m tests.codegen_cuda._program_checks OUT.json [CASE ...]`` with
``NUMBA_ENABLE_CUDASIM=1`` (tests/codegen_cuda/conftest.py starts it beside the kernel
checks). Every program of every case (tests/codegen_cuda/_program_cases.py) runs through
the pass pipeline and the GPU runtime, fused groups as simulated kernels, the other nodes
on NumPy (the simulator's "device arrays": ``alloc=np.empty``, ``to_device=np.asarray``),
and its outputs and mutation values are compared with the reference interpreter's on
the captured graph. The result per case: the step kinds the plans hold, kernel and
interpreted-group counts, how many kernel outputs came from ``alloc``, how many
``matmul_epilogue`` groups ran their epilogue as a kernel, and the failures.
"""

from __future__ import annotations

import os
import sys

if os.environ.get("NUMBA_ENABLE_CUDASIM") != "1":   # before anything imports numba
    raise SystemExit("set NUMBA_ENABLE_CUDASIM=1 to run the program checks")

import traceback  # noqa: E402
import warnings  # noqa: E402
from functools import partial  # noqa: E402

import numpy as np  # noqa: E402

from codegen.cache import load_kernel  # noqa: E402
from codegen.cuda_runtime import CudaProgram  # noqa: E402
from ir.interpret import interpret  # noqa: E402
from tests.codegen_cuda._cases import CONFIG  # noqa: E402
from tests.codegen_cuda._program_cases import CASES  # noqa: E402
from tests.codegen_cuda._runner import run_cases  # noqa: E402
from tests.codegen_cuda._sim_checks import compare_close  # noqa: E402


def _copies(args: list) -> list:
    return [np.copy(a) if isinstance(a, np.ndarray) else a for a in args]


def check(name: str, cache_dir: str) -> dict:
    """Run case ``name``'s programs; what their plans hold and the failures."""
    load = partial(load_kernel, cache_dir=cache_dir)
    failures: list[str] = []
    steps: set[str] = set()
    kernels = interpreted = allocated = epilogues = 0

    def alloc(shape, dtype):
        nonlocal allocated
        allocated += 1
        return np.empty(shape, dtype)

    programs = CASES[name]()
    for i, (graph, args) in enumerate(programs):
        with np.errstate(all="ignore"):
            ref = interpret(graph, _copies(args))
        want = list(ref.outputs) + [arr for _, arr in ref.mutations]
        program = CudaProgram(graph, load=load, alloc=alloc, to_device=np.asarray,
                              config=CONFIG)
        kernels += program.stats.kernels
        interpreted += program.stats.interpreted_phases
        steps.update(type(s).__name__ for s in program.steps)
        epilogues += sum(1 for s in program.steps if getattr(s, "node", None) is not None
                         and s.node.attrs.get("kind") == "matmul_epilogue"
                         and any(type(t).__name__ == "_KernelStep" for t in s.steps))
        try:
            outs, muts = program.run(_copies(args))
        except Exception:
            failures.append(f"program {i}: raised:\n{traceback.format_exc()}")
            continue
        got = outs + muts
        if len(got) != len(want):
            failures.append(f"program {i}: {len(got)} results, the interpreter has {len(want)}")
            continue
        for j, (w, g) in enumerate(zip(want, got)):
            why = compare_close(w, g)
            if why:
                kind = "output" if j < len(outs) else "mutation"
                failures.append(f"program {i}: {kind} {j}: {why}")
    return {"programs": len(programs), "kernels": kernels, "interpreted": interpreted,
            "allocated": allocated, "epilogue_kernels": epilogues, "steps": sorted(steps),
            "failures": failures}


def main(argv: list[str]) -> None:
    warnings.simplefilter("ignore", RuntimeWarning)   # NumPy's overflow/invalid warnings
    run_cases(argv[0], argv[1:] or sorted(CASES), check, "cuda-sim-programs-")


if __name__ == "__main__":
    main(sys.argv[1:])

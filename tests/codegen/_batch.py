"""Compile many scalar expressions into one Numba kernel (one compile for a whole group of
cases that share input dtypes), run it, and report each expression's Numba type."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numba import njit

import codegen.mathfns
from codegen.scalar import NJIT_OPTIONS, scalar_expr
from tests.codegen._cases import Case, N, input_data


def _arg_names(case: Case, j: int) -> list[str]:
    names, w = [], 0
    for pos, kind in enumerate(case.kinds):
        if kind == "w":
            names.append(f"s{j}_{w}")
            w += 1
        else:
            names.append(f"v{pos}")
    return names


def build(cases: Sequence[Case], *, exact_math: bool = False) -> tuple[str, list[int]]:
    """Kernel source for ``cases`` (same signature) and the indices of the cases that have
    an expression (the others are not expressible)."""
    first = cases[0]
    arrays = [f"x{pos}" for pos, k in enumerate(first.kinds) if k != "w"]
    scalars, body, outs, used = [], [], [], []
    for j, case in enumerate(cases):
        names = _arg_names(case, j)
        expr = scalar_expr(case.op, names, case.types, case.out, dict(case.attrs),
                           exact_math=exact_math)
        if expr is None:
            continue
        used.append(j)
        scalars += [n for n in names if n.startswith("s")]
        outs.append(f"o{j}")
        body.append(f"        r{j} = {expr}\n        o{j}[i] = r{j}\n")
    loads = "".join(f"        v{pos} = x{pos}[{'i' if k == 'a' else '0'}]\n"
                    for pos, k in enumerate(first.kinds) if k != "w")
    params = ", ".join(["n", *arrays, *scalars, *outs])
    src = f"def kernel({params}):\n    for i in range(n):\n{loads}{''.join(body)}"
    return src, used


def compile_kernel(src: str):
    """The njit dispatcher of the function ``kernel`` defined in ``src`` (compiled lazily),
    with the names generated source may use and the options kernels compile with."""
    scope = {"np": np, "math": math, codegen.mathfns.MODULE_ALIAS: codegen.mathfns}
    exec(compile(src, "<scalar-test-kernel>", "exec"), scope)
    return njit(**NJIT_OPTIONS)(scope["kernel"])


def run(cases: Sequence[Case], *, exact_math: bool = False):
    """Compile and run ``cases``; returns (results by case index, Numba type name of each
    expression by case index, the source)."""
    src, used = build(cases, exact_math=exact_math)
    if not used:
        return {}, {}, src
    kernel = compile_kernel(src)
    first = cases[0]
    # arrays for tensor inputs; a 0-d tensor is its one value (the last), read as x[0]
    arrays = [input_data(t.dtype, pos) if k == "a" else input_data(t.dtype, pos)[-1:]
              for pos, (k, t) in enumerate(zip(first.kinds, first.types)) if k != "w"]
    scalars = [v for j in used for v in cases[j].scalars]
    outs = {j: np.empty(N, cases[j].out.np_dtype) for j in used}
    with np.errstate(all="ignore"):
        kernel(N, *arrays, *scalars, *outs.values())
    typemap = kernel.overloads[kernel.signatures[0]].type_annotation.typemap
    types = {j: str(typemap[f"r{j}"]) for j in used}
    return outs, types, src


def reference(case: Case) -> np.ndarray:
    """The op's NumPy reference on the same inputs, cast to the result dtype, length N."""
    from ir.opdef import REGISTRY
    args, w = [], 0
    for pos, (k, t) in enumerate(zip(case.kinds, case.types)):
        if k == "w":
            args.append(case.scalars[w])
            w += 1
        elif k == "z":
            args.append(np.array(input_data(t.dtype, pos)[-1]))
        else:
            args.append(input_data(t.dtype, pos))
    with np.errstate(all="ignore"):
        result = REGISTRY[case.op].impl(*args, **dict(case.attrs))
        result = np.asarray(result).astype(case.out.np_dtype)
    return np.broadcast_to(result, (N,))

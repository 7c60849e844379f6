"""The shape of the code generated for a W3-like kernel (tanh-GELU forward, backward and
full sum in one loop): what makes it fast, asserted on its source and its LLVM IR, never on
timings. A loop that calls libm, reads a broadcast seed element by element, or indexes with
signed integers (Numba's negative-index fix-up, which turns vector loads into gathers) runs
several times slower while computing the same numbers."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from codegen import mathfns
from codegen.cpu import REDUCE_CHUNK, phase_source
from ir.interpret import interpret
from ir.parser import parse

N = 3 * REDUCE_CHUNK + 77      # three full chunks and a partial one

# the body of W3's fused group, as the fusion pass dumps it (N elements)
W3_BODY = f"""
graph w3(%s0: f64[] weak, %x0: f32[{N}], %s1: f64[] weak, %s2: f64[] weak, %s3: i64[] weak,
         %seed: f32[1]) {{
  %0 = mul(%s0, %x0) : f32[{N}]
  %1 = pow(%x0, 3) : f32[{N}]
  %2 = mul(%s1, %1) : f32[{N}]
  %3 = add(%x0, %2) : f32[{N}]
  %4 = mul(%s2, %3) : f32[{N}]
  %5 = tanh(%4) : f32[{N}]
  %6 = add(%s3, %5) : f32[{N}]
  %7 = mul(%0, %6) : f32[{N}]
  %8 = sum(%7)[dim=(0,), keepdim=False, dtype=None] : f32[]
  %9 = expand(%seed)[shape=({N},)] : f32[{N}]
  %10 = mul(%9, %6) : f32[{N}]
  %11 = mul(%9, %0) : f32[{N}]
  %12 = square(%5) : f32[{N}]
  %13 = sub(1, %12) : f32[{N}]
  %14 = mul(%11, %13) : f32[{N}]
  %15 = mul(%14, %s2) : f32[{N}]
  %16 = mul(%15, %s1) : f32[{N}]
  %17 = pow(%x0, 2) : f32[{N}]
  %18 = mul(%17, 3) : f32[{N}]
  %19 = mul(%16, %18) : f32[{N}]
  %20 = add(%15, %19) : f32[{N}]
  %21 = mul(%10, %s0) : f32[{N}]
  %22 = add(%20, %21) : f32[{N}]
  return %8, %22
}}
"""
SCALARS = (0.5, 0.044715, 0.7978845608, 1)


def _phase(graph, *, exact_math: bool = False):
    """The phase kernel the runtime would generate for the whole body (flat, parallel)."""
    nodes = [n for n in graph.nodes if n.op.name not in ("expand", "sum")]
    expand = next(n for n in graph.nodes if n.op.name == "expand")
    total = next(n for n in graph.nodes if n.op.name == "sum")
    s0, x0, s1, s2, s3, _ = graph.inputs
    inputs = [s0, x0, s1, s2, s3, expand.outputs[0]]
    return phase_source(nodes, inputs, [graph.outputs[1]], 1,
                        scalar_inputs=frozenset([s0, s1, s2, s3]), parallel=True,
                        exact_math=exact_math, reductions=[(total.inputs[0], (0,))])


def _compile(source):
    """The kernel from its generated source, compiled here (no disk cache involved)."""
    scope: dict = {}
    exec(compile(source.source.replace("cache=True", "cache=False"), "<w3-kernel>", "exec"),
         scope)
    return scope[source.name]


@pytest.fixture(scope="module")
def w3():
    graph = parse(W3_BODY)
    source = _phase(graph)
    kernel = _compile(source)
    x = np.random.default_rng(3).standard_normal(N).astype(np.float32)
    seed = np.ones(1, np.float32)
    out, acc = np.empty(N, np.float32), np.zeros(1)
    kernel(*SCALARS[:1], x, *SCALARS[1:], np.broadcast_to(seed, (N,)), out, acc, (N,))
    return graph, source, kernel, (x, seed), (acc, out)


def test_w3_kernel_matches_the_interpreter(w3):
    graph, _, _, (x, seed), (acc, out) = w3
    ref = interpret(graph, [SCALARS[0], x, *SCALARS[1:], seed]).outputs
    np.testing.assert_allclose(out, ref[1], rtol=2e-6, atol=1e-6)
    assert math.isclose(acc[0], float(ref[0]), rel_tol=2e-6 * np.abs(x).sum() / abs(acc[0]))


def test_w3_kernel_reads_the_broadcast_seed_once(w3):
    _, source, _, _, _ = w3
    # the seed (input 5, a view of a one-element tensor) is read before the loops
    assert re.search(r"^    x5 = in5\[0\]", source.source, re.M), source.source
    assert "in5[u0]" not in source.source


def test_w3_kernel_indexes_unsigned_and_sums_with_chunk_sum(w3):
    _, source, _, _, _ = w3
    assert "x1 = in1[u0]" in source.source and "u0 = np.uint64(i0)" in source.source
    assert f"{mathfns.MODULE_ALIAS}.chunk_sum(buf0, size)" in source.source
    assert f"{mathfns.MODULE_ALIAS}.tanh_f32(" in source.source


def test_w3_kernel_is_vector_code_without_gathers_or_libm(w3):
    _, _, kernel, _, _ = w3
    llvm = kernel.inspect_llvm(kernel.signatures[0])
    assert re.search(r"load <\d+ x float>", llvm), "the loads of x are not vectorised"
    assert re.search(r"store <\d+ x float>", llvm), "the stores of the grad are not vectorised"
    assert re.search(r"fdiv( \w+)* <\d+ x double>", llvm), "the inline tanh is not vectorised"
    assert re.search(r"fadd reassoc <\d+ x double>", llvm), "the chunk sums are not vectorised"
    assert "masked.gather" not in llvm and "masked.scatter" not in llvm
    assert not re.search(r"call [^(]*@(tanhf?|expf?|expm1f?)\(", llvm)


def test_exact_math_w3_kernel_calls_libm():
    source = _phase(parse(W3_BODY), exact_math=True)
    assert "np.tanh(" in source.source and "_mf.tanh_f32" not in source.source


def test_chunk_sum_is_a_vectorised_float64_sum():
    buf = np.arange(1000, dtype=np.float32) / np.float32(7)
    assert mathfns.chunk_sum(buf, 1000) == pytest.approx(float(buf.astype(np.float64).sum()),
                                                         rel=1e-15)
    assert mathfns.chunk_sum(buf, 0) == 0.0
    assert mathfns.chunk_sum(buf, 3) == pytest.approx(float(buf[:3].astype(np.float64).sum()))
    llvm = mathfns.chunk_sum.inspect_llvm(mathfns.chunk_sum.signatures[0])
    assert re.search(r"fadd reassoc <\d+ x double>", llvm), "chunk_sum does not vectorise"

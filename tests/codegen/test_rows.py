"""codegen.rows: rows groups (row reductions with the elementwise work around them) run
as one kernel and give the interpreter's values (float32 and float64, one row, one
column, odd sizes, several trailing dims, non-contiguous inputs, NaN, column sums as
per-chunk partials, amax/amin on special values), reductions of input rows read them in
place, a transcendental two passes need is computed once, passes share their row
buffers, outputs come from the buffer pool, the W4 programs take a small stated number of
kernels (and nll's target check survives an unused loss), nll's one-hot sums are taken
at the target column (bit for bit, any target), a group without scalar expressions falls
back, and compgrad.compile agrees with eager on log_softmax + nll_loss and LayerNorm."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

import compgrad
import compgrad.nn as nn
import compgrad.nn.functional as F
from codegen.rows import RowsStep, rows_source
from codegen.runtime import CompiledProgram
from ir.interpret import interpret
from ir.parser import parse
from passes.fusion import group_kinds
from tests.compile._common import assert_same


def _shape(dims) -> str:
    return ",".join(map(str, dims))


def _softmax(dt: str, shape: tuple) -> str:
    s, last = _shape(shape), len(shape) - 1
    return f"""graph f(%x: {dt}[{s}]) {{
  %0 = softmax(%x)[dim={last}, dtype=None] : {dt}[{s}]
  %1 = log_softmax(%x)[dim={last}, dtype=None] : {dt}[{s}]
  return %0, %1
}}"""


def _row_shape(shape: tuple, k: int) -> tuple:
    return shape[:len(shape) - k] + (1,) * k


def _layer_norm(dt: str, shape: tuple, k: int = 1) -> str:
    """LayerNorm over the last ``k`` dims, forward and the VJP as captured."""
    s, p = _shape(shape), _shape(shape[len(shape) - k:])
    r = _shape(_row_shape(shape, k))
    dims = "(" + ", ".join(str(d) for d in range(len(shape) - k, len(shape))) + ("," if k == 1
                                                                               else "") + ")"
    lead = "(" + ", ".join(str(d) for d in range(len(shape) - k)) + ("," if len(shape) - k == 1
                                                                     else "") + ")"
    return f"""graph f(%x: {dt}[{s}], %w: {dt}[{p}] param, %b: {dt}[{p}] param, %g: {dt}[{s}]) {{
  %0 = layer_norm(%x, %w, %b)[dims={dims}, eps=1e-05, has_weight=True, has_bias=True] : {dt}[{s}]
  %1 = mean(%x)[dim={dims}, keepdim=True, dtype=None] : {dt}[{r}]
  %2 = sub(%x, %1) : {dt}[{s}]
  %3 = mul(%2, %2) : {dt}[{s}]
  %4 = mean(%3)[dim={dims}, keepdim=True, dtype=None] : {dt}[{r}]
  %5 = add(%4, 1e-05) : {dt}[{r}]
  %6 = rsqrt(%5) : {dt}[{r}]
  %7 = mul(%2, %6) : {dt}[{s}]
  %8 = mul(%g, %w) : {dt}[{s}]
  %9 = mean(%8)[dim={dims}, keepdim=True, dtype=None] : {dt}[{r}]
  %10 = sub(%8, %9) : {dt}[{s}]
  %11 = mul(%8, %7) : {dt}[{s}]
  %12 = mean(%11)[dim={dims}, keepdim=True, dtype=None] : {dt}[{r}]
  %13 = mul(%7, %12) : {dt}[{s}]
  %14 = sub(%10, %13) : {dt}[{s}]
  %15 = mul(%6, %14) : {dt}[{s}]
  %16 = mul(%g, %7) : {dt}[{s}]
  %17 = sum(%16)[dim={lead}, keepdim=False, dtype=None] : {dt}[{p}]
  return %0, %15, %17
}}"""


def _amin_rows(dt: str, shape: tuple) -> str:
    """amin without keepdim, read back through a reshape; a row value computed from
    two reductions; a row output and a full output."""
    rows, cols = shape
    return f"""graph f(%x: {dt}[{rows},{cols}], %y: {dt}[{rows},1], %z: {dt}[{cols}]) {{
  %0 = amin(%x)[dim=(1,), keepdim=False] : {dt}[{rows}]
  %1 = reshape(%0)[shape=({rows}, 1)] : {dt}[{rows},1]
  %2 = sub(%x, %1) : {dt}[{rows},{cols}]
  %3 = mul(%2, %z) : {dt}[{rows},{cols}]
  %4 = sum(%3)[dim=(1,), keepdim=True, dtype=None] : {dt}[{rows},1]
  %5 = add(%4, %y) : {dt}[{rows},1]
  %6 = amax(%x)[dim=(1,), keepdim=True] : {dt}[{rows},1]
  %7 = div(%5, %6)[rounding_mode=None] : {dt}[{rows},1]
  %8 = mul(%2, %7) : {dt}[{rows},{cols}]
  %9 = mul(%8, 0.5) : {dt}[{rows},{cols}]
  return %9, %7
}}"""


def _feeds(graph, seed: int = 0) -> list:
    rng = np.random.default_rng(seed)
    return [(2 * rng.standard_normal(v.type.shape)).astype(v.type.dtype.np_dtype)
            for v in graph.inputs]


def _rows_steps(program: CompiledProgram) -> list[RowsStep]:
    return [s for s in program.steps if isinstance(s, RowsStep)]


def _check(text: str, feeds=None, rows_kernels: int = 1) -> CompiledProgram:
    graph = parse(text)
    program = CompiledProgram(graph)
    assert len(_rows_steps(program)) == rows_kernels
    feeds = _feeds(graph) if feeds is None else feeds
    want = interpret(graph, [np.copy(f) for f in feeds]).outputs
    got, _ = program.run(feeds)
    for a, b in zip(want, got):
        assert b.dtype == a.dtype and b.shape == a.shape
        tol = 3e-5 if a.dtype == np.float32 else 1e-11
        np.testing.assert_allclose(b, a, rtol=tol, atol=tol * max(1.0, float(np.abs(a).max())))
    return program


# one row, one column, odd sizes, two leading dims, and one that runs in parallel
CASES = [("f32", (1, 37)), ("f64", (9, 1)), ("f32", (7, 13)), ("f64", (7, 13)),
         ("f64", (3, 4, 5)), ("f32", (300, 257))]


@pytest.mark.parametrize(("dt", "shape"), CASES, ids=str)
def test_softmax_and_log_softmax(dt, shape):
    _check(_softmax(dt, shape))


@pytest.mark.parametrize(("dt", "shape"), CASES, ids=str)
def test_layer_norm_forward_and_vjp(dt, shape):
    _check(_layer_norm(dt, shape))


def test_layer_norm_over_two_trailing_dims():
    program = _check(_layer_norm("f32", (5, 3, 8), k=2))
    assert _rows_steps(program)[0].source.layout.cols == 24


@pytest.mark.parametrize(("dt", "shape"), [("f32", (1, 5)), ("f64", (6, 1)), ("f32", (11, 17))],
                         ids=str)
def test_reductions_row_values_and_inputs_of_every_access(dt, shape):
    _check(_amin_rows(dt, shape))


def test_non_contiguous_inputs():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((24, 13)).astype(np.float32).T          # transposed
    w = rng.standard_normal(48).astype(np.float32)[::2]              # strided
    b = rng.standard_normal(24).astype(np.float32)
    g = rng.standard_normal((13, 48)).astype(np.float32)[:, 1::2]    # strided rows
    assert not (x.flags.c_contiguous or w.flags.c_contiguous or g.flags.c_contiguous)
    _check(_layer_norm("f32", (13, 24)), [x, w, b, g])


def test_nan_and_inf_propagate_like_the_reference():
    x = np.random.default_rng(0).standard_normal((4, 10)).astype(np.float32)
    x[1, 3] = np.nan
    x[2, :] = -np.inf
    x[3, 7] = np.inf
    graph = parse(_softmax("f32", (4, 10)))
    want = interpret(graph, [x]).outputs
    got, _ = CompiledProgram(graph).run([x])
    for a, b in zip(want, got):
        np.testing.assert_array_equal(np.isnan(b), np.isnan(a))
        np.testing.assert_allclose(b, a, rtol=3e-6, atol=1e-7)


# the W4 programs as compgrad.compile captures them (at small sizes)
W4_LSM = """\
graph lsm(%x0: f32[64,100], %x1: i64[64]) {
  %0 = log_softmax(%x0)[dim=1, dtype=None] : f32[64,100]
  %1 = nll_loss(%0, %x1)[reduction="mean", ignore_index=-100, has_weight=False] : f32[]
  %2 = full(1.0)[shape=(), dtype=float32, device=device("cpu")] : f32[]
  %3 = nll_target(%x1)[num_classes=100, ignore_index=-100] : i64[64]
  %4 = ne(%x1, -100) : bool[64]
  %5 = to_dtype(%4)[dtype=float32] : f32[64]
  %6 = mul(%5, 1.0) : f32[64]
  %7 = sum(%6)[dim=(0,), keepdim=False, dtype=None] : f32[]
  %8 = div(%6, %7)[rounding_mode=None] : f32[64]
  %9 = mul(%8, %2) : f32[64]
  %10 = neg(%9) : f32[64]
  %11 = arange()[start=0, end=100, step=1, dtype=int64, device=device("cpu")] : i64[100]
  %12 = reshape(%3)[shape=(64, 1)] : i64[64,1]
  %13 = reshape(%10)[shape=(64, 1)] : f32[64,1]
  %14 = eq(%11, %12) : bool[64,100]
  %15 = where(%14, %13, 0.0) : f32[64,100]
  %16 = exp(%0) : f32[64,100]
  %17 = sum(%15)[dim=(1,), keepdim=True, dtype=None] : f32[64,1]
  %18 = mul(%16, %17) : f32[64,100]
  %19 = sub(%15, %18) : f32[64,100]
  return %1, %19
}"""


def _w4_lsm_inputs():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 100)).astype(np.float32)
    t = rng.integers(0, 100, 64)
    t[5] = -100
    return x, t


def test_w4_log_softmax_nll_is_one_row_kernel_and_two_small_ones():
    # one rows kernel for log_softmax forward and backward and the picked log-probabilities
    # (nll_loss decomposed: the log-probabilities themselves are never stored), one for
    # the target weights (a single row of 64) and one for the loss's mean; nll_target,
    # arange and full run as plain nodes, and no int64 one-hot exists anywhere
    graph = parse(W4_LSM)
    program = CompiledProgram(graph)
    assert group_kinds(program.graph) == {"rows": 2, "reduction": 1}
    assert program.stats.kernels == 3 and program.stats.interpreted_phases == 0
    plain = sorted(n.op.name for n in program.graph.nodes if n.op.name != "fused")
    assert plain == ["arange", "full", "nll_target"]
    (big,) = [s for s in _rows_steps(program) if s.source.layout.cols == 100]
    assert [lv for _, lv in big.source.outputs] == ["row", "full"]
    x, t = _w4_lsm_inputs()
    want = interpret(graph, [x, t]).outputs
    got, _ = program.run([x, t])
    for a, b in zip(want, got):
        np.testing.assert_allclose(b, a, rtol=3e-6, atol=1e-8)


def test_w4_lsm_one_hot_sums_are_taken_at_the_target_column():
    # the picked log-probability and the gradient's sum(one-hot * g) are computed once per
    # row at c = target (no row buffer, no row sum); the classes (arange) are the column
    # index itself: not passed, compared as int32 with the row's target
    program = CompiledProgram(parse(W4_LSM))
    (big,) = [s for s in _rows_steps(program) if s.source.layout.cols == 100]
    src = big.source.source
    assert not re.search(r"buf\d", src) and src.count("chunk_sum(") == 1   # sum(exp) only
    assert src.count("if h") == 2 and "(np.int32(c) == h" in src
    assert all(p.value.type.dtype.name != "int64" or p.access == "row"
               for p in big.source.params)   # no i64[100] classes among the inputs


def test_w4_lsm_kernel_compares_on_int32_lanes():
    # the LLVM IR (compiled here, no disk cache): the output loop's one-hot compare is a
    # vector of int32 (int64 lanes would halve the float32 vectors around it)
    program = CompiledProgram(parse(W4_LSM))
    (big,) = [s for s in _rows_steps(program) if s.source.layout.cols == 100]
    scope: dict = {}
    exec(compile(big.source.source.replace("cache=True", "cache=False"), "<lsm-kernel>",
                 "exec"), scope)
    big.kernel = scope[big.source.name]
    program.run(list(_w4_lsm_inputs()))
    llvm = big.kernel.inspect_llvm(big.kernel.signatures[0])
    assert re.search(r"icmp eq <\d+ x i32>", llvm), "the one-hot compare is not vectorised"
    assert not re.search(r"icmp \w+ <\d+ x i64>", llvm)
    assert re.search(r"store <\d+ x float>", llvm)


def _one_hot(dt: str) -> str:
    """Row sums of where(eq(classes, t), x, 0), a ne compare, an unrelated row sum."""
    return f"""graph f(%x: {dt}[6,9], %t: i64[6,1], %u: {dt}[6,1]) {{
  %0 = arange()[start=0, end=9, step=1, dtype=int64, device=device("cpu")] : i64[9]
  %1 = eq(%0, %t) : bool[6,9]
  %2 = where(%1, %x, 0.0) : {dt}[6,9]
  %3 = sum(%2)[dim=(1,), keepdim=True, dtype=None] : {dt}[6,1]
  %4 = sub(%x, %3) : {dt}[6,9]
  %5 = ne(%t, %0) : bool[6,9]
  %6 = where(%5, %4, 1.5) : {dt}[6,9]
  %7 = reshape(%u)[shape=(6, 1)] : {dt}[6,1]
  %8 = where(%1, %7, 0.0) : {dt}[6,9]
  %9 = mean(%8)[dim=(1,), keepdim=True, dtype=None] : {dt}[6,1]
  %10 = mul(%6, %9) : {dt}[6,9]
  %11 = amax(%2)[dim=(1,), keepdim=True] : {dt}[6,1]
  return %10, %3, %9, %11
}}"""


@pytest.mark.parametrize("dt", ["f32", "f64"])
def test_one_hot_row_sums_match_the_reference_bit_for_bit(dt):
    # targets in range, at both ends, negative and past the end (no column: the sum is 0);
    # NaN off the target column does not reach the sum, -0.0 on it sums to +0.0 as the
    # reference's does, inf on it is the sum; amax of the same where is a row loop
    np_dt = dt.replace("f", "float")
    x = np.random.default_rng(7).standard_normal((6, 9)).astype(np_dt)
    t = np.array([[0], [8], [-1], [9], [100], [3]])
    x[0, 4] = np.nan
    x[1, 8] = -0.0
    x[5, 3] = np.inf
    u = np.linspace(-1, 1, 6).astype(np_dt).reshape(6, 1)
    graph = parse(_one_hot(dt))
    program = CompiledProgram(graph)
    (step,) = _rows_steps(program)
    src = step.source.source
    assert "(np.int32(c) == h" in src and "(np.int32(c) != h" in src
    assert src.count("if h") == 2 and src.count("row_amax") >= 1
    assert [p.value.type.dtype.name for p in step.source.params].count("int64") == 1
    with np.errstate(invalid="ignore"):   # inf - inf in the reference
        want = interpret(graph, [x, t, u]).outputs
    got, _ = program.run([x, t, u])
    for a, b in zip(want, got):
        assert b.dtype == a.dtype and b.shape == a.shape
        np.testing.assert_array_equal(b, a)
    for a, b in zip(want[1:3], got[1:3]):   # the one-term sums (amax orders -0.0 < +0.0)
        np.testing.assert_array_equal(np.signbit(b), np.signbit(a))


def test_compares_that_are_not_a_column_index_stay_as_they_are():
    # classes starting at 1, or compared with a float row value: the generic compare
    text = _one_hot("f32").replace("start=0", "start=1").replace("end=9", "end=10")
    x = np.random.default_rng(8).standard_normal((6, 9)).astype(np.float32)
    t = np.array([[1], [9], [0], [10], [5], [3]])
    u = np.ones((6, 1), np.float32)
    graph = parse(text)
    program = CompiledProgram(graph)
    src = _rows_steps(program)[0].source.source
    assert "np.int32(c)" not in src and "if h" not in src
    for a, b in zip(interpret(graph, [x, t, u]).outputs, program.run([x, t, u])[0]):
        np.testing.assert_array_equal(b, a)
    text = _one_hot("f32").replace("%t: i64[6,1]", "%t: f32[6,1]")
    graph = parse(text)
    program = CompiledProgram(graph)
    src = _rows_steps(program)[0].source.source
    assert "np.int32(c)" not in src and "if h" not in src
    tf = t.astype(np.float32) - 1
    for a, b in zip(interpret(graph, [x, tf, u]).outputs, program.run([x, tf, u])[0]):
        np.testing.assert_array_equal(b, a)


def test_w4_lsm_raises_for_a_bad_target_even_when_the_loss_is_unused():
    # the forward's check lives in nll_target, an indexing node: DCE keeps it
    graph = parse(W4_LSM.replace("return %1, %19", "return %19"))
    program = CompiledProgram(graph)
    x, t = _w4_lsm_inputs()
    t[9] = 100
    with pytest.raises(IndexError, match="Target 100 is out of bounds."):
        interpret(graph, [x, t])
    with pytest.raises(IndexError, match="Target 100 is out of bounds."):
        program.run([x, t])


def test_w4_layer_norm_is_one_kernel():
    # forward and backward in one rows kernel (4 passes over each row), with the two
    # column sums (weight and bias grads) as per-chunk partial sums: g * xhat is never
    # stored, and the bias grad's sum(g) joins though no producer links it to the group
    text = _layer_norm("f32", (64, 128)).replace(
        "return %0, %15, %17", "%18 = sum(%g)[dim=(0,), keepdim=False, dtype=None] : f32[128]\n"
        "  return %0, %15, %17, %18")
    program = _check(text)
    assert group_kinds(program.graph) == {"rows": 1}
    assert program.stats.kernels == 1
    step = _rows_steps(program)[0]
    assert step.source.source.count("for c in range(n_cols):") == 4 + 2 * 2
    assert [lv for _, lv in step.source.outputs] == ["full", "full", "column", "column"]


def test_passes_share_their_row_buffers():
    # LayerNorm's three row sums of computed values (g * w, (x - mu)^2, g * w * xhat), one
    # per pass, are each reduced right after their pass: one row buffer serves them all
    program = _check(_layer_norm("f32", (64, 128)))
    src = _rows_steps(program)[0].source.source
    assert src.count("= np.empty(n_cols, dtype=np.float32)") == 1
    assert len(re.findall(r"buf0\[c\] = ", src)) == 3


def _column_sums(dt: str, shape: tuple, keepdim: bool, op: str = "sum") -> str:
    """A rows group with column reductions over every leading dim: one of a value a pass
    computes, one of an input read as it is (mean or sum)."""
    s, lead = _shape(shape), len(shape) - 1
    dims = "(" + ", ".join(map(str, range(lead))) + (",)" if lead == 1 else ")")
    out = _shape((1,) * lead + shape[-1:] if keepdim else shape[-1:])
    r = _shape(shape[:-1] + (1,))
    return f"""graph f(%x: {dt}[{s}], %g: {dt}[{s}]) {{
  %0 = amax(%x)[dim=({lead},), keepdim=True] : {dt}[{r}]
  %1 = sub(%x, %0) : {dt}[{s}]
  %2 = mul(%1, %g) : {dt}[{s}]
  %3 = sum(%2)[dim={dims}, keepdim={keepdim}, dtype=None] : {dt}[{out}]
  %4 = {op}(%g)[dim={dims}, keepdim={keepdim}, dtype=None] : {dt}[{out}]
  return %1, %3, %4
}}"""


@pytest.mark.parametrize(("dt", "shape", "keepdim", "op"), [
    ("f32", (7, 13), True, "sum"), ("f64", (7, 13), False, "mean"), ("f32", (1, 5), False, "sum"),
    ("f32", (3, 4, 6), False, "mean"), ("f32", (300, 257), True, "sum"),
    ("f64", (45, 3), True, "sum"),
], ids=str)
def test_column_sums_as_per_chunk_partials(dt, shape, keepdim, op):
    program = _check(_column_sums(dt, shape, keepdim, op))
    (step,) = _rows_steps(program)
    assert [lv for _, lv in step.source.outputs] == ["full", "column", "column"]
    assert "acc" in step.source.source and "part" in step.source.source


def test_column_sums_do_not_depend_on_the_thread_count():
    # the same chunks whether the kernel runs in parallel or not (and on any thread count)
    graph = parse(_column_sums("f32", (300, 257), True))
    feeds = _feeds(graph, seed=4)
    (step,) = _rows_steps(CompiledProgram(graph))
    assert "parallel=True" in step.source.source
    serial = step.source.source.replace("parallel=True", "parallel=False").replace(
        step.source.name, "serial")
    namespace: dict = {}
    exec(compile(serial.replace("cache=True", "cache=False"), "<serial>", "exec"), namespace)
    outs = [[np.empty(s, np.float32) for s in ((300, 257), (257,), (257,))] for _ in range(2)]
    args = [f for f in feeds]   # both params are full arrays, in input order
    assert [p.value.name for p in step.source.params] == ["x", "g"]
    step.kernel(*args, *outs[0], 300, 257)
    namespace["serial"](*args, *outs[1], 300, 257)
    for a, b in zip(*outs):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("dt", ["f32", "f64"])
def test_amax_and_amin_of_special_values(dt):
    # the helpers compare float bits as integers: NaN anywhere wins, infinities and signed
    # zeros order as floats do
    text = f"""graph f(%x: {dt}[6,5]) {{
  %0 = amax(%x)[dim=(1,), keepdim=True] : {dt}[6,1]
  %1 = amin(%x)[dim=(1,), keepdim=True] : {dt}[6,1]
  %2 = sub(%x, %0) : {dt}[6,5]
  %3 = sub(%2, %1) : {dt}[6,5]
  return %3, %0, %1
}}"""
    x = np.array([[1, 2, 3, 4, 5], [np.nan, 0, 1, 2, 3], [-np.inf] * 5,
                  [np.inf, -np.inf, 0, 1, 2], [-0.0, 0.0, -0.0, -1e-30, 1e-30],
                  [3, 2, 1, np.nan, -np.inf]], dtype=dt.replace("f", "float"))
    graph = parse(text)
    program = CompiledProgram(graph)
    (step,) = _rows_steps(program)
    assert f"row_amax_float{dt[1:]}" in step.source.source
    with np.errstate(invalid="ignore"):   # inf - inf in the reference
        want = interpret(graph, [x]).outputs
    got, _ = program.run([x])
    for a, b in zip(want, got):
        np.testing.assert_array_equal(b, a)


def test_reductions_read_an_input_row_as_it_is():
    # mean(x) and amax(x) reduce x's own row (no copy into a buffer); a strided x is made
    # contiguous first (the integer view of the extreme helper needs it)
    program = _check(_layer_norm("f32", (9, 16)))
    src = _rows_steps(program)[0].source.source
    assert "chunk_sum(q" in src
    x = np.random.default_rng(2).standard_normal((40, 9)).astype(np.float32).T
    _check(_softmax("f32", (9, 40)), [x])


def test_a_transcendental_value_two_passes_need_is_kept_not_recomputed():
    # softmax: exp(x - max) is summed in one pass and divided in the next
    program = _check(_softmax("f32", (7, 13)).replace("  %1 = log_softmax(%x)[dim=1, dtype=None] "
                                                      ": f32[7,13]\n", "").replace(
        "return %0, %1", "return %0"))
    src = _rows_steps(program)[0].source.source
    assert src.count("exp_f32(") == 1 and "keep" in src
    # the kept row is also the row the sum reduces: stored once, no second buffer
    assert len(re.findall(r"keep\d+\[c\] = ", src)) == 1 and not re.search(r"buf\d", src)


def test_outputs_come_from_the_buffer_pool():
    # a released output buffer is written again by the next call: no new memory
    graph = parse(_softmax("f32", (300, 257)))
    program = CompiledProgram(graph)
    (step,) = _rows_steps(program)
    feeds = _feeds(graph)
    program.run(feeds)
    allocated = step.pool.allocated
    for _ in range(3):
        program.run(feeds)
    assert step.pool.allocated == allocated and step.pool.reused >= 3


def test_a_group_without_scalar_expressions_falls_back():
    text = """graph f(%x: f32[6,9]) {
  %0 = amax(%x)[dim=(1,), keepdim=True] : f32[6,1]
  %1 = div(%x, %0)[rounding_mode=None] : f32[6,9]
  %2 = mul(%1, 0.5) : f32[6,9]
  %3 = erfinv(%2) : f32[6,9]
  %4 = sum(%3)[dim=(1,), keepdim=True, dtype=None] : f32[6,1]
  return %4
}"""
    graph = parse(text)
    program = CompiledProgram(graph)
    (node,) = [n for n in program.graph.nodes if n.op.name == "fused"]
    assert node.attrs["kind"] == "rows" and rows_source(node.attrs["body"]) is None
    assert not _rows_steps(program)
    x = np.random.default_rng(1).uniform(0.1, 1, (6, 9)).astype(np.float32)
    np.testing.assert_allclose(program.run([x])[0][0], interpret(graph, [x]).outputs[0],
                               rtol=1e-6)


# --- end to end ----------------------------------------------------------------------------

def _lsm_step(logits, target):
    loss = F.nll_loss(F.log_softmax(logits, dim=1), target)
    loss.backward()
    return loss


@pytest.fixture
def planned(monkeypatch) -> list:
    """The rows steps the runtime plans while the test runs."""
    import codegen.rows
    steps = []
    plan = codegen.rows.plan_rows

    def counting(node, *args, **kwargs):
        step = plan(node, *args, **kwargs)
        steps.append(step)
        return step

    monkeypatch.setattr(codegen.rows, "plan_rows", counting)
    return steps


@pytest.mark.parametrize("shape", [(16, 10), (33, 1), (1, 7)], ids=str)
def test_compile_log_softmax_nll_matches_eager(shape, planned):
    rng = np.random.default_rng(0)
    data = rng.standard_normal(shape).astype(np.float32)
    target = compgrad.tensor(rng.integers(0, shape[1], shape[0]))
    step = compgrad.compile(_lsm_step)
    for _ in range(2):
        a = compgrad.tensor(data, requires_grad=True)
        b = compgrad.tensor(data, requires_grad=True)
        assert_same(_lsm_step(a, target), step(b, target))
        assert_same(a.grad, b.grad)
    assert planned and all(isinstance(s, RowsStep) for s in planned)


def test_compile_raises_nll_target_error_when_only_the_gradient_is_used():
    def step(logits, target):
        F.nll_loss(F.log_softmax(logits, dim=1), target).backward()
        return logits.grad

    rng = np.random.default_rng(5)
    data = rng.standard_normal((16, 10)).astype(np.float32)
    target = compgrad.tensor(rng.integers(0, 10, 16))
    compiled = compgrad.compile(step)
    compiled(compgrad.tensor(data, requires_grad=True), target)   # compiles, runs
    bad = compgrad.tensor(np.where(np.arange(16) == 3, 10, target.numpy()))
    for fn in (step, compiled):
        with pytest.raises(IndexError, match="Target 10 is out of bounds."):
            fn(compgrad.tensor(data, requires_grad=True), bad)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_compile_layer_norm_forward_and_backward_matches_eager(dtype, planned):
    rng = np.random.default_rng(1)
    eager, ours = nn.LayerNorm(24), nn.LayerNorm(24)
    if dtype == "float64":
        eager, ours = eager.double(), ours.double()
    with compgrad.no_grad():
        for m in (eager, ours):
            m.weight.copy_(compgrad.tensor(np.linspace(0.5, 1.5, 24).astype(dtype)))
            m.bias.copy_(compgrad.tensor(np.linspace(-1, 1, 24).astype(dtype)))
    x = rng.standard_normal((2, 5, 24)).astype(dtype)
    g = compgrad.tensor(rng.standard_normal((2, 5, 24)).astype(dtype))

    def run(module, xt):
        y = module(xt)
        y.backward(g)
        return y

    step = compgrad.compile(run)
    for _ in range(2):
        a = compgrad.tensor(x, requires_grad=True)
        b = compgrad.tensor(x, requires_grad=True)
        for m in (eager, ours):
            m.zero_grad()
        ya, yb = run(eager, a), step(ours, b)
        atol = 1e-5 if dtype == "float32" else 1e-12
        assert_same(ya, yb, atol=atol)
        assert_same(a.grad, b.grad, atol=atol)
        assert_same(eager.weight.grad, ours.weight.grad, atol=atol)
        assert_same(eager.bias.grad, ours.bias.grad, atol=atol)
    assert len(planned) == 1 and isinstance(planned[0], RowsStep)


def test_parallel_threshold_covers_r_times_c():
    # the parallel variant is chosen from R * C, like codegen.cpu's phases
    from codegen.cpu import PARALLEL_MIN_ELEMENTS
    small = rows_source(_fused_body(_softmax("f32", (8, 8))))
    big_rows = math.ceil(PARALLEL_MIN_ELEMENTS / 64)
    big = rows_source(_fused_body(_softmax("f32", (big_rows, 64))))
    assert "parallel=False" in small.source and "parallel=True" in big.source


def _fused_body(text: str):
    program = CompiledProgram(parse(text))
    (node,) = [n for n in program.graph.nodes if n.op.name == "fused"]
    return node.attrs["body"]

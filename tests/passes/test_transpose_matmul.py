"""passes.simplify.transpose_matmul: ``mm(a, b).T -> mm(b.T, a.T)``, IR text in and out.

The weight gradient of every Linear comes out of autodiff as ``mm(x.T, g).T``, a
column-major array that the optimizer's elementwise update would read with a stride;
the rewrite computes it row-major (BLAS folds the transposes) and the double
transposes it creates cancel."""

from __future__ import annotations

import numpy as np

from ir.interpret import interpret
from ir.parser import parse
from passes.simplify import simplify, transpose_matmul

from ._ir_text import check_rewrite

WEIGHT_GRAD = """
graph f(%x: f32[8,5], %g: f32[8,3]) {
  %0 = permute(%x)[dims=(1, 0)] : f32[5,8]
  %1 = mm(%0, %g) : f32[5,3]
  %2 = permute(%1)[dims=(1, 0)] : f32[3,5]
  %3 = mul(%2, 2.0) : f32[3,5]
  return %3
}
"""


def _same_results(before: str, after_graph) -> None:
    graph = parse(before)
    rng = np.random.default_rng(0)
    feeds = [rng.standard_normal(v.type.shape).astype(np.float32) for v in graph.inputs]
    want = interpret(graph, feeds).outputs
    got = interpret(after_graph, feeds).outputs
    for a, b in zip(want, got):
        np.testing.assert_allclose(b, a, rtol=1e-6)


def test_the_transpose_of_a_product_becomes_the_product_of_transposes():
    _, result = check_rewrite(transpose_matmul, WEIGHT_GRAD, """
graph f(%x: f32[8,5], %g: f32[8,3]) {
  %0 = permute(%x)[dims=(1, 0)] : f32[5,8]
  %1 = mm(%0, %g) : f32[5,3]
  %2 = permute(%g)[dims=(1, 0)] : f32[3,8]
  %3 = mm(%2, %x) : f32[3,5]
  %4 = mul(%3, 2.0) : f32[3,5]
  return %4
}
""")
    _same_results(WEIGHT_GRAD, result)


def test_simplify_leaves_one_product_and_no_column_major_result():
    result = simplify(parse(WEIGHT_GRAD))
    ops = [n.op.name for n in result.nodes]
    assert ops == ["permute", "mm", "mul"]
    assert result.nodes[1].inputs[1] is result.inputs[0]   # reads x itself, not x.T.T
    _same_results(WEIGHT_GRAD, result)


def test_a_product_read_elsewhere_is_not_computed_twice():
    before = """
graph f(%a: f32[4,6], %b: f32[6,3]) {
  %0 = mm(%a, %b) : f32[4,3]
  %1 = permute(%0)[dims=(1, 0)] : f32[3,4]
  %2 = relu(%0) : f32[4,3]
  return %1, %2
}
"""
    check_rewrite(transpose_matmul, before, before)


def test_a_returned_transpose_becomes_fresh_row_major_memory():
    before = """
graph f(%a: f32[4,6], %b: f32[6,3]) {
  %0 = mm(%a, %b) : f32[4,3]
  %1 = permute(%0)[dims=(1, 0)] : f32[3,4]
  return %1
}
"""
    _, result = check_rewrite(transpose_matmul, before, """
graph f(%a: f32[4,6], %b: f32[6,3]) {
  %0 = mm(%a, %b) : f32[4,3]
  %1 = permute(%b)[dims=(1, 0)] : f32[3,6]
  %2 = permute(%a)[dims=(1, 0)] : f32[6,4]
  %3 = mm(%1, %2) : f32[3,4]
  return %3
}
""")
    _same_results(before, result)


def test_a_returned_product_keeps_sharing_storage_with_its_transpose():
    before = """
graph f(%a: f32[4,6], %b: f32[6,3]) {
  %0 = mm(%a, %b) : f32[4,3]
  %1 = permute(%0)[dims=(1, 0)] : f32[3,4]
  return %0, %1
}
"""
    check_rewrite(transpose_matmul, before, before)

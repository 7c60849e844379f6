"""passes.decompose: log_softmax, softmax and layer_norm into the stable primitive forms
(IR text in, IR text out), what is kept whole, the layer_norm forward and its VJP
sharing mean/rstd after CSE, and the interpreter's values before and after."""

from __future__ import annotations

import numpy as np
import pytest

from ir.interpret import interpret
from ir.parser import parse
from ir.printer import print_graph
from ir.verify import verify
from passes.decompose import decompose
from passes.simplify import simplify
from tests.passes._ir_text import check_rewrite


def _feeds(graph, seed: int = 0) -> list:
    rng = np.random.default_rng(seed)
    feeds = []
    for v in graph.inputs:
        t = v.type
        if t.dtype.is_floating_point:
            feeds.append((3 * rng.standard_normal(t.shape)).astype(t.dtype.np_dtype))
        else:
            feeds.append(rng.integers(0, 3, t.shape).astype(t.dtype.np_dtype))
    return feeds


def _same_values(before: str) -> None:
    graph = parse(before)
    out = decompose(graph)
    verify(out, roundtrip=True)
    feeds = _feeds(graph)
    want, got = interpret(graph, feeds), interpret(out, feeds)
    for a, b in zip(want.outputs, got.outputs):
        assert a.dtype == b.dtype and a.shape == b.shape
        rtol = 1e-5 if a.dtype == np.float32 else 1e-12
        np.testing.assert_allclose(b, a, rtol=rtol, atol=rtol)


LOG_SOFTMAX = """\
graph f(%x: f32[4,5]) {
  %0 = log_softmax(%x)[dim=1, dtype=None] : f32[4,5]  # a.py:1
  return %0
}"""


def test_log_softmax_becomes_the_stable_form():
    check_rewrite(decompose, LOG_SOFTMAX, """\
graph f(%x: f32[4,5]) {
  %0 = amax(%x)[dim=(1,), keepdim=True] : f32[4,1]  # a.py:1
  %1 = sub(%x, %0) : f32[4,5]  # a.py:1
  %2 = exp(%1) : f32[4,5]  # a.py:1
  %3 = sum(%2)[dim=(1,), keepdim=True, dtype=None] : f32[4,1]  # a.py:1
  %4 = log(%3) : f32[4,1]  # a.py:1
  %5 = sub(%1, %4) : f32[4,5]  # a.py:1
  return %5
}""")
    _same_values(LOG_SOFTMAX)


def test_softmax_becomes_the_stable_form():
    before = """\
graph f(%x: f64[2,3,6]) {
  %0 = softmax(%x)[dim=2, dtype=None] : f64[2,3,6]
  return %0
}"""
    check_rewrite(decompose, before, """\
graph f(%x: f64[2,3,6]) {
  %0 = amax(%x)[dim=(2,), keepdim=True] : f64[2,3,1]
  %1 = sub(%x, %0) : f64[2,3,6]
  %2 = exp(%1) : f64[2,3,6]
  %3 = sum(%2)[dim=(2,), keepdim=True, dtype=None] : f64[2,3,1]
  %4 = div(%2, %3)[rounding_mode=None] : f64[2,3,6]
  return %4
}""")
    _same_values(before)


LAYER_NORM = """\
graph f(%x: f32[3,4,8], %w: f32[4,8] param, %b: f32[4,8] param) {
  %0 = layer_norm(%x, %w, %b)[dims=(1, 2), eps=1e-05, has_weight=True, has_bias=True] \
: f32[3,4,8]
  return %0
}"""


def test_layer_norm_becomes_mean_centre_rsqrt_scale_shift():
    check_rewrite(decompose, LAYER_NORM, """\
graph f(%x: f32[3,4,8], %w: f32[4,8] param, %b: f32[4,8] param) {
  %0 = mean(%x)[dim=(1, 2), keepdim=True, dtype=None] : f32[3,1,1]
  %1 = sub(%x, %0) : f32[3,4,8]
  %2 = mul(%1, %1) : f32[3,4,8]
  %3 = mean(%2)[dim=(1, 2), keepdim=True, dtype=None] : f32[3,1,1]
  %4 = add(%3, 1e-05) : f32[3,1,1]
  %5 = rsqrt(%4) : f32[3,1,1]
  %6 = mul(%1, %5) : f32[3,4,8]
  %7 = mul(%6, %w) : f32[3,4,8]
  %8 = add(%7, %b) : f32[3,4,8]
  return %8
}""")
    _same_values(LAYER_NORM)


def test_layer_norm_without_weight_or_bias():
    before = """\
graph f(%x: f64[5,7], %b: f64[7]) {
  %0 = layer_norm(%x, %b)[dims=(1,), eps=0.001, has_weight=False, has_bias=True] : f64[5,7]
  return %0
}"""
    out = print_graph(decompose(parse(before)))
    assert "layer_norm" not in out and "add(%6, %b)" in out and "mul(%6," not in out
    _same_values(before)


@pytest.mark.parametrize("text", [
    # not over the last dim: the row kernels would not take it
    "graph f(%x: f32[4,5]) {\n  %0 = log_softmax(%x)[dim=0, dtype=None] : f32[4,5]\n"
    "  return %0\n}",
    # float16 is computed in float32 by the reference
    "graph f(%x: f16[4,5]) {\n  %0 = softmax(%x)[dim=1, dtype=None] : f16[4,5]\n"
    "  return %0\n}",
    # a dtype conversion first
    "graph f(%x: f32[4,5]) {\n  %0 = softmax(%x)[dim=1, dtype=float64] : f64[4,5]\n"
    "  return %0\n}",
    # empty rows
    "graph f(%x: f32[0,5]) {\n  %0 = softmax(%x)[dim=1, dtype=None] : f32[0,5]\n"
    "  return %0\n}",
    # normalised over a leading dim
    "graph f(%x: f32[4,5]) {\n  %0 = layer_norm(%x)[dims=(0,), eps=1e-05, "
    "has_weight=False, has_bias=False] : f32[4,5]\n  return %0\n}",
])
def test_kept_whole_where_a_row_kernel_cannot_run_it(text):
    graph = parse(text)
    assert decompose(graph) is graph


def test_layer_norm_forward_and_backward_share_mean_and_rstd_after_cse():
    # the capture of LayerNorm forward + VJP: the backward's own mean/rstd nodes
    before = """\
graph f(%x: f32[6,16], %w: f32[16] param, %b: f32[16] param, %g: f32[6,16]) {
  %0 = layer_norm(%x, %w, %b)[dims=(1,), eps=1e-05, has_weight=True, has_bias=True] \
: f32[6,16]
  %1 = mean(%x)[dim=(1,), keepdim=True, dtype=None] : f32[6,1]
  %2 = sub(%x, %1) : f32[6,16]
  %3 = mul(%2, %2) : f32[6,16]
  %4 = mean(%3)[dim=(1,), keepdim=True, dtype=None] : f32[6,1]
  %5 = add(%4, 1e-05) : f32[6,1]
  %6 = rsqrt(%5) : f32[6,1]
  %7 = mul(%2, %6) : f32[6,16]
  %8 = mul(%g, %7) : f32[6,16]
  return %0, %8
}"""
    out = simplify(decompose(parse(before)))
    ops = [n.op.name for n in out.nodes]
    assert ops.count("mean") == 2 and ops.count("rsqrt") == 1 and "layer_norm" not in ops
    graph = parse(before)
    feeds = _feeds(graph)
    for a, b in zip(interpret(graph, feeds).outputs, interpret(out, feeds).outputs):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-5)


def test_unchanged_graph_is_returned_as_is():
    graph = parse("graph f(%x: f32[3]) {\n  %0 = exp(%x) : f32[3]\n  return %0\n}")
    assert decompose(graph) is graph


def test_stable_for_large_logits():
    graph = parse(LOG_SOFTMAX)
    x = np.array([[1000.0, 0.0, -1000.0, 3.0, 2.0]] * 4, dtype=np.float32)
    got = interpret(decompose(graph), [x]).outputs[0]
    want = interpret(graph, [x]).outputs[0]
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, want, rtol=1e-6)

"""passes.decompose: log_softmax, softmax and layer_norm into the stable primitive forms,
nll_loss into a compare and a row sum, nll_loss_backward (always) into its primitive form,
exp of a log_softmax into its softmax (IR text in,
IR text out), what is kept whole, the layer_norm forward and its VJP sharing mean/rstd
after CSE, and the interpreter's values before and after."""

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


# --- nll_loss and the softmax of a log_softmax ---------------------------------------------

NLL = """\
graph f(%x: f32[4,5], %t: i64[4]) {
  %0 = nll_loss(%x, %t)[reduction="mean", ignore_index=-100, has_weight=False] : f32[]  # a.py:2
  return %0
}"""


def test_nll_loss_picks_with_a_compare_and_a_row_sum():
    check_rewrite(decompose, NLL, """\
graph f(%x: f32[4,5], %t: i64[4]) {
  %0 = nll_target(%t)[num_classes=5, ignore_index=-100] : i64[4]  # a.py:2
  %1 = ne(%t, -100) : bool[4]  # a.py:2
  %2 = to_dtype(%1)[dtype=float32] : f32[4]  # a.py:2
  %3 = mul(%2, 1.0) : f32[4]  # a.py:2
  %4 = arange()[start=0, end=5, step=1, dtype=int64, device=device("cpu")] : i64[5]  # a.py:2
  %5 = reshape(%0)[shape=(4, 1)] : i64[4,1]  # a.py:2
  %6 = eq(%4, %5) : bool[4,5]  # a.py:2
  %7 = where(%6, %x, 0.0) : f32[4,5]  # a.py:2
  %8 = sum(%7)[dim=(1,), keepdim=False, dtype=None] : f32[4]  # a.py:2
  %9 = mul(%8, %3) : f32[4]  # a.py:2
  %10 = neg(%9) : f32[4]  # a.py:2
  %11 = sum(%10)[dim=(0,), keepdim=False, dtype=None] : f32[]  # a.py:2
  %12 = sum(%3)[dim=(0,), keepdim=False, dtype=None] : f32[]  # a.py:2
  %13 = div(%11, %12)[rounding_mode=None] : f32[]  # a.py:2
  return %13
}""")


@pytest.mark.parametrize("variant", [
    ("mean", "", ""), ("sum", "", ""), ("none", "", ""),
    ("mean", ", %w", ", %w: f32[5]"), ("none", ", %w", ", %w: f32[5]"),
], ids=str)
def test_nll_loss_decomposed_values(variant):
    reduction, arg, decl = variant
    shape = "f32[4]" if reduction == "none" else "f32[]"
    text = (f"graph f(%x: f32[4,5], %t: i64[4]{decl}) {{\n"
            f"  %0 = nll_loss(%x, %t{arg})[reduction=\"{reduction}\", ignore_index=2, "
            f"has_weight={bool(arg)}] : {shape}\n  return %0\n}}")
    graph = parse(text)
    assert "nll_loss" not in [n.op.name for n in decompose(graph).nodes]
    _same_values(text)


def test_nll_loss_target_check_survives_an_unused_loss():
    # nll_target is an indexing node: it raises the forward's error, and DCE keeps it
    graph = parse(NLL.replace("return %0", "return %x"))
    out = simplify(decompose(graph))
    assert [n.op.name for n in out.nodes] == ["nll_target"]
    x = np.zeros((4, 5), np.float32)
    with pytest.raises(IndexError, match="Target 7 is out of bounds."):
        interpret(out, [x, np.array([0, 7, 1, 2])])


@pytest.mark.parametrize("text", [
    # 3-d input (classes on dim 1 are not the trailing dim)
    "graph f(%x: f32[2,5,3], %t: i64[2,3]) {\n  %0 = nll_loss(%x, %t)[reduction=\"mean\", "
    "ignore_index=-100, has_weight=False] : f32[]\n  return %0\n}",
    # unbatched
    "graph f(%x: f32[5], %t: i64[]) {\n  %0 = nll_loss(%x, %t)[reduction=\"mean\", "
    "ignore_index=-100, has_weight=False] : f32[]\n  return %0\n}",
])
def test_nll_loss_kept_whole_when_not_rows(text):
    graph = parse(text)
    assert decompose(graph) is graph


@pytest.mark.parametrize("case", [
    ("f32[]", "f32[4,5]", "i64[4]", "mean", ""), ("f32[]", "f32[4,5]", "i64[4]", "sum", ""),
    ("f32[4]", "f32[4,5]", "i64[4]", "none", ""),
    ("f32[]", "f32[4,5]", "i64[4]", "mean", "f32[5]"),
    ("f32[2,3]", "f64[2,5,3]", "i64[2,3]", "none", ""),
    ("f64[]", "f64[5]", "i64[]", "sum", ""),
    ("f32[]", "f32[4,5]", "u8[4]", "mean", ""),
], ids=str)
def test_nll_loss_backward_is_always_decomposed_with_the_same_values(case):
    # nll_loss's VJP is one op eagerly; compiled, it becomes the primitives fusion puts
    # in the kernels around it (any rank and dtype: the VJP always built those)
    g, x, t, reduction, w = case
    g = g if x[1:3] != "64" else g.replace("f32", "f64")
    shape = x[x.index("["):]
    decl = f", %w: {w}" if w else ""
    text = (f"graph f(%g: {g}, %t: {t}{decl}) {{\n"
            f"  %0 = nll_loss_backward(%g, %t{', %w' if w else ''})[input_shape="
            f"{tuple(int(n) for n in shape[1:-1].split(','))}, reduction=\"{reduction}\", "
            f"ignore_index=2, has_weight={bool(w)}] : {x}\n  return %0\n}}")
    graph = parse(text)
    assert [n.op.name for n in graph.nodes] == ["nll_loss_backward"]
    out = decompose(graph)
    assert "nll_loss_backward" not in [n.op.name for n in out.nodes]
    assert "nll_target" in [n.op.name for n in out.nodes]
    _same_values(text)


def test_exp_of_a_log_softmax_is_its_softmax():
    # the log_softmax VJP's exp(y): e / sum(e) with the decomposition's own e (one
    # exponential per element); an exp of anything else stays
    text = """\
graph f(%x: f32[4,5]) {
  %0 = log_softmax(%x)[dim=1, dtype=None] : f32[4,5]
  %1 = exp(%0) : f32[4,5]
  %2 = exp(%x) : f32[4,5]
  return %1, %2
}"""
    out = decompose(parse(text))
    assert [n.op.name for n in out.nodes] == ["amax", "sub", "exp", "sum", "log", "sub", "div",
                                              "exp"]
    div = out.nodes[6]
    assert div.inputs == (out.nodes[2].outputs[0], out.nodes[3].outputs[0])
    _same_values(text)

"""The ``fused`` op in the IR: nested bodies print indented, parse back, verify
recursively and run through the reference interpreter."""

from __future__ import annotations

import numpy as np
import pytest

import compgrad
from ir.graph import Graph, Mutation
from ir.interpret import interpret
from ir.opdef import OpKind, get_op
from ir.parser import IRParseError, parse, parse_literal
from ir.printer import format_literal, print_graph
from ir.verify import IRVerificationError, verify
from tests.ir._graphs import temporary_op

FUSED_TEXT = """\
graph step(%x: f32[2,3], %b: f32[3], %lr: f64[] weak) {
  %0 = exp(%x) : f32[2,3]
  %1, %2 = fused(%0, %b, %lr)[kind="elementwise", refused=("%9 add + %8 cumsum: opaque op \
cumsum",), body=graph elementwise_0(%in0: f32[2,3], %b: f32[3], %lr: f64[] weak) {
    %0 = add(%in0, %b) : f32[2,3]  # model.py:4
    %1 = mul(%0, %lr) : f32[2,3]  # " a # loc"
    return %0, %1
  }] : f32[2,3], f32[2,3]  # model.py:9
  %3 = fused(%2)[kind="reduction", body=graph reduction_1(%in0: f32[2,3]) {
    %0 = sum(%in0)[dim=(1,), keepdim=False, dtype=None] : f32[2]
    %1 = fused(%0)[kind="elementwise", body=graph elementwise_2(%in0: f32[2]) {
      %0 = neg(%in0) : f32[2]
      return %0
    }] : f32[2]
    return %1
  }] : f32[2]
  return %1, %3
}"""


def _feeds():
    rng = np.random.default_rng(0)
    return [rng.standard_normal((2, 3)).astype(np.float32),
            rng.standard_normal(3).astype(np.float32), 0.25]


def test_fused_op_record():
    op = get_op("fused")
    assert op.kind is OpKind.OPAQUE
    assert not op.differentiable
    assert op.public == "_ops.fused"
    assert compgrad._ops.fused is not None  # the sweep calls it by its public path


def test_nested_bodies_print_and_parse_back_exactly():
    g = parse(FUSED_TEXT)
    assert print_graph(g) == FUSED_TEXT
    verify(g, roundtrip=True)
    fused = g.nodes[1]
    body = fused.attrs["body"]
    assert isinstance(body, Graph) and body.name == "elementwise_0"
    assert fused.loc == "model.py:9"
    assert [n.loc for n in body.nodes] == ["model.py:4", " a # loc"]
    assert fused.attrs["refused"] == ("%9 add + %8 cumsum: opaque op cumsum",)
    inner = g.nodes[2].attrs["body"].nodes[1].attrs["body"]
    assert inner.name == "elementwise_2" and inner.nodes[0].op.name == "neg"


def test_bodies_have_their_own_scope():
    # the outer %x is not visible inside the body
    text = FUSED_TEXT.replace("%0 = add(%in0, %b) : f32[2,3]", "%0 = add(%x, %b) : f32[2,3]")
    with pytest.raises(IRParseError, match="undefined value %x") as info:
        parse(text)
    assert info.value.line == 4


def test_interpreter_runs_bodies():
    g = parse(FUSED_TEXT)
    x, b, lr = _feeds()
    out1, out3 = interpret(g, [x, b, lr]).outputs
    s = x.astype(np.float32)
    s = np.exp(s) + b
    np.testing.assert_array_equal(out1, s)
    np.testing.assert_array_equal(out3, -(s * np.float32(lr)).sum(axis=1))


def test_eager_call_of_the_internal_function():
    body = parse(FUSED_TEXT).nodes[1].attrs["body"]
    x, b, lr = _feeds()
    a, m = compgrad._ops.fused(compgrad.from_numpy(x), compgrad.from_numpy(b), lr, body=body,
                               kind="elementwise")
    np.testing.assert_array_equal(a.numpy(), x + b)
    np.testing.assert_array_equal(m.numpy(), (x + b) * np.float32(lr))


def test_graph_literal_round_trip():
    body = parse(FUSED_TEXT).nodes[1].attrs["body"]
    text = format_literal(body)
    assert text == print_graph(body)
    assert print_graph(parse_literal(text)) == text


def test_verifier_checks_bodies_recursively():
    g = parse(FUSED_TEXT)
    inner = g.nodes[1].attrs["body"]
    inner.outputs.append(g.nodes[0].outputs[0])  # a value of the outer graph
    with pytest.raises(IRVerificationError, match="attribute 'body' of a fused node: graph "
                       "'elementwise_0': output 2 .* is not a value defined in the graph"):
        verify(g, roundtrip=False)


def test_verifier_names_the_inner_node():
    g = parse(FUSED_TEXT)
    inner = g.nodes[2].attrs["body"].nodes[1].attrs["body"]
    bad = inner.nodes[0]
    bad.outputs[0].type = inner.inputs[0].type.__class__((3,), bad.outputs[0].type.dtype)
    with pytest.raises(IRVerificationError) as info:
        verify(g, roundtrip=False)
    assert info.value.node is bad
    assert "graph 'elementwise_2', node `%0 = neg(%in0) : f32[3]`" in str(info.value)


def test_body_type_mismatch_is_reported():
    text = FUSED_TEXT.replace("%1, %2 = fused(%0, %b, %lr)", "%1, %2 = fused(%b, %0, %lr)")
    with pytest.raises(IRParseError, match="input 0 is f32\\[3\\], the body 'elementwise_0' "
                       "expects f32\\[2,3\\]") as info:
        parse(text)
    assert info.value.line == 3


def test_body_input_count_and_kind_are_checked():
    with pytest.raises(IRParseError, match="takes 3 inputs, got 2"):
        parse(FUSED_TEXT.replace("fused(%0, %b, %lr)", "fused(%0, %b)"))
    with pytest.raises(IRParseError, match="kind must be one of"):
        parse(FUSED_TEXT.replace('kind="reduction"', 'kind="fancy"'))


def test_body_without_mutations():
    g = parse(FUSED_TEXT)
    body = g.nodes[1].attrs["body"]
    body.mutations.append(Mutation(body.inputs[0], "data", body.nodes[0].outputs[0]))
    with pytest.raises(IRVerificationError, match="records mutations"):
        verify(g, roundtrip=False)


def test_parse_error_lines_inside_a_body():
    text = FUSED_TEXT.replace("    %1 = mul(%0, %lr) : f32[2,3]", "    %1 = mul(%0, %lr) : f32[2]")
    with pytest.raises(IRParseError, match="the type rule of mul gives f32\\[2,3\\]") as info:
        parse(text)
    assert info.value.line == 5


def test_unclosed_body():
    text = FUSED_TEXT.replace("    return %0, %1\n  }]", "    return %0, %1\n  ]")
    with pytest.raises(IRParseError, match="unmatched ']'"):
        parse(text)


def test_braces_outside_brackets_keep_their_old_errors():
    with pytest.raises(IRParseError, match="'\\(' is never closed"):
        parse("graph g(%x: f32[3]) {\n  %0 = relu(%x : f32[3]\n  return %0\n}")


def _keep(types, junk):
    return types[0]


def _keep_impl(a, junk):
    return a


def test_round_trip_failure_names_the_node_after_multi_line_bodies():
    g = parse(FUSED_TEXT)
    with temporary_op("_test_junk_attr", _keep, _keep_impl) as op:
        node = g.add_node(op, [g.nodes[2].outputs[0]], {"junk": {1: 2}})  # prints as <...>
        g.outputs = [node.outputs[0]]
        with pytest.raises(IRVerificationError, match="does not parse back") as info:
            verify(g, roundtrip=True)
    assert info.value.node is node

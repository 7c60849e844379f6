"""The reference interpreter: input checking, constants, mutations, error notes."""

from __future__ import annotations

import numpy as np
import pytest

from ir.interpret import Result, describe_node, interpret
from ir.parser import parse
from tests.ir._graphs import temporary_op

STEP = """\
graph sgd(%x: f32[2,3], %w: f32[3,4] param, %lr: f64[] weak, \
%b: f32[4] const=[0.5, -0.0, 1.0, 2.0]) {
  %0 = matmul(%x, %w) : f32[2,4]  # model.py:3
  %1 = add(%0, %b) : f32[2,4]
  %2, %3 = max(%1)[dim=1, keepdim=False] : f32[2], i64[2]
  %4 = zeros()[shape=(3, 4), dtype=float32, device=device("cpu")] : f32[3,4]
  %5 = add(%4, %lr) : f32[3,4]
  %6 = sub(%w, %5) : f32[3,4]
  return %2, %3, %x
  mutate %w <- %6
  mutate grad(%w) <- %5
  mutate grad(%x) <- None
}"""

X = np.arange(6, dtype=np.float32).reshape(2, 3) / 4
W = np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4)
B = np.array([0.5, -0.0, 1.0, 2.0], np.float32)


def test_runs_a_parsed_graph():
    g = parse(STEP)
    res = interpret(g, [X, W, 0.1, None])
    assert isinstance(res, Result)
    h = X @ W + B
    m, i, x = res.outputs
    np.testing.assert_allclose(m, h.max(axis=1), rtol=1e-6)
    assert m.dtype == np.float32
    np.testing.assert_array_equal(i, h.argmax(axis=1))
    assert i.dtype == np.int64
    assert x is X or np.array_equal(x, X)


def test_mutations_in_the_result():
    g = parse(STEP)
    res = interpret(g, [X, W, 0.1, None])
    assert [m for m, _ in res.mutations] == g.mutations
    (_, new_w), (_, grad_w), (_, grad_x) = res.mutations
    np.testing.assert_allclose(new_w, W - np.float32(0.1), rtol=1e-6)
    np.testing.assert_allclose(grad_w, np.full((3, 4), 0.1, np.float32))
    assert new_w.dtype == np.float32 and grad_x is None
    np.testing.assert_array_equal(W, np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4))


def test_constant_inputs_use_the_graphs_data():
    g = parse(STEP)
    a = interpret(g, [X, W, 0.1, None]).outputs[0]
    # whatever is passed for a CONSTANT input, the graph's data is used
    b = interpret(g, [X, W, 0.1, np.zeros(4, np.float32)]).outputs[0]
    np.testing.assert_array_equal(a, b)


def test_input_count():
    with pytest.raises(TypeError, match="graph 'sgd' takes 4 inputs, 3 were given"):
        interpret(parse(STEP), [X, W, 0.1])


@pytest.mark.parametrize("x,match", [
    (np.zeros((3, 2), np.float32), r"input %x expects f32\[2,3\], got an array of shape \[3, 2\]"),
    (np.zeros((2, 3), np.float64), "and dtype float64"),
    ([[0.0] * 3] * 2, "and dtype float64"),
])
def test_tensor_inputs_are_checked(x, match):
    with pytest.raises(TypeError, match=match):
        interpret(parse(STEP), [x, W, 0.1, None])


def test_lists_of_the_right_dtype_are_accepted():
    g = parse("graph g(%i: i64[2]) {\n  %0 = neg(%i) : i64[2]\n  return %0\n}")
    np.testing.assert_array_equal(interpret(g, [[1, -2]]).outputs[0], [-1, 2])


def test_weak_inputs_take_scalars():
    g = parse(STEP)
    with pytest.raises(TypeError, match=r"input %lr is a scalar input \(f64\[\]\), got ndarray"):
        interpret(g, [X, W, np.array(0.1), None])
    with pytest.raises(TypeError, match="got NoneType"):
        interpret(g, [X, W, None, None])
    a = interpret(g, [X, W, np.float64(0.25), None]).mutations[1][1]
    np.testing.assert_allclose(a, np.full((3, 4), 0.25, np.float32))


def _rule(types, **attrs):
    return types[0].with_()


def _boom(x, **attrs):
    raise ValueError("boom")


def test_node_errors_carry_the_node_and_loc():
    with temporary_op("test_boom", _rule, _boom):
        g = parse("graph g(%x: f32[3]) {\n  %0 = relu(%x) : f32[3]\n"
                  "  %1 = test_boom(%0)[k=2] : f32[3]  # model.py:7\n  return %1\n}")
        with pytest.raises(ValueError, match="boom") as info:
            interpret(g, [np.zeros(3, np.float32)])
        notes = getattr(info.value, "__notes__", [])
        assert notes == ["while running IR node: "
                         "%<test_boom#0> = test_boom(%<relu#0>)[k=2] : f32[3]  # model.py:7"]


def test_results_are_cast_and_shape_checked():
    def wide(x):
        return x.astype(np.float64) * 2

    def wrong(x):
        return np.zeros(5)

    with temporary_op("test_wide", _rule, wide), temporary_op("test_wrong", _rule, wrong):
        g = parse("graph g(%x: f32[3]) {\n  %0 = test_wide(%x) : f32[3]\n  return %0\n}")
        out = interpret(g, [np.ones(3, np.float32)]).outputs[0]
        assert out.dtype == np.float32 and out.tolist() == [2, 2, 2]
        g = parse("graph g(%x: f32[3]) {\n  %0 = test_wrong(%x) : f32[3]  # here.py:1\n"
                  "  return %0\n}")
        with pytest.raises(AssertionError, match="type rule says") as info:
            interpret(g, [np.ones(3, np.float32)])
        assert "here.py:1" in info.value.__notes__[0]


def test_describe_node_adds_the_loc_once():
    g = parse(STEP)
    assert describe_node(g.nodes[0]) == "%<matmul#0> = matmul(%x, %w) : f32[2,4]  # model.py:3"
    assert describe_node(g.nodes[1]) == "%<add#0> = add(%<matmul#0>, %b) : f32[2,4]"

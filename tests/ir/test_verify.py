"""The verifier: every invariant, each broken on purpose, named in the message."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from ir import dtypes
from ir.graph import Graph, Mutation, Role, Value
from ir.opdef import get_op
from ir.parser import parse
from ir.printer import print_graph
from ir.types import TensorType
from ir.verify import IRVerificationError, verify
from tests.ir._graphs import temporary_op

F3 = TensorType((3,), dtypes.float32)
I3 = TensorType((3,), dtypes.int64)


def _graph():
    """x, w (param) -> %0 = add(x, w); %1 = relu(%0) at model.py:5; w <- %0."""
    g = Graph("net")
    x = g.add_input(F3, name="x")
    w = g.add_input(F3, Role.PARAMETER, name="w")
    n0 = g.add_node(get_op("add"), (x, w))
    n1 = g.add_node(get_op("relu"), (n0.outputs[0],), loc="model.py:5")
    g.outputs = [n1.outputs[0]]
    g.mutate(w, "data", n0.outputs[0])
    return g


def _fails(g, match: str) -> IRVerificationError:
    with pytest.raises(IRVerificationError) as info:
        verify(g, roundtrip=False)
    assert match in str(info.value), str(info.value)
    assert isinstance(info.value, ValueError)
    return info.value


def test_valid_graph_verifies():
    g = _graph()
    verify(g, roundtrip=False)
    verify(g, roundtrip=True)


def test_message_names_the_node_text_and_loc():
    g = _graph()
    out = g.nodes[1].outputs[0]
    out.type = TensorType((3,), dtypes.float64)
    err = _fails(g, "output 0 has type f64[3], the type rule of relu gives f32[3]")
    assert "graph 'net', node `%1 = relu(%0) : f64[3]  # model.py:5`" in str(err)
    assert err.node is g.nodes[1]


# --- inputs ---------------------------------------------------------------------------------

def test_role_must_be_a_role():
    g = _graph()
    g.inputs[1].role = "param"
    err = _fails(g, "input %w: has role 'param', not an ir.graph.Role")
    assert err.value is g.inputs[1]


def test_input_names_are_unique():
    g = _graph()
    g.inputs[1].name = "x"
    _fails(g, "two inputs are named 'x' (inputs 0 and 1)")


def test_input_needs_a_name():
    g = _graph()
    g.inputs[0].name = ""
    _fails(g, "input 0 has no name")


def test_input_index_is_its_position():
    g = _graph()
    g.inputs.reverse()
    _fails(g, "is input 0 but its index is 1")


def test_input_is_not_a_node_output():
    g = _graph()
    g.inputs.append(g.nodes[0].outputs[0])
    _fails(g, "input 2 is an output of node add")


def test_constant_needs_data():
    g = _graph()
    c = g.add_input(F3, Role.CONSTANT, "c", np.zeros(3, np.float32))
    del g.constants[c]
    _fails(g, "input %c: is CONSTANT but graph.constants holds no data")


@pytest.mark.parametrize("data,match", [
    (np.zeros(2, np.float32), "constant data has shape [2] and dtype float32, its type is f32[3]"),
    (np.zeros(3, np.float64), "constant data has shape [3] and dtype float64"),
    ([0.0, 0.0, 0.0], "its constant data is a list, not a NumPy array"),
])
def test_constant_data_matches_its_type(data, match):
    g = _graph()
    g.add_input(F3, Role.CONSTANT, "c", data)
    _fails(g, match)


def test_weak_constant_is_a_python_scalar():
    g = _graph()
    g.add_input(TensorType((), dtypes.float64, weak=True), Role.CONSTANT, "s", np.float64(1))
    _fails(g, "is not a Python scalar of type f64[]")
    g = _graph()
    g.add_input(TensorType((), dtypes.float64, weak=True), Role.CONSTANT, "s", 1)
    _fails(g, "is not a Python scalar")


def test_constants_only_for_constant_inputs():
    g = _graph()
    g.constants[g.inputs[0]] = np.zeros(3, np.float32)
    _fails(g, "graph.constants holds data for %x, which is not a CONSTANT input")


def test_input_type_is_checked():
    g = _graph()
    g.inputs[0].type = (3,)
    _fails(g, "has type (3,), not a TensorType")


# --- nodes ----------------------------------------------------------------------------------

def test_op_is_the_registered_one():
    g = _graph()
    g.nodes[0].op = copy.copy(get_op("add"))
    _fails(g, "its op <op add> is not the registered op of that name")


def test_input_used_before_definition():
    g = _graph()
    g.nodes[0].inputs = (g.nodes[1].outputs[0], g.inputs[1])
    err = _fails(g, "input 0 (%1) is used before it is defined")
    assert err.node is g.nodes[0]


def test_input_from_another_graph():
    g = _graph()
    stranger = Value(F3, None, 0, "y", Role.ARGUMENT)
    g.nodes[0].inputs = (stranger, g.inputs[1])
    _fails(g, "input 0 (%y) is not a value of this graph")


@pytest.mark.parametrize("bad", [np.float32(2.0), "2", None, np.ones(3)])
def test_scalar_inputs_are_python_scalars(bad):
    g = _graph()
    g.nodes[0].inputs = (g.inputs[0], bad)
    _fails(g, "node inputs are Values or Python bool/int/float scalars")


def test_each_value_is_defined_once():
    g = _graph()
    g.nodes.append(g.nodes[1])
    _fails(g, "output 0 (%1) is defined twice")


def test_output_points_back_to_its_node():
    g = _graph()
    g.nodes[0].outputs[0].index = 1
    _fails(g, "output 0 does not point back to this node as its output 0")


def test_type_rule_exception_is_a_verification_error():
    g = _graph()
    g.nodes[0].inputs = (g.inputs[0], g.add_input(TensorType((4,), dtypes.float32), name="z"))
    _fails(g, "the type rule of add raises RuntimeError: The size of tensor a (3) must match")


def test_unknown_attribute_is_a_verification_error():
    g = Graph()
    x = g.add_input(F3, name="x")
    node = g.add_node(get_op("max"), (x,), {"dim": 0, "keepdim": False})
    node.attrs["bogus"] = 1
    _fails(g, "the type rule of max raises TypeError")


def test_output_count_matches_the_rule():
    g = Graph()
    x = g.add_input(F3, name="x")
    g.add_node(get_op("max"), (x,), {"dim": 0, "keepdim": False},
               output_types=TensorType((), dtypes.float32))
    _fails(g, "it has 1 outputs, the type rule of max gives 2")


def test_negative_output_shape():
    g = _graph()
    g.nodes[1].outputs[0].type = TensorType((-3,), dtypes.float32)
    _fails(g, "output 0 has a bad shape (-3,)")


# --- outputs and mutations --------------------------------------------------------------------

def test_graph_outputs_are_defined():
    g = _graph()
    g.outputs = [Value(F3, None, 0, "ghost", Role.ARGUMENT)]
    _fails(g, "output 0 (%ghost) is not a value defined in the graph")


def _mutation(g, target, field, value):
    m = Mutation(target, "data", value)
    m.field = field  # bypass the constructor's check, as a buggy pass could
    g.mutations.append(m)
    return m


def test_mutation_target_is_an_input():
    g = _graph()
    _mutation(g, g.nodes[0].outputs[0], "data", g.nodes[1].outputs[0])
    err = _fails(g, "its target is not an input of the graph")
    assert err.mutation is g.mutations[-1]
    assert "mutation `%0 <- %1`" in str(err)


def test_mutation_target_is_not_constant():
    g = _graph()
    c = g.add_input(F3, Role.CONSTANT, "c", np.zeros(3, np.float32))
    _mutation(g, c, "data", g.inputs[0])
    _fails(g, "its target is a CONSTANT input")


def test_mutation_field():
    g = _graph()
    _mutation(g, g.inputs[0], "weight", g.inputs[0])
    _fails(g, "its field 'weight' is not one of ('data', 'grad')")


def test_one_mutation_per_target_and_field():
    g = _graph()
    _mutation(g, g.inputs[1], "data", g.inputs[0])
    _fails(g, "a second mutation of the data of %w")


def test_only_grad_may_be_set_to_none():
    g = _graph()
    _mutation(g, g.inputs[0], "data", None)
    _fails(g, "only a grad mutation may write None")
    g = _graph()
    g.mutate(g.inputs[0], "grad", None)
    verify(g, roundtrip=True)


def test_mutation_value_is_defined():
    g = _graph()
    _mutation(g, g.inputs[0], "data", Value(F3, None, 0, "ghost", Role.ARGUMENT))
    _fails(g, "its value is not defined in the graph")


def test_data_mutation_keeps_the_type():
    g = _graph()
    i = g.add_input(I3, name="i")
    _mutation(g, g.inputs[0], "data", i)
    _fails(g, "it writes a i64[3] value into a f32[3] input")
    g = _graph()
    z = g.add_input(TensorType((1, 3), dtypes.float32), name="z")
    _mutation(g, g.inputs[0], "data", z)
    _fails(g, "it writes a f32[1,3] value into a f32[3] input")


def test_grad_mutation_shape_and_dtype():
    g = _graph()
    z = g.add_input(TensorType((4,), dtypes.float32), name="z")
    g.mutate(g.inputs[0], "grad", z)
    _fails(g, "the grad has shape [4], the tensor [3]")
    g = _graph()
    g.mutate(g.inputs[0], "grad", g.add_input(I3, name="i"))
    _fails(g, "the grad has dtype int64; a grad must be floating point")
    g = _graph()  # another float dtype is allowed
    g.mutate(g.inputs[0], "grad", g.add_input(TensorType((3,), dtypes.float64), name="d"))
    verify(g, roundtrip=True)


def test_verify_takes_a_graph():
    with pytest.raises(TypeError, match="expects an ir.graph.Graph"):
        verify("graph g() {}")


# --- the round-trip check ---------------------------------------------------------------------

def _opaque_rule(types, **attrs):
    return types[0].with_()


def _opaque_impl(x, **attrs):
    return x


def test_roundtrip_catches_unprintable_attributes(monkeypatch):
    with temporary_op("test_opaque", _opaque_rule, _opaque_impl) as op:
        g = _graph()
        g.add_node(op, (g.inputs[0],), {"payload": {"a": 1}}, loc="model.py:9")
        verify(g, roundtrip=False)
        with pytest.raises(IRVerificationError) as info:
            verify(g, roundtrip=True)
        msg = str(info.value)
        assert "the printed IR does not parse back" in msg
        assert "node `%<test_opaque#0> = test_opaque(%x)[payload=<{'a': 1}>]" in msg
        assert "model.py:9" in msg
        assert info.value.node is g.nodes[-1]
        monkeypatch.setenv("COMPGRAD_VERIFY_ROUNDTRIP", "1")
        with pytest.raises(IRVerificationError, match="does not parse back"):
            verify(g)
        monkeypatch.setenv("COMPGRAD_VERIFY_ROUNDTRIP", "0")
        verify(g)


def test_roundtrip_of_attribute_kinds_the_parser_reads(monkeypatch):
    monkeypatch.setenv("COMPGRAD_VERIFY_ROUNDTRIP", "1")
    with temporary_op("test_opaque", _opaque_rule, _opaque_impl) as op:
        g = _graph()
        attrs = {"a": [1, (2.5, None)], "s": slice(1, None, -1), "e": Ellipsis,
                 "arr": np.array([[1, 2]], np.int8), "d": dtypes.uint8, "t": "x\"#)"}
        g.add_node(op, (g.inputs[0],), attrs)
        verify(g)
        again = parse(print_graph(g)).nodes[-1].attrs
        assert list(again) == list(attrs)
        assert again["a"] == [1, (2.5, None)] and again["s"] == slice(1, None, -1)
        assert again["e"] is Ellipsis and again["d"] is dtypes.uint8
        assert again["arr"].dtype == np.int8 and again["arr"].tolist() == [[1, 2]]


def test_zero_output_node_round_trips():
    with temporary_op("test_sink", lambda types, **attrs: (), lambda x: ()) as op:
        g = _graph()
        g.add_node(op, (g.inputs[0], 3))
        verify(g, roundtrip=True)
        assert "  test_sink(%x, 3)\n" in print_graph(g)
        assert parse(print_graph(g)).nodes[-1].outputs == ()

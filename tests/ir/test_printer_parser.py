"""The IR text form: printing, parsing, exact round trips, and parse errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from ir import dtypes
from ir.dtypes import ALL_DTYPES
from ir.graph import Graph, GraphBuilder, Role
from ir.interpret import interpret
from ir.opdef import get_op
from ir.ops import add, matmul, mul, relu
from ir.parser import IRParseError, parse, parse_literal
from ir.printer import format_constant, format_literal, format_node, print_graph
from ir.types import Device, TensorType
from ir.verify import verify
from tests.ir._graphs import OPS, record_sample, samples, vjp_graph

# --- text in, the same text out ------------------------------------------------------------

STEP = """\
graph step(%x: f32[4,6], %lr: f64[] weak, %w1: f32[6,5] param, %w1.grad: f32[6,5] grad, \
%w2: f32[5] buffer, %m: f32[6,5] state, %key: i64[2] rng, %c0: i64[2] const=[1, 2]) {
  %0 = matmul(%x, %w1) : f32[4,5]  # train.py:12
  %1 = relu(%0) : f32[4,5]
  %2, %3 = max(%1)[dim=1, keepdim=False] : f32[4], i64[4]
  %4 = add(%2, 2.5) : f32[4]
  %5 = mul(%w1.grad, %lr) : f32[6,5]
  %6 = sub(%w1, %5) : f32[6,5]
  return %4, %3
  mutate %w1 <- %6
  mutate grad(%w1) <- %5
  mutate grad(%w2) <- None
}"""

ATTRS = """\
graph attrs(%x: f32[3,4], %i: i64[3,4]) {
  %0 = sum(%x)[dim=(0, 1), keepdim=False, dtype=None] : f32[]
  %1 = sum(%x)[dim=(1,), keepdim=True, dtype=float64] : f64[3,1]
  %2 = to_dtype(%x)[dtype=bool] : bool[3,4]
  %3 = div(%i, %i)[rounding_mode="floor"] : i64[3,4]
  %4 = full(-inf)[shape=(2, 3), dtype=float16, device=device("cuda:0")] : f16[2,3]@cuda:0
  %5 = getitem(%x)[spec=(None, 0, ("s", 1, 4, 2))] : f32[1,2]
  %6 = nan_to_num(%x)[nan=-0.0, posinf=1e+300, neginf=None] : f32[3,4]
  %7 = interpolate(%5)[specs=(("linear", 2, 5, False, 2.5),)] : f32[1,5]
  %8 = add(%x, -1) : f32[3,4]
  %9 = mul(%i, True) : i64[3,4]
  %10 = mul(%x, nan) : f32[3,4]
  %11 = add(%i, 1e-07) : f32[3,4]
  %12 = reshape(%x)[shape=(12,)] : f32[12]
  %13 = arange()[start=0, end=5, step=1, dtype=int64, device=device("cpu")] : i64[5]
  return %0, %1, %2, %3, %4, %6, %7, %8, %9, %10, %11, %12, %13
}"""

CONSTANTS = """\
graph consts(%b: bool[2,2] const=[[True, False], [False, True]], \
%u: u8[3] const=[0, 128, 255], %i8: i8[2] const=[-128, 127], \
%i64: i64[2] const=[-9223372036854775808, 9223372036854775807], \
%h: f16[4] const=[0.1, -0.0, inf, 6.55e+04], \
%f: f32[5] const=[0.1, -0.0, -inf, nan, 3.4028235e+38], \
%d: f64[3] const=[0.1, 5e-324, 1.7976931348623157e+308], %e: f32[0,3] const=[], \
%e2: i32[2,0] const=[[], []], %s: i16[] const=-3, %w: f64[] weak const=0.5, \
%wi: i64[] weak const=7, %wb: bool[] weak const=True) {
  %0 = add(%f, %w) : f32[5]
  return %0
}"""

NAMES = """\
graph "train.<locals>.step"(%0: f32[3], %0.weight: f32[3] param, %"odd name, (really)": f32[3], \
%2: f32[3]) {
  %1 = add(%0, %0.weight) : f32[3]  # "  padded # loc  "
  %3 = mul(%1, %"odd name, (really)") : f32[3]  # <stdin>:1 in <module>
  %4 = add(%3, %2) : f32[3]  # "line\\nbreak"
  return %4
}"""

NO_OUTPUTS = """\
graph empty() {
  return
}"""


@pytest.mark.parametrize("text", [STEP, ATTRS, CONSTANTS, NAMES, NO_OUTPUTS],
                         ids=["step", "attrs", "constants", "names", "empty"])
def test_text_round_trips_exactly(text):
    graph = parse(text)
    assert print_graph(graph) == text
    verify(graph, roundtrip=True)


def test_parsed_graph_structure():
    g = parse(STEP)
    assert g.name == "step"
    assert [v.name for v in g.inputs] == ["x", "lr", "w1", "w1.grad", "w2", "m", "key", "c0"]
    assert [v.role for v in g.inputs] == [
        Role.ARGUMENT, Role.ARGUMENT, Role.PARAMETER, Role.GRAD, Role.BUFFER,
        Role.OPTIMIZER_STATE, Role.RNG_STATE, Role.CONSTANT]
    assert g.inputs[1].type == TensorType((), dtypes.float64, weak=True)
    np.testing.assert_array_equal(g.constants[g.inputs[7]], np.array([1, 2]))
    assert g.constants[g.inputs[7]].dtype == np.int64
    assert [n.op.name for n in g.nodes] == ["matmul", "relu", "max", "add", "mul", "sub"]
    assert g.nodes[0].loc == "train.py:12" and g.nodes[1].loc is None
    assert g.nodes[2].attrs == {"dim": 1, "keepdim": False}
    assert g.nodes[3].inputs[1] == 2.5 and type(g.nodes[3].inputs[1]) is float
    assert g.outputs == [g.nodes[3].outputs[0], g.nodes[2].outputs[1]]
    assert [(m.target.name, m.field) for m in g.mutations] == [
        ("w1", "data"), ("w1", "grad"), ("w2", "grad")]
    assert g.mutations[2].value is None
    assert all(v.name is None for n in g.nodes for v in n.outputs)


def test_attribute_values_keep_their_python_types():
    g = parse(ATTRS)
    attrs = [n.attrs for n in g.nodes]
    assert attrs[1]["dim"] == (1,) and attrs[1]["dtype"] is dtypes.float64
    assert attrs[2]["dtype"] is dtypes.bool_
    assert attrs[4]["device"] == Device("cuda:0") and isinstance(attrs[4]["device"], Device)
    assert g.nodes[4].inputs == (-math.inf,)
    assert attrs[5]["spec"] == (None, 0, ("s", 1, 4, 2))
    assert math.copysign(1.0, attrs[6]["nan"]) == -1.0
    assert type(g.nodes[8].inputs[1]) is int and type(g.nodes[9].inputs[1]) is bool
    assert math.isnan(g.nodes[10].inputs[1])


def test_constants_parse_to_exact_arrays():
    g = parse(CONSTANTS)
    data = {v.name: g.constants[v] for v in g.inputs}
    assert data["h"].dtype == np.float16 and data["h"][0] == np.float16(0.1)
    assert np.signbit(data["h"][1]) and np.isinf(data["h"][2])
    assert data["f"][0] == np.float32(0.1) and np.isnan(data["f"][3])
    assert data["f"][4] == np.finfo(np.float32).max
    assert data["d"][1] == 5e-324
    assert data["e"].shape == (0, 3) and data["e2"].shape == (2, 0)
    assert data["s"].shape == () and data["s"] == -3 and data["s"].dtype == np.int16
    assert data["w"] == 0.5 and type(data["w"]) is float
    assert type(data["wb"]) is bool
    assert data["i64"][0] == np.iinfo(np.int64).min


def test_intermediates_skip_numbers_taken_by_inputs():
    g = parse(NAMES)
    # inputs "0" and "2" keep their names; intermediates become %1, %3, %4
    assert print_graph(g).count("%1 = add") == 1
    assert g.nodes[0].loc == "  padded # loc  " and g.nodes[2].loc == "line\nbreak"
    assert g.name == "train.<locals>.step"


def test_hand_written_text_is_normalised():
    text = """
# a comment before the graph
graph g(
    %x: f32[3],   # comments inside brackets are ignored
    %y: f32[3] arg
) {  # so is this one
  %sum = add(%x,
             %y) : f32[3]

  # a comment line
  %out = mul(%sum, 2) : f32[3]  # here
  return %out  # ignored
  mutate data(%x) <- %sum
}
"""
    assert print_graph(parse(text)) == """\
graph g(%x: f32[3], %y: f32[3]) {
  %0 = add(%x, %y) : f32[3]
  %1 = mul(%0, 2) : f32[3]  # here
  return %1
  mutate %x <- %0
}"""


def test_print_graph_built_with_the_builder():
    g = Graph("mlp")
    x = g.add_input(TensorType((2, 3), dtypes.float32), name="x")
    w = g.add_input(TensorType((3, 4), dtypes.float32), Role.PARAMETER, name="fc1.weight")
    lr = g.add_input(TensorType((), dtypes.float64, weak=True), name="lr")
    from ir.dispatch import interpreter
    with interpreter(GraphBuilder(g, loc="mlp.py:3")):
        h = relu(matmul(x, w))
        out = add(mul(h, lr), 1)
    g.outputs = [out]
    g.mutate(w, "grad", None)
    assert print_graph(g) == """\
graph mlp(%x: f32[2,3], %fc1.weight: f32[3,4] param, %lr: f64[] weak) {
  %0 = matmul(%x, %fc1.weight) : f32[2,4]  # mlp.py:3
  %1 = relu(%0) : f32[2,4]  # mlp.py:3
  %2 = mul(%1, %lr) : f32[2,4]  # mlp.py:3
  %3 = add(%2, 1) : f32[2,4]  # mlp.py:3
  return %3
  mutate grad(%fc1.weight) <- None
}"""
    assert str(g) == print_graph(g)


def test_format_node_without_names_does_not_crash():
    g = parse(STEP)
    assert format_node(g.nodes[0]) == "%<matmul#0> = matmul(%x, %w1) : f32[4,5]  # train.py:12"
    assert format_node(g.nodes[2]) == (
        "%<max#0>, %<max#1> = max(%<relu#0>)[dim=1, keepdim=False] : f32[4], i64[4]")


def test_parsed_text_runs():
    g = parse("""\
graph f(%x: f32[3], %k: f32[3] const=[1.0, 2.0, 3.0]) {
  %0 = mul(%x, %k) : f32[3]
  %1 = add(%0, 0.5) : f32[3]
  return %1
}""")
    x = np.array([1.0, -1.0, 2.0], np.float32)
    (out,) = interpret(g, [x, None]).outputs
    np.testing.assert_array_equal(out, x * np.array([1, 2, 3], np.float32) + np.float32(0.5))


# --- the registry sweep ----------------------------------------------------------------------

# symbolic VJPs that cannot be built as a graph: masked_scatter's rule calls
# masked_select, whose output size is read from the data (Value has no .item())
_NO_SYMBOLIC_VJP = {"masked_scatter"}


def _round_trip(graph: Graph) -> Graph:
    verify(graph, roundtrip=True)
    text = print_graph(graph)
    again = parse(text)
    assert print_graph(again) == text
    return again


def _assert_matches(got, want, where):
    assert got.shape == want.shape and got.dtype == want.dtype, where
    if want.dtype.kind == "f":
        # eager may use other kernels than the reference (BLAS for dot): round-off only
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6, equal_nan=True,
                                   err_msg=where)
    else:
        np.testing.assert_array_equal(got, want, err_msg=where)


@pytest.mark.filterwarnings("ignore:Using a non-tuple sequence")  # a sample tests the warning
@pytest.mark.parametrize("op", OPS, ids=[op.name for op in OPS])
def test_registry_sweep(op):
    """Every sample of ``op``: its recorded graph verifies, prints, parses back to the
    same text, and the interpreter (on the graph and on the parsed copy) reproduces
    the eager results; the symbolic VJP graph round-trips too."""
    for index, sample in enumerate(samples(op)):
        if not hasattr(sample, "grad"):
            continue  # an ErrorSample
        rec = record_sample(op, sample)
        where = f"{op.name}[{index}]"
        parsed = _round_trip(rec.graph)
        first = interpret(rec.graph, rec.feeds).outputs
        for i, (got, want) in enumerate(zip(first, rec.expected)):
            _assert_matches(got, want, f"{where} output {i}")
        for a, b in zip(first, interpret(parsed, rec.feeds).outputs):
            assert a.dtype == b.dtype and a.tobytes() == b.tobytes(), where
        if sample.grad and op.differentiable and op.name not in _NO_SYMBOLIC_VJP:
            record = next(r for r in rec.records if r[0] is op)
            graph = vjp_graph(op, record)
            if graph is not None:
                _round_trip(graph)


# --- literals --------------------------------------------------------------------------------

LITERALS = [0, -1, 2**70, 2.5, -0.0, 1e-300, 1e300, math.inf, -math.inf, True, False, None,
            "floor", "", 'quote " # , ) ( [ ] \\ \n \t \u2028 é', (), (1,), (1, 2.0), [], [1, [2]],
            ((1, 1), (0, 0)), dtypes.float32, dtypes.bool_, dtypes.uint8, Device("cpu"),
            Device("cuda"), Device("cuda:3"), slice(None, 5, -1), slice(1, 2, None), Ellipsis,
            (Ellipsis, None, slice(0, 1, 1))]


def _same(a, b) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) ==
                                                      math.copysign(1, b))
    if isinstance(a, (tuple, list)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, np.ndarray):
        return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
    if isinstance(a, slice):
        return _same((a.start, a.stop, a.step), (b.start, b.stop, b.step))
    return a == b if not isinstance(a, dtypes.DType) else a is b


@pytest.mark.parametrize("value", LITERALS, ids=[repr(v)[:30] for v in LITERALS])
def test_literal_round_trip(value):
    text = format_literal(value)
    assert _same(parse_literal(text), value), text
    assert format_literal(parse_literal(text)) == text


def test_array_attribute_round_trip():
    for a in (np.array([[1.5, -0.0], [np.nan, np.inf]], np.float32), np.zeros((0, 2), np.int8),
              np.array(True)):
        text = format_literal(a)
        assert _same(parse_literal(text), a), text


def test_unprintable_attribute_prints_but_does_not_parse():
    text = format_literal({"a": 1})
    assert text == "<{'a': 1}>"
    with pytest.raises(IRParseError, match="cannot be written as IR text"):
        parse_literal(text)


_scalars = (st.integers(-2**64, 2**64) | st.floats(allow_nan=True, allow_infinity=True)
            | st.booleans() | st.none() | st.text(max_size=8) | st.sampled_from(ALL_DTYPES))
_values = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=3)
                       | st.lists(inner, max_size=3).map(tuple), max_leaves=10)


@settings(max_examples=200, deadline=None)
@given(_values)
def test_literal_round_trip_property(value):
    assert _same(parse_literal(format_literal(value)), value)


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(ALL_DTYPES).flatmap(
    lambda d: hnp.arrays(d.np_dtype, hnp.array_shapes(min_dims=0, max_dims=3, min_side=0,
                                                      max_side=3)).map(lambda a: (d, a))))
def test_constant_data_round_trip_property(dtype_and_data):
    dtype, data = dtype_and_data
    t = TensorType(data.shape, dtype)
    g = Graph("c")
    g.add_input(t, Role.CONSTANT, "c", data)
    g.outputs = list(g.inputs)
    text = print_graph(g)
    back = parse(text).constants
    (got,) = back.values()
    assert got.dtype == data.dtype and got.shape == data.shape
    # bit-exact, except that NaN payloads are not kept
    nan = np.isnan(data) if dtype.is_floating_point else np.zeros(data.shape, bool)
    assert np.array_equal(np.isnan(got) if dtype.is_floating_point else nan, nan)
    assert got[~nan].tobytes() == data[~nan].tobytes()
    assert format_constant(got, t) == format_constant(data, t)


def test_narrow_floats_print_short():
    t = TensorType((2,), dtypes.float32)
    assert format_constant(np.array([0.1, 1 / 3], np.float32), t) == "[0.1, 0.33333334]"


# --- parse errors ------------------------------------------------------------------------------

_OK_HEAD = "graph g(%x: f32[3], %i: i64[3]) {\n"

PARSE_ERRORS = [
    ("unknown-op", _OK_HEAD + "  %0 = frobnicate(%x) : f32[3]\n  return %0\n}", 2,
     "unknown op 'frobnicate'"),
    ("undefined", _OK_HEAD + "  %0 = add(%x, %y) : f32[3]\n  return %0\n}", 2,
     "undefined value %y"),
    ("undefined-later", _OK_HEAD + "  %0 = add(%x, %1) : f32[3]\n  %1 = relu(%x) : f32[3]\n"
     "  return %0\n}", 2, "undefined value %1"),
    ("redefined", _OK_HEAD + "  %0 = relu(%x) : f32[3]\n  %0 = relu(%x) : f32[3]\n"
     "  return %0\n}", 3, "%0 is defined twice"),
    ("redefines-input", _OK_HEAD + "  %x = relu(%x) : f32[3]\n  return %x\n}", 2,
     "%x is defined twice"),
    ("duplicate-input", "graph g(%x: f32[3], %x: f32[3]) {\n  return\n}", 1,
     "%x is defined twice"),
    ("bad-dtype", "graph g(%x: f33[3]) {\n  return\n}", 1, "unknown dtype 'f33'"),
    ("bad-dims", "graph g(%x: f32[3, a]) {\n  return\n}", 1, "expected a dimension size"),
    ("negative-dim", "graph g(%x: f32[-3]) {\n  return\n}", 1, "expected a dimension size"),
    ("float-dim", "graph g(%x: f32[1.5]) {\n  return\n}", 1,
     "a dimension size is a whole number, not 1.5"),
    ("bad-escape", _OK_HEAD + '  %0 = div(%x, %x)[rounding_mode="fl\\qoor"] : f32[3]\n'
     "  return %0\n}", 2, "bad string"),
    ("bad-name-escape", 'graph g(%"a\\q": f32[3]) {\n  return\n}', 1, "bad string"),
    ("value-attr", _OK_HEAD + "  %0 = max(%x)[dim=%x, keepdim=False] : f32[], i64[]\n"
     "  return %0\n}", 2, "an attribute is a constant, not a graph value (%x)"),
    ("bad-device", "graph g(%x: f32[3]@tpu:0) {\n  return\n}", 1, "bad device 'tpu:0'"),
    ("wrong-type", _OK_HEAD + "  %0 = add(%x, %x) : f64[3]\n  return %0\n}", 2,
     "output 0 has type f64[3], the type rule of add gives f32[3]"),
    ("type-rule-raises", _OK_HEAD + "  %0 = matmul(%x, %i) : f32[]\n  return %0\n}", 2,
     "the type rule of matmul raises RuntimeError"),
    ("output-count", _OK_HEAD + "  %0 = relu(%x) : f32[3], f32[3]\n  return %0\n}", 2,
     "1 outputs but 2 types"),
    ("rule-output-count", _OK_HEAD + "  %0 = max(%x)[dim=0, keepdim=False] : f32[]\n"
     "  return %0\n}", 2, "it has 1 outputs, the type rule of max gives 2"),
    ("missing-type", _OK_HEAD + "  %0 = relu(%x)\n  return %0\n}", 2,
     "expected ':' and the output types"),
    ("garbage", _OK_HEAD + "  %0 = relu(%x) : f32[3] junk\n  return %0\n}", 2,
     "expected end of line, found 'junk'"),
    ("unclosed-paren", _OK_HEAD + "  %0 = relu(%x : f32[3]\n  return %0\n}", 2,
     "'(' is never closed"),
    ("unmatched", _OK_HEAD + "  %0 = relu(%x)) : f32[3]\n  return %0\n}", 2, "unmatched ')'"),
    ("bad-char", _OK_HEAD + "  %0 = relu(%x) ; f32[3]\n  return %0\n}", 2,
     "unexpected character ';'"),
    ("unterminated-string", _OK_HEAD + '  %0 = div(%x, %x)[rounding_mode="floor] : f32[3]\n'
     "  return %0\n}", 2, "unexpected character '\"'"),
    ("no-return", _OK_HEAD + "  %0 = relu(%x) : f32[3]\n}", 3, "no return line"),
    ("two-returns", _OK_HEAD + "  return\n  return\n}", 3, "a second return line"),
    ("node-after-return", _OK_HEAD + "  return\n  %0 = relu(%x) : f32[3]\n}", 3,
     "only mutate lines may follow the return line"),
    ("mutate-before-return", _OK_HEAD + "  mutate %x <- %x\n  return\n}", 2,
     "mutate lines come after the return line"),
    ("no-closing-brace", _OK_HEAD + "  return\n", 3, "missing the closing '}'"),
    ("after-brace", _OK_HEAD + "  return\n}\nmore", 4, "text after the closing '}'"),
    ("not-graph", "grph g() {\n  return\n}", 1, "expected 'graph'"),
    ("unknown-role", "graph g(%x: f32[3] weights) {\n  return\n}", 1,
     "unknown input role 'weights'"),
    ("const-no-data", "graph g(%x: f32[3] const) {\n  return\n}", 1,
     "expected '=' and the constant's data"),
    ("const-shape", "graph g(%x: f32[3] const=[1.0, 2.0]) {\n  return\n}", 1,
     "the data has shape [2], its type is f32[3]"),
    ("const-ragged", "graph g(%x: f32[2,2] const=[[1.0], [2.0, 3.0]]) {\n  return\n}", 1,
     "bad f32[2,2] data"),
    ("const-float-in-int", "graph g(%x: i64[1] const=[1.5]) {\n  return\n}", 1,
     "int64 data cannot hold 1.5"),
    ("const-int-in-bool", "graph g(%x: bool[1] const=[1]) {\n  return\n}", 1,
     "bool data cannot hold 1"),
    ("const-overflow", "graph g(%x: u8[1] const=[256]) {\n  return\n}", 1, "bad u8[1] data"),
    ("weak-const", "graph g(%x: f64[] weak const=1) {\n  return\n}", 1,
     "must be a Python float"),
    ("scalar-arg", _OK_HEAD + '  %0 = add(%x, "a") : f32[3]\n  return %0\n}', 2,
     "a node input must be a value (%name) or a number"),
    ("one-paren", _OK_HEAD + "  %0 = sum(%x)[dim=(0), keepdim=False, dtype=None] : f32[]\n"
     "  return %0\n}", 2, "write a 1-tuple as (x,)"),
    ("unknown-word", _OK_HEAD + "  %0 = sum(%x)[dim=zero, keepdim=False, dtype=None] : f32[]\n"
     "  return %0\n}", 2, "unknown name 'zero' in a value"),
    ("dup-attr", _OK_HEAD + "  %0 = max(%x)[dim=0, dim=0] : f32[], i64[]\n  return %0\n}", 2,
     "attribute 'dim' is given twice"),
    ("bad-field", _OK_HEAD + "  return\n  mutate weight(%x) <- %x\n}", 3,
     "unknown mutation field 'weight'"),
    ("no-arrow", _OK_HEAD + "  return\n  mutate %x = %x\n}", 3, "expected '<-'"),
    ("dup-mutation", _OK_HEAD + "  return\n  mutate %x <- %x\n  mutate %x <- %x\n}", 4,
     "a second mutation of the data of %x"),
    ("data-mutation-type", _OK_HEAD + "  return\n  mutate %x <- %i\n}", 3,
     "it writes a i64[3] value into a f32[3] input"),
    ("none-data", _OK_HEAD + "  return\n  mutate %x <- None\n}", 3,
     "only a grad mutation may write None"),
    ("int-grad", _OK_HEAD + "  return\n  mutate grad(%i) <- %i\n}", 3,
     "a grad must be floating point"),
    ("mutate-constant", "graph g(%c: f32[1] const=[1.0], %x: f32[1]) {\n  return\n"
     "  mutate %c <- %x\n}", 3, "its target is a CONSTANT input"),
    ("bad-quoted-loc", _OK_HEAD + '  %0 = relu(%x) : f32[3]  # "oops\n  return %0\n}', 2,
     "bad quoted location"),
]


@pytest.mark.parametrize("text,line,match", [p[1:] for p in PARSE_ERRORS],
                         ids=[p[0] for p in PARSE_ERRORS])
def test_parse_errors_name_the_line(text, line, match):
    with pytest.raises(IRParseError) as info:
        parse(text)
    err = info.value
    assert isinstance(err, ValueError)
    assert match in str(err), str(err)
    assert err.line == line, str(err)
    assert str(err).startswith(f"line {line}: ")


def test_parse_rejects_non_text():
    with pytest.raises(TypeError, match="expects IR text"):
        parse(b"graph g() {}")


def test_verification_error_from_parse_is_chained():
    text = _OK_HEAD + "  %0 = add(%x, %x) : f64[3]  # model.py:7\n  return %0\n}"
    with pytest.raises(IRParseError) as info:
        parse(text)
    assert "model.py:7" in str(info.value)
    assert type(info.value.__cause__).__name__ == "IRVerificationError"


def test_op_lookup_uses_the_registry():
    g = parse(_OK_HEAD + "  %0 = relu(%x) : f32[3]\n  return %0\n}")
    assert g.nodes[0].op is get_op("relu")

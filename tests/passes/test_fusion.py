"""passes.fusion: which nodes become one ``fused`` group, the recorded reasons for what
does not, legality (no cycles, outputs kept) and semantics (the fused graph
interprets bit for bit as the original), on IR text, registry samples, random
graphs and an MLP training step."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import compgrad
import compgrad.nn as nn
import compgrad.nn.functional as F
from ir import dtypes, ops
from ir.dispatch import interpreter
from ir.graph import Graph, GraphBuilder, Role
from ir.interpret import interpret
from ir.opdef import OpKind
from ir.parser import parse
from ir.printer import print_graph
from ir.types import TensorType
from ir.verify import verify
from passes.fusion import fuse, group_kinds, unfuse
from tests.ir._graphs import record_sample, sample_cases, vjp_graph


def fused_text(text: str) -> str:
    graph = parse(text)
    before = print_graph(graph)
    out = fuse(graph)
    assert print_graph(graph) == before, "fuse() changed its input"
    verify(out, roundtrip=True)
    return print_graph(out)


def feeds_for(graph: Graph, seed: int = 0) -> list:
    rng = np.random.default_rng(seed)
    feeds = []
    for v in graph.inputs:
        t = v.type
        if t.weak:
            feeds.append(0.5 if t.dtype.is_floating_point else 3)
        elif t.dtype.is_floating_point:
            feeds.append(rng.standard_normal(t.shape).astype(t.dtype.np_dtype))
        else:
            feeds.append(rng.integers(0, 3, t.shape).astype(t.dtype.np_dtype))
    return feeds


def assert_same_results(graph: Graph, fused: Graph, feeds: list) -> None:
    """Outputs and mutations of ``fused`` (and of it unfused) equal ``graph``'s, bit for bit."""
    want = interpret(graph, feeds)
    for other in (fused, unfuse(fused)):
        got = interpret(other, feeds)
        assert len(got.outputs) == len(want.outputs)
        for a, b in zip(got.outputs, want.outputs):
            assert a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
        for (ma, a), (mb, b) in zip(got.mutations, want.mutations):
            assert ma.target.name == mb.target.name and ma.field == mb.field
            assert (a is None and b is None) or a.tobytes() == b.tobytes()


def loose_elementwise(graph: Graph) -> list:
    return [n for n in graph.nodes if n.op.kind is OpKind.ELEMENTWISE]


# --- IR text in, IR text out ------------------------------------------------------------------

def test_elementwise_chain_with_broadcasting_is_one_group():
    assert fused_text("""\
graph f(%x: f32[4,3], %b: f32[3], %lr: f64[] weak) {
  %0 = add(%x, %b) : f32[4,3]  # m.py:1
  %1 = relu(%0) : f32[4,3]
  %2 = mul(%1, %lr) : f32[4,3]
  return %2
}""") == """\
graph f(%x: f32[4,3], %b: f32[3], %lr: f64[] weak) {
  %0 = fused(%x, %b, %lr)[kind="elementwise", body=graph elementwise_0(%x: f32[4,3], \
%b: f32[3], %lr: f64[] weak) {
    %0 = add(%x, %b) : f32[4,3]  # m.py:1
    %1 = relu(%0) : f32[4,3]
    %2 = mul(%1, %lr) : f32[4,3]
    return %2
  }] : f32[4,3]
  return %0
}"""


def test_different_iteration_shapes_are_not_fused():
    assert fused_text("""\
graph f(%x: f32[4,3], %b: f32[3]) {
  %0 = mul(%b, 2.0) : f32[3]
  %1 = add(%x, %0) : f32[4,3]
  return %1
}""") == """\
graph f(%x: f32[4,3], %b: f32[3]) {
  %0 = fused(%b)[kind="elementwise", body=graph elementwise_0(%b: f32[3]) {
    %0 = mul(%b, 2.0) : f32[3]
    return %0
  }] : f32[3]
  %1 = fused(%x, %0)[kind="elementwise", refused=("%1 add + %0 mul: different iteration \
shape f32[3] vs f32[4,3]",), body=graph elementwise_1(%x: f32[4,3], %in1: f32[3]) {
    %0 = add(%x, %in1) : f32[4,3]
    return %0
  }] : f32[4,3]
  return %1
}"""


def test_reduction_with_prologue_and_epilogue_through_a_reshape():
    assert fused_text("""\
graph f(%x: f32[4,3], %s: f32[]) {
  %0 = exp(%x) : f32[4,3]
  %1 = sum(%0)[dim=(1,), keepdim=True, dtype=None] : f32[4,1]
  %2 = reshape(%1)[shape=(4,)] : f32[4]
  %3 = mul(%2, %s) : f32[4]
  return %3
}""") == """\
graph f(%x: f32[4,3], %s: f32[]) {
  %0 = fused(%x, %s)[kind="reduction", body=graph reduction_0(%x: f32[4,3], %s: f32[]) {
    %0 = exp(%x) : f32[4,3]
    %1 = sum(%0)[dim=(1,), keepdim=True, dtype=None] : f32[4,1]
    %2 = reshape(%1)[shape=(4,)] : f32[4]
    %3 = mul(%2, %s) : f32[4]
    return %3
  }] : f32[4]
  return %0
}"""


def test_softmax_is_one_rows_group():
    # two row reductions and the elementwise work between and after them: one group of
    # kind rows (the reduction kind, one reduction per group, used to make three)
    text = fused_text("""\
graph f(%x: f32[4,3]) {
  %0 = amax(%x)[dim=(1,), keepdim=True] : f32[4,1]
  %1 = sub(%x, %0) : f32[4,3]
  %2 = exp(%1) : f32[4,3]
  %3 = sum(%2)[dim=(1,), keepdim=True, dtype=None] : f32[4,1]
  %4 = div(%2, %3)[rounding_mode=None] : f32[4,3]
  return %4
}""")
    assert text == """\
graph f(%x: f32[4,3]) {
  %0 = fused(%x)[kind="rows", body=graph rows_0(%x: f32[4,3]) {
    %0 = amax(%x)[dim=(1,), keepdim=True] : f32[4,1]
    %1 = sub(%x, %0) : f32[4,3]
    %2 = exp(%1) : f32[4,3]
    %3 = sum(%2)[dim=(1,), keepdim=True, dtype=None] : f32[4,1]
    %4 = div(%2, %3)[rounding_mode=None] : f32[4,3]
    return %4
  }] : f32[4,3]
  return %0
}"""


def test_column_sums_join_the_rows_group_as_producer_and_as_sibling():
    # a LayerNorm-style backward: sum(g * y, 0) reads the group (a producer link); sum(g, 0)
    # only shares the input g with it (a sibling): both become column reductions of the
    # rows group, and the reshape reading one stays outside
    text = fused_text("""\
graph f(%x: f32[4,3], %g: f32[4,3]) {
  %0 = mean(%x)[dim=(1,), keepdim=True, dtype=None] : f32[4,1]
  %1 = sub(%x, %0) : f32[4,3]
  %2 = mul(%g, %1) : f32[4,3]
  %3 = sum(%2)[dim=(0,), keepdim=True, dtype=None] : f32[1,3]
  %4 = sum(%g)[dim=(0,), keepdim=False, dtype=None] : f32[3]
  %5 = reshape(%3)[shape=(3,)] : f32[3]
  return %1, %5, %4
}""")
    assert text == """\
graph f(%x: f32[4,3], %g: f32[4,3]) {
  %0, %1, %2 = fused(%x, %g)[kind="rows", body=graph rows_0(%x: f32[4,3], %g: f32[4,3]) {
    %0 = mean(%x)[dim=(1,), keepdim=True, dtype=None] : f32[4,1]
    %1 = sub(%x, %0) : f32[4,3]
    %2 = mul(%g, %1) : f32[4,3]
    %3 = sum(%2)[dim=(0,), keepdim=True, dtype=None] : f32[1,3]
    %4 = sum(%g)[dim=(0,), keepdim=False, dtype=None] : f32[3]
    return %1, %3, %4
  }] : f32[4,3], f32[1,3], f32[3]
  %3 = reshape(%1)[shape=(3,)] : f32[3]
  return %0, %3, %2
}"""
    graph = parse(text)
    assert_same_results(unfuse(graph), graph, feeds_for(graph))


def test_nothing_in_a_rows_group_reads_its_column_reductions():
    # the sibling's epilogue reads its column sum: that group stays a reduction group
    text = fused_text("""\
graph f(%x: f32[4,3], %w: f32[3]) {
  %0 = mean(%x)[dim=(1,), keepdim=True, dtype=None] : f32[4,1]
  %1 = sub(%x, %0) : f32[4,3]
  %2 = sum(%x)[dim=(0,), keepdim=False, dtype=None] : f32[3]
  %3 = add(%2, %w) : f32[3]
  return %1, %3
}""")
    assert group_kinds(parse(text)) == {"rows": 1, "reduction": 1}
    assert "%2 sum + the group of %0 mean: one reduction or matmul per group (%0 mean, %2 sum); " \
        "as rows: %3 add reads a column reduction (complete only after every row)" in text


def test_a_column_reduction_reduces_all_the_leading_dims():
    # over part of the leading dims it is no column reduction: it cannot join
    text = fused_text("""\
graph f(%x: f32[2,4,3]) {
  %0 = sum(%x)[dim=(2,), keepdim=True, dtype=None] : f32[2,4,1]
  %1 = sub(%x, %0) : f32[2,4,3]
  %2 = sum(%1)[dim=(0,), keepdim=False, dtype=None] : f32[4,3]
  return %1, %2
}""")
    assert group_kinds(parse(text)) == {"rows": 1, "reduction": 1}
    assert "as rows: %2 sum: sum over dims (0,) of f32[2,4,3] (not trailing dims)" in text


def test_row_values_of_outside_values_stay_outside_a_rows_group():
    # w = to_dtype(ne(t)) is computed from the inputs alone: in the rows group, anything
    # else reading w (the loss's sum of weights) would have to wait for the whole group
    text = fused_text("""\
graph f(%x: f32[4,3], %t: i64[4]) {
  %0 = amax(%x)[dim=(1,), keepdim=True] : f32[4,1]
  %1 = sub(%x, %0) : f32[4,3]
  %2 = sum(%1)[dim=(1,), keepdim=False, dtype=None] : f32[4]
  %3 = ne(%t, 2) : bool[4]
  %4 = to_dtype(%3)[dtype=float32] : f32[4]
  %5 = mul(%2, %4) : f32[4]
  return %5, %4
}""")
    graph = parse(text)
    assert group_kinds(graph) == {"rows": 1, "elementwise": 1}
    (rows,) = [n for n in graph.nodes if n.op.name == "fused" and n.attrs["kind"] == "rows"]
    assert [n.op.name for n in rows.attrs["body"].nodes] == ["amax", "sub", "sum", "mul"]
    assert "%5 mul + %4 to_dtype: one reduction or matmul per group (%0 amax, %2 sum); as " \
        "rows: %3 ne computes a row value from outside values only" in text


def test_matmul_epilogue_and_a_lone_matmul():
    assert fused_text("""\
graph f(%x: f32[4,3], %w: f32[3,5], %b: f32[5], %v: f32[3,5]) {
  %0 = matmul(%x, %w) : f32[4,5]
  %1 = add(%0, %b) : f32[4,5]
  %2 = relu(%1) : f32[4,5]
  %3 = matmul(%x, %v) : f32[4,5]
  return %2, %3
}""") == """\
graph f(%x: f32[4,3], %w: f32[3,5], %b: f32[5], %v: f32[3,5]) {
  %0 = fused(%x, %w, %b)[kind="matmul_epilogue", body=graph matmul_epilogue_0(%x: f32[4,3], \
%w: f32[3,5], %b: f32[5]) {
    %0 = matmul(%x, %w) : f32[4,5]
    %1 = add(%0, %b) : f32[4,5]
    %2 = relu(%1) : f32[4,5]
    return %2
  }] : f32[4,5]
  %1 = matmul(%x, %v) : f32[4,5]
  return %0, %1
}"""


def test_matmul_inputs_are_not_fused_into_it():
    text = fused_text("""\
graph f(%x: f32[4,3], %w: f32[3,3]) {
  %0 = tanh(%x) : f32[4,3]
  %1 = matmul(%0, %w) : f32[4,3]
  %2 = add(%1, %0) : f32[4,3]
  return %2
}""")
    assert "%2 add + %0 tanh: %0 tanh feeds %1 matmul (matmul inputs are computed whole)" in text
    assert group_kinds(parse(text)) == {"elementwise": 1, "matmul_epilogue": 1}


def test_views_of_inputs_fold_into_their_only_group():
    text = fused_text("""\
graph f(%x0: f32[4,3], %x1: f32[5]) {
  %0 = narrow(%x0)[dim=0, start=1, length=2] : f32[2,3]
  %1 = getitem(%x1)[spec=(None, ("s", 0, 3, 1))] : f32[1,3]
  %2 = expand(%1)[shape=(2, 3)] : f32[2,3]
  %3 = add(%0, %2) : f32[2,3]
  return %3
}""")
    assert text == """\
graph f(%x0: f32[4,3], %x1: f32[5]) {
  %0 = fused(%x0, %x1)[kind="elementwise", body=graph elementwise_0(%x0: f32[4,3], \
%x1: f32[5]) {
    %0 = narrow(%x0)[dim=0, start=1, length=2] : f32[2,3]
    %1 = getitem(%x1)[spec=(None, ("s", 0, 3, 1))] : f32[1,3]
    %2 = expand(%1)[shape=(2, 3)] : f32[2,3]
    %3 = add(%0, %2) : f32[2,3]
    return %3
  }] : f32[2,3]
  return %0
}"""


def test_a_view_that_reorders_a_fused_value_is_refused():
    text = fused_text("""\
graph f(%x: f32[3,3]) {
  %0 = exp(%x) : f32[3,3]
  %1 = permute(%0)[dims=(1, 0)] : f32[3,3]
  %2 = add(%0, %1) : f32[3,3]
  return %2
}""")
    assert text == """\
graph f(%x: f32[3,3]) {
  %0 = fused(%x)[kind="elementwise", body=graph elementwise_0(%x: f32[3,3]) {
    %0 = exp(%x) : f32[3,3]
    return %0
  }] : f32[3,3]
  %1 = fused(%0)[kind="elementwise", refused=("%2 add + %0 exp: would create a cycle through \
%1 permute", "%2 add + %0 exp: %1 permute re-indexes a value computed in the group"), \
body=graph elementwise_1(%in0: f32[3,3]) {
    %0 = permute(%in0)[dims=(1, 0)] : f32[3,3]
    %1 = add(%in0, %0) : f32[3,3]
    return %1
  }] : f32[3,3]
  return %1
}"""


# --- refusals and legality --------------------------------------------------------------------

def test_no_cycle_through_an_opaque_op():
    text = fused_text("""\
graph f(%x: f32[4,3]) {
  %0 = exp(%x) : f32[4,3]
  %1 = cumsum(%0)[dim=0, dtype=None] : f32[4,3]
  %2 = add(%0, %1) : f32[4,3]
  return %2
}""")
    assert text == """\
graph f(%x: f32[4,3]) {
  %0 = fused(%x)[kind="elementwise", body=graph elementwise_0(%x: f32[4,3]) {
    %0 = exp(%x) : f32[4,3]
    return %0
  }] : f32[4,3]
  %1 = cumsum(%0)[dim=0, dtype=None] : f32[4,3]
  %2 = fused(%0, %1)[kind="elementwise", refused=("%2 add + %0 exp: would create a cycle \
through %1 cumsum", "%2 add + %1 cumsum: opaque op cumsum"), body=graph elementwise_1(\
%in0: f32[4,3], %in1: f32[4,3]) {
    %0 = add(%in0, %in1) : f32[4,3]
    return %0
  }] : f32[4,3]
  return %2
}"""


def test_no_cycle_through_another_group():
    # %3 reads %0 and %2; %2 (a reduction group) reads %0's group: %0 and %3 may not meet
    text = fused_text("""\
graph f(%x: f32[4,3], %y: f32[4,3]) {
  %0 = exp(%x) : f32[4,3]
  %1 = sum(%0)[dim=(0,), keepdim=False, dtype=None] : f32[3]
  %2 = add(%1, %y) : f32[4,3]
  %3 = mul(%0, %2) : f32[4,3]
  return %3
}""")
    # (a sum over the leading dim is no row reduction: a rows group cannot take %2)
    assert "%3 mul + %0 exp: would create a cycle through the group of %2 add" in text
    assert group_kinds(parse(text)) == {"reduction": 1, "elementwise": 1}


def test_random_and_opaque_producers_are_refused_with_their_kind():
    text = fused_text("""\
graph f(%x0: f32[4,3], %rng1: i64[2] rng, %s0: f64[] weak, %s1: f64[] weak) {
  %0 = exp(%x0) : f32[4,3]
  %1 = bernoulli(%rng1, %s0)[shape=(4, 3), dtype=float32, device=device("cpu")] : f32[4,3]
  %2 = mul(%0, %1) : f32[4,3]
  %3 = mul(%2, %s1) : f32[4,3]
  return %3
}""")
    assert 'refused=("%2 mul + %1 bernoulli: random op bernoulli",)' in text
    assert text.count("= fused(") == 1 and "  %0 = bernoulli(" in text
    text = fused_text("""\
graph f(%x0: f32[1,1,4,4], %x1: f32[1,1,3,3]) {
  %0 = conv2d(%x0, %x1)[stride=(1, 1), padding=((0, 0), (0, 0)), dilation=(1, 1), \
groups=1] : f32[1,1,2,2]
  %1 = relu(%0) : f32[1,1,2,2]
  return %1
}""")
    assert 'refused=("%1 relu + %0 conv2d: opaque op conv2d",)' in text


def test_outputs_and_mutation_values_stay_available():
    assert fused_text("""\
graph f(%x: f32[3], %w: f32[3] param) {
  %0 = mul(%x, 2.0) : f32[3]
  %1 = add(%0, %w) : f32[3]
  %2 = tanh(%1) : f32[3]
  return %0, %2
  mutate %w <- %1
}""") == """\
graph f(%x: f32[3], %w: f32[3] param) {
  %0, %1, %2 = fused(%x, %w)[kind="elementwise", body=graph elementwise_0(%x: f32[3], \
%w: f32[3]) {
    %0 = mul(%x, 2.0) : f32[3]
    %1 = add(%0, %w) : f32[3]
    %2 = tanh(%1) : f32[3]
    return %0, %1, %2
  }] : f32[3], f32[3], f32[3]
  return %0, %2
  mutate %w <- %1
}"""


def test_two_reductions_are_never_one_group():
    text = fused_text("""\
graph f(%x: f32[4,3]) {
  %0 = sum(%x)[dim=(1,), keepdim=False, dtype=None] : f32[4]
  %1 = amax(%0)[dim=(0,), keepdim=False] : f32[]
  return %1
}""")
    assert "%1 amax + %0 sum: one reduction or matmul per group (%0 sum, %1 amax)" in text
    assert group_kinds(parse(text)) == {"reduction": 2}


def test_fusing_a_fused_graph_changes_nothing_and_unfuse_inlines():
    g = parse("""\
graph f(%x: f32[4,3], %b: f32[3]) {
  %0 = add(%x, %b) : f32[4,3]
  %1 = sum(%0)[dim=(1,), keepdim=False, dtype=None] : f32[4]
  %2 = neg(%1) : f32[4]
  return %2, %0
}""")
    once = fuse(g)
    assert print_graph(fuse(once)) == print_graph(once)
    assert print_graph(unfuse(once)) == print_graph(g)
    assert_same_results(g, once, feeds_for(g))


# --- sweeps -----------------------------------------------------------------------------------

CASES = sample_cases()


@pytest.mark.filterwarnings("ignore:Using a non-tuple sequence")
def test_registry_samples_fuse_to_the_same_results():
    """Every registry sample's recorded graph (and its symbolic VJP graph) fuses to a
    graph that verifies, round-trips as text and interprets bit for bit the same."""
    kinds: dict[str, int] = {}
    for op, index, sample in CASES:
        rec = record_sample(op, sample)
        graphs = [(rec.graph, rec.feeds)]
        if sample.grad and op.differentiable and op.name != "masked_scatter":
            record = next(r for r in rec.records if r[0] is op)
            vjp = vjp_graph(op, record)
            if vjp is not None:
                arrays = [x for x in record.inputs if isinstance(x, np.ndarray)]
                cots = [a for a in record.outputs if a.dtype.kind == "f"]
                graphs.append((vjp, arrays + list(record.outputs) + cots))
        for graph, feeds in graphs:
            fused = fuse(graph)
            verify(fused, roundtrip=True)
            assert not loose_elementwise(fused), f"{op.name}[{index}]"
            assert_same_results(graph, fused, feeds)
            for kind, n in group_kinds(fused).items():
                kinds[kind] = kinds.get(kind, 0) + n
    assert kinds["elementwise"] > 100 and kinds["reduction"] > 100


F32 = dtypes.float32
_SHAPES = {"full": (4, 3), "col": (4, 1), "row": (3,), "vec": (4,), "t": (3, 4)}


def _random_graph(data) -> Graph:
    """A random program over a few shapes: elementwise ops with broadcasting, reductions,
    views, an opaque scan and matmuls; random values are outputs, one is a mutation."""
    g = Graph("random")
    x = g.add_input(TensorType((4, 3), F32), name="x")
    w = g.add_input(TensorType((3, 3), F32), Role.PARAMETER, name="w")
    b = g.add_input(TensorType((3,), F32), name="b")
    pool = [x, b]
    with interpreter(GraphBuilder(g)):
        for _ in range(data.draw(st.integers(1, 14), label="length")):
            a = data.draw(st.sampled_from(pool))
            full = [v for v in pool if v.shape == (4, 3)] or [x]
            choice = data.draw(st.sampled_from(
                ["tanh", "neg", "add", "mul", "sum_col", "sum_all", "reshape", "permute",
                 "cumsum", "matmul", "expand"]), label="op")
            if choice == "tanh":
                y = ops.tanh(a)
            elif choice == "neg":
                y = ops.neg(a)
            elif choice in ("add", "mul"):
                other = data.draw(st.sampled_from(
                    [v for v in pool if _broadcasts(v.shape, a.shape)] or [a]))
                y = (ops.add if choice == "add" else ops.mul)(a, other)
            elif choice == "sum_col":
                y = ops.sum(data.draw(st.sampled_from(full)), dim=1, keepdim=True)
            elif choice == "sum_all":
                y = ops.sum(a)
            elif choice == "reshape":
                y = ops.reshape(a, (a.type.numel,)) if a.type.ndim else ops.reshape(a, (1,))
            elif choice == "permute":
                y = ops.permute(a, tuple(reversed(range(a.type.ndim))))
            elif choice == "cumsum":
                y = ops.cumsum(a, 0) if a.type.ndim else ops.neg(a)
            elif choice == "matmul":
                y = ops.matmul(data.draw(st.sampled_from(full)), w)
            else:
                y = ops.expand(ops.reshape(a, (1, a.type.numel)), (4, a.type.numel)) \
                    if a.type.ndim == 1 and a.type.numel == 3 else ops.relu(a)
            pool.append(y)
    outs = data.draw(st.lists(st.sampled_from(pool[3:] or pool), min_size=1, max_size=3,
                              unique_by=id))
    g.outputs = list(outs)
    updates = [v for v in pool[3:] if v.shape == (3, 3)]
    if updates:
        g.mutate(w, "data", data.draw(st.sampled_from(updates)))
    return g


def _broadcasts(a: tuple, b: tuple) -> bool:
    return all(x == y or x == 1 or y == 1 for x, y in zip(reversed(a), reversed(b)))


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_random_graphs_fuse_legally(data):
    graph = _random_graph(data)
    verify(graph, roundtrip=False)
    fused = fuse(graph)
    verify(fused, roundtrip=True)  # a valid order: no group ever became part of a cycle
    assert not loose_elementwise(fused)
    for node in fused.nodes:
        if node.op.name == "fused" and node.attrs["kind"] == "elementwise":
            shapes = {n.outputs[0].shape for n in node.attrs["body"].nodes
                      if n.op.kind is OpKind.ELEMENTWISE}
            assert len(shapes) == 1
    assert_same_results(graph, fused, feeds_for(graph, seed=1))


# --- an MLP training step -----------------------------------------------------------------

def _mlp_step_graph() -> Graph:
    """The captured graph of a 784-512-512-10 MLP step: forward, cross entropy, backward
    and SGD with momentum (the steady state, after the momentum buffers exist)."""
    compgrad.manual_seed(0)
    model = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(),
                          nn.Linear(512, 10))
    opt = compgrad.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def step(x, y):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss.detach()

    compiled = compgrad.compile(step, backend="interpret")
    rng = np.random.default_rng(0)
    x = compgrad.tensor(rng.standard_normal((64, 784)).astype(np.float32))
    y = compgrad.tensor(rng.integers(0, 10, 64), dtype=compgrad.int64)
    for _ in range(2):
        compiled(x, y)
    return compiled.explain().graphs[-1]


def test_mlp_training_step_has_no_loose_elementwise_node():
    graph = _mlp_step_graph()
    fused = fuse(graph)
    verify(fused, roundtrip=True)
    assert loose_elementwise(graph) and not loose_elementwise(fused)
    kinds = group_kinds(fused)
    # the loss gradient's row work (softmax backward, the target weights) is rows groups;
    # the last bias gradient (a column sum of the loss gradient) is computed in its rows
    # group, so that bias's momentum update is an elementwise group of its own
    assert set(kinds) == {"rows", "reduction", "matmul_epilogue", "elementwise"}
    # every parameter and momentum update is computed inside a fused group
    assert graph.mutations and all(m.value.node.op.name == "fused" for m in fused.mutations)
    feeds = feeds_for(graph)
    for i, v in enumerate(graph.inputs):
        if v.type.dtype is dtypes.int64:
            feeds[i] = np.random.default_rng(1).integers(0, 10, v.type.shape)
    assert_same_results(graph, fused, feeds)

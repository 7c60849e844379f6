"""passes.pipeline.run_pipeline, and the simplification passes run through it on the
graph of every registry sample (results must not change)."""

from __future__ import annotations

import functools
import os
from collections import Counter

import numpy as np
import pytest

from ir.dtypes import CATEGORY_FLOAT
from ir.graph import Graph, Role, Value
from ir.interpret import interpret
from ir.opdef import REGISTRY, OpKind
from ir.parser import parse
from ir.printer import print_graph
from ir.verify import IRVerificationError
from passes.graph_utils import copy_graph
from passes.pipeline import dump_path, pass_name, run_pipeline
from passes.simplify import algebraic, cse, dce, fold_constants, simplify
from tests.ir._graphs import OPS, record_sample, samples

TEXT = """
graph step(%x: f32[3], %c: f32[3] const=[1.0, 2.0, 3.0]) {
  %a = mul(%x, 1) : f32[3]
  %b = exp(%a) : f32[3]
  %d = exp(%a) : f32[3]
  %e = sqrt(%c) : f32[3]
  %f = add(%b, %e) : f32[3]
  %u = sin(%x) : f32[3]
  return %f, %d
}"""


def test_passes_run_in_order_and_the_input_is_kept():
    graph = parse(TEXT)
    before = print_graph(graph)
    out = run_pipeline(graph, [algebraic, cse, dce])
    assert print_graph(out) == print_graph(dce(cse(algebraic(graph))))
    assert print_graph(graph) == before
    assert [n.op.name for n in out.nodes] == ["exp", "sqrt", "add"]


def test_no_passes_return_the_graph():
    graph = parse(TEXT)
    assert run_pipeline(graph, []) is graph


def test_each_pass_reports_its_time():
    seen = []
    run_pipeline(parse(TEXT), [dce, cse, dce], on_timing=lambda name, s: seen.append((name, s)))
    assert [name for name, _ in seen] == ["dce", "cse", "dce"]
    assert all(isinstance(s, float) and s >= 0 for _, s in seen)


def test_dumps_are_written_after_each_pass(tmp_path):
    graph = parse(TEXT)
    out = run_pipeline(graph, [algebraic, dce], dump_dir=tmp_path / "dumps")
    files = sorted(os.listdir(tmp_path / "dumps"))
    assert files == ["step.01-algebraic.ir", "step.02-dce.ir"]
    first = (tmp_path / "dumps" / files[0]).read_text()
    assert first == print_graph(algebraic(graph)) + "\n"
    assert (tmp_path / "dumps" / files[1]).read_text() == print_graph(out) + "\n"
    assert print_graph(parse(first)) == first.rstrip("\n")  # a dump reads back


def test_dump_names_are_plain_file_names(tmp_path):
    assert os.path.basename(dump_path(tmp_path, "my/graph name", 3, "<lambda>")) == \
        "my_graph_name.03-_lambda_.ir"
    assert pass_name(functools.partial(fold_constants, max_elements=4)) == "fold_constants"


def _boom(graph: Graph) -> Graph:
    raise ValueError("no good")


def test_an_error_in_a_pass_names_the_pass_and_the_graph():
    with pytest.raises(ValueError, match="no good") as info:
        run_pipeline(parse(TEXT), [dce, _boom])
    assert "in pass '_boom' (2 of 2) on graph 'step'" in info.value.__notes__


def _wrong_type(graph: Graph) -> Graph:
    g = copy_graph(graph)
    g.nodes[1].outputs[0].type = g.nodes[0].outputs[0].type.with_(shape=(4,))
    return g


def test_a_broken_result_is_reported_after_its_pass_and_still_dumped(tmp_path):
    with pytest.raises(IRVerificationError, match="the type rule of exp") as info:
        run_pipeline(parse(TEXT), [_wrong_type], dump_dir=tmp_path)
    assert "after pass '_wrong_type' (1 of 1) on graph 'step'" in info.value.__notes__
    assert os.listdir(tmp_path) == ["step.01-_wrong_type.ir"]
    # without verification the broken graph comes back as it is
    assert run_pipeline(parse(TEXT), [_wrong_type], verify=False).nodes[1].outputs[0].shape == (4,)


def test_a_broken_input_is_reported_as_the_input():
    graph = _wrong_type(parse(TEXT))
    with pytest.raises(IRVerificationError) as info:
        run_pipeline(graph, [dce])
    assert "in the input of the pass pipeline (graph 'step')" in info.value.__notes__


def _mutating(graph: Graph) -> Graph:
    graph.nodes.pop()
    return graph


def test_a_pass_that_mutates_its_input_is_caught():
    with pytest.raises(RuntimeError, match="mutated its input graph"):
        run_pipeline(parse(TEXT), [_mutating])


def _not_a_graph(graph: Graph):
    return print_graph(graph)


def test_a_pass_must_return_a_graph():
    with pytest.raises(TypeError, match="returned str, not a Graph") as info:
        run_pipeline(parse(TEXT), [_not_a_graph])
    assert any("_not_a_graph" in note for note in info.value.__notes__)


# --- the registry sweep ----------------------------------------------------------------------
# Each sample's graph (tests/ir/_graphs.py) keeps only its last node's outputs. A padded copy
# reads every input of every non-view node through an exact identity (clone, same-shape
# reshape, x*1, -(-x), ...) and computes every non-random node twice; simplify must remove
# all of that (the same ops as simplifying the plain graph) and every pass of the pipeline
# must keep the results bit for bit.

def _clone(g: Graph, v: Value) -> Value:
    return g.add_node(REGISTRY["clone"], (v,)).outputs[0]


def _same_reshape(g: Graph, v: Value) -> Value:
    return g.add_node(REGISTRY["reshape"], (v,), {"shape": v.type.shape}).outputs[0]


def _times_one(g: Graph, v: Value) -> Value:
    return g.add_node(REGISTRY["mul"], (v, 1)).outputs[0]


def _double_negation(g: Graph, v: Value) -> Value:
    inner = g.add_node(REGISTRY["neg"], (v,)).outputs[0]
    return g.add_node(REGISTRY["neg"], (inner,)).outputs[0]


def _plus_negative_zero(g: Graph, v: Value) -> Value:
    return g.add_node(REGISTRY["add"], (v, -0.0)).outputs[0]


def _minus_zero(g: Graph, v: Value) -> Value:
    return g.add_node(REGISTRY["sub"], (v, 0)).outputs[0]


def _over_one(g: Graph, v: Value) -> Value:
    return g.add_node(REGISTRY["div"], (v, 1), {"rounding_mode": None}).outputs[0]


def _to_the_first(g: Graph, v: Value) -> Value:
    return g.add_node(REGISTRY["pow"], (v, 1)).outputs[0]


ANY_IDENTITY = (_clone, _same_reshape)
FLOAT_IDENTITY = ANY_IDENTITY + (_times_one, _double_negation, _plus_negative_zero,
                                 _minus_zero, _over_one, _to_the_first)


def padded(base: Graph) -> Graph:
    """``base`` with identities on the inputs of non-view nodes and duplicated nodes."""
    g = Graph(base.name)
    vmap = {v: g.add_input(v.type, v.role, v.name, data=base.constants.get(v))
            for v in base.inputs}
    k = 0
    for node in base.nodes:
        args = []
        for a in node.inputs:
            if isinstance(a, Value):
                a = vmap[a]
                if not node.op.is_view and not a.type.weak:
                    table = FLOAT_IDENTITY if a.type.dtype.category == CATEGORY_FLOAT \
                        else ANY_IDENTITY
                    a = table[k % len(table)](g, a)
                    k += 1
            args.append(a)
        types = [o.type for o in node.outputs]
        copy = g.add_node(node.op, args, dict(node.attrs), types, loc=node.loc)
        if node.op.kind is not OpKind.RANDOM:
            copy = g.add_node(node.op, args, dict(node.attrs), types, loc=node.loc)
        vmap.update(zip(node.outputs, copy.outputs))
    g.outputs = [vmap[v] for v in base.outputs]
    return g


def with_constant_inputs(base: Graph, feeds: list) -> Graph:
    """``base`` with each input a CONSTANT holding its feed."""
    g = Graph(base.name)
    vmap = {v: g.add_input(v.type, Role.CONSTANT, v.name, data=x)
            for v, x in zip(base.inputs, feeds)}
    for node in base.nodes:
        args = [vmap[a] if isinstance(a, Value) else a for a in node.inputs]
        copy = g.add_node(node.op, args, dict(node.attrs), [o.type for o in node.outputs],
                          loc=node.loc)
        vmap.update(zip(node.outputs, copy.outputs))
    g.outputs = [vmap[v] for v in base.outputs]
    return g


def _same(expected: list, got: list, where: str) -> None:
    assert len(expected) == len(got), where
    for a, b in zip(expected, got):
        a, b = np.asarray(a), np.asarray(b)
        assert a.dtype == b.dtype and a.shape == b.shape, where
        assert a.tobytes() == b.tobytes(), where


@pytest.mark.parametrize("op", [op for op in OPS if samples(op)], ids=lambda op: op.name)
def test_simplify_keeps_the_results_of_every_sample(op):
    for index, sample in enumerate(samples(op)):
        if not hasattr(sample, "grad"):  # an ErrorSample
            continue
        rec = record_sample(op, sample)
        base = rec.graph
        if not base.nodes:
            continue
        base.outputs = list(base.nodes[-1].outputs)
        where = f"{op.name} sample {index}"
        # contiguous feeds: a reference implementation may round differently on a strided
        # array (avg_pool2d does), and removing a clone changes which one it gets
        feeds = [f.copy(order="C") if isinstance(f, np.ndarray) else f
                 for f in rec.feeds]
        expected = interpret(base, feeds).outputs
        big = padded(base)
        _same(expected, interpret(big, feeds).outputs, where)
        result = run_pipeline(big, [fold_constants, algebraic, cse, dce, simplify])
        _same(expected, interpret(result, feeds).outputs, where)
        plain = simplify(base)
        assert Counter(n.op.name for n in result.nodes) == \
            Counter(n.op.name for n in plain.nodes), where
        # the same graph with its inputs as constants: folding evaluates what it can
        const = with_constant_inputs(base, feeds)
        folded = run_pipeline(const, [simplify])
        _same(expected, interpret(folded, [None] * len(feeds)).outputs, where)

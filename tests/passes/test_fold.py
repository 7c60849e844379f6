"""passes.simplify.fold_constants: IR text in, IR text out.

Folded values become ``index_constant`` nodes (the IR's literal: a ``values``
attribute), so no graph input is added.
"""

from __future__ import annotations

import numpy as np

from ir.interpret import interpret
from ir.parser import parse
from ir.printer import print_graph
from passes.simplify import fold_constants

from ._ir_text import check_rewrite

CPU = 'device=device("cpu")'


def check(before: str, after: str, **options) -> None:
    """``fold_constants`` turns ``before`` into ``after`` (compared as printed IR),
    leaves its input graph as it was and computes the same results."""
    graph, folded = check_rewrite(fold_constants, before, after, **options)
    feeds = [np.ones(v.type.shape, v.type.dtype.np_dtype) if not v.type.weak else 1.0
             for v in graph.inputs]
    for a, b in zip(interpret(graph, feeds).outputs, interpret(folded, feeds).outputs):
        np.testing.assert_array_equal(a, b)


def unchanged(text: str, **options) -> None:
    check(text, text, **options)


def test_a_node_of_a_constant_input_becomes_a_literal():
    # sqrt is correctly rounded (IEEE), so the literal does not depend on the machine
    check("""
graph f(%x: f32[3], %c: f32[3] const=[1.0, 4.0, 2.0]) {
  %e = sqrt(%c) : f32[3]  # model.py:3
  %y = mul(%x, %e) : f32[3]
  return %y
}""", f"""
graph f(%x: f32[3], %c: f32[3] const=[1.0, 4.0, 2.0]) {{
  %e = index_constant()[values=(1.0, 2.0, 1.4142135), shape=(3,), dtype=float32, \
{CPU}] : f32[3]  # model.py:3
  %y = mul(%x, %e) : f32[3]
  return %y
}}""")


def test_only_the_last_value_of_a_folded_chain_is_kept():
    # full(2) -> reshape -> mul -> sum: one literal; the leaf full goes with its users
    check(f"""
graph f(%x: f32[]) {{
  %a = full(2.0)[shape=(2, 2), dtype=float32, {CPU}] : f32[2,2]
  %b = reshape(%a)[shape=(4,)] : f32[4]
  %c = mul(%b, 1.5) : f32[4]
  %d = sum(%c)[dim=(0,), keepdim=False, dtype=None] : f32[]
  %y = add(%x, %d) : f32[]
  return %y
}}""", f"""
graph f(%x: f32[]) {{
  %d = index_constant()[values=(12.0,), shape=(), dtype=float32, {CPU}] : f32[]
  %y = add(%x, %d) : f32[]
  return %y
}}""")


def test_equal_values_are_written_once():
    check(f"""
graph f(%x: f32[2,3]) {{
  %a = full(2.0)[shape=(2, 3), dtype=float32, {CPU}] : f32[2,3]
  %b = mul(%a, 3) : f32[2,3]
  %y = add(%x, %b) : f32[2,3]
  return %y
}}""", f"""
graph f(%x: f32[2,3]) {{
  %b = index_constant()[values=(6.0,), shape=(2, 3), dtype=float32, {CPU}] : f32[2,3]
  %y = add(%x, %b) : f32[2,3]
  return %y
}}""")


def test_a_creation_node_read_by_a_kept_node_stays_as_it_is():
    unchanged(f"""
graph f(%x: f32[3]) {{
  %a = arange()[start=0, end=3, step=1, dtype=float32, {CPU}] : f32[3]
  %y = mul(%x, %a) : f32[3]
  return %y, %a
}}""")


def test_scalar_literals_weak_constants_and_other_dtypes():
    # Python-number arithmetic (weak results) stays: a constant node holds tensors
    check("""
graph f(%s: f64[] weak const=2.0, %c: i32[3] const=[1, 2, 3]) {
  %a = add(2, 3) : i64[] weak
  %b = mul(%c, %s) : f32[3]
  %q = eq(%c, 2) : bool[3]
  return %a, %b, %q
}""", f"""
graph f(%s: f64[] weak const=2.0, %c: i32[3] const=[1, 2, 3]) {{
  %a = add(2, 3) : i64[] weak
  %b = index_constant()[values=(2.0, 4.0, 6.0), shape=(3,), dtype=float32, {CPU}] : f32[3]
  %q = index_constant()[values=(False, True, False), shape=(3,), dtype=bool, {CPU}] : bool[3]
  return %a, %b, %q
}}""")


def test_float_literals_round_trip_exactly():
    # the shortest text that gives the same float32 bits; -0.0, inf and nan survive
    check("""
graph f(%c: f32[4] const=[0.1, -0.0, inf, nan]) {
  %a = neg(%c) : f32[4]
  return %a
}""", f"""
graph f(%c: f32[4] const=[0.1, -0.0, inf, nan]) {{
  %a = index_constant()[values=(-0.1, 0.0, -inf, nan), shape=(4,), dtype=float32, \
{CPU}] : f32[4]
  return %a
}}""")


def test_inputs_that_are_not_constant_are_not_folded():
    unchanged("""
graph f(%x: f32[3], %c: f32[3] const=[1.0, 2.0, 3.0]) {
  %a = add(%x, %c) : f32[3]
  %b = exp(%a) : f32[3]
  return %b
}""")


def test_large_results_stay():
    unchanged(f"""
graph f(%x: f32[2048]) {{
  %a = full(1.0)[shape=(2048,), dtype=float32, {CPU}] : f32[2048]
  %b = exp(%a) : f32[2048]
  %y = mul(%x, %b) : f32[2048]
  return %y
}}""")
    unchanged("""
graph f(%x: f32[3], %c: f32[3] const=[1.0, 2.0, 3.0]) {
  %e = exp(%c) : f32[3]
  %y = mul(%x, %e) : f32[3]
  return %y
}""", max_elements=2)


def test_random_draws_are_not_folded():
    unchanged("""
graph f(%key: i64[2] const=[1, 2]) {
  %r = randn(%key)[shape=(3,), dtype=float32, device=device("cpu")] : f32[3]
  return %r
}""")


def test_a_node_that_raises_stays_to_raise_at_run_time():
    text = f"""
graph f(%c: f32[3] const=[1.0, 2.0, 3.0]) {{
  %i = index_constant()[values=(5,), shape=(1,), dtype=int64, {CPU}] : i64[1]
  %e = index_select(%c, %i)[dim=0] : f32[1]
  return %e
}}"""
    graph = parse(text)
    assert print_graph(fold_constants(graph)) == print_graph(graph)


def test_a_returned_view_keeps_its_base():
    # eagerly the view shares storage with its base: a literal would not
    unchanged(f"""
graph f(%x: f32[2,2]) {{
  %a = full(2.0)[shape=(2, 2), dtype=float32, {CPU}] : f32[2,2]
  %b = permute(%a)[dims=(1, 0)] : f32[2,2]
  %y = mul(%x, %a) : f32[2,2]
  return %y, %b
}}""")


def test_a_returned_non_view_result_is_folded():
    # a literal is fresh memory on every run, as the computed value was
    check("""
graph f(%c: f32[2] const=[1.0, 2.0]) {
  %a = mul(%c, 2) : f32[2]
  return %a
}""", f"""
graph f(%c: f32[2] const=[1.0, 2.0]) {{
  %a = index_constant()[values=(2.0, 4.0), shape=(2,), dtype=float32, {CPU}] : f32[2]
  return %a
}}""")


def test_multi_output_nodes_fold_each_used_output():
    check("""
graph f(%x: f32[2], %c: f32[2,3] const=[[1.0, 5.0, 2.0], [7.0, 0.0, 3.0]]) {
  %v, %i = max(%c)[dim=1, keepdim=False] : f32[2], i64[2]
  %y = mul(%x, %v) : f32[2]
  return %y
}""", f"""
graph f(%x: f32[2], %c: f32[2,3] const=[[1.0, 5.0, 2.0], [7.0, 0.0, 3.0]]) {{
  %v = index_constant()[values=(5.0, 7.0), shape=(2,), dtype=float32, {CPU}] : f32[2]
  %y = mul(%x, %v) : f32[2]
  return %y
}}""")


def test_no_graph_input_is_added():
    graph = parse("""
graph f(%c: f32[2] const=[1.0, 2.0]) {
  %a = exp(%c) : f32[2]
  return %a
}""")
    folded = fold_constants(graph)
    assert [v.name for v in folded.inputs] == ["c"]
    assert [n.op.name for n in folded.nodes] == ["index_constant"]

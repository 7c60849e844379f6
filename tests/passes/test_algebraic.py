"""passes.simplify.algebraic: IR text in, IR text out.

Rewritten nodes go; nodes they leave unused stay (that is dce's job), which is
why ``neg(%x)`` survives ``-(-x) -> x`` below.
"""

from __future__ import annotations

import numpy as np
import pytest

from ir.interpret import interpret
from passes.simplify import algebraic

from ._ir_text import check_rewrite


def _feeds(graph):
    rng = np.random.default_rng(0)
    feeds = []
    for v in graph.inputs:
        t = v.type
        if t.weak:
            feeds.append(0.5)
        elif t.dtype.np_dtype.kind == "f":
            # -0.0, nan and infinities included: the identities must be exact for them too
            data = rng.standard_normal(t.shape).astype(t.dtype.np_dtype)
            special = np.array([-0.0, 0.0, np.nan, np.inf, -np.inf], t.dtype.np_dtype)
            flat = data.reshape(-1)
            flat[:min(flat.size, special.size)] = special[:flat.size]
            feeds.append(data)
        else:
            feeds.append(rng.integers(-5, 6, t.shape).astype(t.dtype.np_dtype))
    return feeds


def check(before: str, after: str) -> None:
    """``algebraic`` turns ``before`` into ``after`` (compared as printed IR), leaves its
    input graph as it was, and computes bit-identical results (signed zeros, nan)."""
    graph, result = check_rewrite(algebraic, before, after)
    feeds = _feeds(graph)
    old, new = interpret(graph, feeds), interpret(result, feeds)
    for a, b in zip(old.outputs + [x for _, x in old.mutations],
                    new.outputs + [x for _, x in new.mutations]):
        assert np.asarray(a).tobytes() == np.asarray(b).tobytes()


def unchanged(text: str) -> None:
    check(text, text)


def _internal(op_line: str, x_type: str = "f32[2,3]", out_type: str | None = None) -> tuple:
    """A graph applying ``op_line`` (defining %r from %x) and reading %r in a node,
    and the graph with %r replaced by %x."""
    out_type = out_type or x_type
    before = f"""
graph f(%x: {x_type}) {{
  {op_line} : {out_type}
  %y = abs(%r) : {out_type}
  return %y
}}"""
    after = f"""
graph f(%x: {x_type}) {{
  %y = abs(%x) : {x_type}
  return %y
}}"""
    return before, after


@pytest.mark.parametrize("line", [
    "%r = mul(%x, 1)", "%r = mul(1, %x)", "%r = mul(%x, 1.0)", "%r = mul(%x, True)",
    "%r = add(%x, -0.0)", "%r = add(-0.0, %x)",
    "%r = sub(%x, 0)", "%r = sub(%x, 0.0)", "%r = sub(%x, False)",
    "%r = div(%x, 1)[rounding_mode=None]", "%r = div(%x, 1.0)[rounding_mode=None]",
    "%r = pow(%x, 1)", "%r = pow(%x, 1.0)",
    "%r = reshape(%x)[shape=(2, 3)]", "%r = view(%x)[shape=(2, 3)]",
    "%r = expand(%x)[shape=(2, 3)]", "%r = to_dtype(%x)[dtype=float32]",
    "%r = clone(%x)", "%r = permute(%x)[dims=(0, 1)]",
])
def test_float_identities(line):
    check(*_internal(line))


@pytest.mark.parametrize("line", [
    "%r = add(%x, 0)", "%r = add(0, %x)", "%r = add(%x, False)",
    "%r = div(%x, 1)[rounding_mode=\"floor\"]", "%r = div(%x, 1)[rounding_mode=\"trunc\"]",
    "%r = mul(%x, 1)", "%r = pow(%x, 1)", "%r = sub(%x, 0)",
])
def test_integer_identities(line):
    check(*_internal(line, "i32[4]"))


def test_integer_double_negation():
    # -(-x) wraps around twice for the most negative int: still x
    check("""
graph f(%x: i32[4]) {
  %n = neg(%x) : i32[4]
  %r = neg(%n) : i32[4]
  %y = abs(%r) : i32[4]
  return %y
}""", """
graph f(%x: i32[4]) {
  %n = neg(%x) : i32[4]
  %y = abs(%x) : i32[4]
  return %y
}""")


@pytest.mark.parametrize("line,out", [
    ("%r = add(%x, 0.0)", "f32[2,3]"),                    # -0.0 + 0.0 is +0.0
    ("%r = add(%x, 0)", "f32[2,3]"),
    ("%r = sub(%x, -0.0)", "f32[2,3]"),                   # is x + 0.0
    ("%r = div(%x, 1)[rounding_mode=\"floor\"]", "f32[2,3]"),  # floors
    ("%r = mul(%x, 2)", "f32[2,3]"),
    ("%r = pow(%x, 2)", "f32[2,3]"),
    ("%r = reshape(%x)[shape=(3, 2)]", "f32[3,2]"),
    ("%r = to_dtype(%x)[dtype=float64]", "f64[2,3]"),
])
def test_non_identities_stay(line, out):
    before, _ = _internal(line, "f32[2,3]", out)
    unchanged(before)


@pytest.mark.parametrize("x_type,line,out", [
    ("i32[4]", "%r = mul(%x, 1.0)", "f32[4]"),            # a weak float promotes ints
    ("bool[4]", "%r = mul(%x, 1)", "i64[4]"),
    ("bool[4]", "%r = add(%x, 0)", "i64[4]"),
    ("i32[4]", "%r = div(%x, 1)[rounding_mode=None]", "f32[4]"),  # true division
    ("i32[4]", "%r = pow(%x, 1.0)", "f32[4]"),
    ("f32[1]", "%r = expand(%x)[shape=(3,)]", "f32[3]"),  # broadcasts
])
def test_identities_that_change_the_type_stay(x_type, line, out):
    before, _ = _internal(line, x_type, out)
    unchanged(before)


def test_python_scalar_arithmetic_stays_weak():
    # two weak operands compute as Python does (a float64 weak scalar): lr * 1 is lr
    check("""
graph f(%lr: f64[] weak, %x: f64[3]) {
  %r = mul(%lr, 1) : f64[] weak
  %y = mul(%x, %r) : f64[3]
  return %y
}""", """
graph f(%lr: f64[] weak, %x: f64[3]) {
  %y = mul(%x, %lr) : f64[3]
  return %y
}""")


def test_double_negation_and_chains():
    # %c becomes a second neg(%x) (merging it is cse's job) and %d = -%c is %x again
    check("""
graph f(%x: f32[3]) {
  %a = neg(%x) : f32[3]
  %b = neg(%a) : f32[3]
  %c = neg(%b) : f32[3]
  %d = neg(%c) : f32[3]
  %e = mul(%d, 1) : f32[3]
  %y = exp(%e) : f32[3]
  return %y
}""", """
graph f(%x: f32[3]) {
  %a = neg(%x) : f32[3]
  %c = neg(%x) : f32[3]
  %y = exp(%x) : f32[3]
  return %y
}""")


def test_permutes_that_undo_each_other():
    check("""
graph f(%x: f32[2,3,4]) {
  %a = permute(%x)[dims=(2, 0, 1)] : f32[4,2,3]
  %b = permute(%a)[dims=(1, 2, 0)] : f32[2,3,4]
  %c = permute(%x)[dims=(-1, 1, 0)] : f32[4,3,2]
  %d = permute(%c)[dims=(2, 1, 0)] : f32[2,3,4]
  %y = add(%b, %d) : f32[2,3,4]
  return %y
}""", """
graph f(%x: f32[2,3,4]) {
  %a = permute(%x)[dims=(2, 0, 1)] : f32[4,2,3]
  %c = permute(%x)[dims=(-1, 1, 0)] : f32[4,3,2]
  %y = add(%x, %x) : f32[2,3,4]
  return %y
}""")


def test_permutes_that_do_not_undo_stay():
    unchanged("""
graph f(%x: f32[2,2,2]) {
  %a = permute(%x)[dims=(1, 2, 0)] : f32[2,2,2]
  %b = permute(%a)[dims=(1, 2, 0)] : f32[2,2,2]
  %c = permute(%x)[dims=(1, 0, 2)] : f32[2,2,2]
  %y = add(%b, %c) : f32[2,2,2]
  return %y
}""")


# --- aliasing: exposed values ------------------------------------------------------------------

def test_a_returned_clone_of_an_input_stays():
    unchanged("""
graph f(%x: f32[3]) {
  %c = clone(%x) : f32[3]
  return %c
}""")


def test_a_clone_written_by_a_mutation_stays():
    unchanged("""
graph f(%x: f32[3], %w: f32[3] param) {
  %c = clone(%x) : f32[3]
  %d = mul(%x, 1) : f32[3]
  return
  mutate %w <- %c
  mutate grad(%w) <- %d
}""")


def test_a_clone_seen_through_a_returned_view_stays():
    unchanged("""
graph f(%x: f32[4]) {
  %c = clone(%x) : f32[4]
  %v = reshape(%c)[shape=(2, 2)] : f32[2,2]
  return %v
}""")


def test_an_identity_returning_an_input_stays():
    unchanged("""
graph f(%x: f32[3]) {
  %a = mul(%x, 1) : f32[3]
  %b = to_dtype(%x)[dtype=float32] : f32[3]
  return %a, %b
}""")


def test_a_returned_identity_view_stays():
    unchanged("""
graph f(%x: f32[3]) {
  %e = exp(%x) : f32[3]
  %r = reshape(%e)[shape=(3,)] : f32[3]
  return %r
}""")


def test_a_returned_identity_of_an_internal_result_takes_its_place():
    # exp's result was private: handing it out instead of a copy aliases nothing
    check("""
graph f(%x: f32[3], %w: f32[3] param) {
  %e = exp(%x) : f32[3]
  %c = clone(%e) : f32[3]
  %s = sin(%x) : f32[3]
  %t = mul(%s, 1) : f32[3]
  return %c
  mutate %w <- %t
}""", """
graph f(%x: f32[3], %w: f32[3] param) {
  %e = exp(%x) : f32[3]
  %s = sin(%x) : f32[3]
  return %e
  mutate %w <- %s
}""")


def test_two_returned_identities_of_one_result_keep_one_copy():
    check("""
graph f(%x: f32[3]) {
  %e = exp(%x) : f32[3]
  %a = clone(%e) : f32[3]
  %b = clone(%e) : f32[3]
  return %a, %b
}""", """
graph f(%x: f32[3]) {
  %e = exp(%x) : f32[3]
  %b = clone(%e) : f32[3]
  return %e, %b
}""")

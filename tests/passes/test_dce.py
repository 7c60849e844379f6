"""passes.simplify.dce: IR text in, IR text out."""

from __future__ import annotations

from passes.simplify import dce

from ._ir_text import check_rewrite


def check(before: str, after: str) -> None:
    """``dce`` turns ``before`` into ``after`` and leaves its input graph as it was."""
    check_rewrite(dce, before, after)


def test_unused_nodes_go_and_used_ones_stay():
    check("""
graph f(%x: f32[3]) {
  %a = exp(%x) : f32[3]
  %b = sin(%x) : f32[3]
  %c = cos(%b) : f32[3]
  %d = mul(%a, 2.0) : f32[3]
  return %d
}""", """
graph f(%x: f32[3]) {
  %a = exp(%x) : f32[3]
  %d = mul(%a, 2.0) : f32[3]
  return %d
}""")


def test_mutation_values_are_uses():
    check("""
graph step(%w: f32[3] param, %g: f32[3] grad, %lr: f64[] weak) {
  %unused = exp(%w) : f32[3]
  %s = mul(%g, %lr) : f32[3]
  %w2 = sub(%w, %s) : f32[3]
  %z = full(0.0)[shape=(3,), dtype=float32, device=device("cpu")] : f32[3]
  return
  mutate %w <- %w2
  mutate grad(%w) <- %z
}""", """
graph step(%w: f32[3] param, %g: f32[3] grad, %lr: f64[] weak) {
  %s = mul(%g, %lr) : f32[3]
  %w2 = sub(%w, %s) : f32[3]
  %z = full(0.0)[shape=(3,), dtype=float32, device=device("cpu")] : f32[3]
  return
  mutate %w <- %w2
  mutate grad(%w) <- %z
}""")


def test_an_unused_random_draw_goes_but_the_key_update_stays():
    check("""
graph f(%x: f32[3], %key: i64[2] rng) {
  %r = randn(%key)[shape=(3,), dtype=float32, device=device("cpu")] : f32[3]
  %k2 = add(%key, 1) : i64[2]
  %y = relu(%x) : f32[3]
  return %y
  mutate %key <- %k2
}""", """
graph f(%x: f32[3], %key: i64[2] rng) {
  %k2 = add(%key, 1) : i64[2]
  %y = relu(%x) : f32[3]
  return %y
  mutate %key <- %k2
}""")


def test_a_used_random_draw_stays():
    text = """
graph f(%x: f32[3], %key: i64[2] rng) {
  %r = randn(%key)[shape=(3,), dtype=float32, device=device("cpu")] : f32[3]
  %y = add(%x, %r) : f32[3]
  return %y
}"""
    check(text, text)


def test_a_multi_output_node_stays_when_one_output_is_used():
    text = """
graph f(%x: f32[2,3]) {
  %v, %i = max(%x)[dim=1, keepdim=False] : f32[2], i64[2]
  return %i
}"""
    check(text, text)


def test_unused_inputs_are_kept():
    check("""
graph f(%x: f32[3], %unused: f32[3], %c: f32[2] const=[1.0, 2.0]) {
  %a = neg(%unused) : f32[3]
  %b = exp(%c) : f32[2]
  return %x
}""", """
graph f(%x: f32[3], %unused: f32[3], %c: f32[2] const=[1.0, 2.0]) {
  return %x
}""")


def test_a_grad_set_to_none_reads_nothing():
    check("""
graph f(%w: f32[3] param) {
  %a = exp(%w) : f32[3]
  return
  mutate grad(%w) <- None
}""", """
graph f(%w: f32[3] param) {
  return
  mutate grad(%w) <- None
}""")

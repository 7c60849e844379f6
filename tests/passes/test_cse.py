"""passes.simplify.cse: IR text in, IR text out."""

from __future__ import annotations

from passes.simplify import cse

from ._ir_text import check_rewrite


def check(before: str, after: str) -> None:
    """``cse`` turns ``before`` into ``after`` and leaves its input graph as it was."""
    check_rewrite(cse, before, after)


def unchanged(text: str) -> None:
    check(text, text)


def test_identical_nodes_merge_and_their_users_follow():
    check("""
graph f(%x: f32[3], %y: f32[3]) {
  %a = mul(%x, %y) : f32[3]
  %b = mul(%x, %y) : f32[3]
  %c = exp(%a) : f32[3]
  %d = exp(%b) : f32[3]
  %e = sub(%c, %d) : f32[3]
  return %e
}""", """
graph f(%x: f32[3], %y: f32[3]) {
  %a = mul(%x, %y) : f32[3]
  %c = exp(%a) : f32[3]
  %e = sub(%c, %c) : f32[3]
  return %e
}""")


def test_attributes_compare_by_value_in_any_order():
    check("""
graph f(%x: f32[2,3]) {
  %a = sum(%x)[dim=(1,), keepdim=False, dtype=None] : f32[2]
  %b = sum(%x)[keepdim=False, dim=(1,), dtype=None] : f32[2]
  %c = add(%a, %b) : f32[2]
  return %c
}""", """
graph f(%x: f32[2,3]) {
  %a = sum(%x)[dim=(1,), keepdim=False, dtype=None] : f32[2]
  %c = add(%a, %a) : f32[2]
  return %c
}""")


def test_different_attributes_or_scalars_do_not_merge():
    unchanged("""
graph f(%x: f32[2,3]) {
  %a = sum(%x)[dim=(1,), keepdim=False, dtype=None] : f32[2]
  %b = sum(%x)[dim=(1,), keepdim=True, dtype=None] : f32[2,1]
  %c = mul(%x, 2) : f32[2,3]
  %d = mul(%x, 2.0) : f32[2,3]
  %e = add(%x, 0.0) : f32[2,3]
  %f = add(%x, -0.0) : f32[2,3]
  %g = mul(%x, %x) : f32[2,3]
  %h = mul(%x, True) : f32[2,3]
  return %a, %b, %c, %d, %e, %f, %g, %h
}""")


def test_nan_scalars_merge():
    check("""
graph f(%x: f32[3]) {
  %a = add(%x, nan) : f32[3]
  %b = add(%x, nan) : f32[3]
  %c = mul(%a, %b) : f32[3]
  return %c
}""", """
graph f(%x: f32[3]) {
  %a = add(%x, nan) : f32[3]
  %c = mul(%a, %a) : f32[3]
  return %c
}""")


def test_random_draws_never_merge():
    unchanged("""
graph f(%key: i64[2] rng) {
  %a = randn(%key)[shape=(3,), dtype=float32, device=device("cpu")] : f32[3]
  %b = randn(%key)[shape=(3,), dtype=float32, device=device("cpu")] : f32[3]
  %c = add(%a, %b) : f32[3]
  return %c
}""")


def test_creation_nodes_with_equal_attributes_merge():
    check("""
graph f(%x: f32[3]) {
  %a = full(2.0)[shape=(3,), dtype=float32, device=device("cpu")] : f32[3]
  %b = full(2.0)[shape=(3,), dtype=float32, device=device("cpu")] : f32[3]
  %c = mul(%x, %a) : f32[3]
  %d = add(%c, %b) : f32[3]
  return %d
}""", """
graph f(%x: f32[3]) {
  %a = full(2.0)[shape=(3,), dtype=float32, device=device("cpu")] : f32[3]
  %c = mul(%x, %a) : f32[3]
  %d = add(%c, %a) : f32[3]
  return %d
}""")


def test_merging_repeats_down_chains_of_duplicates():
    check("""
graph f(%x: f32[3]) {
  %a = exp(%x) : f32[3]
  %b = exp(%x) : f32[3]
  %c = sin(%a) : f32[3]
  %d = sin(%b) : f32[3]
  %e = mul(%c, 3) : f32[3]
  %g = mul(%d, 3) : f32[3]
  return %e, %a
}""", """
graph f(%x: f32[3]) {
  %a = exp(%x) : f32[3]
  %c = sin(%a) : f32[3]
  %e = mul(%c, 3) : f32[3]
  return %e, %a
}""")


def test_two_exposed_values_keep_their_own_storage():
    # eagerly two zero_grad-style fills are two tensors: writing one must not change the other
    unchanged("""
graph f(%w: f32[3] param, %v: f32[3] param) {
  %a = full(0.0)[shape=(3,), dtype=float32, device=device("cpu")] : f32[3]
  %b = full(0.0)[shape=(3,), dtype=float32, device=device("cpu")] : f32[3]
  return
  mutate grad(%w) <- %a
  mutate grad(%v) <- %b
}""")
    unchanged("""
graph f(%x: f32[3]) {
  %a = exp(%x) : f32[3]
  %b = exp(%x) : f32[3]
  return %a, %b
}""")


def test_exposed_through_a_view_counts():
    # %b is only read by a returned view: %a and %b are both observable by the caller
    unchanged("""
graph f(%x: f32[4]) {
  %a = exp(%x) : f32[4]
  %b = exp(%x) : f32[4]
  %v = reshape(%b)[shape=(2, 2)] : f32[2,2]
  return %a, %v
}""")


def test_one_exposed_and_one_internal_merge():
    check("""
graph f(%x: f32[3]) {
  %a = exp(%x) : f32[3]
  %b = exp(%x) : f32[3]
  %c = sin(%a) : f32[3]
  return %b, %c
}""", """
graph f(%x: f32[3]) {
  %a = exp(%x) : f32[3]
  %c = sin(%a) : f32[3]
  return %a, %c
}""")


def test_multi_output_nodes_merge_output_by_output():
    check("""
graph f(%x: f32[2,3]) {
  %v, %i = max(%x)[dim=1, keepdim=False] : f32[2], i64[2]
  %w, %j = max(%x)[dim=1, keepdim=False] : f32[2], i64[2]
  %s = add(%v, %w) : f32[2]
  %t = add(%i, %j) : i64[2]
  return %s, %t
}""", """
graph f(%x: f32[2,3]) {
  %v, %i = max(%x)[dim=1, keepdim=False] : f32[2], i64[2]
  %s = add(%v, %v) : f32[2]
  %t = add(%i, %i) : i64[2]
  return %s, %t
}""")

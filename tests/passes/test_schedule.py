"""passes.schedule: the run order (lower peak, same results, random ops in order, fused
bodies untouched) and the buffer plan (reuse by liveness, in-place reuse of dying
inputs, graph inputs never written, exposed values in fresh buffers), on IR text,
and on random joint graphs executed in their planned buffers."""

from __future__ import annotations

import numpy as np
import pytest

from ir.graph import Graph, Role, Value
from ir.interpret import interpret, run_node
from ir.opdef import OpKind
from ir.parser import parse
from ir.printer import print_graph
from ir.verify import verify
from passes.fusion import fuse
from passes.graph_utils import exposed_values
from passes.schedule import MemoryPlan, format_plan, peak_live_bytes, plan_memory, schedule

from ._ir_text import check_rewrite
from .test_partition import random_joint


def feeds_for(graph: Graph, seed: int = 0) -> list:
    rng = np.random.default_rng(seed)
    feeds = []
    for v in graph.inputs:
        t = v.type
        if v.role is Role.RNG_STATE:
            feeds.append(np.array([seed, 3], dtype=np.int64))
        elif t.weak:
            feeds.append(0.5)
        else:
            feeds.append(rng.standard_normal(t.shape).astype(t.dtype.np_dtype))
    return feeds


def assert_same_results(a: Graph, b: Graph, seed: int = 0) -> None:
    feeds = feeds_for(a, seed)
    ra, rb = interpret(a, feeds), interpret(b, feeds)
    for x, y in zip(ra.outputs + [m[1] for m in ra.mutations],
                    rb.outputs + [m[1] for m in rb.mutations]):
        assert x.dtype == y.dtype and x.shape == y.shape and x.tobytes() == y.tobytes()


# --- schedule: IR text in, IR text out --------------------------------------------------------

def test_schedule_finishes_one_chain_before_starting_the_next():
    graph, result = check_rewrite(schedule, """\
graph f(%x: f32[256], %y: f32[256]) {
  %0 = exp(%x) : f32[256]
  %1 = exp(%y) : f32[256]
  %2 = tanh(%0) : f32[256]
  %3 = sum(%2)[dim=(0,), keepdim=False, dtype=None] : f32[]
  %4 = sum(%1)[dim=(0,), keepdim=False, dtype=None] : f32[]
  %5 = add(%3, %4) : f32[]
  return %5
}""", """\
graph f(%x: f32[256], %y: f32[256]) {
  %0 = exp(%x) : f32[256]
  %1 = tanh(%0) : f32[256]
  %2 = sum(%1)[dim=(0,), keepdim=False, dtype=None] : f32[]
  %3 = exp(%y) : f32[256]
  %4 = sum(%3)[dim=(0,), keepdim=False, dtype=None] : f32[]
  %5 = add(%2, %4) : f32[]
  return %5
}""")
    # given: exp, exp and tanh alive at once; scheduled: at most two 1 KiB buffers
    assert peak_live_bytes(graph) == 3 * 1024
    assert peak_live_bytes(result) == 2 * 1024
    assert_same_results(graph, result)


def test_random_ops_keep_their_order():
    # the small randn would be run first (it allocates less) were random ops free to move
    graph, result = check_rewrite(schedule, """\
graph f(%x: f32[256], %k1: i64[2] rng, %k2: i64[2] rng) {
  %0 = randn(%k1)[shape=(256,), dtype=float32, device=device("cpu")] : f32[256]
  %1 = randn(%k2)[shape=(1,), dtype=float32, device=device("cpu")] : f32[1]
  %2 = exp(%x) : f32[256]
  %3 = exp(%x) : f32[256]
  %4 = sum(%2)[dim=(0,), keepdim=False, dtype=None] : f32[]
  %5 = sum(%3)[dim=(0,), keepdim=False, dtype=None] : f32[]
  %6 = sum(%0)[dim=(0,), keepdim=False, dtype=None] : f32[]
  %7 = add(%4, %5) : f32[]
  %8 = add(%7, %6) : f32[]
  %9 = add(%8, %1) : f32[1]
  return %9
}""", """\
graph f(%x: f32[256], %k1: i64[2] rng, %k2: i64[2] rng) {
  %0 = randn(%k1)[shape=(256,), dtype=float32, device=device("cpu")] : f32[256]
  %1 = sum(%0)[dim=(0,), keepdim=False, dtype=None] : f32[]
  %2 = randn(%k2)[shape=(1,), dtype=float32, device=device("cpu")] : f32[1]
  %3 = exp(%x) : f32[256]
  %4 = sum(%3)[dim=(0,), keepdim=False, dtype=None] : f32[]
  %5 = exp(%x) : f32[256]
  %6 = sum(%5)[dim=(0,), keepdim=False, dtype=None] : f32[]
  %7 = add(%4, %6) : f32[]
  %8 = add(%7, %1) : f32[]
  %9 = add(%8, %2) : f32[1]
  return %9
}""")
    assert peak_live_bytes(result) < peak_live_bytes(graph)
    assert_same_results(graph, result)


def test_an_order_that_is_already_best_is_kept_with_its_mutations():
    text = """\
graph f(%x: f32[8], %w: f32[8] param) {
  %0 = mul(%x, %w) : f32[8]
  %1 = sub(%w, %0) : f32[8]
  %2 = sum(%0)[dim=(0,), keepdim=False, dtype=None] : f32[]
  return %2
  mutate %w <- %1
  mutate grad(%w) <- %0
}"""
    check_rewrite(schedule, text, text)


def test_fused_bodies_are_moved_whole_and_untouched():
    fused = fuse(parse("""\
graph f(%x: f32[64], %y: f32[64]) {
  %0 = exp(%x) : f32[64]
  %1 = mul(%0, 2.0) : f32[64]
  %2 = neg(%y) : f32[64]
  %3 = sum(%1)[dim=(0,), keepdim=False, dtype=None] : f32[]
  %4 = add(%2, %3) : f32[64]
  return %4
}"""))
    result = schedule(fused)
    verify(result, roundtrip=True)
    bodies = sorted(print_graph(n.attrs["body"]) for n in fused.nodes if "body" in n.attrs)
    assert sorted(print_graph(n.attrs["body"]) for n in result.nodes if "body" in n.attrs) \
        == bodies
    assert peak_live_bytes(result) <= peak_live_bytes(fused)
    assert_same_results(fused, result)


@pytest.mark.parametrize("seed", range(20))
def test_random_graphs_schedule_to_the_same_results_and_no_higher_peak(seed):
    graph, _, _ = random_joint(seed)
    result = schedule(graph)
    verify(result)
    assert peak_live_bytes(result) <= peak_live_bytes(graph)
    randoms = [n.op.name for n in graph.nodes if n.op.kind is OpKind.RANDOM]
    assert [n.op.name for n in result.nodes if n.op.kind is OpKind.RANDOM] == randoms
    assert_same_results(graph, result, seed)


# --- plan_memory ----------------------------------------------------------------------------

def plan_text(text: str) -> tuple[Graph, MemoryPlan, str]:
    graph = parse(text)
    before = print_graph(graph)
    plan = plan_memory(graph)
    assert print_graph(graph) == before, "plan_memory changed its graph"
    check_plan(graph, plan)
    return graph, plan, format_plan(graph, plan)


def test_a_chain_runs_in_place_and_buffers_are_reused_after_their_last_use():
    graph, plan, text = plan_text("""\
graph f(%x: f32[256], %y: f32[256]) {
  %0 = exp(%x) : f32[256]
  %1 = tanh(%0) : f32[256]
  %2 = sum(%1)[dim=(0,), keepdim=False, dtype=None] : f32[]
  %3 = exp(%y) : f32[256]
  %4 = sum(%3)[dim=(0,), keepdim=False, dtype=None] : f32[]
  %5 = add(%2, %4) : f32[]
  return %5
}""")
    assert text == """\
%0 = exp(%x) : f32[256]  => b0
%1 = tanh(%0) : f32[256]  => b0 (in place of %0)
%2 = sum(%1)[dim=(0,), keepdim=False, dtype=None] : f32[]  => b1; release b0
%3 = exp(%y) : f32[256]  => b0
%4 = sum(%3)[dim=(0,), keepdim=False, dtype=None] : f32[]  => b2; release b0
%5 = add(%2, %4) : f32[]  => b3*; release b1, b2"""
    # every value in its own buffer: 3 KiB and 12 bytes; planned: one 1 KiB buffer and scalars
    assert plan.peak_bytes_unplanned == 3 * 1024 + 3 * 4
    assert plan.peak_bytes_planned == 1024 + 3 * 4
    assert plan.arena_bytes == 1024 + 2 * 4 and plan.fresh_bytes == 4
    assert plan.live_peak_bytes == peak_live_bytes(graph) == 2 * 1024
    names = [[v.node.op.name for v in dead] for dead in plan.free_after]
    assert names == [[], ["exp"], ["tanh"], [], ["exp"], ["sum", "sum"]]


def test_views_inputs_outputs_and_mutations():
    graph, plan, text = plan_text("""\
graph f(%x: f32[4,3], %y: f32[3,4]) {
  %0 = exp(%x) : f32[4,3]
  %1 = matmul(%0, %y) : f32[4,4]
  %2 = permute(%1)[dims=(1, 0)] : f32[4,4]
  %3 = tanh(%2) : f32[4,4]
  %4 = add(%1, %3) : f32[4,4]
  %5 = neg(%x) : f32[4,3]
  %6 = reshape(%5)[shape=(3, 4)] : f32[3,4]
  %7 = mul(%6, %y) : f32[3,4]
  %8 = sum(%7)[dim=(1,), keepdim=False, dtype=None] : f32[3]
  %9 = to_dtype(%4)[dtype=float64] : f64[4,4]
  %10 = exp(%9) : f64[4,4]
  %11 = reshape(%10)[shape=(16,)] : f64[16]
  %12 = reshape(%y)[shape=(12,)] : f32[12]
  %13 = mul(%12, 2.0) : f32[12]
  return %8, %11, %13
  mutate %x <- %5
}""")
    # %3 reads %1 through a permute: not written in place; %4 may take %1's buffer, the
    # permute being dead. %5 is a mutation value, %10 is viewed by an output: fresh
    # buffers, never from the arena (b0 was free for %5); %7 reuses b0 (same bytes,
    # another shape); the f64 values never take f32 buffers; %12 views the input %y
    assert text == """\
%0 = exp(%x) : f32[4,3]  => b0
%1 = matmul(%0, %y) : f32[4,4]  => b1; release b0
%2 = permute(%1)[dims=(1, 0)] : f32[4,4]  => b1
%3 = tanh(%2) : f32[4,4]  => b2
%4 = add(%1, %3) : f32[4,4]  => b1 (in place of %1); release b2
%5 = neg(%x) : f32[4,3]  => b3*
%6 = reshape(%5)[shape=(3, 4)] : f32[3,4]  => b3*
%7 = mul(%6, %y) : f32[3,4]  => b0
%8 = sum(%7)[dim=(1,), keepdim=False, dtype=None] : f32[3]  => b4*; release b0
%9 = to_dtype(%4)[dtype=float64] : f64[4,4]  => b5; release b1
%10 = exp(%9) : f64[4,4]  => b6*; release b5
%11 = reshape(%10)[shape=(16,)] : f64[16]  => b6*
%12 = reshape(%y)[shape=(12,)] : f32[12]  => input
%13 = mul(%12, 2.0) : f32[12]  => b7*"""
    assert plan.peak_bytes_planned < plan.peak_bytes_unplanned


def test_graph_inputs_are_never_written_in_place():
    _, plan, text = plan_text("""\
graph f(%x: f32[8]) {
  %0 = neg(%x) : f32[8]
  %1 = exp(%0) : f32[8]
  %2 = sum(%1)[dim=(0,), keepdim=False, dtype=None] : f32[]
  return %2
}""")
    assert text == """\
%0 = neg(%x) : f32[8]  => b0
%1 = exp(%0) : f32[8]  => b0 (in place of %0)
%2 = sum(%1)[dim=(0,), keepdim=False, dtype=None] : f32[]  => b1*; release b0"""


def test_an_input_read_twice_through_different_views_is_not_overwritten():
    _, plan, text = plan_text("""\
graph f(%x: f32[3,3]) {
  %0 = exp(%x) : f32[3,3]
  %1 = permute(%0)[dims=(1, 0)] : f32[3,3]
  %2 = add(%0, %1) : f32[3,3]
  %3 = sum(%2)[dim=(0,), keepdim=False, dtype=None] : f32[3]
  return %3
}""")
    assert plan.inplace == {}
    assert text.splitlines()[2] == "%2 = add(%0, %1) : f32[3,3]  => b1; release b0"


# --- executing a plan -----------------------------------------------------------------------

def check_plan(graph: Graph, plan: MemoryPlan) -> None:
    """Structural invariants: buffer sizes and dtypes fit, inputs and their views have no
    buffer, each fresh buffer holds exactly one storage, exposed values are fresh."""
    exposed = exposed_values(graph)
    holders: dict[int, set[Value]] = {}
    for node in graph.nodes:
        for o in node.outputs:
            b = plan.buffer_of[o]
            if b is None:
                assert node.op.is_view
                continue
            buf = plan.buffers[b]
            assert buf.nbytes == o.type.numel * o.type.dtype.itemsize or node.op.is_view
            assert buf.dtype is o.type.dtype or node.op.is_view
            if not node.op.is_view:
                holders.setdefault(b, set()).add(o)
            if o in exposed:
                assert buf.fresh
    for b, values in holders.items():
        if plan.buffers[b].fresh:
            assert len(values) == 1
    assert len(plan.free_after) == len(plan.release_after) == len(graph.nodes)


def run_planned(graph: Graph, plan: MemoryPlan, feeds: list) -> list:
    """Run ``graph`` writing each node output into its planned buffer (views alias their
    base), as a runtime with this plan would; a buffer reused too early shows as a wrong
    result."""
    memory = {b.id: np.zeros(b.nbytes, np.uint8) for b in plan.buffers}
    env: dict[Value, object] = dict(zip(graph.inputs, feeds))
    for node in graph.nodes:
        results = run_node(node, [env[a] if isinstance(a, Value) else a for a in node.inputs])
        for o, r in zip(node.outputs, results):
            b = plan.buffer_of[o]
            if node.op.is_view or b is None:
                env[o] = r
                continue
            target = memory[b].view(o.type.dtype.np_dtype).reshape(o.type.shape)
            target[...] = r
            env[o] = target
    return [np.array(env[v]) for v in graph.outputs] + \
        [np.array(env[m.value]) for m in graph.mutations if m.value is not None]


@pytest.mark.parametrize("seed", range(20))
def test_random_graphs_run_in_their_planned_buffers(seed):
    graph = schedule(random_joint(seed)[0])
    plan = plan_memory(graph)
    check_plan(graph, plan)
    feeds = feeds_for(graph, seed)
    want = interpret(graph, feeds)
    got = run_planned(graph, plan, feeds)
    expected = want.outputs + [a for _, a in want.mutations if a is not None]
    assert len(got) == len(expected)
    for a, b in zip(expected, got):
        assert a.tobytes() == b.tobytes()
    assert plan.peak_bytes_planned <= plan.peak_bytes_unplanned

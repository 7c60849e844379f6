"""passes.partition: the forward/backward split chosen by a min-cut.

IR text in (a joint graph), IR text out (the forward and the backward); what is
saved (the fewest bytes, never more than saving everything the backward reads);
what is never recomputed (matmuls, random ops); mutations (a forward write of an
input the backward reads is saved as a copy); and random joint graphs from
passes.autodiff run forward-then-backward bit for bit as the joint graph."""

from __future__ import annotations

import numpy as np
import pytest

from ir import dtypes, ops
from ir.dispatch import interpreter
from ir.graph import Graph, GraphBuilder, Role, Value
from ir.interpret import interpret
from ir.opdef import OpKind
from ir.parser import parse
from ir.printer import print_graph
from ir.types import TensorType
from ir.verify import verify
from passes.autodiff import backward
from passes.partition import Partition, partition

F32 = dtypes.float32


def split(joint: Graph, num_forward_outputs: int, tangents: list[str],
          policy: str = "min_cut") -> Partition:
    """``partition`` by tangent names; checks that the input is unchanged, both graphs
    verify and print/parse back, and min-cut saves no more than save-all."""
    text = print_graph(joint)
    ts = [joint.input_named(n) for n in tangents]
    p = partition(joint, num_forward_outputs, ts, policy=policy)
    assert print_graph(joint) == text, "partition changed its input graph"
    verify(p.forward, roundtrip=True)
    verify(p.backward, roundtrip=True)
    naive = partition(joint, num_forward_outputs, ts, policy="save_all")
    assert p.saved_bytes <= naive.saved_bytes
    return p


def feeds_for(graph: Graph, seed: int = 0) -> dict[str, object]:
    """Random data for each input, by name (RNG keys are [seed, counter] pairs)."""
    rng = np.random.default_rng(seed)
    feeds: dict[str, object] = {}
    for v in graph.inputs:
        t = v.type
        if v.role is Role.RNG_STATE:
            feeds[v.name] = np.array([seed, 7], dtype=np.int64)
        elif t.weak:
            feeds[v.name] = 0.5
        elif t.dtype.is_floating_point:
            feeds[v.name] = rng.standard_normal(t.shape).astype(t.dtype.np_dtype)
        else:
            feeds[v.name] = rng.integers(0, 3, t.shape).astype(t.dtype.np_dtype)
    return feeds


def _apply(state: dict, grads: dict, mutations) -> None:
    """Write mutation results as a runtime does: data into the input, grad aside."""
    for m, arr in mutations:
        if m.field == "data":
            state[m.target.name] = arr
        else:
            grads[m.target.name] = arr


def run_joint(joint: Graph, feeds: dict) -> tuple[list, dict, dict]:
    state = dict(feeds)
    res = interpret(joint, [feeds[v.name] for v in joint.inputs])
    grads: dict = {}
    _apply(state, grads, res.mutations)
    return res.outputs, state, grads


def run_split(p: Partition, num_forward_outputs: int, feeds: dict) -> tuple[list, dict, dict]:
    """Forward, write back its mutations, then backward on the (now current) inputs, the
    forward's saved outputs and the tangents; as a runtime would."""
    state = dict(feeds)
    grads: dict = {}
    fw = interpret(p.forward, [state[v.name] for v in p.forward.inputs])
    _apply(state, grads, fw.mutations)
    saved = fw.outputs[num_forward_outputs:]
    assert len(saved) == len(p.saved_values)
    args = [state[v.name] for v in p.saved_inputs] + saved
    args += [feeds[v.name] for v in p.backward.inputs[len(args):]]
    bw = interpret(p.backward, args)
    _apply(state, grads, bw.mutations)
    return fw.outputs[:num_forward_outputs] + bw.outputs, state, grads


def assert_same_run(joint: Graph, p: Partition, num_forward_outputs: int, seed: int = 0) -> None:
    feeds = feeds_for(joint, seed)
    want = run_joint(joint, feeds)
    got = run_split(p, num_forward_outputs, feeds)
    for w, g in zip(want, got):
        items_w = w.items() if isinstance(w, dict) else enumerate(w)
        items_g = dict(g.items() if isinstance(g, dict) else enumerate(g))
        assert len(items_g) == len(w)
        for k, a in items_w:
            b = items_g[k]
            assert (a is None) == (b is None), k
            if a is not None:
                a, b = np.asarray(a), np.asarray(b)
                assert a.dtype == b.dtype and a.shape == b.shape
                assert a.tobytes() == b.tobytes(), f"{k} differs"


def names(values: list[Value]) -> list[str]:
    return [v.name if v.node is None else v.node.op.name for v in values]


# --- IR text in, IR text out ----------------------------------------------------------------

MLP = """\
graph mlp(%x: f32[8,5], %w1: f32[6,5] param, %b1: f32[6] param, %w2: f32[3,6] param, %t: f32[]) {
  %0 = permute(%w1)[dims=(1, 0)] : f32[5,6]
  %1 = matmul(%x, %0) : f32[8,6]
  %2 = add(%1, %b1) : f32[8,6]
  %3 = relu(%2) : f32[8,6]
  %4 = permute(%w2)[dims=(1, 0)] : f32[6,3]
  %5 = matmul(%3, %4) : f32[8,3]
  %6 = mul(%5, %5) : f32[8,3]
  %7 = mean(%6)[dim=(0, 1), keepdim=False, dtype=None] : f32[]
  %8 = reshape(%t)[shape=(1, 1)] : f32[1,1]
  %9 = expand(%8)[shape=(8, 3)] : f32[8,3]
  %10 = mul(%9, 0.041666666666666664) : f32[8,3]
  %11 = mul(%10, %5) : f32[8,3]
  %12 = mul(%10, %5) : f32[8,3]
  %13 = add(%11, %12) : f32[8,3]
  %14 = permute(%4)[dims=(1, 0)] : f32[3,6]
  %15 = matmul(%13, %14) : f32[8,6]
  %16 = permute(%3)[dims=(1, 0)] : f32[6,8]
  %17 = matmul(%16, %13) : f32[6,3]
  %18 = permute(%17)[dims=(1, 0)] : f32[3,6]
  %19 = sign(%3) : f32[8,6]
  %20 = mul(%15, %19) : f32[8,6]
  %21 = sum(%20)[dim=(0,), keepdim=True, dtype=None] : f32[1,6]
  %22 = reshape(%21)[shape=(6,)] : f32[6]
  %23 = permute(%x)[dims=(1, 0)] : f32[5,8]
  %24 = matmul(%23, %20) : f32[5,6]
  %25 = permute(%24)[dims=(1, 0)] : f32[6,5]
  return %7, %25, %22, %18
}"""


def test_relu_mlp_saves_the_relu_output_and_the_matmul_the_backward_reads():
    joint = parse(MLP)
    p = split(joint, 1, ["t"])
    assert print_graph(p.forward) == """\
graph mlp_forward(%x: f32[8,5], %w1: f32[6,5] param, %b1: f32[6] param, %w2: f32[3,6] param) {
  %0 = permute(%w1)[dims=(1, 0)] : f32[5,6]
  %1 = matmul(%x, %0) : f32[8,6]
  %2 = add(%1, %b1) : f32[8,6]
  %3 = relu(%2) : f32[8,6]
  %4 = permute(%w2)[dims=(1, 0)] : f32[6,3]
  %5 = matmul(%3, %4) : f32[8,3]
  %6 = mul(%5, %5) : f32[8,3]
  %7 = mean(%6)[dim=(0, 1), keepdim=False, dtype=None] : f32[]
  return %7, %3, %5
}"""
    assert print_graph(p.backward) == """\
graph mlp_backward(%x: f32[8,5], %w2: f32[3,6] param, %saved_3: f32[8,6], %saved_5: f32[8,3], \
%t: f32[]) {
  %0 = permute(%w2)[dims=(1, 0)] : f32[6,3]
  %1 = reshape(%t)[shape=(1, 1)] : f32[1,1]
  %2 = expand(%1)[shape=(8, 3)] : f32[8,3]
  %3 = mul(%2, 0.041666666666666664) : f32[8,3]
  %4 = mul(%3, %saved_5) : f32[8,3]
  %5 = mul(%3, %saved_5) : f32[8,3]
  %6 = add(%4, %5) : f32[8,3]
  %7 = permute(%0)[dims=(1, 0)] : f32[3,6]
  %8 = matmul(%6, %7) : f32[8,6]
  %9 = permute(%saved_3)[dims=(1, 0)] : f32[6,8]
  %10 = matmul(%9, %6) : f32[6,3]
  %11 = permute(%10)[dims=(1, 0)] : f32[3,6]
  %12 = sign(%saved_3) : f32[8,6]
  %13 = mul(%8, %12) : f32[8,6]
  %14 = sum(%13)[dim=(0,), keepdim=True, dtype=None] : f32[1,6]
  %15 = reshape(%14)[shape=(6,)] : f32[6]
  %16 = permute(%x)[dims=(1, 0)] : f32[5,8]
  %17 = matmul(%16, %13) : f32[5,6]
  %18 = permute(%17)[dims=(1, 0)] : f32[6,5]
  return %18, %15, %11
}"""
    assert names(p.saved_inputs) == ["x", "w2"]
    assert names(p.saved_values) == ["relu", "matmul"]
    # x, w2, relu's output and the second matmul: not the add, sign or the permutes
    assert p.saved_bytes == (8 * 5 + 3 * 6 + 8 * 6 + 8 * 3) * 4
    assert partition(joint, 1, [joint.input_named("t")], policy="save_all").saved_bytes > \
        p.saved_bytes
    # matmuls are computed once: the backward holds only the gradient matmuls
    assert sum(n.op.kind is OpKind.MATMUL for n in p.backward.nodes) == 3
    assert {n.op.name for n in p.recomputed} == {"permute"}
    assert_same_run(joint, p, 1)


GELU = """\
graph gelu(%x: f32[4,3], %t: f32[4,3]) {
  %0 = mul(%x, 0.5) : f32[4,3]
  %1 = mul(%x, %x) : f32[4,3]
  %2 = mul(%x, %1) : f32[4,3]
  %3 = mul(0.044715, %2) : f32[4,3]
  %4 = add(%x, %3) : f32[4,3]
  %5 = mul(%4, 0.7978845608) : f32[4,3]
  %6 = tanh(%5) : f32[4,3]
  %7 = add(1.0, %6) : f32[4,3]
  %8 = mul(%0, %7) : f32[4,3]
  %9 = mul(%t, %7) : f32[4,3]
  %10 = mul(%t, %0) : f32[4,3]
  %11 = square(%6) : f32[4,3]
  %12 = sub(1, %11) : f32[4,3]
  %13 = mul(%10, %12) : f32[4,3]
  %14 = mul(%13, 0.7978845608) : f32[4,3]
  %15 = mul(%14, 0.044715) : f32[4,3]
  %16 = mul(%15, %1) : f32[4,3]
  %17 = mul(%15, %x) : f32[4,3]
  %18 = add(%14, %16) : f32[4,3]
  %19 = mul(%17, %x) : f32[4,3]
  %20 = mul(%17, %x) : f32[4,3]
  %21 = add(%18, %19) : f32[4,3]
  %22 = add(%21, %20) : f32[4,3]
  %23 = mul(%9, 0.5) : f32[4,3]
  %24 = add(%22, %23) : f32[4,3]
  return %8, %24
}"""


def test_tanh_gelu_saves_x_only_and_recomputes_the_chain():
    joint = parse(GELU)
    p = split(joint, 1, ["t"])
    assert print_graph(p.forward) == """\
graph gelu_forward(%x: f32[4,3]) {
  %0 = mul(%x, 0.5) : f32[4,3]
  %1 = mul(%x, %x) : f32[4,3]
  %2 = mul(%x, %1) : f32[4,3]
  %3 = mul(0.044715, %2) : f32[4,3]
  %4 = add(%x, %3) : f32[4,3]
  %5 = mul(%4, 0.7978845608) : f32[4,3]
  %6 = tanh(%5) : f32[4,3]
  %7 = add(1.0, %6) : f32[4,3]
  %8 = mul(%0, %7) : f32[4,3]
  return %8
}"""
    assert [v.name for v in p.backward.inputs] == ["x", "t"]
    assert p.saved_inputs == [joint.input_named("x")] and p.saved_values == []
    assert p.saved_bytes == 4 * 3 * 4
    assert len(p.recomputed) == 8  # %0 .. %7: the forward chain without its output
    naive = partition(joint, 1, [joint.input_named("t")], policy="save_all")
    assert naive.saved_bytes == 5 * 4 * 3 * 4  # x, %0, %1, %6, %7
    assert_same_run(joint, p, 1)


DROPOUT = """\
graph drop(%x: f32[4,3], %key: i64[2] rng, %t: f32[4,3]) {
  %0 = bernoulli(%key, 0.8)[shape=(4, 3), dtype=float32, device=device("cpu")] : f32[4,3]
  %1 = mul(%x, %0) : f32[4,3]
  %2 = mul(%1, 1.25) : f32[4,3]
  %3 = tanh(%2) : f32[4,3]
  %4 = square(%3) : f32[4,3]
  %5 = sub(1, %4) : f32[4,3]
  %6 = mul(%t, %5) : f32[4,3]
  %7 = mul(%6, 1.25) : f32[4,3]
  %8 = mul(%7, %0) : f32[4,3]
  return %3, %8
}"""


def test_a_random_mask_is_saved_never_recomputed():
    # recomputing the mask from its 16-byte key would be cheaper, and wrong in spirit:
    # the backward must see the numbers the forward drew
    joint = parse(DROPOUT)
    p = split(joint, 1, ["t"])
    assert print_graph(p.backward) == """\
graph drop_backward(%saved_0: f32[4,3], %saved_3: f32[4,3], %t: f32[4,3]) {
  %0 = square(%saved_3) : f32[4,3]
  %1 = sub(1, %0) : f32[4,3]
  %2 = mul(%t, %1) : f32[4,3]
  %3 = mul(%2, 1.25) : f32[4,3]
  %4 = mul(%3, %saved_0) : f32[4,3]
  return %4
}"""
    assert names(p.saved_values) == ["bernoulli", "tanh"]  # tanh: a forward output anyway
    assert not any(n.op.kind is OpKind.RANDOM for n in p.backward.nodes)
    assert sum(n.op.kind is OpKind.RANDOM for n in p.forward.nodes) == 1
    assert_same_run(joint, p, 1)


def test_save_all_recomputes_nothing():
    joint = parse(GELU)
    p = split(joint, 1, ["t"], policy="save_all")
    assert p.recomputed == []
    assert len(p.saved_values) == 4
    assert_same_run(joint, p, 1)


STEP = """\
graph step(%x: f32[4,3], %w: f32[3] param, %rm: f32[3] buffer, %lr: f64[] weak, %t: f32[4,3]) {
  %0 = mul(%x, %w) : f32[4,3]
  %1 = mul(%0, %rm) : f32[4,3]
  %2 = exp(%1) : f32[4,3]
  %3 = add(%rm, 1.0) : f32[3]
  %4 = mul(%t, %2) : f32[4,3]
  %5 = mul(%4, %rm) : f32[4,3]
  %6 = mul(%5, %x) : f32[4,3]
  %7 = sum(%6)[dim=(0,), keepdim=False, dtype=None] : f32[3]
  %8 = mul(%7, %lr) : f32[3]
  %9 = sub(%w, %8) : f32[3]
  return %2
  mutate %rm <- %3
  mutate %w <- %9
  mutate grad(%w) <- %7
}"""


def test_mutations_split_and_a_forward_written_input_is_saved_as_a_copy():
    joint = parse(STEP)
    p = split(joint, 1, ["t"])
    # rm is overwritten when the forward ends: the backward reads the clone of its old data
    assert print_graph(p.forward) == """\
graph step_forward(%x: f32[4,3], %w: f32[3] param, %rm: f32[3] buffer, %lr: f64[] weak) {
  %0 = mul(%x, %w) : f32[4,3]
  %1 = mul(%0, %rm) : f32[4,3]
  %2 = exp(%1) : f32[4,3]
  %3 = add(%rm, 1.0) : f32[3]
  %4 = clone(%rm) : f32[3]
  return %2, %4
  mutate %rm <- %3
}"""
    # recomputing exp from x, w and the old rm (all read anyway) beats saving it
    assert print_graph(p.backward) == """\
graph step_backward(%x: f32[4,3], %w: f32[3] param, %lr: f64[] weak, %saved_rm: f32[3], \
%t: f32[4,3]) {
  %0 = mul(%x, %w) : f32[4,3]
  %1 = mul(%0, %saved_rm) : f32[4,3]
  %2 = exp(%1) : f32[4,3]
  %3 = mul(%t, %2) : f32[4,3]
  %4 = mul(%3, %saved_rm) : f32[4,3]
  %5 = mul(%4, %x) : f32[4,3]
  %6 = sum(%5)[dim=(0,), keepdim=False, dtype=None] : f32[3]
  %7 = mul(%6, %lr) : f32[3]
  %8 = sub(%w, %7) : f32[3]
  return
  mutate %w <- %8
  mutate grad(%w) <- %6
}"""
    assert p.saved_values == [joint.input_named("rm")]
    assert p.saved_bytes == 4 * 3 * 4 + 3 * 4 + 8 + 3 * 4  # x, w, lr, the copy of rm
    assert_same_run(joint, p, 1)


def test_constants_travel_with_both_graphs_and_a_tangent_may_be_returned():
    joint = parse("""\
graph c(%x: f32[3], %k: f32[3] const=[1.0, 2.0, 3.0], %t: f32[3]) {
  %0 = mul(%x, %k) : f32[3]
  %1 = sin(%0) : f32[3]
  %2 = cos(%0) : f32[3]
  %3 = mul(%t, %2) : f32[3]
  %4 = mul(%3, %k) : f32[3]
  return %1, %4, %t
}""")
    p = split(joint, 1, ["t"])
    # saving cos(x*k) or x costs the same: the cut nearest the backward recomputes less
    assert print_graph(p.backward) == """\
graph c_backward(%k: f32[3] const=[1.0, 2.0, 3.0], %saved_2: f32[3], %t: f32[3]) {
  %0 = mul(%t, %saved_2) : f32[3]
  %1 = mul(%0, %k) : f32[3]
  return %1, %t
}"""
    assert p.saved_bytes == 3 * 4  # the constant costs nothing
    assert_same_run(joint, p, 1)


def test_bad_arguments_are_reported():
    joint = parse(GELU)
    t = joint.input_named("t")
    with pytest.raises(ValueError, match="num_forward_outputs"):
        partition(joint, 3, [t])
    with pytest.raises(ValueError, match="not an input"):
        partition(joint, 1, [joint.nodes[0].outputs[0]])
    with pytest.raises(ValueError, match="depends on a tangent"):
        partition(joint, 2, [t])
    with pytest.raises(ValueError, match="policy"):
        partition(joint, 1, [t], policy="greedy")


# --- random joint graphs from autodiff --------------------------------------------------------

class _Key:
    """A generator stand-in for ``ir.ops`` random functions: the graph's RNG input."""

    def __init__(self, key: Value):
        self.key = key

    def next_key(self) -> Value:
        return self.key


def _random_step(rng: np.random.Generator, pool: list[Value], gen: _Key) -> Value:
    """One random op on values of ``pool`` (shapes [3,3] and [3,1])."""
    a = pool[rng.integers(len(pool))]
    b = pool[rng.integers(len(pool))]
    choice = rng.integers(11)
    if choice == 0:
        return ops.tanh(a)
    if choice == 1:
        return ops.sigmoid(a)
    if choice == 2:
        return ops.relu(a)
    if choice == 3:
        return ops.add(a, b)
    if choice == 4:
        return ops.mul(a, b)
    if choice == 5:
        return ops.sub(a, ops.mul(b, 0.5))
    if choice == 6 and a.shape == (3, 3):
        return ops.matmul(a, b if b.shape == (3, 3) else ops.expand(b, (3, 3)))
    if choice == 7:
        return ops.sum(a, 1, keepdim=True)
    if choice == 8 and a.shape == (3, 3):
        return ops.permute(a, (1, 0))
    if choice == 9:
        mask = ops.bernoulli(a, gen, p=0.7)
        return ops.mul(ops.mul(a, mask), 1 / 0.7)
    return ops.exp(ops.tanh(a))


def random_joint(seed: int) -> tuple[Graph, int, list[str]]:
    """A random forward over two or three float inputs, its outputs, and the backward
    appended by passes.autodiff with one tangent input per output."""
    rng = np.random.default_rng(seed)
    graph = Graph(f"random{seed}")
    n_in = int(rng.integers(2, 4))
    shapes = [(3, 3), (3, 1)]
    inputs = [graph.add_input(TensorType(shapes[rng.integers(2)] if i else (3, 3), F32),
                              Role.PARAMETER if i else Role.ARGUMENT, f"x{i}")
              for i in range(n_in)]
    gen = _Key(graph.add_input(TensorType((2,), dtypes.int64), Role.RNG_STATE, "key"))
    pool = list(inputs)
    with interpreter(GraphBuilder(graph)):
        for _ in range(int(rng.integers(3, 9))):
            pool.append(_random_step(rng, pool, gen))
    n_out = int(rng.integers(1, 3))
    outs = pool[-n_out:]
    tangents = [graph.add_input(o.type, Role.ARGUMENT, f"t{i}") for i, o in enumerate(outs)]
    grads = backward(graph, outs, tangents, inputs)
    graph.outputs = list(outs) + [g for g in grads if g is not None]
    return graph, n_out, [t.name for t in tangents]


@pytest.mark.parametrize("seed", range(40))
def test_random_joint_graphs_split_and_run_as_the_joint(seed):
    joint, n_out, tangents = random_joint(seed)
    verify(joint)
    for policy in ("min_cut", "save_all"):
        p = split(joint, n_out, tangents, policy)
        assert not any(n.op.kind in (OpKind.RANDOM, OpKind.MATMUL, OpKind.REDUCTION)
                       for n in p.recomputed)
        assert_same_run(joint, p, n_out, seed)

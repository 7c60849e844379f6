"""The per-call bookkeeping a compiled call keeps cheap: the segment key built as the
graph grows (the same key as one built from scratch), the names of captured
parameters cached while no module changes, and cached backwards replayed."""

from __future__ import annotations

import numpy as np

import compgrad
import compgrad.nn as nn
from compgrad.compile.naming import NameCache, captured_names
from compgrad.compile.segment import SegmentKeys, segment_key
from ir.graph import Role
from ir.parser import parse

_TEXT = """
graph g(%x: f32[4,3], %w: f32[3,2] param, %b: f32[2] param, %s: f32[] weak) {
  %0 = matmul(%x, %w) : f32[4,2]
  %1 = add(%0, %b) : f32[4,2]
  %2 = tanh(%1) : f32[4,2]
  %3 = mul(%2, %s) : f32[4,2]
  %4 = sum(%3)[dim=(0, 1), keepdim=False, dtype=None] : f32[]
  %5 = mul(%4, 2.0) : f32[]
  return %5
}
"""


def test_a_key_built_as_nodes_come_equals_one_built_at_once():
    g = parse(_TEXT)
    nodes = g.nodes
    keys = SegmentKeys()
    keys.extend(nodes[:2])
    # a key asked for part way (a backward's) leaves the builder as it was
    assert keys.key([nodes[1].outputs[0]], []) == segment_key(nodes[:2], [nodes[1].outputs[0]],
                                                              [])
    keys.extend(nodes)
    outputs = [nodes[-1].outputs[0], nodes[2].outputs[0], g.inputs[3]]
    writes = [(None, g.inputs[1], nodes[0].outputs[0])]
    assert keys.key(outputs, writes) == segment_key(nodes, outputs, writes)
    assert keys.outputs == [n.outputs[0] for n in nodes]


def test_a_key_of_a_later_segment_starts_at_its_first_node():
    g = parse(_TEXT)
    keys = SegmentKeys(start=3).extend(g.nodes)
    out = [g.nodes[-1].outputs[0]]
    assert keys.key(out, []) == segment_key(g.nodes[3:], out, [])


def test_a_builder_knows_when_the_nodes_changed_under_it():
    g = parse(_TEXT)
    keys = SegmentKeys().extend(g.nodes[:3])
    assert keys.follows(g.nodes)
    g.nodes.insert(0, g.nodes.pop(4))   # no longer the nodes it keyed, in that order
    assert not keys.follows(g.nodes)
    assert SegmentKeys().follows([])


def test_keys_tell_structures_apart():
    base = parse(_TEXT)
    other = parse(_TEXT.replace("mul(%4, 2.0)", "mul(%4, 3.0)"))
    retyped = parse(_TEXT.replace("%s: f32[] weak", "%s: f64[] weak"))
    out = [g.nodes[-1].outputs[0] for g in (base, other, retyped)]
    keys = [segment_key(g.nodes, [o], [])[0] for g, o in zip((base, other, retyped), out)]
    assert keys[0] != keys[1] and keys[0] != keys[2]


def _step(model, opt):
    opt.zero_grad()
    model(compgrad.randn(2, 3)).sum().backward()
    opt.step()


def test_cached_names_follow_changes_to_the_modules():
    model = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 1))
    opt = compgrad.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    _step(model, opt)
    cache = NameCache()

    def names():
        found = captured_names(_step, (model, opt), {}, cache)
        return {name: role for name, role in found.values()}

    first = names()
    assert first == names()   # from the cache
    assert first["m.0.weight"] is Role.PARAMETER
    assert first["m.0.weight.grad"] is Role.GRAD
    assert first["m.1.bias.momentum_buffer"] is Role.OPTIMIZER_STATE
    model.extra = nn.Linear(1, 1)   # a new submodule: its parameters are named too
    now = names()
    assert now["extra.weight"] is Role.PARAMETER and "extra.weight" not in first
    model[0].weight = nn.Parameter(compgrad.randn(4, 3))   # a new parameter object
    by_id = captured_names(_step, (model, opt), {}, cache)
    assert by_id[id(model[0].weight)] == ("m.0.weight", Role.PARAMETER)
    assert by_id == captured_names(_step, (model, opt), {})   # as without a cache


def test_a_backward_whose_gradient_is_a_forward_value_is_replayed():
    # ``w``'s gradient is the seed ``y`` itself (add passes it through): the cached
    # backward hands back a forward value no backward node reads
    def f(x, w):
        y = x * 2
        (y + w).backward(y)
        return w.grad

    cf = compgrad.compile(f, backend="interpret")
    for seed in range(3):
        compgrad.manual_seed(seed)
        x, w = compgrad.randn(3), compgrad.randn(3, requires_grad=True)
        np.testing.assert_array_equal(cf(x, w).numpy(), (x * 2).numpy())
    assert (cf._backward_cache.misses, cf._backward_cache.hits) == (1, 2)

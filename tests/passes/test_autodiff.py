"""passes.autodiff: structure and semantics of the symbolic backward.

Pruning, fan-out, multi-output ops, broadcasting, integer inputs, gradients
of intermediates, hooks (``on_grad``), saved-value reads (``on_saved``),
seeds, errors and higher order (against the eager engine and PyTorch).
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

import compgrad
from compgrad import autograd
from ir import dtypes, ops
from ir.dispatch import interpreter
from ir.graph import Graph, GraphBuilder, Role
from ir.interpret import interpret
from ir.opdef import REGISTRY, OpDef, OpKind
from ir.types import TensorType
from ir.verify import verify
from passes.autodiff import backward, grad_graph, trace
from tests.oracle import torch

F64 = dtypes.float64
RNG = np.random.default_rng(0)


def f64(*shape) -> TensorType:
    return TensorType(shape, F64)


def data(*shape):
    return RNG.standard_normal(shape)


def run(graph: Graph, inputs, outputs):
    """Values of ``outputs`` (Values of ``graph``) for ``inputs``."""
    graph.outputs = list(outputs)
    verify(graph, roundtrip=True)  # the backward prints and parses back
    return interpret(graph, inputs).outputs


class VJPSpy:
    """Wraps ops' VJP rules to record each call's op and needs_input_grad and the
    gradients it received."""

    def __init__(self, monkeypatch, *names):
        self.calls: list = []
        for name in names:
            op = REGISTRY[name]
            monkeypatch.setattr(op, "vjp", self._wrap(op.name, op.vjp))

    def _wrap(self, name, rule):
        def spy(ctx, *grads):
            self.calls.append((name, tuple(ctx.needs_input_grad), grads))
            return rule(ctx, *grads)
        return spy

    def count(self) -> Counter:
        return Counter(name for name, _, _ in self.calls)


def test_gradient_of_a_chain_matches_the_formula():
    g = trace(lambda x, w: ops.sum(ops.tanh(ops.mul(x, w))), [f64(3, 4), f64(3, 4)])
    x, w = g.inputs
    gx, gw = backward(g, g.outputs, [None], [x, w])
    xv, wv = data(3, 4), data(3, 4)
    rx, rw = run(g, [xv, wv], [gx, gw])
    d = 1 - np.tanh(xv * wv) ** 2
    np.testing.assert_allclose(rx, d * wv)
    np.testing.assert_allclose(rw, d * xv)


# --- pruning ------------------------------------------------------------------------------

def test_constant_inputs_are_not_differentiated(monkeypatch):
    spy = VJPSpy(monkeypatch, "mul", "sin", "exp")
    g = Graph()
    x, c = g.add_input(f64(3), name="x"), g.add_input(f64(3), name="c")
    with interpreter(GraphBuilder(g)):
        off = ops.sin(c)                  # off every path from x
        y = ops.sum(ops.mul(ops.mul(x, c), off))
        ops.exp(y)                        # after the output: no backward either
    n_forward = len(g.nodes)
    (gx,) = backward(g, [y], [None], [x])
    assert spy.count() == Counter(mul=2)
    assert all(needs == (True, False) for _, needs, _ in spy.calls)
    new_ops = [n.op.name for n in g.nodes[n_forward:]]
    assert "cos" not in new_ops and "exp" not in new_ops
    xv, cv = data(3), data(3)
    np.testing.assert_allclose(run(g, [xv, cv], [gx])[0], cv * np.sin(cv))


def test_backward_nodes_are_proportional_to_the_path_not_the_graph(monkeypatch):
    spy = VJPSpy(monkeypatch, "exp", "sin")
    g = Graph()
    x, c = g.add_input(f64(2), name="x"), g.add_input(f64(2), name="c")
    with interpreter(GraphBuilder(g)):
        h = c
        for _ in range(500):              # a long chain that does not depend on x
            h = ops.sin(h)
        y = ops.sum(ops.add(ops.exp(x), h))
    n_forward = len(g.nodes)
    (gx,) = backward(g, [y], [None], [x])
    assert spy.count() == Counter(exp=1)
    assert len(g.nodes) - n_forward < 10
    xv = data(2)
    np.testing.assert_allclose(run(g, [xv, data(2)], [gx])[0], np.exp(xv))


def test_non_differentiable_ops_pass_nothing():
    g = Graph()
    x = g.add_input(f64(4), name="x")
    with interpreter(GraphBuilder(g)):
        mask = ops.gt(x, 0.0)             # bool: no gradient through comparisons
        y = ops.sum(ops.mul(ops.to_dtype(mask, F64), 3.0))
    assert backward(g, [y], [None], [x]) == [None]


def test_no_gradient_reaching_a_wrt_value_gives_none():
    g = Graph()
    x, unused = g.add_input(f64(3), name="x"), g.add_input(f64(3), name="u")
    with interpreter(GraphBuilder(g)):
        y = ops.sum(ops.exp(x))
    n = len(g.nodes)
    gx, gu = backward(g, [y], [None], [x, unused])
    assert gx is not None and gu is None
    # nothing reaches: no backward node at all
    g2 = Graph()
    a, b = g2.add_input(f64(3)), g2.add_input(f64(3))
    with interpreter(GraphBuilder(g2)):
        z = ops.sum(ops.exp(a))
    n = len(g2.nodes)
    assert backward(g2, [z], [None], [b]) == [None]
    assert len(g2.nodes) == n


# --- fan-out, multi-output, broadcasting, integers -----------------------------------------

def test_fan_out_gradients_are_summed_and_each_vjp_runs_once(monkeypatch):
    spy = VJPSpy(monkeypatch, "mul", "sin", "add", "sum")
    g = trace(lambda x: ops.sum(ops.add(ops.add(ops.mul(x, x), ops.sin(x)), x)), [f64(5)])
    (x,) = g.inputs
    (gx,) = backward(g, g.outputs, [None], [x])
    assert spy.count() == Counter(mul=1, sin=1, add=2, sum=1)
    xv = data(5)
    np.testing.assert_allclose(run(g, [xv], [gx])[0], 2 * xv + np.cos(xv) + 1)


def test_same_output_twice_sums_its_seeds():
    g = trace(lambda x: ops.mul(x, 3.0), [f64(2)])
    (x,), (y,) = g.inputs, g.outputs
    (gx,) = backward(g, [y, y], [1.0, 2.0], [x])
    np.testing.assert_allclose(run(g, [data(2)], [gx])[0], [9.0, 9.0])


def test_max_with_indices(monkeypatch):
    spy = VJPSpy(monkeypatch, "max")
    g = Graph()
    x = g.add_input(f64(3, 4), name="x")
    with interpreter(GraphBuilder(g)):
        values, indices = ops.max(x, 1)
        y = ops.sum(ops.mul(values, values))
    (gx,) = backward(g, [y], [None], [x])
    (_, _, grads), = spy.calls
    assert grads[1] is None               # the integer indices get no cotangent
    xv = data(3, 4)
    expected = np.zeros((3, 4))
    idx = xv.argmax(1)
    expected[np.arange(3), idx] = 2 * xv[np.arange(3), idx]
    np.testing.assert_allclose(run(g, [xv], [gx])[0], expected)


def test_split_with_unused_parts(monkeypatch):
    spy = VJPSpy(monkeypatch, "split")
    g = Graph()
    x = g.add_input(f64(6, 2), name="x")
    with interpreter(GraphBuilder(g)):
        a, _b, c = ops.split(x, 2)
        y = ops.add(ops.sum(ops.exp(a)), ops.sum(c))
    (gx,) = backward(g, [y], [None], [x])
    (_, _, grads), = spy.calls
    assert grads[0] is not None and grads[1] is None and grads[2] is not None
    xv = data(6, 2)
    expected = np.concatenate([np.exp(xv[:2]), np.zeros((2, 2)), np.ones((2, 2))])
    np.testing.assert_allclose(run(g, [xv], [gx])[0], expected)


def test_multi_output_node_with_no_cotangent_does_not_run(monkeypatch):
    spy = VJPSpy(monkeypatch, "max")
    g = Graph()
    x = g.add_input(f64(3, 4), name="x")
    with interpreter(GraphBuilder(g)):
        _, indices = ops.max(x, 1)
        y = ops.sum(ops.mul(x, 2.0))
    (gx,) = backward(g, [y], [None], [x])
    assert spy.calls == []
    np.testing.assert_allclose(run(g, [data(3, 4)], [gx])[0], np.full((3, 4), 2.0))


def test_broadcast_inputs_get_gradients_of_their_own_shape():
    g = trace(lambda x, y: ops.sum(ops.mul(ops.add(x, y), 2.0)), [f64(3, 1), f64(4)])
    x, y = g.inputs
    gx, gy = backward(g, g.outputs, [None], [x, y])
    assert gx.type == x.type and gy.type == y.type
    rx, ry = run(g, [data(3, 1), data(4)], [gx, gy])
    np.testing.assert_allclose(rx, np.full((3, 1), 8.0))
    np.testing.assert_allclose(ry, np.full(4, 6.0))


def test_integer_inputs_take_no_gradient(monkeypatch):
    spy = VJPSpy(monkeypatch, "mul", "index_select")
    g = Graph()
    x = g.add_input(f64(4), name="x")
    i = g.add_input(TensorType((4,), dtypes.int64), name="i")
    j = g.add_input(TensorType((3,), dtypes.int64), name="j")
    with interpreter(GraphBuilder(g)):
        y = ops.sum(ops.index_select(ops.mul(x, i), 0, j))
    gx, gi, gj = backward(g, [y], [None], [x, i, j])
    assert gi is None and gj is None
    assert all(needs == (True, False) for name, needs, _ in spy.calls if name == "mul")
    xv, iv, jv = data(4), np.array([1, 2, 3, 4]), np.array([0, 0, 3])
    np.testing.assert_allclose(run(g, [xv, iv, jv], [gx])[0], [2.0, 0.0, 0.0, 4.0])


def test_weak_scalar_inputs_take_no_gradient():
    g = Graph()
    x = g.add_input(f64(3), name="x")
    lr = g.add_input(TensorType((), F64, weak=True), name="lr")
    with interpreter(GraphBuilder(g)):
        y = ops.sum(ops.mul(x, lr))
    gx, glr = backward(g, [y], [None], [x, lr])
    assert glr is None
    np.testing.assert_allclose(run(g, [data(3), 0.5], [gx])[0], np.full(3, 0.5))


# --- wrt intermediates and hooks -----------------------------------------------------------

def test_gradients_of_intermediates(monkeypatch):
    g = Graph()
    x = g.add_input(f64(3), name="x")
    with interpreter(GraphBuilder(g)):
        h = ops.exp(x)
        y = ops.sum(ops.mul(h, h))
    gh, gx, gy = backward(g, [y], [None], [h, x, y])
    xv = data(3)
    rh, rx, ry = run(g, [xv], [gh, gx, gy])
    np.testing.assert_allclose(rh, 2 * np.exp(xv))
    np.testing.assert_allclose(rx, 2 * np.exp(2 * xv))
    np.testing.assert_allclose(ry, 1.0)


def test_only_an_intermediate_differentiates_nothing_before_it(monkeypatch):
    spy = VJPSpy(monkeypatch, "exp", "mul")
    g = Graph()
    x = g.add_input(f64(3), name="x")
    with interpreter(GraphBuilder(g)):
        h = ops.exp(x)
        y = ops.sum(ops.mul(h, 3.0))
    (gh,) = backward(g, [y], [None], [h])
    assert spy.count() == Counter(mul=1)
    np.testing.assert_allclose(run(g, [data(3)], [gh])[0], np.full(3, 3.0))


def test_on_grad_replaces_the_gradient_before_it_flows_on():
    g = Graph()
    x = g.add_input(f64(3), name="x")
    with interpreter(GraphBuilder(g)):
        h = ops.exp(x)
        y = ops.sum(ops.mul(h, h))
    seen = []

    def hook(v, grad):
        seen.append(v)
        return ops.mul(grad, 10.0) if v is h else None

    gx, gh = backward(g, [y], [None], [x, h], on_grad=hook)
    assert seen == [h, x]                 # each once, the intermediate first
    xv = data(3)
    rx, rh = run(g, [xv], [gx, gh])
    np.testing.assert_allclose(rh, 20 * np.exp(xv))          # the result is the hooked one
    np.testing.assert_allclose(rx, 20 * np.exp(2 * xv))


def test_hooked_values_outside_wrt_are_reported_too():
    g = Graph()
    x = g.add_input(f64(3), name="x")
    with interpreter(GraphBuilder(g)):
        h = ops.sin(x)
        y = ops.sum(ops.mul(h, 2.0))
    seen = []
    (gx,) = backward(g, [y], [None], [x], hooked=[h],
                     on_grad=lambda v, grad: seen.append(v) or ops.neg(grad))
    assert seen == [h, x]
    xv = data(3)
    np.testing.assert_allclose(run(g, [xv], [gx])[0], 2 * np.cos(xv))  # negated twice


def test_on_grad_must_keep_the_type():
    g = trace(lambda x: ops.sum(ops.exp(x)), [f64(3)])
    with pytest.raises(RuntimeError, match="hook changed the gradient"):
        backward(g, g.outputs, [None], list(g.inputs),
                 on_grad=lambda v, grad: ops.sum(grad))


def test_on_saved_reports_each_read_once():
    g = Graph()
    x, w = g.add_input(f64(3), name="x"), g.add_input(f64(3), name="w")
    with interpreter(GraphBuilder(g)):
        m = ops.mul(x, w)
        e = ops.exp(m)
        y = ops.sum(ops.add(e, 1.0))
    reads = []
    backward(g, [y], [None], [x], on_saved=lambda node, kind, i: reads.append(
        (node.op.name, kind, i)))
    # mul reads w for x's gradient (not x: w takes none); exp reads its output;
    # add's scalar operand and sum's types need no saved value
    assert sorted(reads) == [("exp", "output", 0), ("mul", "input", 1)]


def test_backward_nodes_carry_the_forward_loc():
    g = Graph()
    x = g.add_input(f64(3), name="x")
    builder = GraphBuilder(g)
    with interpreter(builder):
        builder.loc = "train.py:10"
        h = ops.sin(x)
        builder.loc = "train.py:11"
        y = ops.sum(h)
    n = len(g.nodes)
    backward(g, [y], [None], [x])
    locs = {node.op.name: node.loc for node in g.nodes[n:]}
    assert locs["cos"] == "train.py:10"
    assert all(loc in ("train.py:10", "train.py:11") for loc in locs.values())


# --- seeds and errors ----------------------------------------------------------------------

def test_seed_values_numbers_and_casts():
    g = Graph()
    x = g.add_input(f64(2), name="x")
    v = g.add_input(TensorType((2,), dtypes.float32), name="v")
    with interpreter(GraphBuilder(g)):
        y = ops.mul(x, 2.0)
    (g_value,) = backward(g, [y], [v], [x])
    (g_number,) = backward(g, [y], [0.5], [x])
    assert g_value.type == x.type
    r1, r2 = run(g, [data(2), np.array([1.0, -1.0], np.float32)], [g_value, g_number])
    np.testing.assert_allclose(r1, [2.0, -2.0])
    np.testing.assert_allclose(r2, [1.0, 1.0])


def test_seed_shape_mismatch_and_count():
    g = trace(lambda x: ops.exp(x), [f64(2)])
    bad = g.add_input(f64(3), name="bad")
    with pytest.raises(RuntimeError, match="Mismatch in shape"):
        backward(g, g.outputs, [bad], list(g.inputs[:1]))
    with pytest.raises(RuntimeError, match="1 outputs and 2 gradients"):
        backward(g, g.outputs, [None, None], list(g.inputs[:1]))


def test_op_without_vjp_raises_with_its_name():
    def rule(types):
        return types[0]

    op = OpDef("no_vjp_op", OpKind.ELEMENTWISE, rule, lambda a: a)  # not registered
    g = Graph()
    x = g.add_input(f64(2), name="x")
    node = g.add_node(op, [x], loc="model.py:3")
    with interpreter(GraphBuilder(g)):
        y = ops.sum(node.outputs[0])
    with pytest.raises(RuntimeError, match="'no_vjp_op' is not implemented") as info:
        backward(g, [y], [None], [x])
    assert any("model.py:3" in note for note in info.value.__notes__)


def test_outputs_that_do_not_require_grad_are_skipped():
    g = Graph()
    x = g.add_input(f64(3), name="x")
    with interpreter(GraphBuilder(g)):
        i = ops.argmax(x)
    n = len(g.nodes)
    assert backward(g, [i], [None], [x]) == [None]
    assert len(g.nodes) == n


def test_custom_requires_grad_stops_the_flow():
    g = Graph()
    x = g.add_input(f64(3), name="x")
    with interpreter(GraphBuilder(g)):
        h = ops.exp(x)                    # as if detached
        y = ops.sum(ops.add(ops.mul(h, 2.0), x))
    (gx,) = backward(g, [y], [None], [x], requires_grad=lambda v: v is not h)
    np.testing.assert_allclose(run(g, [data(3)], [gx])[0], np.ones(3))


def test_grad_graph_builds_a_standalone_graph():
    g = grad_graph(lambda x, w: ops.mul(ops.sin(x), w), [f64(3), f64(3)])
    assert [v.name for v in g.inputs] == ["x0", "x1", "cot0"]
    xv, wv, cv = data(3), data(3), data(3)
    y, gx, gw = run(g, [xv, wv, cv], g.outputs)
    np.testing.assert_allclose(y, np.sin(xv) * wv)
    np.testing.assert_allclose(gx, cv * np.cos(xv) * wv)
    np.testing.assert_allclose(gw, cv * np.sin(xv))


# --- higher order --------------------------------------------------------------------------

def _softplus_loss(x, w):
    return ops.sum(ops.log(ops.add(ops.exp(ops.matmul(x, w)), 1.0)))


def test_hessian_vector_product_matches_the_eager_engine():
    g = trace(_softplus_loss, [f64(4, 3), f64(3, 2)])
    x, w = g.inputs
    v = g.add_input(f64(3, 2), name="v")
    (gw,) = backward(g, g.outputs, [None], [w])
    (hv,) = backward(g, [gw], [v], [w])
    xv, wv, vv = data(4, 3), data(3, 2), data(3, 2)
    (ours,) = run(g, [xv, wv, vv], [hv])

    xt = compgrad.from_numpy(xv)
    wt = compgrad.from_numpy(wv).requires_grad_()
    loss = compgrad.log(compgrad.exp(xt @ wt) + 1.0).sum()
    (gwt,) = autograd.grad(loss, wt, create_graph=True)
    (hvt,) = autograd.grad(gwt, wt, compgrad.from_numpy(vv))
    np.testing.assert_allclose(ours, hvt.numpy(), rtol=1e-10)


@pytest.mark.skipif(torch is None, reason="torch is not installed")
def test_gradient_penalty_matches_torch():
    def critic(x, w1, w2):
        return ops.sum(ops.matmul(ops.tanh(ops.matmul(x, w1)), w2))

    g = trace(critic, [f64(5, 3), f64(3, 4), f64(4, 1)])
    x, w1, w2 = g.inputs
    (gx,) = backward(g, g.outputs, [None], [x])
    with interpreter(GraphBuilder(g)):
        penalty = ops.sum(ops.square(gx))                  # ||dL/dx||^2
    g1, g2 = backward(g, [penalty], [None], [w1, w2])
    xv, w1v, w2v = data(5, 3), data(3, 4), data(4, 1)
    ours = run(g, [xv, w1v, w2v], [penalty, g1, g2])

    xt = torch.from_numpy(xv).requires_grad_()
    w1t = torch.from_numpy(w1v).requires_grad_()
    w2t = torch.from_numpy(w2v).requires_grad_()
    out = (torch.tanh(xt @ w1t) @ w2t).sum()
    (gxt,) = torch.autograd.grad(out, xt, create_graph=True)
    pt = (gxt ** 2).sum()
    theirs = [pt, *torch.autograd.grad(pt, [w1t, w2t])]
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b.detach().numpy(), rtol=1e-10)


def test_third_derivative_of_a_scalar_function():
    # f = sin(x) * x^2: f''' = -cos(x) x^2 - 6 sin(x) x + 6 cos(x)
    g = trace(lambda x: ops.sum(ops.mul(ops.sin(x), ops.mul(x, x))), [f64(4)])
    (x,) = g.inputs
    (d1,) = backward(g, g.outputs, [None], [x])
    (d2,) = backward(g, [d1], [1.0], [x])
    (d3,) = backward(g, [d2], [1.0], [x])
    xv = data(4)
    r1, r2, r3 = run(g, [xv], [d1, d2, d3])
    s, c = np.sin(xv), np.cos(xv)
    np.testing.assert_allclose(r1, c * xv ** 2 + 2 * s * xv)
    np.testing.assert_allclose(r2, -s * xv ** 2 + 4 * c * xv + 2 * s)
    np.testing.assert_allclose(r3, -c * xv ** 2 - 6 * s * xv + 6 * c)

    xt = compgrad.from_numpy(xv).requires_grad_()
    ft = (compgrad.sin(xt) * xt * xt).sum()
    (e1,) = autograd.grad(ft, xt, create_graph=True)
    (e2,) = autograd.grad(e1.sum(), xt, create_graph=True)
    (e3,) = autograd.grad(e2.sum(), xt)
    np.testing.assert_allclose(r3, e3.numpy(), rtol=1e-10)


def test_second_order_of_softmax_cross_entropy_matches_torch():
    if torch is None:
        pytest.skip("torch is not installed")
    target = np.array([1, 0, 2])

    def loss(x, w):
        logits = ops.matmul(x, w)
        return ops.nll_loss(ops.log_softmax(logits, 1), t)

    g = Graph()
    xi, wi = g.add_input(f64(3, 4), name="x"), g.add_input(f64(4, 3), name="w")
    t = g.add_input(TensorType((3,), dtypes.int64), name="t")
    with interpreter(GraphBuilder(g)):
        out = loss(xi, wi)
    v = g.add_input(f64(4, 3), name="v")
    (gw,) = backward(g, [out], [None], [wi])
    (hv,) = backward(g, [gw], [v], [wi])
    xv, wv, vv = data(3, 4), data(4, 3), data(4, 3)
    (ours,) = run(g, [xv, wv, target, vv], [hv])

    wt = torch.from_numpy(wv).requires_grad_()
    lt = torch.nn.functional.nll_loss(torch.log_softmax(torch.from_numpy(xv) @ wt, 1),
                                      torch.from_numpy(target))
    (gwt,) = torch.autograd.grad(lt, wt, create_graph=True)
    (hvt,) = torch.autograd.grad(gwt, wt, torch.from_numpy(vv))
    np.testing.assert_allclose(ours, hvt.numpy(), rtol=1e-9, atol=1e-12)


def test_role_of_inputs_does_not_matter():
    g = Graph()
    p = g.add_input(f64(2), Role.PARAMETER, "p")
    s = g.add_input(f64(2), Role.OPTIMIZER_STATE, "s")
    with interpreter(GraphBuilder(g)):
        y = ops.sum(ops.mul(p, s))
    gp, gs = backward(g, [y], [None], [p, s])
    pv, sv = data(2), data(2)
    rp, rs = run(g, [pv, sv], [gp, gs])
    np.testing.assert_allclose(rp, sv)
    np.testing.assert_allclose(rs, pv)

"""The registry sweep for the symbolic backward: every differentiable sample.

Each sample of every op runs eagerly in float64 under a recorder; the applied
ops become a Graph; ``passes.autodiff.backward`` appends the backward with
random cotangents (graph inputs); the reference interpreter runs it; and the
gradients must equal the eager engine's (``autograd.grad``). Second order
(the VJP of the gradients in a random direction, against the eager engine
with ``create_graph=True``) runs for every sample too.
"""

from __future__ import annotations

import numpy as np
import pytest

import compgrad
from compgrad import autograd
from ir import dtypes
from ir.dispatch import interpreter
from ir.graph import Graph, Role
from ir.interpret import interpret
from ir.opdef import REGISTRY, OpKind, Sample
from ir.verify import verify
from passes.autodiff import backward
from tests.oracle import resolve
from tests.recording import Recorder

OPS = sorted(REGISTRY.values(), key=lambda op: op.name)

# VJP rules that read tensor data while building (a data-dependent shape): a graph
# cannot express them, so their backward stays eager (reported to ir/ owners)
DATA_DEPENDENT = {
    "masked_scatter": "its VJP calls masked_select, whose size is the mask's count",
}


def _cases():
    out = []
    for op in OPS:
        if not op.differentiable or op.samples is None:
            continue
        for i, s in enumerate(op.samples()):
            if isinstance(s, Sample) and s.grad:
                marks = ()
                if op.name in DATA_DEPENDENT:
                    marks = pytest.mark.xfail(reason=DATA_DEPENDENT[op.name], strict=True)
                out.append(pytest.param(op, i, id=f"{op.name}-{i}", marks=marks))
    return out


def _f64(value):
    """Float arrays and float dtypes inside ``value`` as float64."""
    if isinstance(value, np.ndarray):
        return value.astype(np.float64) if value.dtype.kind == "f" else value
    if isinstance(value, dtypes.DType):
        return dtypes.float64 if value.is_floating_point else value
    if isinstance(value, list):
        return [_f64(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_f64(v) for v in value)
    if isinstance(value, dict):
        return {k: _f64(v) for k, v in value.items()}
    return value


def _tensors(value, leaves: list):
    """Arrays as compgrad tensors; each nonempty float array becomes a leaf that
    requires grad, passed on as its clone (so in-place samples may write it)."""
    if isinstance(value, np.ndarray):
        t = compgrad.from_numpy(value.copy())
        if value.dtype.kind == "f" and value.size > 0:
            t.requires_grad_(True)
            x = t.clone()
            leaves.append((t, x))
            return x
        return t
    if isinstance(value, list):
        return [_tensors(v, leaves) for v in value]
    if isinstance(value, tuple):
        return tuple(_tensors(v, leaves) for v in value)
    if isinstance(value, dict):
        return {k: _tensors(v, leaves) for k, v in value.items()}
    return value


def _flat(result) -> list:
    if isinstance(result, compgrad.Tensor):
        return [result]
    if isinstance(result, (list, tuple)):
        return [t for r in result for t in _flat(r)]
    return []


class _NothingToDifferentiate(Exception):
    pass


def _case(op, index):
    """The sample in float64, or in its own dtypes where float64 makes it trivial
    (``x.to(float64)`` of a float64 ``x`` applies nothing)."""
    try:
        return Case(op, index)
    except _NothingToDifferentiate:
        pass
    try:
        return Case(op, index, f64=False)
    except _NothingToDifferentiate:
        pytest.skip("nothing differentiable reaches an output (empty tensors)")


class Case:
    """One sample recorded as a Graph, with the eager tensors beside it."""

    def __init__(self, op, index, f64: bool = True):
        sample = list(op.samples())[index]
        leaves: list = []
        cast = _f64 if f64 else (lambda v: v)
        args = _tensors(cast(sample.args), leaves)
        kwargs = _tensors(cast(sample.kwargs), leaves)
        rec = Recorder()
        with interpreter(rec):
            if op.public.startswith("Tensor."):
                result = getattr(args[0], op.public[len("Tensor."):])(*args[1:], **kwargs)
            else:
                result = resolve(compgrad, op.public)(*args, **kwargs)
        if any(r[0].kind is OpKind.RANDOM for r in rec.records):
            pytest.skip("random ops draw differently eagerly and interpreted")
        self.graph = Graph(op.name)
        self.data: list = []
        value_of: dict[int, object] = {}
        self.keep = rec.records  # keeps every tensor alive, so ids stay unique

        def value(t, snap):
            v = value_of.get(id(t))
            if v is None:
                v = self.graph.add_input(t._type, Role.ARGUMENT, f"in{len(self.data)}")
                self.data.append(snap)
                value_of[id(t)] = v
            return v

        for rop, rargs, snap, attrs, out, _ in rec.records:
            ins = [value(a, s) if isinstance(a, compgrad.Tensor) else
                   (a.item() if isinstance(a, np.generic) else a) for a, s in zip(rargs, snap)]
            node = self.graph.add_node(rop, ins, attrs)
            for t, v in zip(out if isinstance(out, tuple) else (out,), node.outputs):
                value_of[id(t)] = v
        # wrt: the graph inputs that are the leaves' clones; outputs: float results
        self.leaves = [(leaf, value_of[id(x)]) for leaf, x in leaves if id(x) in value_of
                       and value_of[id(x)].is_input]
        self.outs = []
        for t in _flat(result):
            v = value_of.get(id(t))
            if v is not None and not v.is_input and t.requires_grad and t.numel() > 0:
                self.outs.append((t, v))
        if not self.leaves or not self.outs:
            raise _NothingToDifferentiate
        self.rng = np.random.default_rng(index)

    def random_input(self, v, name):
        """A new graph input of ``v``'s type with random data; returns (value, tensor)."""
        arr = self.rng.standard_normal(v.type.shape).astype(v.type.dtype.np_dtype)
        self.data.append(arr)
        return self.graph.add_input(v.type, Role.ARGUMENT, name), compgrad.from_numpy(arr)

    def run(self):
        verify(self.graph, roundtrip=True)  # the backward prints and parses back
        return interpret(self.graph, self.data).outputs


def _compare(ours, eager, like, where):
    expected = np.zeros(like.shape) if eager is None else eager.detach().numpy()
    got = np.zeros(like.shape) if ours is None else ours
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-9, equal_nan=True,
                               err_msg=where)


@pytest.mark.parametrize("op,index", _cases())
def test_backward_matches_eager(op, index):
    case = _case(op, index)
    g = case.graph
    cots = [case.random_input(v, f"cot{i}") for i, (_, v) in enumerate(case.outs)]
    wrt = [v for _, v in case.leaves]
    grads = backward(g, [v for _, v in case.outs], [c for c, _ in cots], wrt)
    assert all(gr is None or gr.type == v.type for gr, v in zip(grads, wrt))
    eager = autograd.grad([t for t, _ in case.outs], [leaf for leaf, _ in case.leaves],
                          [c for _, c in cots], allow_unused=True, create_graph=True)

    present = [gr for gr in grads if gr is not None]
    g.outputs = [v for _, v in case.outs] + present
    values = iter(case.run()[len(case.outs):])
    for k, (gr, e) in enumerate(zip(grads, eager)):
        _compare(None if gr is None else next(values), e, wrt[k].type,
                 f"d/d input {k} of {op.name}")

    # second order: the VJP of the gradients in random directions
    firsts = [(gr, e, k) for k, (gr, e) in enumerate(zip(grads, eager))
              if gr is not None and e is not None and e.requires_grad]
    if not firsts:
        return
    dirs = [case.random_input(gr, f"dir{k}") for gr, _, k in firsts]
    second = backward(g, [gr for gr, _, _ in firsts], [d for d, _ in dirs], wrt)
    eager2 = autograd.grad([e for _, e, _ in firsts], [leaf for leaf, _ in case.leaves],
                           [d for _, d in dirs], allow_unused=True)
    g.outputs = [s for s in second if s is not None]
    values = iter(case.run())
    for k, (s, e) in enumerate(zip(second, eager2)):
        _compare(None if s is None else next(values), e, wrt[k].type,
                 f"second derivative w.r.t. input {k} of {op.name}")

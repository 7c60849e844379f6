"""Graphs for the IR tests: every registry sample recorded as a Graph.

A sample's public call runs eagerly under a recorder; each applied op becomes
a node (built through :class:`~ir.graph.GraphBuilder`), each tensor the call
reads before any op produced it becomes an ARGUMENT input, and every node
output is a graph output, with the eager result it must reproduce.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

import compgrad
from compgrad._eager import EAGER
from ir.dispatch import apply, interpreter
from ir.dtypes import from_numpy_dtype
from ir.graph import Graph, GraphBuilder, Role, Value
from ir.opdef import REGISTRY, OpDef, OpKind, Sample, register
from ir.types import TensorType
from ir.vjp import call_vjp
from tests.oracle import call
from tests.recording import Recorder

OPS = sorted(REGISTRY.values(), key=lambda op: op.name)


def samples(op) -> list:
    return list(op.samples()) if op.samples is not None else []


def sample_cases() -> list[tuple]:
    """(op, index, sample) for every forward sample in the registry."""
    return [(op, i, s) for op in OPS for i, s in enumerate(samples(op)) if isinstance(s, Sample)]


@dataclass
class Recorded:
    graph: Graph
    feeds: list            # one array per graph input
    expected: list         # one eager array per graph output
    records: list          # the recorder's records


def record_sample(op, sample) -> Recorded:
    """The graph of everything ``sample``'s public call applies."""
    rec = Recorder()
    with interpreter(rec):
        call("compgrad", op.public, sample.args, sample.kwargs)
    graph = Graph(op.name)
    env: dict[int, Value] = {}
    feeds, expected = [], []
    builder = GraphBuilder(graph, loc=f"sample {op.name}")
    for node_op, args, snapshot, attrs, out, arrays in rec.records:
        outs = out if isinstance(out, tuple) else (out,)
        ins = []
        for a, s in zip(args, snapshot):
            if isinstance(a, compgrad.Tensor):
                v = env.get(id(a))
                if v is None:
                    t = TensorType(s.shape, from_numpy_dtype(s.dtype), EAGER.type_of(a).device)
                    v = graph.add_input(t, Role.ARGUMENT, f"t{len(graph.inputs)}")
                    env[id(a)] = v
                    feeds.append(s)
                ins.append(v)
            else:
                ins.append(a)
        with interpreter(builder):
            res = apply(node_op, *ins, **attrs)
        res = res if isinstance(res, tuple) else (res,)
        for o, v in zip(outs, res):
            env[id(o)] = v
        graph.outputs.extend(res)
        expected.extend(arrays)
    return Recorded(graph, feeds, expected, rec.records)


def vjp_graph(op, record) -> Graph | None:
    """The symbolic VJP of one recorded apply of ``op`` (inputs, outputs and
    cotangents are graph inputs), or None when no gradient flows."""
    node_op, args, snapshot, attrs, outs, arrays = record
    graph = Graph(f"{op.name}_vjp")

    def add(x, stem):
        if not isinstance(x, np.ndarray):
            return x
        return graph.add_input(TensorType(x.shape, from_numpy_dtype(x.dtype)), Role.ARGUMENT,
                               f"{stem}{len(graph.inputs)}")

    ins = tuple(add(s, "x") for s in snapshot)
    ys = tuple(add(a, "y") for a in arrays)
    cots = tuple(add(a, "g") if a.dtype.kind == "f" else None for a in arrays)
    with interpreter(GraphBuilder(graph)):
        grads = call_vjp(op, ins, ys, attrs, cots)
    graph.outputs = [g for g in grads if g is not None]
    return graph if graph.outputs else None


@contextlib.contextmanager
def temporary_op(name: str, type_rule, impl) -> Iterator[OpDef]:
    """Register an opaque test-only op for the ``with`` block."""
    op = register(OpDef(name, OpKind.OPAQUE, type_rule, impl))
    try:
        yield op
    finally:
        REGISTRY.pop(name, None)

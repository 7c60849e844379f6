"""Cases for ``test_every_op.py``: the op calls the registry's samples make, turned into
graphs that run on both the codegen runtime and the reference interpreter.

A sample's public call is run eagerly under a recording interpreter, which keeps every
op application (:class:`Call`): the op, its inputs as they were at that moment (arrays
keep their memory layout, so a transposed sample input stays transposed) and its
attributes. A :class:`Batch` puts many calls side by side in one Graph (one node each,
every array input a graph input), so one compile covers many ops. Elementwise calls are
also re-shaped (:data:`LAYOUTS`: broadcasts, 0-d, empty, transposed, strided) and
wrapped in hand-made ``fused`` groups, one per iteration shape, so that many ops share
one generated kernel; :func:`chains` builds small multi-op programs for the real fusion
pass.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

import compgrad
from codegen.scalar import scalar_expr
from compgrad._eager import EAGER
from ir import dtypes
from ir.dispatch import Interpreter, interpreter
from ir.graph import Graph, Node, Role, Value, input_type
from ir.opdef import REGISTRY, ErrorSample, OpDef, OpKind, Sample, infer_type
from ir.ops.fused import FUSED
from ir.types import TensorType
from tests.oracle import call as call_public

__all__ = ["Call", "Batch", "recorded_calls", "error_calls", "LAYOUTS", "relayout",
           "expressible", "signature", "chains", "compare", "group_by_shape"]


@dataclass(frozen=True, eq=False)
class Call:
    """One op application: ``inputs`` are arrays (tensor arguments) and Python scalars,
    ``source`` names the sample that made it (``"add[3]"``) plus any re-layout."""

    op: OpDef
    inputs: tuple
    attrs: dict
    source: str

    def with_inputs(self, inputs: Sequence, tag: str) -> Call:
        return Call(self.op, tuple(inputs), self.attrs, f"{self.source}/{tag}")


class _Snapshots(Interpreter):
    """Runs ops eagerly and keeps a :class:`Call` per application (taken before it runs,
    so a call that raises is kept too)."""

    def __init__(self, source: str):
        self.source = source
        self.calls: list[Call] = []

    def type_of(self, value):
        return EAGER.type_of(value)

    def apply(self, op, args, attrs):
        # order="K" keeps a transposed input transposed (layout is part of the case)
        inputs = tuple(np.array(a._data, order="K") if isinstance(a, compgrad.Tensor) else a
                       for a in args)
        self.calls.append(Call(op, inputs, dict(attrs), self.source))
        return EAGER.apply(op, args, attrs)


def _record(op: OpDef, index: int, sample) -> tuple[list[Call], BaseException | None]:
    rec = _Snapshots(f"{op.name}[{index}]")
    error = None
    try:
        with interpreter(rec), np.errstate(all="ignore"):
            call_public("compgrad", op.public, sample.args, sample.kwargs)
    except Exception as e:  # an ErrorSample (a failing Sample is test_ops.py's to report)
        error = e
    return rec.calls, error


@functools.cache
def recorded_calls() -> tuple[Call, ...]:
    """Every op application made by every :class:`Sample` of every registered op."""
    calls: list[Call] = []
    for op in sorted(REGISTRY.values(), key=lambda o: o.name):
        for i, sample in enumerate(op.samples() if op.samples else ()):
            if isinstance(sample, Sample):
                calls += _record(op, i, sample)[0]
    return tuple(calls)


@functools.cache
def error_calls() -> tuple[Call, ...]:
    """The failing application of each :class:`ErrorSample` whose error comes from the
    data, not the types: the node can be built (its type rule accepts it) and the
    reference implementation raises when it runs."""
    out: list[Call] = []
    for op in sorted(REGISTRY.values(), key=lambda o: o.name):
        for i, sample in enumerate(op.samples() if op.samples else ()):
            if not isinstance(sample, ErrorSample):
                continue
            calls, error = _record(op, i, sample)
            if error is None or not calls:
                continue
            last = calls[-1]
            try:
                infer_type(last.op, tuple(_type(x) for x in last.inputs), last.attrs)
            except Exception:  # a type error: no graph holds it, nothing for codegen
                continue
            out.append(last)
    return tuple(out)


def _type(x) -> TensorType:
    if isinstance(x, np.ndarray):
        return TensorType(x.shape, dtypes.from_numpy_dtype(x.dtype))
    return input_type(x)


def signature(call: Call) -> tuple:
    """What makes two calls of an op the same case: input kinds, dtypes, attributes and
    the values of Python scalar inputs."""
    kinds = tuple(("t" if x.ndim else "z", x.dtype.str) if isinstance(x, np.ndarray)
                  else ("w", repr(x)) for x in call.inputs)
    return call.op.name, kinds, repr(sorted(call.attrs.items(), key=lambda kv: kv[0]))


def expressible(call: Call) -> bool:
    """Whether codegen has a scalar expression for this elementwise call (else the
    runtime runs it on the reference interpreter)."""
    types = tuple(_type(x) for x in call.inputs)
    out = infer_type(call.op, types, call.attrs)
    if isinstance(out, tuple):
        return False
    names = [f"a{i}" for i in range(len(types))]
    return scalar_expr(call.op.name, names, types, out.dtype, call.attrs) is not None


# --- re-laying out elementwise calls ----------------------------------------------------------

def _fill(x: np.ndarray, shape: tuple) -> np.ndarray:
    """An array of ``shape`` repeating ``x``'s values (so an op's input domain is kept)."""
    if x.size == 0:
        return np.zeros(shape, x.dtype)
    return np.resize(x.ravel(), shape).astype(x.dtype)


def _flat(x: np.ndarray, k: int) -> np.ndarray:
    return _fill(x, (37,))


def _bcast(x: np.ndarray, k: int) -> np.ndarray:
    # the first tensor is a transposed [5, 7]; the others broadcast against it
    if k == 0:
        return _fill(x, (7, 5)).T
    return _fill(x, (7,) if k % 2 else (5, 1))


def _zerodim(x: np.ndarray, k: int) -> np.ndarray:
    return _fill(x, ())


def _empty(x: np.ndarray, k: int) -> np.ndarray:
    return np.zeros((2, 0) if k == 0 else (0,), x.dtype)


def _transposed(x: np.ndarray, k: int) -> np.ndarray:
    return _fill(x, (6, 4)).T


def _strided(x: np.ndarray, k: int) -> np.ndarray:
    # every other column of a [4, 10]: neither C- nor F-contiguous
    return _fill(x, (4, 10))[:, ::2]


def _large(x: np.ndarray, k: int) -> np.ndarray:
    return _fill(x, (300, 256))   # past codegen.cpu.PARALLEL_MIN_ELEMENTS: a prange loop


# how each tensor input (the k-th with dimensions) of an elementwise call is re-laid out;
# 0-d inputs stay 0-d (they promote differently) except in "zerodim"
LAYOUTS: dict[str, Callable[[np.ndarray, int], np.ndarray]] = {
    "flat": _flat, "broadcast": _bcast, "zerodim": _zerodim, "empty": _empty,
    "transposed": _transposed, "strided": _strided, "parallel": _large,
}


def relayout(call: Call, layout: str) -> Call | None:
    """``call`` with its tensor inputs re-laid out by ``LAYOUTS[layout]``; None when the
    op's type rule refuses the new shapes."""
    fn = LAYOUTS[layout]
    k = 0
    inputs = []
    for x in call.inputs:
        if isinstance(x, np.ndarray) and (x.ndim or layout == "zerodim"):
            inputs.append(fn(x, k))
            k += 1
        else:
            inputs.append(x)
    new = call.with_inputs(inputs, layout)
    try:
        infer_type(new.op, tuple(_type(x) for x in inputs), new.attrs)
    except Exception:
        return None
    return new


# --- graphs -----------------------------------------------------------------------------------

@dataclass
class Batch:
    """Calls side by side in one graph: ``feeds`` are the graph's arguments and
    ``owners[i]`` the call whose node produced output ``i``."""

    graph: Graph
    feeds: list
    owners: list[Call]

    @classmethod
    def of(cls, calls: Sequence[Call], *, lift_scalars: bool = False,
           name: str = "batch") -> Batch:
        """One node per call. ``lift_scalars`` makes Python scalar inputs weak graph
        inputs (as compgrad.compile lifts learning rates) instead of inline constants."""
        graph = Graph(name)
        feeds: list = []
        owners: list[Call] = []
        for call in calls:
            args = []
            for x in call.inputs:
                if isinstance(x, np.ndarray) or lift_scalars:
                    args.append(graph.add_input(_type(x), Role.ARGUMENT))
                    feeds.append(x)
                else:
                    args.append(x)
            node = graph.add_node(call.op, args, call.attrs)
            graph.outputs += node.outputs
            owners += [call] * len(node.outputs)
        return cls(graph, feeds, owners)


def group_by_shape(graph: Graph) -> Graph:
    """``graph`` (independent elementwise nodes) with its nodes wrapped in ``fused``
    elementwise groups, one per output shape, so each shape is one generated kernel.
    The outputs keep their order."""
    out = Graph(graph.name)
    env: dict[Value, Value] = {}
    for v in graph.inputs:
        env[v] = out.add_input(v.type, v.role, v.name)
    by_shape: dict[tuple, list[Node]] = {}
    for node in graph.nodes:
        by_shape.setdefault(node.outputs[0].type.shape, []).append(node)
    for k, nodes in enumerate(by_shape.values()):
        body = Graph(f"elementwise_{k}")
        inner: dict[Value, Value] = {}
        outer_args: list[Value] = []
        for node in nodes:
            for a in node.input_values():
                if a not in inner:
                    inner[a] = body.add_input(a.type, Role.ARGUMENT, f"in{len(outer_args)}")
                    outer_args.append(env[a])
            copy = body.add_node(node.op, [inner.get(a, a) if isinstance(a, Value) else a
                                           for a in node.inputs], node.attrs,
                                 [o.type for o in node.outputs])
            body.outputs += copy.outputs
        fused = out.add_node(FUSED, outer_args, {"kind": "elementwise", "body": body})
        for node_out, fused_out in zip((o for n in nodes for o in n.outputs), fused.outputs):
            env[node_out] = fused_out
    out.outputs = [env[v] for v in graph.outputs]
    return out


def chains(calls: Sequence[Call]) -> Batch:
    """Small programs around calls, side by side, for the real pass pipeline: the call's
    first result goes through ``mul(y, 2)`` (``logical_not`` for bool) and, when it is a
    float with dimensions, ``sum``. An elementwise call thus makes one fused group of two
    ops with a reduction, a matmul one with an epilogue. A reduction's first tensor input
    first passes through ``maximum(x, x)`` (exact, and not an identity the simplifier
    removes), so the reduction has a prologue."""
    from ir.graph import GraphBuilder
    from ir.ops import logical_not, maximum, mul
    from ir.ops import sum as sum_
    graph = Graph("chains")
    feeds: list = []
    owners: list[Call] = []
    with interpreter(GraphBuilder(graph)):
        for call in calls:
            args: list = []
            for x in call.inputs:
                if not isinstance(x, np.ndarray):
                    args.append(x)
                    continue
                v = graph.add_input(_type(x), Role.ARGUMENT)
                feeds.append(x)
                first = not any(isinstance(a, Value) for a in args)
                prologue = call.op.kind is OpKind.REDUCTION and first and x.dtype != np.bool_
                args.append(maximum(v, v) if prologue else v)
            node = graph.add_node(call.op, args, call.attrs)
            y = node.outputs[0]
            post = logical_not(y) if y.type.dtype is dtypes.bool_ else mul(y, 2)
            outs = [post, *node.outputs[1:]]
            if y.type.dtype.is_floating_point and y.type.ndim:
                outs.append(sum_(post))
            graph.outputs += outs
            owners += [call] * len(outs)
    return Batch(graph, feeds, owners)


# --- comparing --------------------------------------------------------------------------------

def compare(expected, got, ulps: float) -> str | None:
    """Why ``got`` differs from ``expected`` (None when they agree): same shape and
    dtype; floats within ``ulps`` units in the last place of the larger magnitude (or of
    1.0 near zero, where cancellation makes relative error meaningless), NaN where NaN,
    same infinities; other dtypes exactly."""
    a, b = np.asarray(expected), np.asarray(got)
    if a.shape != b.shape or a.dtype != b.dtype:
        return f"expected {a.dtype}{list(a.shape)}, got {b.dtype}{list(b.shape)}"
    if a.dtype.kind not in "fc":
        bad = a != b
    else:
        with np.errstate(all="ignore"):
            scale = np.maximum(np.maximum(np.abs(a), np.abs(b)), 1.0)
            tol = ulps * np.spacing(scale.astype(a.dtype))
            close = np.abs(a.astype(np.float64) - b) <= tol
        same_special = (np.isnan(a) & np.isnan(b)) | (np.isinf(a) & (a == b))
        bad = ~(close | same_special) | (np.isnan(a) != np.isnan(b))
    return mismatch(a, b, bad)


def mismatch(a: np.ndarray, b: np.ndarray, bad: np.ndarray) -> str | None:
    """None when no element is ``bad``, else how many differ and the first three."""
    if not bad.any():
        return None
    where = np.argwhere(np.atleast_1d(bad))[:3]
    shown = ", ".join(f"{tuple(int(i) for i in w)}: expected {np.atleast_1d(a)[tuple(w)]!r} "
                      f"got {np.atleast_1d(b)[tuple(w)]!r}" for w in where)
    return f"{int(bad.sum())} of {a.size} elements differ ({shown})"


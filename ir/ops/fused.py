"""The ``fused`` op: a group of nodes that ``passes.fusion`` turned into one kernel.

A ``fused`` node holds its group as a nested :class:`~ir.graph.Graph` in the
attribute ``body``: the body's inputs are the group's external inputs (in the
node's input order), its outputs are the group's values used outside it (the
node's outputs, always a tuple, as ``split``'s). ``kind`` says how codegen
iterates (``"elementwise"``, ``"reduction"``, ``"matmul_epilogue"``) and
``refused`` (optional) holds the fusion pass's reasons for what it did not
fuse into the group, so they show in dumps.

The reference implementation runs the body with :func:`ir.interpret.interpret`,
so a fused graph interprets exactly as the graph it came from. The op is
internal (``compgrad._ops.fused``): not differentiable (fusion runs after
autodiff) and kind OPAQUE to every pass but fusion and codegen.
"""

from __future__ import annotations

from ir import dtypes
from ir.dispatch import interpreter
from ir.graph import Graph, GraphBuilder
from ir.interpret import interpret
from ir.opdef import ErrorSample, Sample
from ir.ops._util import OpDef, OpKind, apply, common_device, register
from ir.samples import arr
from ir.types import TensorType

__all__: tuple[str, ...] = ()
INTERNAL = ("fused",)

# what a group's kernel iterates over (see passes/fusion.py)
KINDS = ("elementwise", "reduction", "rows", "matmul_epilogue")


def _type_text(t: TensorType) -> str:
    return f"{t} weak" if t.weak else str(t)


def _fused_rule(types, body, kind, refused=()):
    if not isinstance(body, Graph):
        raise TypeError(f"fused(): body must be an ir.graph.Graph, got {type(body).__name__}")
    if kind not in KINDS:
        raise ValueError(f"fused(): kind must be one of {KINDS}, got {kind!r}")
    if not isinstance(refused, tuple) or not all(isinstance(r, str) for r in refused):
        raise TypeError("fused(): refused must be a tuple of strings")
    if body.mutations:
        # a group is a pure function of its inputs: mutations belong to the outer graph
        raise ValueError(f"fused(): the body {body.name!r} records mutations")
    common_device(types)   # PyTorch's error for inputs on two devices, before the types
    if len(types) != len(body.inputs):
        raise TypeError(f"fused(): the body {body.name!r} takes {len(body.inputs)} inputs, "
                        f"got {len(types)}")
    for i, (t, v) in enumerate(zip(types, body.inputs)):
        if t != v.type:
            raise TypeError(f"fused(): input {i} is {_type_text(t)}, the body {body.name!r} "
                            f"expects {_type_text(v.type)}")
    return tuple(v.type for v in body.outputs)


def _fused_impl(*args, body, kind, refused=()):
    return tuple(interpret(body, args).outputs)


def _elementwise_body() -> Graph:
    from ir.ops import add, exp, mul

    body = Graph("elementwise_0")
    x = body.add_input(TensorType((3, 4), dtypes.float32), name="x")
    b = body.add_input(TensorType((4,), dtypes.float32), name="in1")
    with interpreter(GraphBuilder(body)):
        s = add(x, b)
        body.outputs = [s, exp(mul(s, 0.5))]
    return body


def _reduction_body() -> Graph:
    from ir.ops import add, square, sum

    body = Graph("reduction_0")
    x = body.add_input(TensorType((2, 5), dtypes.float32), name="x")
    with interpreter(GraphBuilder(body)):
        body.outputs = [add(sum(square(x), dim=1), 1.0)]
    return body


def _samples():
    yield Sample((arr(3, 4), arr(4)), {"body": _elementwise_body(), "kind": "elementwise"},
                 grad=False, torch=False, note="internal op")
    yield Sample((arr(2, 5),), {"body": _reduction_body(), "kind": "reduction",
                                "refused": ("%3 add + %1 exp: an example reason",)},
                 grad=False, torch=False, note="internal op")
    yield ErrorSample((arr(3, 3), arr(4)), {"body": _elementwise_body(), "kind": "elementwise"},
                      TypeError, "expects f32[3,4]", torch=False)


FUSED = register(OpDef("fused", OpKind.OPAQUE, _fused_rule, _fused_impl, None, _samples,
                       public="_ops.fused", differentiable=False, num_outputs=-1,
                       doc="a fused group: runs the nested graph in attribute body"))


def fused(*inputs, body: Graph, kind: str, refused: tuple[str, ...] = ()):
    """Internal: run the group ``body`` on ``inputs`` (a tuple of its outputs)."""
    # the printed order: the body (many lines) last, no empty refused list
    attrs = {"kind": kind, **({"refused": tuple(refused)} if refused else {}), "body": body}
    return apply(FUSED, *inputs, **attrs)

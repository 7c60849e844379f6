"""The text form of a Graph: one line per node, readable like a jaxpr.

::

    graph step(%x: f32[64,784], %lr: f64[] weak, %w1: f32[512,784] param, %c: i64[2] const=[1, 2]) {
      %0 = matmul(%x, %w1) : f32[64,512]  # train.py:12
      %2, %3 = max(%1)[dim=1, keepdim=False] : f32[64], i64[64]
      %4 = add(%2, 2.5) : f32[64]
      return %4, %3
      mutate %w1 <- %1
      mutate grad(%w1) <- None
    }

Inputs print as ``%name: type [weak] [role]`` (the role word is left out for
arguments; constants print their data). Intermediate values are numbered
``%0, %1, ...`` in definition order (numbers that are input names are
skipped). Python scalars are written inline as Python literals; attributes
follow the call in brackets, ``key=value`` in the node's order. A node's
``loc`` is its trailing comment.

Every value is written so that :func:`ir.parser.parse` reads back exactly
the same thing (``print_graph(parse(print_graph(g))) == print_graph(g)``):

=========================  ===========================================
attribute value            text
=========================  ===========================================
None, True, False          ``None``, ``True``, ``False``
int, float                 ``repr``: ``-1``, ``2.5``, ``1e-05``, ``-inf``, ``nan``, ``-0.0``
str                        a JSON string: ``"floor"``
tuple / list               ``(1, 2)``, ``(1,)``, ``()`` / ``[1, 2]``
DType                      its name: ``float32``, ``int64``, ``bool``
Device                     ``device("cpu")``, ``device("cuda:0")``
slice, Ellipsis            ``slice(1, None, 2)``, ``...``
np.ndarray                 ``array(<nested list>, f32[2,3])``
Graph                      the nested graph's text, indented (below)
=========================  ===========================================

A Graph attribute (the ``body`` of a ``fused`` node) prints as a whole graph
with its own value names, its lines indented under the node, like a jaxpr's
sub-jaxpr::

      %3 = fused(%x, %2)[kind="elementwise", body=graph elementwise_0(%x: f32[4], %in1: f32[4]) {
        %0 = add(%x, %in1) : f32[4]  # train.py:7
        return %0
      }] : f32[4]

Anything else prints as ``<repr>``, which the parser rejects (the verifier's
round-trip check then names the node). Names that are not made of
``[A-Za-z0-9_.]`` are written as JSON strings (``%"a b"``), as are graph
names and locs that would not survive as bare text.
"""

from __future__ import annotations

import json
import math
import re

import numpy as np

from ir.dtypes import DType
from ir.graph import Graph, Node, Role, Value
from ir.types import Device, TensorType

__all__ = ["print_graph", "format_node", "format_type", "format_literal", "format_constant",
           "format_operand", "format_loc", "value_names", "format_name"]

_BARE_NAME = re.compile(r"[A-Za-z0-9_.]+\Z")          # a value name after %
_BARE_GRAPH_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*\Z")  # a word, as op names


def format_name(name: str) -> str:
    """A value or graph name as written: bare when made of ``[A-Za-z0-9_.]``, else a
    JSON string."""
    return name if _BARE_NAME.match(name) else json.dumps(name)


def format_type(t: TensorType) -> str:
    """``f32[64,784]``, with ``@cuda:0`` off the CPU and `` weak`` for scalar operands."""
    return f"{t} weak" if t.weak else str(t)


def _float_text(x: float) -> str:
    # repr is exact for Python floats, and already spells inf, -inf, nan and -0.0
    return repr(float(x))


def format_literal(value) -> str:
    """An attribute value or a scalar node input as text the parser reads back exactly."""
    if value is None or isinstance(value, bool):
        return repr(value)
    if isinstance(value, int):
        return repr(int(value))
    if isinstance(value, float):
        return _float_text(value)
    if isinstance(value, np.generic) and isinstance(value.item(), (bool, int, float)):
        return format_literal(value.item())
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, tuple):
        if len(value) == 1:
            return f"({format_literal(value[0])},)"
        return "(" + ", ".join(format_literal(v) for v in value) + ")"
    if isinstance(value, list):
        return "[" + ", ".join(format_literal(v) for v in value) + "]"
    if isinstance(value, DType):
        return value.name
    if isinstance(value, Device):
        return f"device({json.dumps(str(value))})"
    if isinstance(value, slice):
        parts = (value.start, value.stop, value.step)
        return "slice(" + ", ".join(format_literal(v) for v in parts) + ")"
    if value is Ellipsis:
        return "..."
    if isinstance(value, Graph):
        # a nested body (a fused group's): its own scope, its lines indented by the caller
        return print_graph(value)
    if isinstance(value, np.ndarray):
        try:
            from ir.dtypes import from_numpy_dtype
            t = TensorType(value.shape, from_numpy_dtype(value.dtype))
        except TypeError:
            return f"<{value!r}>"
        return f"array({format_constant(value, t)}, {t})"
    return f"<{value!r}>"


def _element_text(x, kind: str, np_dtype: np.dtype) -> str:
    if kind == "b":
        return "True" if x else "False"
    if kind in "iu":
        return str(int(x))
    if np_dtype == np.float64 or not math.isfinite(float(x)):
        return _float_text(float(x))
    # the shortest text for the narrow float, when it converts back to the same bits
    # through a Python float (the parser's path); the exact float64 repr otherwise
    short = str(x)
    back = np.asarray(float(short), dtype=np_dtype)
    if back.tobytes() == np.asarray(x, dtype=np_dtype).tobytes():
        return short
    return _float_text(float(x))


def format_constant(data, t: TensorType) -> str:
    """The data of a CONSTANT input of type ``t`` as a (nested list) literal."""
    if t.weak:
        return format_literal(data.item() if isinstance(data, (np.generic, np.ndarray)) else data)
    np_dtype = t.dtype.np_dtype
    arr = np.asarray(data)
    kind = np_dtype.kind

    def nest(a) -> str:
        if a.ndim == 0:
            return _element_text(a[()], kind, np_dtype)
        return "[" + ", ".join(nest(sub) for sub in a) + "]"

    return nest(arr.astype(np_dtype, copy=False))


def value_names(graph: Graph) -> dict[Value, str]:
    """The printed name (``%x``, ``%0``) of every value the graph defines.

    Inputs print by their name; node outputs are numbered in definition
    order, skipping numbers taken by an input's name.
    """
    names: dict[Value, str] = {}
    taken = set()
    for v in graph.inputs:
        name = v.name if isinstance(v.name, str) else f"?in{v.index}"
        taken.add(name)
        names[v] = "%" + format_name(name)
    n = 0
    for node in graph.nodes:
        for out in node.outputs:
            if out in names:  # a value listed twice (the verifier reports it): keep its name
                continue
            while str(n) in taken:
                n += 1
            names[out] = f"%{n}"
            n += 1
    return names


def _fallback_name(v: Value) -> str:
    if v.node is None:
        return "%" + format_name(v.name) if isinstance(v.name, str) else "%?"
    return f"%<{v.node.op.name}#{v.index}>"


def format_operand(a, names: dict[Value, str] | None = None) -> str:
    """A node input (a Value by its printed name, or a scalar literal)."""
    if isinstance(a, Value):
        if names is not None and a in names:
            return names[a]
        return _fallback_name(a)
    return format_literal(a)


def format_loc(loc: str) -> str:
    """A node's loc as its trailing comment (a JSON string when bare text would not
    read back exactly)."""
    bare = loc and loc.isprintable() and loc == loc.strip() and not loc.startswith('"')
    return "# " + (loc if bare else json.dumps(loc))


def format_node(node: Node, names: dict[Value, str] | None = None) -> str:
    """One node as a line of IR text (without indentation).

    ``names`` maps values to their printed names (:func:`value_names`); without
    it inputs print by name and intermediates as ``%<op#output>``.
    """
    args = ", ".join(format_operand(a, names) for a in node.inputs)
    text = f"{node.op.name}({args})"
    if node.attrs:
        text += "[" + ", ".join(f"{k}={format_literal(v)}" for k, v in node.attrs.items()) + "]"
    if node.outputs:
        outs = ", ".join(format_operand(o, names) for o in node.outputs)
        types = ", ".join(format_type(o.type) for o in node.outputs)
        text = f"{outs} = {text} : {types}"
    if node.loc is not None:
        text += "  " + format_loc(str(node.loc))
    return text


def _format_input(v: Value, graph: Graph, names: dict[Value, str]) -> str:
    text = f"{names[v]}: {format_type(v.type)}"
    if v.role is Role.CONSTANT:
        if v in graph.constants:
            text += " const=" + format_constant(graph.constants[v], v.type)
        else:
            text += " const=<missing>"
    elif v.role is not Role.ARGUMENT:
        text += f" {v.role.value}" if isinstance(v.role, Role) else f" <{v.role!r}>"
    return text


def print_graph(graph: Graph) -> str:
    """The whole graph as text (see the module docstring for the format)."""
    names = value_names(graph)
    params = ", ".join(_format_input(v, graph, names) for v in graph.inputs)
    name = str(graph.name)
    name = name if _BARE_GRAPH_NAME.match(name) else json.dumps(name)
    lines = [f"graph {name}({params}) {{"]
    # a node holding a nested graph spans several lines: indent them all
    lines.extend("  " + format_node(node, names).replace("\n", "\n  ") for node in graph.nodes)
    outs = ", ".join(format_operand(v, names) for v in graph.outputs)
    lines.append(f"  return {outs}" if outs else "  return")
    for m in graph.mutations:
        target = format_operand(m.target, names)
        lhs = target if m.field == "data" else f"{m.field}({target})"
        rhs = "None" if m.value is None else format_operand(m.value, names)
        lines.append(f"  mutate {lhs} <- {rhs}")
    lines.append("}")
    return "\n".join(lines)

"""Index arithmetic and scalar expressions for generated CUDA kernels.

A CUDA kernel of a fused group computes, per element it visits, the group's
values from its inputs. This module writes the source text of that work:

* coordinates: a row-major flat index (``i``) becomes the coordinate
  expressions of a shape (:func:`unravel`), and back (:func:`ravel`); shapes
  are constants of the source (a fused node's types are static);
* reads of the group's inputs: an input array is passed as it is (any strides:
  non-contiguous, transposed) and read at coordinates of its own shape; a value
  broadcast into a bigger shape reads coordinate 0 on its size-1 dims (strides of
  0 by index arithmetic), and a view of an input (reshape, expand, permute,
  narrow, select, basic getitem: :data:`passes.fusion.VIEW_OPS`) is folded into
  the read by mapping the view's coordinates to its source's (:func:`view_source`);
  a read whose coordinates are all constants (a 0-d input, a view of a
  one-element value) is made once, before the loop; Python scalars (weak inputs)
  are kernel parameters;
* the elementwise nodes: each is its scalar expression
  (:func:`codegen.scalar.scalar_expr`) of its inputs' local names, evaluated
  in body order into ``v<k>`` locals; a view of a value computed in the group
  (fusion keeps only views that keep the row-major order) names the same local.

The CUDA forms of the helpers and NumPy functions the expressions call come
from the kernel module's imports (:mod:`codegen.cuda_math` as ``_mf``,
:mod:`codegen.cuda_numpy` as ``np``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence

from codegen import cuda_numpy
from codegen.cuda_math import missing_helpers
from codegen.scalar import literal, scalar_expr
from ir.graph import Node, Value, input_type
from ir.opdef import OpKind
from passes.fusion import VIEW_OPS

__all__ = ["unravel", "ravel", "broadcast_coords", "view_source", "is_view", "Inputs",
           "Evaluator", "Scope", "Unsupported", "missing_forms"]


class Unsupported(Exception):
    """A group (or a part of it) has no CUDA form; the message says why."""


# --- coordinates -------------------------------------------------------------------------------

def unravel(flat: str, shape: Sequence[int]) -> list[str]:
    """The coordinate expressions of the row-major flat index ``flat`` in ``shape``."""
    coords: list[str] = []
    stride = 1
    for d in reversed(range(len(shape))):
        n = shape[d]
        if n == 1:
            c = "0"
        elif d == 0:
            c = flat if stride == 1 else f"({flat} // {stride})"
        else:
            c = f"({flat} % {n})" if stride == 1 else f"(({flat} // {stride}) % {n})"
        coords.append(c)
        stride *= n
    return coords[::-1]


def ravel(coords: Sequence[str], shape: Sequence[int]) -> str:
    """The row-major flat index of ``coords`` in ``shape``."""
    terms = []
    stride = 1
    for c, n in zip(reversed(coords), reversed(shape)):
        if c != "0" and n != 1:
            terms.append(c if stride == 1 else f"{c} * {stride}")
        stride *= n
    return "(" + " + ".join(reversed(terms)) + ")" if terms else "0"


def broadcast_coords(coords: Sequence[str], out_shape: Sequence[int],
                     in_shape: Sequence[int]) -> list[str]:
    """The coordinates in ``in_shape`` of the element at ``coords`` of ``out_shape`` that
    ``in_shape`` broadcasts to (NumPy's rule: leading dims dropped, size-1 dims at 0)."""
    lead = len(out_shape) - len(in_shape)
    if lead < 0:
        raise Unsupported(f"shape {tuple(in_shape)} does not broadcast to {tuple(out_shape)}")
    return ["0" if n == 1 else coords[lead + k] for k, n in enumerate(in_shape)]


def _strip_ones(shape: Sequence[int]) -> list[tuple[int, int]]:
    return [(d, n) for d, n in enumerate(shape) if n != 1]


def _reshape_source(coords: Sequence[str], out_shape: tuple, src_shape: tuple) -> list[str]:
    out_dims, src_dims = _strip_ones(out_shape), _strip_ones(src_shape)
    if [n for _, n in out_dims] == [n for _, n in src_dims]:
        # only size-1 dims inserted or removed: the other coordinates carry over
        src = ["0"] * len(src_shape)
        for (od, _), (sd, _) in zip(out_dims, src_dims):
            src[sd] = coords[od]
        return src
    return unravel(ravel(coords, out_shape), src_shape)


def _getitem_source(coords: Sequence[str], spec: tuple, src_ndim: int) -> list[str]:
    src: list[str] = []
    k = 0   # position in the view's coordinates
    for entry in spec:
        if entry is None:
            k += 1
        elif isinstance(entry, tuple):
            _, start, _, step = entry
            c = coords[k]
            if step != 1:
                c = f"{c} * {step}"
            src.append(f"({c} + {start})" if start else c)
            k += 1
        elif isinstance(entry, int):
            src.append(str(entry))
        else:
            raise Unsupported(f"getitem spec entry {entry!r}")
    src += list(coords[k:])
    if len(src) != src_ndim:
        raise Unsupported(f"getitem spec {spec!r} of a {src_ndim}-d value")
    return src


def is_view(node: Node) -> bool:
    """Whether ``node`` is a view that index arithmetic can fold (one input, one output)."""
    return (node.op.name in VIEW_OPS and len(node.outputs) == 1
            and sum(1 for _ in node.input_values()) == 1)


def view_source(node: Node, coords: Sequence[str]) -> list[str]:
    """The coordinates in the view ``node``'s source of the element at ``coords`` of its
    output."""
    src = next(node.input_values())
    out_shape, src_shape = tuple(node.outputs[0].shape), tuple(src.shape)
    name, attrs = node.op.name, node.attrs
    if name in ("reshape", "view"):
        return _reshape_source(coords, out_shape, src_shape)
    if name == "expand":
        return broadcast_coords(coords, out_shape, src_shape)
    if name == "permute":
        result = ["0"] * len(src_shape)
        for i, d in enumerate(attrs["dims"]):
            result[d] = coords[i]
        return result
    if name == "narrow":
        d, start = attrs["dim"], attrs["start"]
        return [f"({c} + {start})" if i == d and start else c for i, c in enumerate(coords)]
    if name == "select":
        d = attrs["dim"]
        return list(coords[:d]) + [str(attrs["index"])] + list(coords[d:])
    if name == "getitem":
        return _getitem_source(coords, tuple(attrs["spec"]), len(src_shape))
    raise Unsupported(f"view op {name}")


def _is_constant(coords: Sequence[str]) -> bool:
    return all(c.isdigit() for c in coords)


# --- reading a group's inputs ---------------------------------------------------------------------

class Inputs:
    """The kernel parameters of a group's inputs and the expressions reading them.

    ``params`` are the body inputs read so far, in first-read order (the kernel takes
    them in that order); a weak input is a scalar parameter, any other an array (a 0-d
    one is passed with shape ``(1,)``). ``hoisted`` are the lines reading loop-invariant
    elements, to put before the kernel's loops.
    """

    def __init__(self, prefix: str = "p"):
        self.prefix = prefix
        self.params: dict[Value, str] = {}
        self.hoisted: list[str] = []
        self._hoisted_names: dict[tuple, str] = {}

    def param(self, v: Value) -> str:
        """The parameter name of body input ``v``."""
        name = self.params.get(v)
        if name is None:
            name = self.params[v] = f"{self.prefix}{len(self.params)}"
        return name

    def scalar(self, v: Value) -> bool:
        """Whether input ``v`` is passed as a scalar (a weak Python number)."""
        return v.type.weak

    def read(self, v: Value, coords: Callable[[], Sequence[str]]) -> str:
        """The expression of the element of ``v`` (a body input, or a chain of views of one)
        at the coordinates ``coords()`` gives (of ``v``'s shape: computed only when
        needed)."""
        coords = coords()
        while v.node is not None:
            if not is_view(v.node):
                raise Unsupported(f"{v.node.op.name} is read as an input")
            coords = view_source(v.node, coords)
            v = next(v.node.input_values())
        name = self.param(v)
        if self.scalar(v):
            return name
        index = ", ".join(coords) if v.type.ndim else "0"
        text = f"{name}[{index}]"
        if v.type.ndim == 0 or _is_constant(coords):
            key = (v, tuple(coords))
            local = self._hoisted_names.get(key)
            if local is None:
                local = self._hoisted_names[key] = f"h{len(self._hoisted_names)}"
                self.hoisted.append(f"{local} = {text}")
            return local
        return text


_NUMPY_NAME = re.compile(r"\bnp\.(\w+)")


def missing_forms(text: str) -> set[str]:
    """The functions a scalar expression calls that have no CUDA form here (neither in
    :mod:`codegen.cuda_math` nor in :mod:`codegen.cuda_numpy`)."""
    missing = {f"_mf.{name}" for name in missing_helpers(text)}
    return missing | {f"np.{name}" for name in _NUMPY_NAME.findall(text)
                      if not hasattr(cuda_numpy, name)}


# --- evaluating nodes ---------------------------------------------------------------------------

class Scope:
    """The lines of one loop body, with each distinct expression bound to a local once
    (a coordinate, an input element): :meth:`let`. Local names come from a counter that
    the kernel's scopes share (``names``), so that no name is reused with another type."""

    def __init__(self, names: list[int] | None = None):
        self.lines: list[str] = []
        self.names = names if names is not None else [0]
        self._bound: dict[str, str] = {}

    def let(self, text: str, prefix: str) -> str:
        """A local holding ``text`` (a name or number as it is)."""
        if text.isidentifier() or text.lstrip("-").isdigit():
            return text
        name = self._bound.get(text)
        if name is None:
            name = self._bound[text] = f"{prefix}{self.names[0]}"
            self.names[0] += 1
            self.lines.append(f"{name} = {text}")
        return name

    def coords(self, flat: str, shape: Sequence[int]) -> list[str]:
        """Locals holding the coordinates of flat index ``flat`` in ``shape``."""
        return [self.let(c, "k") for c in unravel(flat, shape)]

    def child(self) -> Scope:
        """A new scope (another loop body) sharing this one's name counter."""
        return Scope(self.names)


CoordsOf = Callable[[tuple], list[str]]


class Evaluator:
    """Computes a group's elementwise nodes at one element into locals of a scope.

    ``known`` maps values available as locals (computed in the group, reduction results)
    to their names; :meth:`node` binds an elementwise node's scalar expression to a new
    local, reading values outside ``known`` through ``inputs`` at the coordinates that
    ``coords_of(shape)`` gives for the element being computed (``shape``: the node's output
    shape, broadcast down to each input's).
    """

    def __init__(self, inputs: Inputs, known: dict[Value, str] | None = None):
        self.inputs = inputs
        self.known: dict[Value, str] = dict(known or {})

    def source_local(self, v: Value) -> str | None:
        """The local of ``v`` when it is known or a view (keeping the element order) of a
        known value; None when ``v`` comes from outside the group."""
        if v in self.known:
            return self.known[v]
        node = v.node
        while node is not None and is_view(node):
            src = next(node.input_values())
            if src in self.known:
                if math.prod(v.shape) != math.prod(src.shape):
                    raise Unsupported(f"a {node.op.name} of a group value changes its size")
                return self.known[src]
            node = src.node
        if node is not None:
            raise Unsupported(f"{node.op.name} output read before it is computed")
        return None

    def arg(self, v: Value, shape: tuple, coords_of: CoordsOf, scope: Scope) -> str:
        """The local of input ``v`` of a node of output shape ``shape``."""
        local = self.source_local(v)
        if local is not None:
            return local
        def coords() -> list[str]:
            return broadcast_coords(coords_of(shape), shape, tuple(v.shape))

        return scope.let(self.inputs.read(v, coords), "x")

    def expr(self, node: Node, coords_of: CoordsOf, scope: Scope) -> str:
        """The scalar expression of elementwise ``node`` (its reads bound in ``scope``)."""
        if node.op.kind is not OpKind.ELEMENTWISE or len(node.outputs) != 1:
            raise Unsupported(f"{node.op.name} is not a single-output elementwise op")
        out = node.outputs[0]
        shape = tuple(out.shape)
        args = [self.arg(a, shape, coords_of, scope) if isinstance(a, Value) else literal(a)
                for a in node.inputs]
        text = scalar_expr(node.op.name, args, [input_type(a) for a in node.inputs],
                           out.type.dtype, node.attrs)
        if text is None:
            raise Unsupported(f"{node.op.name} has no scalar expression for "
                              f"{[str(input_type(a)) for a in node.inputs]}")
        missing = missing_forms(text)
        if missing:
            raise Unsupported(f"{node.op.name}: no CUDA form of {sorted(missing)}")
        return text

    def node(self, node: Node, coords_of: CoordsOf, scope: Scope) -> str:
        """Bind elementwise ``node``'s value to a new local of ``scope``; its name."""
        name = f"v{scope.names[0]}"
        scope.names[0] += 1
        scope.lines.append(f"{name} = {self.expr(node, coords_of, scope)}")
        self.known[node.outputs[0]] = name
        return name

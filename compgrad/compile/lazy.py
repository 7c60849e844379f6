"""Recorded (lazy) tensors: the interpreter @compile installs, and the state a
recorded tensor carries.

While a compiled function runs, every op applied to tensors appends a node to
the call's :class:`~compgrad.compile.trace.Trace` instead of computing. The
result is an ordinary :class:`~compgrad.tensor.Tensor` with a type but no
``_data``; its ``_lazy`` slot holds a :class:`LazyRef`. Reading the data
(``item()``, printing, ``numpy()``) computes the pending graph first.
"""

from __future__ import annotations

import os
import sys

import numpy as np

from compgrad._eager import EagerInterpreter, argument_error
from compgrad.autograd.grad_mode import _STATE, enable_grad
from compgrad.tensor import VIEW_HOOKS, Tensor
from ir.dispatch import SCALAR_TYPES, Interpreter
from ir.dtypes import CATEGORY_FLOAT
from ir.graph import Node, Value, input_type
from ir.opdef import OpDef, infer_type

__all__ = ["LazyRef", "PendingWrite", "LazyGradFn", "LazyInterpreter", "user_location",
           "reshape_copies"]


class LazyRef:
    """A recorded tensor's place in the trace.

    ``value`` is its current SSA value. A view (or alias) also knows its
    ``root`` tensor (the owner of the storage) and the ``chain`` of view ops
    from the root, so a write through any alias updates the root, and other
    aliases re-derive their values from it; ``gen`` is the root's write
    generation that ``value`` reflects.
    """

    __slots__ = ("trace", "value", "root", "chain", "gen")

    def __init__(self, trace, value: Value, root: Tensor | None = None, chain: tuple = (),
                 gen: int = 0):
        self.trace = trace
        self.value = value
        self.root = root
        self.chain = chain
        self.gen = gen

    @staticmethod
    def replay_chain(chain: tuple, arr: np.ndarray) -> np.ndarray:
        """Apply a view's ``chain`` of view ops (``(op, attrs, output index)``; op None is
        an alias) to ``arr``: the root's data, or its element positions."""
        for op, attrs, index in chain:
            if op is None:
                continue
            arr = op.impl(arr, **attrs)
            if isinstance(arr, (tuple, list)):
                arr = arr[index]
        return np.asarray(arr)

    def force(self, tensor: Tensor) -> np.ndarray:
        """Compute the pending graph (a graph break) and return ``tensor``'s data.

        A Python number read (``item()``, ``bool()``) of a small value that depends
        on little pending work (an optimizer's step counter) is computed on the
        side instead, and recording goes on: no graph break.
        """
        method, where = _force_site()
        if method in _SCALAR_READS:
            arr = self.trace.side_value(self.trace.value_of(tensor))
            if arr is not None:
                return arr
        self.trace.flush(reason=_reason(method, where))
        return object.__getattribute__(tensor, "_data")


class PendingWrite:
    """Marks a tensor from outside the trace that has a recorded, unapplied write:
    its stale ``_data`` is hidden until the pending graph runs."""

    __slots__ = ("trace",)

    def __init__(self, trace):
        self.trace = trace

    force = LazyRef.force


class LazyGradFn:
    """``grad_fn`` of a recorded tensor: names the op like PyTorch (``MulBackward0``)
    and points at the graph value; the symbolic backward reads the graph, not this."""

    __slots__ = ("node", "index", "trace", "_tensor_hooks", "_retained_refs")

    def __init__(self, trace, node: Node | None, index: int = 0):
        self.trace = trace
        self.node = node
        self.index = index
        # made on first use (one is made per recorded op that requires grad; few get hooks)
        self._tensor_hooks: dict[int, dict] | None = None
        self._retained_refs: dict | None = None

    # the hooks protocol of compgrad.autograd.hooks (register_hook, retain_grad)
    def _add_tensor_hook(self, output_nr: int, fn):
        from compgrad.autograd.node import RemovableHandle
        if self._tensor_hooks is None:
            self._tensor_hooks = {}
        hooks = self._tensor_hooks.setdefault(output_nr, {})
        handle = RemovableHandle(hooks)
        hooks[handle.id] = fn
        self.trace.graph_fns.add(self)
        return handle

    @property
    def tensor_hooks(self) -> dict[int, dict]:
        """Hooks by output index (registered with ``register_hook``)."""
        return self._tensor_hooks or {}

    @property
    def _retained(self) -> dict:
        self.trace.graph_fns.add(self)
        if self._retained_refs is None:
            self._retained_refs = {}
        return self._retained_refs

    def name(self) -> str:
        from compgrad.autograd.node import node_class
        if self.node is None:
            return "CopySlices"
        return node_class(self.node.op.name).__name__

    @property
    def next_functions(self) -> tuple:
        return ()

    def __repr__(self) -> str:
        return f"<{self.name()} object (recorded by compgrad.compile)>"


# --- user locations ---------------------------------------------------------------------

_HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))          # compgrad/
_IR = os.path.join(os.path.dirname(_HERE), "ir")
_INTERNAL = (_HERE + os.sep, _IR + os.sep)


class _UserFile:
    """A source file outside compgrad and ir, with its ``file:line`` strings (made once)."""

    __slots__ = ("base", "lines")

    def __init__(self, filename: str):
        self.base = os.path.basename(filename)
        self.lines: dict[int, str] = {}

    def location(self, line: int) -> str:
        loc = self.lines.get(line)
        if loc is None:
            loc = self.lines[line] = f"{self.base}:{line}"
        return loc


# a cache by code filename: False for compgrad's and ir's own files (and "<string>"
# code), else the file's _UserFile. Every recorded op walks several frames: a filename
# string caches its hash, where a code object's is recomputed at each lookup
_FILES: dict[str, _UserFile | bool] = {}


def _classify(filename: str) -> _UserFile | bool:
    internal = (filename.startswith(_INTERNAL) or filename.startswith("<")) \
        and "/tests/" not in filename
    entry = _FILES[filename] = False if internal else _UserFile(filename)
    return entry


def user_location(depth: int = 2) -> str | None:
    """``file:line`` of the innermost frame outside compgrad and ir (the user's line)."""
    f = sys._getframe(depth)
    files = _FILES
    while f is not None:
        name = f.f_code.co_filename
        entry = files.get(name)
        if entry is None:
            entry = _classify(name)
        if entry is not False:
            return entry.location(f.f_lineno)
        f = f.f_back
    return None


_SCALAR_READS = frozenset(("item", "_scalar_for_python", "__bool__", "__index__", "__float__",
                           "__int__", "tolist", "__format__"))


def _force_site() -> tuple[str | None, str | None]:
    """The Tensor method that read a recorded value, and the user's line."""
    f = sys._getframe(2)
    method = None
    while f is not None:
        name = f.f_code.co_filename
        if name.startswith(_INTERNAL):
            if name.endswith(os.path.join("compgrad", "tensor.py")) or "_tensor_str" in name:
                method = f.f_code.co_name
        else:
            return method, f"{os.path.basename(name)}:{f.f_lineno}"
        f = f.f_back
    return method, None


def _reason(method: str | None, where: str | None) -> str:
    text = f"{method or 'data'}() read a tensor's value"
    return f"{text} at {where}" if where else text


def _integral_exponent(op: OpDef, index: int, x) -> bool:
    """``x ** 3``: an integral Python exponent is a constant of the program (``x * x * x``
    is another computation than ``x ** 2.5``, and its derivative ``3 * x ** 2`` too)."""
    return op.name == "pow" and index == 1 and float(x).is_integer()


# --- the interpreter --------------------------------------------------------------------

class LazyInterpreter(Interpreter):
    """Records each applied op into ``trace`` (see the module docstring)."""

    def __init__(self, trace):
        self.trace = trace

    type_of = EagerInterpreter.type_of   # tensors and numbers, as eagerly

    def apply(self, op: OpDef, args: tuple, attrs: dict):
        trace = self.trace
        values = []
        types = []
        requires_grad = False
        for i, a in enumerate(args):
            if isinstance(a, Tensor):
                ref = a._lazy
                # (Trace.value_of's answer for a recorded tensor that is no view, with no
                # stale leaf in the call: its value, without the call)
                v = ref.value if type(ref) is LazyRef and ref.root is None \
                    and not trace.stale else trace.value_of(a)
                types.append(v.type)
                if a._requires_grad:
                    requires_grad = True
            elif isinstance(a, SCALAR_TYPES):
                # a bool is a flag, not a quantity (``x ** True``): a constant of the
                # program, as eager VJP rules see a Python bool
                if isinstance(a, (bool, np.bool_)):
                    v = bool(a)
                elif _integral_exponent(op, i, a):
                    v = a
                else:
                    v = trace.scalar(a)
                    types.append(v.type)
                    values.append(v)
                    continue
                types.append(input_type(v))
            else:
                trace.flush(reason="an op raised while recording")   # as below
                raise argument_error(op, a)
            values.append(v)
        try:
            out_type = infer_type(op, tuple(types), attrs)
        except Exception:
            # eagerly, an error the pending work hides (an index out of range, found
            # only when it runs) would have come first: run it, then raise this one
            trace.flush(reason="an op raised while recording")
            raise
        multi = isinstance(out_type, tuple)
        node = Node(op, tuple(values), attrs, out_type if multi else (out_type,),
                    user_location())
        trace.graph.nodes.append(node)
        requires_grad = requires_grad and _STATE.enabled and op.differentiable
        source = None
        if op.is_view and args and isinstance(args[0], Tensor):
            source = args[0]
            if op.name == "reshape" and reshape_copies(trace, source, attrs):
                source = None   # eagerly a copy (the layout allows no view): no alias
        if not multi:
            v = node.outputs[0]
            return trace.new_tensor(v, requires_grad and out_type.dtype.category ==
                                    CATEGORY_FLOAT, node, source=source)
        # multi-output ops give a plain tuple, as the eager interpreter does
        return tuple(trace.new_tensor(v, requires_grad and v.type.dtype.category ==
                                      CATEGORY_FLOAT, node, source=source)
                     for v in node.outputs)


def reshape_copies(trace, source: Tensor, attrs: dict) -> bool:
    """Whether ``source.reshape(shape)`` copies eagerly: NumPy's (and PyTorch's) rule on
    the strides ``source`` has, replayed on a stand-in array with the root's strides and
    no memory (``copy=False`` raises instead of copying). A root computed in ``trace``
    (the call) is taken as C-contiguous."""
    root, chain = trace._root_and_chain(source)
    try:
        data = object.__getattribute__(root, "_data")
    except AttributeError:   # recorded, or written and not landed yet
        data = trace.hidden.get(id(root))
    shape = tuple(root._type.shape)
    if data is not None and data.size > 1:
        strides = tuple(s // data.itemsize for s in data.strides)
    else:
        strides = tuple(int(np.prod(shape[i + 1:])) for i in range(len(shape)))
    stand_in = np.lib.stride_tricks.as_strided(np.zeros(1, np.int8), shape, strides)
    try:
        np.reshape(LazyRef.replay_chain(chain, stand_in), attrs["shape"], copy=False)
    except ValueError:
        return True
    return False


def stale_lazy_view_requires_grad(t: Tensor) -> bool:
    """``requires_grad`` of a recorded view whose root was written since its value was
    recorded: the view is read again from the root (under grad mode, so a root that
    gained a history passes it on, as eagerly and in PyTorch)."""
    ref = t._lazy
    if type(ref) is LazyRef and ref.root is not None and ref.root.grad_fn is not None \
            and ref.gen != ref.trace.gen.get(id(ref.root), 0):
        with enable_grad():
            ref.trace.value_of(t)
    return t._requires_grad


if stale_lazy_view_requires_grad not in VIEW_HOOKS:
    VIEW_HOOKS.append(stale_lazy_view_requires_grad)


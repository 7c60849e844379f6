"""One record per op: its kind, type rule, NumPy reference and VJP.

An op is registered once with :func:`register`. Everything else (eager
execution, autograd, tracing, codegen, the test sweep) reads the record.

Conventions every op follows:

* ``type_rule(types, **attrs)`` receives one :class:`~ir.types.TensorType`
  per positional input (Python scalars arrive as weak 0-d types) and returns
  the output type, or a tuple of them for multi-output ops. It raises
  PyTorch's exception types with messages naming the shapes/dims. Results
  are memoised on ``(op, types, attrs)``, so attributes must be hashable and
  the rule must be pure.
* ``impl(*args, **attrs)`` is the reference on NumPy: tensor inputs arrive as
  ``np.ndarray``, scalar inputs as Python scalars. The caller casts the result
  to the dtype of the type rule, so impls may compute in a wider type.
  Only ops with ``is_view=True`` may return arrays that alias an input.
* ``vjp(ctx, *grads)`` returns one gradient (or None) per input, written with
  ``ir.ops`` functions so the same rule runs eagerly and symbolically. The
  gradient may have the broadcast (output) shape and any float dtype:
  :func:`ir.vjp.call_vjp` reduces and casts it to the input's type in one
  place. ``grads`` holds one cotangent per output (None where no gradient
  flows into a multi-output op's output).
* ``samples(make)`` yields :class:`Sample` calls of the public function for
  the registry sweep (tests/test_ops.py).
* ``direct(types)`` (optional) returns a kernel that gives ``impl``'s result bit for
  bit on inputs of those types without impl's per-call checks (a ufunc whose operands
  already share the compute dtype), or None; the eager interpreter decides it once per
  input types. The sweep checks it against ``impl`` on every sample.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from ir.types import TensorType

__all__ = ["OpKind", "OpDef", "Sample", "ErrorSample", "VJPContext", "register", "REGISTRY",
           "get_op", "infer_type"]


class OpKind(enum.Enum):
    ELEMENTWISE = "elementwise"
    REDUCTION = "reduction"
    MATMUL = "matmul"
    MOVEMENT = "movement"
    INDEXING = "indexing"
    CREATION = "creation"
    RANDOM = "random"
    OPAQUE = "opaque"


@dataclass(frozen=True)
class Sample:
    """A call of the op's public function for the sweep.

    ``args``/``kwargs`` hold NumPy arrays where tensors go (converted by the
    sweep to compgrad or torch tensors) and plain Python values elsewhere.
    ``grad`` says whether the sweep checks gradients for this sample (it
    needs float inputs); ``torch`` whether it compares with PyTorch.
    """

    args: tuple = ()
    kwargs: dict = field(default_factory=dict)
    grad: bool = True
    torch: bool = True
    rtol: float | None = None
    atol: float | None = None
    note: str = ""


@dataclass(frozen=True)
class ErrorSample:
    """A call that must raise ``error`` (and the same type in PyTorch), with
    ``match`` a substring the message contains."""

    args: tuple = ()
    kwargs: dict = field(default_factory=dict)
    error: type = RuntimeError
    match: str = ""
    torch: bool = True


@dataclass(slots=True)   # slots: built for every node that runs backward
class VJPContext:
    """What a VJP rule can read: the op's inputs, outputs and attributes.

    ``input_types`` (None for scalar inputs) gives shapes and dtypes without
    reading the saved inputs: rules that need only metadata should use it, so
    autograd can free or skip the inputs (a second backward through such a
    node works, as in PyTorch). ``needs_input_grad[i]`` says whether input
    ``i`` wants a gradient; a rule should read only what those gradients need.
    """

    op: OpDef
    inputs: tuple
    outputs: tuple
    attrs: dict
    input_types: tuple = ()
    # which inputs want a gradient: rules skip the others (and the saved values
    # only those would read), as PyTorch's derivative formulas do
    needs_input_grad: tuple = ()

    @property
    def output(self):
        return self.outputs[0]


@dataclass(eq=False)
class OpDef:
    """The single definition of an op. See the module docstring for the conventions."""

    name: str
    kind: OpKind
    type_rule: Callable[..., TensorType | tuple[TensorType, ...]]
    impl: Callable[..., Any]
    vjp: Callable[..., Any] | None = None
    samples: Callable[[], Iterable[Sample | ErrorSample]] | None = None
    # the public callable path, relative to compgrad / torch ("add", "nn.functional.gelu",
    # "Tensor.index_put_"): the sweep calls this in both libraries
    public: str | None = None
    is_view: bool = False          # output aliases input 0 (eager keeps storage shared)
    differentiable: bool = True    # False for comparisons, argmax, integer results
    num_outputs: int = 1
    doc: str = ""
    # the reference always returns a new array that aliases no input (a ufunc's result):
    # eager then skips its check that a result shares no memory with an input
    fresh_result: bool = False
    # ``direct(input_types)``: a kernel that computes the op on arrays of those types
    # exactly as ``impl`` does, without impl's per-call dtype checks (None: use impl).
    # Decided once per input types by the eager interpreter (an elementwise op whose
    # operands already share the compute dtype calls its ufunc as it is)
    direct: Callable[[tuple], Callable[..., Any] | None] | None = None

    def __repr__(self) -> str:
        return f"<op {self.name}>"

    # hashed and compared by identity (eq=False keeps object's C-level __hash__, which
    # the type memo's dict lookups call on every op)


REGISTRY: dict[str, OpDef] = {}


def register(op: OpDef) -> OpDef:
    """Add ``op`` to the registry (its name must be new)."""
    if op.name in REGISTRY:
        raise ValueError(f"op {op.name!r} is registered twice")
    if op.public is None:
        op.public = op.name
    REGISTRY[op.name] = op
    return op


def get_op(name: str) -> OpDef:
    try:
        return REGISTRY[name]
    except KeyError:
        raise KeyError(f"no op named {name!r} is registered") from None


_TYPE_CACHE: dict[tuple, Any] = {}


def infer_type(op: OpDef, types: tuple[TensorType, ...], attrs: dict):
    """The output type(s) of ``op`` on ``types``, memoised on (op, types, attrs).

    Errors are not cached: they are re-raised from the rule each time so the
    user sees the full message and traceback.
    """
    try:
        # the attributes' types too: 1, 1.0 and True are equal keys, but a rule may
        # type its result by them
        key = (op, types, tuple(attrs.items()), tuple(map(type, attrs.values()))) \
            if attrs else (op, types)
        return _TYPE_CACHE[key]
    except KeyError:
        pass
    except TypeError:  # an unhashable attribute: compute without the cache
        return op.type_rule(types, **attrs)
    result = op.type_rule(types, **attrs)
    if len(_TYPE_CACHE) > 200_000:
        _TYPE_CACHE.clear()
    _TYPE_CACHE[key] = result
    return result

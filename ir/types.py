"""Tensor types, devices, broadcasting and dim normalisation.

Every check here raises the exception type PyTorch raises, with a message
that names the shapes or dims involved, because op type rules call these
and users see the messages.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from ir.dtypes import DType, float32, scalar_dtype

__all__ = [
    "Device", "TensorType", "CPU", "scalar_type", "broadcast_shapes", "normalize_dim",
    "normalize_dims", "shape_str", "check_shape", "numel", "infer_size",
]


@dataclass(frozen=True, slots=True)
class Device:
    """A device, as ``torch.device``: ``Device('cpu')``, ``Device('cuda:0')``,
    ``Device('cuda', 1)``."""

    type: str
    index: int | None = None

    def __init__(self, type: str | Device, index: int | None = None):  # noqa: A002 - PyTorch's name
        if isinstance(type, Device):
            type, index = type.type, type.index if index is None else index
        if not isinstance(type, str):
            raise TypeError(f"device() expected a string or device, got {type!r}")
        if ":" in type:
            if index is not None:
                raise ValueError(f"type (string) must not include an index because index was "
                                 f"passed explicitly: {type}")
            type, _, idx = type.partition(":")
            if not idx.isdigit():
                raise RuntimeError(f"Invalid device string: '{type}:{idx}'")
            index = int(idx)
        if type not in ("cpu", "cuda"):
            raise RuntimeError(
                f"Expected one of cpu, cuda device type at start of device string: {type}")
        if index is not None and (not isinstance(index, int) or index < 0):
            raise RuntimeError(f"Device index must not be negative, got {index}")
        object.__setattr__(self, "type", type)
        object.__setattr__(self, "index", index)

    def __str__(self) -> str:
        return self.type if self.index is None else f"{self.type}:{self.index}"

    def __repr__(self) -> str:
        if self.index is None:
            return f"device(type='{self.type}')"
        return f"device(type='{self.type}', index={self.index})"

    def __eq__(self, other) -> bool:
        if isinstance(other, str):
            try:
                other = Device(other)
            except (RuntimeError, ValueError):
                return False
        if not isinstance(other, Device):
            return NotImplemented
        return self.type == other.type and self.index == other.index

    def __hash__(self) -> int:
        return hash((self.type, self.index))


CPU = Device("cpu")
# TensorType is defined below Device; CPU is its default device


class TensorType:
    """Shape, dtype and device of a value. ``weak`` marks a Python scalar operand,
    which takes part in type promotion with lower priority than tensors.

    Immutable by convention; a plain slotted class with a precomputed hash,
    because types are built and hashed on every recorded op.
    """

    __slots__ = ("shape", "dtype", "device", "weak", "_hash")

    def __init__(self, shape, dtype: DType, device: Device = None, weak: bool = False):
        self.shape = shape if type(shape) is tuple else tuple(shape)
        self.dtype = dtype
        self.device = CPU if device is None else device
        self.weak = weak
        self._hash = hash((self.shape, dtype, self.device, weak))

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other) -> bool:
        if self is other:
            return True
        if not isinstance(other, TensorType):
            return NotImplemented
        return (self._hash == other._hash and self.shape == other.shape
                and self.dtype is other.dtype
                and (self.device is other.device or self.device == other.device)
                and self.weak == other.weak)

    def __repr__(self) -> str:
        return (f"TensorType(shape={self.shape}, dtype={self.dtype!r}, device={self.device!r}"
                f"{', weak=True' if self.weak else ''})")

    def __reduce__(self):
        return (TensorType, (self.shape, self.dtype, self.device, self.weak))

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    def with_(self, shape: tuple[int, ...] | None = None, dtype: DType | None = None) -> TensorType:
        """A strong (non-weak) type on the same device with the given shape/dtype changed."""
        return TensorType(self.shape if shape is None else tuple(shape),
                          self.dtype if dtype is None else dtype, self.device)

    def __str__(self) -> str:
        dims = ",".join(str(s) for s in self.shape)
        text = f"{self.dtype.short}[{dims}]"
        if self.device.type != "cpu":
            text += f"@{self.device}"
        return text


@lru_cache(maxsize=64)
def _scalar_type_cached(dtype: DType) -> TensorType:
    return TensorType((), dtype, CPU, True)


_SCALAR_TYPES: dict[type, TensorType] = {}   # Python scalar type -> its weak type


def scalar_type(value) -> TensorType:
    """The weak type of a Python scalar operand (its value is not part of the type; its
    Python type alone decides it, so that is the memo's key)."""
    t = _SCALAR_TYPES.get(type(value))
    if t is None:
        t = _SCALAR_TYPES[type(value)] = _scalar_type_cached(scalar_dtype(value))
    return t


def shape_str(shape: Iterable[int]) -> str:
    """PyTorch's way of printing a shape in messages: ``[2, 3]``."""
    return "[" + ", ".join(str(s) for s in shape) + "]"


def numel(shape: Iterable[int]) -> int:
    return math.prod(shape)


@lru_cache(maxsize=4096)
def _broadcast_two(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...]:
    n = max(len(a), len(b))
    out = []
    for i in range(n):
        da = a[len(a) - n + i] if len(a) - n + i >= 0 else 1
        db = b[len(b) - n + i] if len(b) - n + i >= 0 else 1
        if da == db or db == 1:
            out.append(da)
        elif da == 1:
            out.append(db)
        else:
            raise RuntimeError(
                f"The size of tensor a ({da}) must match the size of tensor b ({db}) "
                f"at non-singleton dimension {i}")
    return tuple(out)


def broadcast_shapes(*shapes: Sequence[int]) -> tuple[int, ...]:
    """PyTorch broadcasting of any number of shapes (RuntimeError naming the sizes)."""
    result: tuple[int, ...] = ()
    for s in shapes:
        result = _broadcast_two(result, tuple(s))
    return result


def normalize_dim(dim: int, ndim: int) -> int:
    """Wrap a possibly negative dim; a 0-d tensor accepts -1 and 0, as in PyTorch."""
    if not isinstance(dim, int) or isinstance(dim, bool):
        raise TypeError(f"dim must be an int, got {type(dim).__name__}")
    n = max(ndim, 1)
    if dim < -n or dim >= n:
        raise IndexError(
            f"Dimension out of range (expected to be in range of [{-n}, {n - 1}], but got {dim})")
    return dim + n if dim < 0 else dim


def normalize_dims(dim, ndim: int) -> tuple[int, ...]:
    """Normalise ``None`` (all dims), an int, or a sequence of ints to a sorted tuple."""
    if dim is None:
        return tuple(range(ndim))
    if isinstance(dim, int) and not isinstance(dim, bool):
        return (normalize_dim(dim, ndim),) if ndim else ()
    dims = [normalize_dim(d, ndim) for d in dim]
    seen = set()
    for d in dims:
        if d in seen:
            raise RuntimeError(f"dim {d} appears multiple times in the list of dims")
        seen.add(d)
    if ndim == 0:
        return ()
    return tuple(sorted(dims))


def check_shape(shape) -> tuple[int, ...]:
    """Accept an int, a sequence of ints, or ``Size``; reject negatives like PyTorch."""
    if isinstance(shape, int) and not isinstance(shape, bool):
        shape = (shape,)
    try:
        dims = tuple(shape)
    except TypeError:
        raise TypeError(f"shape must be a sequence of ints, got {type(shape).__name__}") from None
    out = []
    for s in dims:
        if hasattr(s, "__index__") and not isinstance(s, bool):
            s = s.__index__()
        else:
            raise TypeError(f"shape elements must be ints, got {type(s).__name__}")
        if s < 0:
            raise RuntimeError(f"Trying to create tensor with negative dimension {s}: "
                               f"{shape_str(dims)}")
        out.append(s)
    return tuple(out)


def infer_size(shape: Sequence[int], total: int) -> tuple[int, ...]:
    """Resolve one ``-1`` in a reshape target (PyTorch's messages for bad targets)."""
    shape = tuple(shape)
    neg = [i for i, s in enumerate(shape) if s == -1]
    if len(neg) > 1:
        raise RuntimeError("only one dimension can be inferred")
    for s in shape:
        if s < -1:
            raise RuntimeError(f"invalid shape dimension {s}")
    known = math.prod(s for s in shape if s != -1)
    if neg:
        if known == 0 or total % known:
            raise RuntimeError(f"shape '{shape_str(shape)}' is invalid for input of size {total}")
        shape = shape[:neg[0]] + (total // known,) + shape[neg[0] + 1:]
    elif known != total:
        raise RuntimeError(f"shape '{shape_str(shape)}' is invalid for input of size {total}")
    return shape


DEFAULT_TYPE = TensorType((), float32)

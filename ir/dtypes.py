"""The dtype set and PyTorch's type-promotion rules.

Each :class:`DType` is a singleton; ``compgrad.float32`` is ``ir.dtypes.float32``.
Promotion follows ``torch.promote_types`` and ``torch.result_type``: operands
fall in three priority classes (tensors with dimensions, zero-dim tensors and
Python scalars, the "weak" wrapped numbers), and a lower class only changes
the result when it brings a higher category (bool < integer < floating).
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "DType", "float16", "float32", "float64", "int8", "int16", "int32", "int64",
    "uint8", "bool_", "ALL_DTYPES", "from_numpy_dtype", "as_dtype", "promote_types",
    "result_type", "can_cast", "default_float_dtype", "scalar_dtype",
    "CATEGORY_BOOL", "CATEGORY_INT", "CATEGORY_FLOAT",
]

CATEGORY_BOOL = 0
CATEGORY_INT = 1
CATEGORY_FLOAT = 2


class DType:
    """A tensor element type (``float32``, ``int64``, ``bool``, ...)."""

    __slots__ = ("name", "short", "np_dtype", "category", "itemsize", "is_signed", "_torch_name")

    def __init__(self, name: str, short: str, np_dtype: type, category: int, torch_name: str):
        self.name = name
        self.short = short
        self.np_dtype = np.dtype(np_dtype)
        self.category = category
        self.itemsize = self.np_dtype.itemsize
        self.is_signed = category != CATEGORY_BOOL and self.np_dtype.kind != "u"
        self._torch_name = torch_name

    @property
    def is_floating_point(self) -> bool:
        return self.category == CATEGORY_FLOAT

    @property
    def is_complex(self) -> bool:
        return False

    @property
    def torch_name(self) -> str:
        """PyTorch's spelling of the scalar type in messages (``Float``, ``Long``)."""
        return self._torch_name

    def to_real(self) -> DType:
        return self

    def __repr__(self) -> str:
        return f"compgrad.{self.name}"

    def __reduce__(self):
        return (as_dtype, (self.name,))


float16 = DType("float16", "f16", np.float16, CATEGORY_FLOAT, "Half")
float32 = DType("float32", "f32", np.float32, CATEGORY_FLOAT, "Float")
float64 = DType("float64", "f64", np.float64, CATEGORY_FLOAT, "Double")
int8 = DType("int8", "i8", np.int8, CATEGORY_INT, "Char")
int16 = DType("int16", "i16", np.int16, CATEGORY_INT, "Short")
int32 = DType("int32", "i32", np.int32, CATEGORY_INT, "Int")
int64 = DType("int64", "i64", np.int64, CATEGORY_INT, "Long")
uint8 = DType("uint8", "u8", np.uint8, CATEGORY_INT, "Byte")
bool_ = DType("bool", "bool", np.bool_, CATEGORY_BOOL, "Bool")

ALL_DTYPES: tuple[DType, ...] = (bool_, uint8, int8, int16, int32, int64, float16, float32, float64)
FLOAT_DTYPES: tuple[DType, ...] = (float16, float32, float64)
INT_DTYPES: tuple[DType, ...] = (uint8, int8, int16, int32, int64)

# PyTorch's aliases, exported by compgrad as module attributes.
ALIASES: dict[str, DType] = {
    "half": float16, "float": float32, "double": float64, "short": int16, "int": int32,
    "long": int64, "bool": bool_,
}

_BY_NAME: dict[str, DType] = {d.name: d for d in ALL_DTYPES} | ALIASES
_BY_NUMPY: dict[np.dtype, DType] = {d.np_dtype: d for d in ALL_DTYPES}
_PYTHON_TYPES: dict[type, DType] = {float: float64, int: int64, bool: bool_}


def from_numpy_dtype(np_dtype) -> DType:
    """The DType of a NumPy dtype; TypeError for types compgrad does not hold."""
    try:
        return _BY_NUMPY[np.dtype(np_dtype)]
    except (KeyError, TypeError):
        raise TypeError(
            f"can't convert np.ndarray of type {np.dtype(np_dtype)}. The only supported types "
            "are: float64, float32, float16, int64, int32, int16, int8, uint8, and bool."
        ) from None


def as_dtype(obj) -> DType:
    """Accept a DType, its name, or the Python types float/int/bool as PyTorch does."""
    if isinstance(obj, DType):
        return obj
    if isinstance(obj, str) and obj in _BY_NAME:
        return _BY_NAME[obj]
    if isinstance(obj, type) and obj in _PYTHON_TYPES:
        return _PYTHON_TYPES[obj]
    raise TypeError(f"dtype must be a compgrad.dtype (got {type(obj).__name__}: {obj!r})")


def default_float_dtype() -> DType:
    """The dtype Python floats and float factories produce (PyTorch's default dtype)."""
    return float32


def scalar_dtype(value) -> DType:
    """The dtype PyTorch gives a Python (or NumPy) scalar before weak promotion."""
    if isinstance(value, (bool, np.bool_)):
        return bool_
    if isinstance(value, (int, np.integer)):
        return int64
    if isinstance(value, (float, np.floating)):
        return float64
    raise TypeError(f"unsupported scalar type {type(value).__name__}")


def _promote_ints(a: DType, b: DType) -> DType:
    if a.is_signed == b.is_signed:
        return a if a.itemsize >= b.itemsize else b
    signed, unsigned = (a, b) if a.is_signed else (b, a)
    if signed.itemsize > unsigned.itemsize:
        return signed
    # uint8 with int8 -> int16, as in PyTorch; uint8 is the only unsigned type here.
    return {1: int16, 2: int32, 4: int64, 8: int64}[signed.itemsize]


def _promote_pair(a: DType, b: DType) -> DType:
    if a is b:
        return a
    if a.category != b.category:
        hi, lo = (a, b) if a.category > b.category else (b, a)
        return hi
    if a.category == CATEGORY_FLOAT:
        return a if a.itemsize >= b.itemsize else b
    return _promote_ints(a, b)


_PROMOTION_TABLE: dict[tuple[DType, DType], DType] = {
    (a, b): _promote_pair(a, b) for a in ALL_DTYPES for b in ALL_DTYPES
}


def promote_types(a: DType, b: DType) -> DType:
    """``torch.promote_types``: the smallest dtype both ``a`` and ``b`` convert to."""
    return _PROMOTION_TABLE[(a, b)]


def _combine_categories(higher: DType | None, lower: DType | None) -> DType | None:
    # c10's combine_categories: a lower-priority class only matters when it
    # brings a higher category than what the higher-priority class already has.
    if higher is None:
        return lower
    if lower is None:
        return higher
    if higher.category == CATEGORY_FLOAT:
        return higher
    if higher is bool_ or lower.category == CATEGORY_FLOAT:
        return promote_types(higher, lower)
    return higher


def result_type(*types) -> DType:
    """``torch.result_type`` over operand types.

    Each operand is anything with ``dtype``, ``ndim`` and ``weak`` attributes
    (``ir.types.TensorType``): ``weak`` marks a Python scalar.
    """
    dim = zero = weak = None
    for t in types:
        d = t.dtype
        if t.weak:
            if d.category == CATEGORY_FLOAT:
                d = default_float_dtype()
            weak = d if weak is None else promote_types(weak, d)
        elif t.ndim == 0:
            zero = d if zero is None else promote_types(zero, d)
        else:
            dim = d if dim is None else promote_types(dim, d)
    result = _combine_categories(dim, _combine_categories(zero, weak))
    if result is None:
        raise ValueError("result_type needs at least one operand")
    return result


def can_cast(from_: DType, to: DType) -> bool:
    """``torch.can_cast``: False only where the category would go down."""
    return from_.category <= to.category

# PyTorch's alias names as attributes (compgrad re-exports them)
half = float16
double = float64
short = int16
long = int64

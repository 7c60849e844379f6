"""What CuPy 14 has, as the emulator's tables: the dtypes an array can hold, the scalar types
a kernel takes, the NumPy functions, ufuncs and ufunc methods CuPy lacks or treats its own
way, and the arguments it reads on the host."""

from __future__ import annotations

import numpy as np

CUPY_VERSION_EMULATED = "14.0.0"

# dtypes a CuPy array can hold: bool, signed and unsigned ints, float16/32/64, complex64/128
_SUPPORTED_DTYPE_CHARS = "?bBhHiIlLqQefdFD"
# CuPy's _scalar.scalar_type_set: what a kernel takes as a scalar (exact types, no 0-d arrays)
_SCALAR_TYPES = frozenset({bool, int, float, complex}
                          | {np.dtype(c).type for c in _SUPPORTED_DTYPE_CHARS})

#: NumPy 2.4 functions dispatched through ``__array_function__`` that CuPy 14 lacks (not in
#: ``cupy/__init__.py``), by ``func.__name__``; NumPy's call raises TypeError ("no
#: implementation found"). ``np.concat`` and ``np.permute_dims`` are aliases of
#: ``concatenate``/``transpose`` there, so they dispatch (but ``cp.concat`` does not exist).
FUNCTIONS_CUPY_LACKS = frozenset({
    "apply_over_axes", "astype", "block", "busday_count", "busday_offset", "is_busday",
    "datetime_as_string", "cumulative_prod", "cumulative_sum", "einsum_path", "geomspace",
    "histogram_bin_edges", "insert", "matrix_transpose", "nanpercentile", "nanquantile",
    "polyder", "polydiv", "polyint", "trapezoid", "unique_all", "unique_counts",
    "unique_inverse", "unique_values", "unstack",
})
# NumPy 2's array-API additions to numpy.linalg, absent from cupy.linalg
_LINALG_CUPY_LACKS = frozenset({"matrix_norm", "vector_norm", "vecdot", "matrix_transpose",
                                "outer", "cross", "diagonal", "trace", "svdvals",
                                "tensordot", "matmul"})
# NumPy modules whose functions CuPy mirrors (``cupy.<module>.<name>`` is looked up)
_CUPY_MODULES = frozenset({"numpy", "numpy.linalg", "numpy.fft", "numpy.lib.stride_tricks"})
# names in NumPy's namespace but not in CuPy's (aliases NumPy 2 added)
_NAMESPACE_LACKS = FUNCTIONS_CUPY_LACKS | {
    "concat", "permute_dims", "acos", "acosh", "asin", "asinh", "atan", "atan2", "atanh",
    "pow", "bitwise_invert", "bitwise_left_shift", "bitwise_right_shift", "errstate",
    "seterr", "geterr", "frompyfunc", "asmatrix", "matrix", "memmap", "rec",
    "char", "strings", "ctypeslib", "ma", "typing", "emath", "dtypes", "f2py", "version",
}
# objects CuPy re-exports from NumPy (``cupy.float32 is numpy.float32``)
_BORROWED_FROM_NUMPY = frozenset({
    "e", "pi", "inf", "nan", "newaxis", "euler_gamma", "dtype", "finfo", "iinfo",
    "promote_types", "issubdtype", "mintypecode", "typename", "isscalar", "iterable",
    "broadcast_shapes", "ndindex", "index_exp", "s_", "get_printoptions",
    "set_printoptions", "printoptions", "binary_repr", "base_repr",
    "generic", "number", "integer", "signedinteger", "unsignedinteger", "inexact",
    "floating", "complexfloating", "bool_", "byte", "short", "intc", "int_", "longlong",
    "intp", "int8", "int16", "int32", "int64", "ubyte", "ushort", "uintc", "uint",
    "ulonglong", "uintp", "uint8", "uint16", "uint32", "uint64", "half", "single",
    "double", "float16", "float32", "float64", "csingle", "cdouble", "complex64",
    "complex128",
})

#: NumPy ufuncs (by ``ufunc.__name__``) with no CuPy counterpart: ``__array_ufunc__``
#: returns NotImplemented for them.
UFUNCS_CUPY_LACKS = frozenset({"bitwise_count", "isnat", "spacing", "vecdot", "matvec",
                               "vecmat"})
_UFUNC_METHODS = ("__call__", "outer", "at", "reduce", "accumulate", "reduceat")
_COMPARISONS = frozenset({"greater", "greater_equal", "less", "less_equal", "equal",
                          "not_equal"})
# ufunc.at: CuPy's scatter op per ufunc, and the dtypes its CUDA atomics take
_SCATTER_OPS = {"add": "add", "subtract": "sub", "maximum": "max", "minimum": "min",
                "bitwise_and": "and", "bitwise_or": "or", "bitwise_xor": "xor"}
_SCATTER_UFUNCS = {"add": np.add, "sub": np.subtract, "max": np.maximum, "min": np.minimum,
                   "and": np.bitwise_and, "or": np.bitwise_or, "xor": np.bitwise_xor}
_ADD_DTYPES = ("int32", "float16", "float32", "float64", "uint32", "uint64")
_MINMAX_DTYPES = ("int32", "float32", "float64", "uint32", "uint64")
_BITWISE_DTYPES = ("int32", "uint32", "uint64")
_SCATTER_DTYPES = {"add": _ADD_DTYPES, "sub": _ADD_DTYPES, "max": _MINMAX_DTYPES,
                   "min": _MINMAX_DTYPES, "and": _BITWISE_DTYPES, "or": _BITWISE_DTYPES,
                   "xor": _BITWISE_DTYPES}
_SCATTER_NAMES = {"add": "scatter_add", "sub": "scatter_sub", "max": "scatter_max",
                  "min": "scatter_min", "and": "scatter_and", "or": "scatter_or",
                  "xor": "scatter_xor"}

# reductions whose CuPy signatures have no ``where``/``initial``
_REDUCTIONS = frozenset({"sum", "prod", "mean", "std", "var", "max", "min", "amax", "amin",
                         "any", "all", "nansum", "nanprod", "nanmean", "nanstd", "nanvar",
                         "nanmax", "nanmin", "count_nonzero"})
# functions that only make views or read metadata: no kernel, so no device check
_NO_KERNEL_FUNCTIONS = frozenset({
    "reshape", "transpose", "swapaxes", "moveaxis", "rollaxis", "squeeze", "expand_dims",
    "broadcast_to", "broadcast_arrays", "atleast_1d", "atleast_2d", "atleast_3d", "shape",
    "ndim", "size", "result_type", "can_cast", "min_scalar_type", "diagonal", "real",
    "flip", "fliplr", "flipud", "rot90", "split", "array_split", "hsplit", "vsplit",
    "dsplit", "may_share_memory", "shares_memory", "iscomplexobj", "isrealobj", "isfortran",
    "sliding_window_view",
})
# functions whose output size depends on the data: CuPy synchronises and reads a count
_SYNCING_FUNCTIONS = frozenset({"nonzero", "argwhere", "flatnonzero", "unique", "extract",
                                "compress", "trim_zeros", "setdiff1d", "intersect1d",
                                "union1d", "setxor1d"})
# arguments CuPy accepts as host data: index arrays it copies to the device (counted) ...
_HOST_INDEX_ARGUMENTS = {"take": (1, "indices"), "put": (1, "indices"),
                         "take_along_axis": (1, "indices"),
                         "put_along_axis": (1, "indices", 2, "values")}
# ... and parameters it reads on the host (no copy)
_HOST_PARAMETERS = {"pad": (1, "pad_width"), "tile": (1, "reps"), "reshape": (1, "shape"),
                    "broadcast_to": (1, "shape"), "repeat": (1, "repeats"),
                    "split": (1, "indices_or_sections"),
                    "array_split": (1, "indices_or_sections")}

_IMPLICIT_CONVERSION = ("Implicit conversion to a NumPy array is not allowed. "
                        "Please use `.get()` to construct a NumPy array explicitly.")


def _check_dtype(dtype) -> np.dtype:
    """``dtype`` as a NumPy dtype, or CuPy's ValueError for a dtype it cannot hold."""
    dt = np.dtype(dtype)
    if dt.char not in _SUPPORTED_DTYPE_CHARS:
        raise ValueError(f"Unsupported dtype {dt}")
    return dt

"""How a kernel runs on a fake machine: CuPy's argument, keyword and device checks, then NumPy
computing the values into new C-contiguous arrays (or ``out``). Mixed into :class:`FakeCupy`
(``_ufunc_call`` is every ufunc and operator, ``_reduce`` every reduction)."""

from __future__ import annotations

import numpy as np

from ._array import _is_device_array
from ._rules import _SCALAR_TYPES


class _KernelsMixin:
    """:class:`FakeCupy`'s kernel methods (they use its bookkeeping: ``_own``,
    ``_check_device``, ``_new``)."""

    def _kernel_arg(self, x):
        """A kernel input: a device array on the current device, or a scalar."""
        if _is_device_array(x):
            self._check_device(self._own(x))
            return x._data
        if type(x) in _SCALAR_TYPES:
            return x
        raise TypeError(f"Unsupported type {type(x)}")

    def _kernel_out(self, x) -> np.ndarray:
        if not _is_device_array(x):
            raise TypeError(f"Unsupported type {type(x)}")
        self._check_device(self._own(x))
        return x._data

    def _ufunc_call(self, ufunc: np.ufunc, args: tuple, kwargs: dict):
        """CuPy's ``ufunc.__call__``: its keywords, argument checks and device checks, with
        NumPy computing the values into new C-contiguous arrays (or ``out``)."""
        kwargs = dict(kwargs)
        out = kwargs.pop("out", None)
        where = kwargs.pop("_where", None)
        dtype = kwargs.pop("dtype", None)
        casting = kwargs.pop("casting", "same_kind")
        name = f"cupy_{ufunc.__name__}"
        if kwargs:
            raise TypeError(f"Wrong arguments {kwargs}")
        nin, nout = ufunc.nin, ufunc.nout
        if not nin <= len(args) <= nin + nout:
            raise TypeError(f"Wrong number of arguments for {name!r}. It must be either {nin} "
                            f"or {nin + nout} (with outputs), but given {len(args)}.")
        ins, outs = args[:nin], tuple(args[nin:])
        if out is not None:
            if outs:
                raise ValueError("Cannot specify 'out' as both a positional and keyword "
                                 "argument")
            if isinstance(out, tuple):
                if len(out) != nout:
                    raise ValueError("The 'out' tuple must have exactly one entry per ufunc "
                                     "output")
                outs = out
            elif nout != 1:
                raise ValueError("'out' must be a tuple of arrays")
            else:
                outs = (out,)
        outs = outs + (None,) * (nout - len(outs))
        np_ins = [self._kernel_arg(x) for x in ins]
        np_outs = tuple(None if o is None else self._kernel_out(o) for o in outs)
        _check_boolean_arithmetic(ufunc, ins)
        options: dict = {"casting": casting, "order": "C"}
        if dtype is not None:
            options["dtype"] = dtype
        if where is not None:
            options["where"] = self._kernel_arg(where)
        if any(o is not None for o in np_outs):
            options["out"] = np_outs
        with np.errstate(all="ignore"):
            results = ufunc(*np_ins, **options)
        if nout == 1:
            results = (results,)
        wrapped = tuple(o if o is not None else self._new(r) for o, r in zip(outs, results))
        return wrapped if nout > 1 else wrapped[0]

    def _reduce(self, arr, np_func, out, **kwargs):
        """A reduction (or other kernel) of ``arr`` along CuPy's signature, into ``out``."""
        self._check_device(self._own(arr))
        if out is not None:
            kwargs["out"] = self._kernel_out(out)
        with np.errstate(all="ignore"):
            result = np_func(arr._data, **kwargs)
        return out if out is not None else self._new(result)

    def _arg_reduce(self, arr, np_func, axis, out, dtype, keepdims):
        result = self._reduce(arr, np_func, out, axis=axis, keepdims=keepdims)
        return result if dtype is None else result.astype(dtype, copy=False)


def _check_boolean_arithmetic(ufunc: np.ufunc, inputs: tuple) -> None:
    """CuPy's own errors for boolean negative/positive/subtract."""
    bools = [_is_device_array(x) and x.dtype == np.bool_ for x in inputs]
    if ufunc is np.negative and all(bools):
        raise TypeError("The cupy boolean negative, the `-` operator, is not supported, use "
                        "the `~` operator or the logical_not function instead.")
    if ufunc is np.positive and all(bools):
        raise TypeError("The cupy boolean positive, the `+` operator, is not supported.")
    if ufunc is np.subtract and all(bools):
        raise TypeError("cupy boolean subtract, the `-` operator, is deprecated, use the "
                        "bitwise_xor, the `^` operator, or the logical_xor function instead.")

"""Helpers to run the same call in compgrad and in PyTorch (the test-time oracle)."""

from __future__ import annotations

import numpy as np

import compgrad
from ir.dtypes import DType

try:  # PyTorch is an optional test-time oracle
    import torch
except ImportError:  # pragma: no cover - exercised where torch is missing
    torch = None


def convert(value, lib: str):
    """Turn NumPy arrays (and dtypes) inside ``value`` into ``lib``'s tensors."""
    if isinstance(value, np.ndarray):
        if lib == "compgrad":
            return compgrad.from_numpy(value)
        return torch.from_numpy(value)
    if isinstance(value, DType) and lib == "torch":
        return getattr(torch, value.name)
    if isinstance(value, list):
        return [convert(v, lib) for v in value]
    if isinstance(value, tuple):
        return tuple(convert(v, lib) for v in value)
    if isinstance(value, dict):
        return {k: convert(v, lib) for k, v in value.items()}
    return value


def resolve(lib, path: str):
    """``"add"`` -> lib.add; ``"nn.functional.gelu"``; ``"Tensor.view"`` (a method name)."""
    obj = lib
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj


def call(lib_name: str, path: str, args: tuple, kwargs: dict):
    lib = compgrad if lib_name == "compgrad" else torch
    args = convert(args, lib_name)
    kwargs = convert(kwargs, lib_name)
    if path.startswith("Tensor."):
        return getattr(args[0], path[len("Tensor."):])(*args[1:], **kwargs), args
    return resolve(lib, path)(*args, **kwargs), args


def to_numpy(value):
    """Results of either library as nested NumPy arrays / Python values."""
    if isinstance(value, compgrad.Tensor):
        return np.array(value._data)
    if torch is not None and isinstance(value, torch.Tensor):
        return value.detach().numpy().copy()
    if isinstance(value, (list, tuple)):
        return type(value)(to_numpy(v) for v in value) if not hasattr(value, "_fields") \
            else tuple(to_numpy(v) for v in value)
    return value


def dtype_name(value):
    if isinstance(value, compgrad.Tensor):
        return value.dtype.name
    if torch is not None and isinstance(value, torch.Tensor):
        return str(value.dtype).replace("torch.", "")
    return None


def tolerances(dtype_name_: str | None, rtol=None, atol=None):
    defaults = {"float16": (1e-2, 1e-2), "float32": (1e-4, 1e-5), "float64": (1e-7, 1e-9)}
    r, a = defaults.get(dtype_name_, (0, 0))
    return (r if rtol is None else rtol), (a if atol is None else atol)


def assert_same(ours, theirs, rtol=None, atol=None, where=""):
    """Values, shapes and dtypes of two results agree (recursively for tuples)."""
    if isinstance(ours, (list, tuple)):
        assert isinstance(theirs, (list, tuple)), f"{where}: tuple vs {type(theirs).__name__}"
        assert len(ours) == len(theirs), f"{where}: {len(ours)} outputs vs {len(theirs)}"
        for i, (a, b) in enumerate(zip(ours, theirs)):
            assert_same(a, b, rtol, atol, f"{where}[{i}]")
        return
    dn_ours, dn_theirs = dtype_name(ours), dtype_name(theirs)
    assert dn_ours == dn_theirs, f"{where}: dtype {dn_ours} vs torch {dn_theirs}"
    a, b = to_numpy(ours), to_numpy(theirs)
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        a, b = np.asarray(a), np.asarray(b)
        assert a.shape == b.shape, f"{where}: shape {a.shape} vs {b.shape}"
        r, t = tolerances(dn_ours, rtol, atol)
        if a.dtype.kind == "f":
            np.testing.assert_allclose(a, b, rtol=r, atol=t, equal_nan=True, err_msg=where)
        else:
            np.testing.assert_array_equal(a, b, err_msg=where)
    elif isinstance(a, float) or isinstance(b, float):
        assert np.isclose(a, b, rtol=1e-5, atol=1e-6, equal_nan=True), f"{where}: {a} vs {b}"
    else:
        assert a == b, f"{where}: {a!r} vs {b!r}"

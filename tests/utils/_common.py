"""Shared helpers for the compgrad.utils.data tests."""

from __future__ import annotations

import numpy as np

import compgrad


def norm(value):
    """A library-neutral form of a (nested) batch: tensors become (dtype name, shape,
    values); containers keep their kind so structure differences show up."""
    if isinstance(value, compgrad.Tensor) or type(value).__module__.startswith("torch"):
        if hasattr(value, "detach") and hasattr(value, "numpy"):
            arr = np.asarray(value.detach().numpy())
            return ("T", str(value.dtype).split(".")[-1], tuple(arr.shape), arr.tolist())
    if isinstance(value, tuple) and hasattr(value, "_fields"):
        return (type(value).__name__, *(norm(v) for v in value))
    if isinstance(value, tuple):
        return ("tuple", *(norm(v) for v in value))
    if isinstance(value, list):
        return [norm(v) for v in value]
    if isinstance(value, dict):
        return {k: norm(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return ("ndarray", value.dtype.str, value.tolist())
    return value

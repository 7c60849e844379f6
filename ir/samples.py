"""Sample-input makers for op records (used by the registry sweep).

Deterministic: every array comes from a generator seeded by the call's
arguments, so a failing sample reproduces.
"""

from __future__ import annotations

import zlib

import numpy as np

__all__ = ["arr", "noncontig", "ints", "bools", "positive", "unit", "distinct"]


def _rng(*key) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


def arr(*shape: int, dtype=np.float32, low: float = -2.0, high: float = 2.0,
        seed: int = 0) -> np.ndarray:
    """A float array uniform in [low, high) (ints are drawn in that range too)."""
    g = _rng(shape, np.dtype(dtype).name, low, high, seed)
    dt = np.dtype(dtype)
    if dt.kind == "b":
        return np.asarray(g.random(shape) < 0.5)
    if dt.kind in "iu":
        return g.integers(int(low), int(high), size=shape, endpoint=True).astype(dt)
    return g.uniform(low, high, size=shape).astype(dt)


def positive(*shape: int, dtype=np.float32, low: float = 0.2, high: float = 3.0,
             seed: int = 0) -> np.ndarray:
    """Strictly positive floats (for log, sqrt, pow bases)."""
    return arr(*shape, dtype=dtype, low=low, high=high, seed=seed)


def unit(*shape: int, dtype=np.float32, seed: int = 0) -> np.ndarray:
    """Floats in (-0.9, 0.9) (for asin, acos, atanh domains)."""
    return arr(*shape, dtype=dtype, low=-0.9, high=0.9, seed=seed)


def ints(*shape: int, dtype=np.int64, low: int = -5, high: int = 5, seed: int = 0) -> np.ndarray:
    return arr(*shape, dtype=dtype, low=low, high=high, seed=seed)


def bools(*shape: int, seed: int = 0) -> np.ndarray:
    return arr(*shape, dtype=np.bool_, seed=seed)


def noncontig(*shape: int, dtype=np.float32, low: float = -2.0, high: float = 2.0,
              seed: int = 0) -> np.ndarray:
    """A non-contiguous array of ``shape`` (a transposed view of a fresh array)."""
    if len(shape) < 2:
        base = arr(shape[0] * 2 if shape else 2, dtype=dtype, low=low, high=high, seed=seed)
        return base[::2] if shape else base[0:1].reshape(())
    base = arr(*reversed(shape), dtype=dtype, low=low, high=high, seed=seed)
    return base.T


def distinct(*shape, seed=0, dtype=np.float32) -> np.ndarray:
    """Distinct values in a random order: no ties, so the indices that sorting, selecting
    and index-returning reductions give are well defined."""
    n = int(np.prod(shape)) if shape else 1
    vals = np.random.default_rng(seed).permutation(n).astype(dtype)
    if np.dtype(dtype).kind == "f":
        vals = vals * 0.5 - n * 0.25
    return vals.reshape(shape)

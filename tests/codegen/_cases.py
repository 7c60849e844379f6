"""Elementwise calls for the scalar-expression tests: the (op, input types, attributes)
triples that the registry's samples apply, and input data for each dtype."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ir import dtypes
from ir.dispatch import interpreter
from ir.dtypes import DType
from ir.opdef import REGISTRY, OpKind, Sample
from ir.types import TensorType, scalar_type
from tests.oracle import call
from tests.recording import Recorder

N = 97   # elements per input array (odd, so vector loops run a remainder too)


@dataclass(frozen=True)
class Case:
    """One elementwise node: op name, per-input kind ('a' array, 'z' 0-d tensor, 'w' weak
    scalar) and type, attributes, the weak scalars' values, and the result dtype."""

    op: str
    kinds: tuple[str, ...]
    types: tuple[TensorType, ...]
    attrs: tuple
    scalars: tuple
    out: DType

    @property
    def signature(self) -> tuple:
        """What decides a kernel's arguments: the kind and dtype of each input."""
        return tuple((k, t.dtype.name) for k, t in zip(self.kinds, self.types))


def _input_type(x) -> tuple[str, TensorType]:
    if isinstance(x, np.ndarray):
        t = TensorType(x.shape, dtypes.from_numpy_dtype(x.dtype))
        return ("z" if x.ndim == 0 else "a"), t
    return "w", scalar_type(x.item() if isinstance(x, np.generic) else x)


def recorded_cases() -> list[Case]:
    """Every distinct elementwise call that the elementwise ops' registry samples apply,
    including ops applied by other ops' public functions (add with alpha applies mul)."""
    chosen = [op for op in REGISTRY.values() if op.kind is OpKind.ELEMENTWISE]
    seen: dict[tuple, Case] = {}
    for op in sorted(chosen, key=lambda o: o.name):
        for sample in op.samples() if op.samples else ():
            if not isinstance(sample, Sample):
                continue
            rec = Recorder()
            try:
                with interpreter(rec):
                    call("compgrad", op.public, sample.args, sample.kwargs)
            except Exception:  # the sweep in tests/test_ops.py reports failing samples
                continue
            for applied in rec.records:
                if applied.op.kind is not OpKind.ELEMENTWISE:
                    continue
                kinds, types = zip(*(_input_type(x) for x in applied.inputs))
                if len(kinds) == 1 and kinds[0] == "z":
                    kinds = ("a",)   # a lone 0-d input promotes as an array would
                scalars = tuple(x for x, k in zip(applied.inputs, kinds) if k == "w")
                out = dtypes.from_numpy_dtype(applied.outputs[0].dtype)
                attrs = tuple(sorted(applied.attrs.items(), key=lambda kv: kv[0]))
                case = Case(applied.op.name, kinds, types, attrs, scalars, out)
                key = (case.op, case.signature, repr(attrs), repr(scalars))
                seen.setdefault(key, case)
    return list(seen.values())


_FLOAT_SPECIALS = [0.0, -0.0, 1.0, -1.0, 0.5, -0.5, 1.5, -1.5, 2.5, -2.5, 2.0, 3.0, -3.0, 6.0,
                   1e-8, -1e-7, 1e-30, 30.0, -30.0, 100.0, -100.0, np.nan, np.inf, -np.inf]


def input_data(dtype: DType, position: int, n: int = N) -> np.ndarray:
    """``n`` values of ``dtype`` for input ``position``: specials (signed zeros, ties, nan,
    inf, extremes) and random values, different for each position."""
    rng = np.random.default_rng(1000 + position)
    if dtype.is_floating_point:
        specials = np.array(_FLOAT_SPECIALS, dtype.np_dtype)
        rest = rng.normal(0.0, 3.0, n - len(specials)).astype(dtype.np_dtype)
        data = np.concatenate([np.roll(specials, 5 * position), rest])
    elif dtype is dtypes.bool_:
        data = rng.random(n) < 0.5
    else:
        info = np.iinfo(dtype.np_dtype)
        specials = np.array([0, 1, 2, 3, info.max, info.min, 7], dtype.np_dtype)
        if info.min < 0:
            specials = np.concatenate([specials, np.array([-1, -2, -8], dtype.np_dtype)])
        low, high = max(info.min, -20), min(info.max, 70)
        rest = rng.integers(low, high + 1, n - len(specials)).astype(dtype.np_dtype)
        data = np.concatenate([np.roll(specials, position), rest])
    return np.ascontiguousarray(data[:n])

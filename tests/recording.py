"""Recording what a call applies: every op the eager interpreter runs, with its
inputs and outputs copied at the moment it ran (so in-place samples still check).
Shared by the registry sweep, the IR sweep and the autodiff sweep."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

import compgrad
from compgrad._eager import EAGER
from ir.dispatch import Interpreter

__all__ = ["Applied", "Recorder"]


class Applied(NamedTuple):
    """One apply: ``inputs``/``outputs`` are array copies taken when it ran."""

    op: object
    args: tuple
    inputs: tuple
    attrs: dict
    out: object
    outputs: tuple


class Recorder(Interpreter):
    """Delegates to the eager interpreter and remembers every apply in ``records``."""

    def __init__(self):
        self.records: list[Applied] = []

    def type_of(self, value):
        return EAGER.type_of(value)

    def apply(self, op, args, attrs):
        inputs = tuple(np.array(a._data) if isinstance(a, compgrad.Tensor) else a
                       for a in args)
        out = EAGER.apply(op, args, attrs)
        outs = out if isinstance(out, tuple) else (out,)
        self.records.append(Applied(op, args, inputs, attrs, out,
                                    tuple(np.array(o._data) for o in outs)))
        return out

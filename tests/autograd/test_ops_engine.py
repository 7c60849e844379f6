"""Every registered op through the autograd engine, in float64: first- and second-order
directional derivatives of ``backward`` against central finite differences.

This extends the registry sweep (tests/test_ops.py checks each VJP rule on its own); here the
public function runs eagerly with leaves that require grad, so composite functions, the
engine's accumulation and double backward (``create_graph=True``) are all exercised.
"""

from __future__ import annotations

import numpy as np
import pytest

import compgrad
from compgrad import autograd
from ir import dtypes
from ir.opdef import REGISTRY, OpKind, Sample
from tests.oracle import resolve

OPS = sorted(REGISTRY.values(), key=lambda op: op.name)
CASES = [pytest.param(op, i, id=f"{op.name}-{i}")
         for op in OPS if op.differentiable and op.kind is not OpKind.RANDOM
         for i, s in enumerate(op.samples() or ()) if isinstance(s, Sample) and s.grad]


def _to_f64(value):
    if isinstance(value, np.ndarray):
        return value.astype(np.float64) if value.dtype.kind == "f" else value.copy()
    if isinstance(value, dtypes.DType) and value.is_floating_point:
        return dtypes.float64
    if isinstance(value, list):
        return [_to_f64(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_to_f64(v) for v in value)
    if isinstance(value, dict):
        return {k: _to_f64(v) for k, v in value.items()}
    return value


class Call:
    """The sample's call with float arrays as float64 leaves that can be moved along
    directions."""

    def __init__(self, op, sample):
        self.path = op.public
        self.args = _to_f64(sample.args)
        self.kwargs = _to_f64(sample.kwargs)
        self.float_arrays = []
        self._collect(self.args)
        self._collect(self.kwargs)

    def _collect(self, value):
        if isinstance(value, np.ndarray):
            if value.dtype.kind == "f" and value.size:
                self.float_arrays.append(value)
        elif isinstance(value, (list, tuple)):
            for v in value:
                self._collect(v)
        elif isinstance(value, dict):
            for v in value.values():
                self._collect(v)

    def _convert(self, value, arrays, leaves):
        if isinstance(value, np.ndarray):
            for a, t in zip(arrays, leaves):
                if a is value:
                    return t
            return compgrad.tensor(value)
        if isinstance(value, list):
            return [self._convert(v, arrays, leaves) for v in value]
        if isinstance(value, tuple):
            return tuple(self._convert(v, arrays, leaves) for v in value)
        if isinstance(value, dict):
            return {k: self._convert(v, arrays, leaves) for k, v in value.items()}
        return value

    def run(self, leaves):
        args = self._convert(self.args, self.float_arrays, leaves)
        kwargs = self._convert(self.kwargs, self.float_arrays, leaves)
        if self.path.startswith("Tensor."):
            name = self.path[len("Tensor."):]
            if name.endswith("_") and isinstance(args[0], compgrad.Tensor):
                args = (args[0] * 1,) + tuple(args[1:])   # in-place methods need a non-leaf
            out = getattr(args[0], name)(*args[1:], **kwargs)
        else:
            out = resolve(compgrad, self.path)(*args, **kwargs)
        outs = out if isinstance(out, (tuple, list)) else (out,)
        return [o for o in outs if isinstance(o, compgrad.Tensor) and o.dtype.is_floating_point]


def _leaves(arrays, shifts=None, t=0.0):
    out = []
    for i, a in enumerate(arrays):
        moved = a if shifts is None else a + t * shifts[i]
        out.append(compgrad.tensor(moved, requires_grad=True))
    return out


def _dot(tensors, arrays) -> float:
    return float(sum(np.sum(t.detach().numpy() * a) for t, a in zip(tensors, arrays)
                     if t is not None))


@pytest.mark.parametrize("op,index", CASES)
def test_engine_gradients_match_finite_differences(op, index):
    sample = list(op.samples())[index]
    call = Call(op, sample)
    if not call.float_arrays:
        pytest.skip("no float inputs")
    rng = np.random.default_rng(index)
    leaves = _leaves(call.float_arrays)
    outs = call.run(leaves)
    used = [k for k, o in enumerate(outs) if o.requires_grad]
    if not used:
        pytest.skip("no differentiable outputs")
    cots = {k: rng.standard_normal(tuple(outs[k].shape)) for k in used}
    dirs = [rng.standard_normal(a.shape) for a in call.float_arrays]

    def loss(ls):
        run = call.run(ls)
        return sum((run[k] * compgrad.tensor(c)).sum() for k, c in cots.items())

    first = autograd.grad(loss(leaves), leaves, allow_unused=True, create_graph=True)
    h = 1e-6
    with compgrad.no_grad():
        plus = loss(_leaves(call.float_arrays, dirs, h)).item()
        minus = loss(_leaves(call.float_arrays, dirs, -h)).item()
    numeric = (plus - minus) / (2 * h)
    analytic = _dot(first, dirs)
    assert abs(analytic - numeric) <= 1e-5 * max(1.0, abs(numeric)), (
        f"first order: engine {analytic}, finite differences {numeric}")

    # second order: d/dt <grad(x + t d), r> against <grad(<grad, r>), d>
    rs = [rng.standard_normal(a.shape) for a in call.float_arrays]
    s = sum((g * compgrad.tensor(r)).sum() for g, r in zip(first, rs) if g is not None)
    if not isinstance(s, compgrad.Tensor) or not s.requires_grad:
        return  # the gradient does not depend on the inputs: nothing more to check

    def first_dot_r(t):
        ls = _leaves(call.float_arrays, dirs, t)
        gs = autograd.grad(loss(ls), ls, allow_unused=True)
        return _dot(gs, rs)

    second = autograd.grad(s, leaves, allow_unused=True)
    h2 = 1e-5
    numeric2 = (first_dot_r(h2) - first_dot_r(-h2)) / (2 * h2)
    analytic2 = _dot(second, dirs)
    assert abs(analytic2 - numeric2) <= 1e-4 * max(1.0, abs(numeric2)), (
        f"second order: engine {analytic2}, finite differences {numeric2}")

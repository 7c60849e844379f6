"""Zero-safe derivatives of ``prod`` and ``cumprod`` of every order (internal ops).

Dividing by the input breaks at zeros, so these ops never divide. They compute
mixed directional derivatives of slice products exactly: with ``E_j = x_j +
t_1 h1_j + ... + t_r hr_j`` over the truncated polynomial ring where every
``t_l**2 = 0``, the coefficient of ``t_1 ... t_r`` in a product of ``E_j`` is the
directional derivative ``D_h1 ... D_hr`` of the product of ``x_j``. Ring
elements are arrays with a trailing axis of ``2**r`` coefficients (indexed by
subset bitmask); products use exclusive prefix and suffix products, so a slice
of ``n`` elements costs ``O(n 3**r)`` vectorised steps.

* ``_prod_others_grad(x, *hs, dim)``: ``grad_x (D_hs P)``, ``P`` the product of
  each slice over ``dim`` (``hs = ()`` is ``_prod_others``, prod's gradient).
* ``_cumprod_grad(x, w, *hs, dim)``: ``grad_x sum_i w_i (D_hs C)_i``, ``C`` the
  cumulative product along ``dim`` (``hs = ()`` is cumprod's VJP).
* ``_cumprod_jvp(x, *hs, dim)``: ``D_hs C``.

The three are closed under differentiation (each VJP below adds the
cotangent as one more direction), so derivatives of any order are exact at
zeros, like PyTorch's.
"""

from __future__ import annotations

import numpy as np

from ir.opdef import Sample
from ir.ops._util import OpDef, OpKind, apply, cast, common_device, register
from ir.samples import arr
from ir.types import TensorType

__all__: list[str] = []
INTERNAL = ("_prod_others_grad", "_cumprod_grad", "_cumprod_jvp")


# --- the NumPy kernel --------------------------------------------------------------------

def _pairs(r: int) -> list[list[tuple[int, int]]]:
    """For each mask S of r bits: the (A, S ^ A) splits of S into a submask and its rest."""
    out = []
    for s in range(1 << r):
        subs, a = [], s
        while True:
            subs.append((a, s ^ a))
            if a == 0:
                break
            a = (a - 1) & s
        out.append(subs)
    return out


def _ring_mul(a, b, pairs):
    return np.stack([sum(a[..., i] * b[..., j] for i, j in split) for split in pairs], axis=-1)


def _full_coeff(a, b, full: int):
    """The coefficient of t_1 ... t_r in ``a * b``."""
    return sum(a[..., i] * b[..., full ^ i] for i in range(full + 1))


def _elements(x, hs):
    """The ring elements E_j of the flat slices: shape (B, n, 2**r)."""
    r = len(hs)
    e = np.zeros_like(x, shape=x.shape + (1 << r,))
    e[..., 0] = x
    for k, h in enumerate(hs):
        e[..., 1 << k] = h
    return e


def _unit(x, r: int, value=None):
    """The ring's unit (or ``value`` times it) for each of ``x``'s ``batch`` slices, on
    ``x``'s device."""
    u = np.zeros_like(x, shape=(x.shape[0], 1 << r))
    u[:, 0] = 1 if value is None else value
    return u


def _grad_kernel(x, hs, w):
    """``grad_x`` of ``D_hs`` of the slice products (w None: the whole product) or of
    ``sum_i w_i D_hs C_i`` (C the prefix products); x, hs, w: (B, n)."""
    r = len(hs)
    batch, n = x.shape
    pairs, full = _pairs(r), (1 << r) - 1
    e = _elements(x, hs)
    left = [_unit(x, r)]
    for j in range(n - 1):
        left.append(_ring_mul(left[-1], e[:, j], pairs))
    out = np.empty_like(x)
    right = _unit(x, r, None if w is None else w[:, n - 1])
    for k in range(n - 1, -1, -1):
        out[:, k] = _full_coeff(left[k], right, full)
        if k:
            right = _ring_mul(e[:, k], right, pairs)
            if w is not None:
                right[:, 0] += w[:, k - 1]
    return out


def _jvp_kernel(x, hs):
    """``D_hs C``: the directional derivative of the prefix products; x, hs: (B, n)."""
    r = len(hs)
    batch, n = x.shape
    pairs, full = _pairs(r), (1 << r) - 1
    e = _elements(x, hs)
    acc = _unit(x, r)
    out = np.empty_like(x)
    for j in range(n):
        acc = _ring_mul(acc, e[:, j], pairs)
        out[:, j] = acc[:, full]
    return out


def _to_slices(a, dims):
    """Move ``dims`` last and flatten: (B, n) and the pieces to undo it."""
    rest = [i for i in range(a.ndim) if i not in dims]
    moved = np.transpose(a, rest + list(dims))
    return moved.reshape(-1, int(np.prod(moved.shape[len(rest):], dtype=np.int64))), \
        (moved.shape, rest + list(dims))


def _from_slices(flat, info):
    shape, perm = info
    return np.transpose(flat.reshape(shape), tuple(np.argsort(perm).tolist()))


def _prepare(x, others):
    dt = np.result_type(x, *others)
    if dt.kind != "f":
        dt = np.dtype(np.float64)
    return x.astype(dt), [np.broadcast_to(cast(o, dt), x.shape) for o in others]


# --- the ops -----------------------------------------------------------------------------

def _same_rule(types, dim):
    x = types[0]
    for t in types[1:]:
        if t.shape != x.shape:
            raise RuntimeError(f"internal product derivative: direction of shape {t.shape} "
                               f"for an input of shape {x.shape}")
    return TensorType(x.shape, x.dtype, common_device(types))


def _prod_others_grad_impl(x, *hs, dim):
    x, hs = _prepare(x, hs)
    if x.size == 0:
        return np.zeros_like(x)
    if not dim:   # slices of one element: D_hs of x_j itself
        return np.ones_like(x) if not hs else np.zeros_like(x)
    flat, info = _to_slices(x, dim)
    out = _grad_kernel(flat, [_to_slices(h, dim)[0] for h in hs], None)
    return _from_slices(out, info)


def _others_vjp(ctx, c, fn, fixed: int):
    """VJP of an op whose inputs are x, ``fixed - 1`` fixed ones, then directions: the
    cotangent ``c`` becomes one more direction (for x) or replaces a direction."""
    dim = ctx.attrs["dim"]
    need = ctx.needs_input_grad
    x = ctx.inputs[0]
    head = tuple(ctx.inputs[1:fixed])
    hs = tuple(ctx.inputs[fixed:])
    grads = [fn(x, *head, *hs, c, dim=dim) if need[0] else None]
    grads += [None] * (fixed - 1)
    for j in range(len(hs)):
        grads.append(fn(x, *head, *hs[:j], c, *hs[j + 1:], dim=dim)
                     if need[fixed + j] else None)
    return tuple(grads)


def _prod_others_grad_vjp(ctx, c):
    return _others_vjp(ctx, c, _prod_others_grad, 1)


def _prod_others_grad_samples():
    note = "internal op"
    yield Sample((arr(3, 4, low=0.5, high=2.0), arr(3, 4, seed=1)), {"dim": (1,)},
                 torch=False, note=note)
    yield Sample((arr(2, 3, 4), arr(2, 3, 4, seed=1)), {"dim": (0, 2)}, torch=False, note=note)
    zeros = np.array([[2.0, 0.0, 3.0, 0.0, 5.0], [1.5, -1.0, 0.0, 2.0, 0.5],
                      [0.0, 0.0, 0.0, 1.0, 2.0]])
    yield Sample((zeros, arr(3, 5, dtype=np.float64, seed=2)), {"dim": (1,)}, torch=False,
                 note="zeros: no division")
    yield Sample((zeros, arr(3, 5, dtype=np.float64, seed=3), arr(3, 5, dtype=np.float64)),
                 {"dim": (1,)}, torch=False, note="zeros, two directions")
    yield Sample((arr(3), arr(3, seed=1)), {"dim": ()}, torch=False, note=note)


PROD_OTHERS_GRAD = register(OpDef(
    "_prod_others_grad", OpKind.REDUCTION, _same_rule, _prod_others_grad_impl,
    _prod_others_grad_vjp, _prod_others_grad_samples, public="_ops._prod_others_grad"))


def _prod_others_grad(input, *hs, dim):
    """Internal: ``grad_x`` of ``D_h1 ... D_hr`` of each slice's product over ``dim``."""
    return apply(PROD_OTHERS_GRAD, input, *hs, dim=tuple(dim))


def _scan_slices(x, others, dim):
    x, others = _prepare(x, others)
    if x.ndim == 0:
        return x.reshape(1, 1), [o.reshape(1, 1) for o in others], None
    flat, info = _to_slices(x, (dim,))
    return flat, [_to_slices(o, (dim,))[0] for o in others], info


def _unslice(out, x, info):
    return out.reshape(np.shape(x)) if info is None else _from_slices(out, info)


def _cumprod_grad_impl(x, w, *hs, dim):
    if np.size(x) == 0:
        return np.zeros_like(x, dtype=np.result_type(x, w))
    flat, (fw, *fh), info = _scan_slices(x, (w, *hs), dim)
    if not fh and np.all(flat != 0):   # first order without zeros: one pass, as PyTorch
        cum = np.cumprod(flat, axis=-1)
        out = np.flip(np.cumsum(np.flip(fw * cum, -1), -1), -1) / flat
    else:
        out = _grad_kernel(flat, fh, fw)
    return _unslice(out, x, info)


def _cumprod_grad_vjp(ctx, c):
    grads = list(_others_vjp(ctx, c, _cumprod_grad, 2))
    if ctx.needs_input_grad[1]:
        grads[1] = _cumprod_jvp(ctx.inputs[0], *ctx.inputs[2:], c, dim=ctx.attrs["dim"])
    return tuple(grads)


def _zeros_2d():
    return np.array([[2.0, 0.0, 3.0, 0.0, 5.0], [1.5, -1.0, 0.0, 2.0, 0.5],
                     [0.0, 0.0, 0.0, 1.0, 2.0]])


def _cumprod_internal_samples(three_inputs_note: str):
    """Samples shared by the internal cumprod derivative ops (``_cumprod_grad``,
    ``_cumprod_jvp``): ``x`` with one, then two, more tensors of its shape (the last
    sample's note, ``three_inputs_note``, says what the third is to the op)."""
    yield Sample((arr(3, 4, low=0.5, high=1.5), arr(3, 4, seed=1)), {"dim": 1}, torch=False,
                 note="internal op")
    yield Sample((_zeros_2d(), arr(3, 5, dtype=np.float64, seed=1)), {"dim": 1}, torch=False,
                 note="zeros")
    yield Sample((_zeros_2d(), arr(3, 5, dtype=np.float64, seed=1),
                  arr(3, 5, dtype=np.float64, seed=2)), {"dim": 0}, torch=False,
                 note=three_inputs_note)


def _cumprod_grad_samples():
    note = "internal op"
    yield from _cumprod_internal_samples("zeros, one direction")
    yield Sample((arr(), arr(seed=1)), {"dim": 0}, torch=False, note=note)


CUMPROD_GRAD = register(OpDef(
    "_cumprod_grad", OpKind.OPAQUE, _same_rule, _cumprod_grad_impl, _cumprod_grad_vjp,
    _cumprod_grad_samples, public="_ops._cumprod_grad"))


def _cumprod_grad(input, weights, *hs, dim):
    """Internal: ``grad_x sum_i weights_i (D_h1 ... D_hr cumprod(x))_i`` along ``dim``."""
    return apply(CUMPROD_GRAD, input, weights, *hs, dim=int(dim))


def _cumprod_jvp_impl(x, *hs, dim):
    if np.size(x) == 0:
        return np.zeros_like(x, dtype=np.result_type(x, *hs))
    flat, fh, info = _scan_slices(x, hs, dim)
    return _unslice(_jvp_kernel(flat, fh), x, info)


def _cumprod_jvp_vjp(ctx, c):
    dim = ctx.attrs["dim"]
    need = ctx.needs_input_grad
    x = ctx.inputs[0]
    hs = tuple(ctx.inputs[1:])
    grads = [_cumprod_grad(x, c, *hs, dim=dim) if need[0] else None]
    for j in range(len(hs)):
        grads.append(_cumprod_grad(x, c, *hs[:j], *hs[j + 1:], dim=dim)
                     if need[1 + j] else None)
    return tuple(grads)


def _cumprod_jvp_samples():
    yield from _cumprod_internal_samples("zeros, two directions")


CUMPROD_JVP = register(OpDef(
    "_cumprod_jvp", OpKind.OPAQUE, _same_rule, _cumprod_jvp_impl, _cumprod_jvp_vjp,
    _cumprod_jvp_samples, public="_ops._cumprod_jvp"))


def _cumprod_jvp(input, *hs, dim):
    """Internal: ``D_h1 ... D_hr cumprod(x)`` along ``dim`` (r >= 1)."""
    return apply(CUMPROD_JVP, input, *hs, dim=int(dim))

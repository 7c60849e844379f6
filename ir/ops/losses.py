"""Loss functions (``compgrad.nn.functional``): mse, l1, smooth_l1, huber, nll,
cross_entropy, binary_cross_entropy (with and without logits), kl_div.

``nll_loss`` and ``binary_cross_entropy`` are primitives: nll picks one log-probability
per target (its gradient is a scaled one-hot, written with ops), and bce clamps its logs
at -100 with PyTorch's backward formula. ``cross_entropy`` is the stable
``log_softmax`` + ``nll_loss`` (or, for probability targets and label smoothing,
PyTorch's own composition); the others are compositions of elementwise ops and
reductions, so their gradients come from those ops.

Checks that read values (a target out of range, probabilities outside [0, 1]) happen in
the NumPy kernels, never in the public functions, so tracing a graph stays possible.
"""

from __future__ import annotations

import warnings

import numpy as np

from ir import dtypes
from ir.opdef import ErrorSample, Sample
from ir.ops._util import (
    OpDef,
    OpKind,
    apply,
    arange_like,
    common_device,
    promote_operands,
    register,
    type_of,
)
from ir.samples import arr, ints, noncontig, positive
from ir.types import TensorType, shape_str

__all__: list[str] = []
METHODS: tuple[str, ...] = ()
INPLACE: tuple[str, ...] = ()
FUNCTIONAL = ("mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss", "nll_loss",
              "cross_entropy", "binary_cross_entropy", "binary_cross_entropy_with_logits",
              "kl_div")
INTERNAL = ("nll_target", "nll_loss_backward")

_REDUCTIONS = ("none", "mean", "sum")


def _reduction(reduction: str, size_average=None, reduce=None) -> str:
    """PyTorch's ``_Reduction``: the legacy flags override ``reduction`` (with a warning)."""
    if size_average is not None or reduce is not None:
        size_average = True if size_average is None else size_average
        reduce = True if reduce is None else reduce
        ret = "mean" if size_average and reduce else "sum" if reduce else "none"
        warnings.warn("size_average and reduce args will be deprecated, please use "
                      f"reduction='{ret}' instead.", UserWarning, stacklevel=4)
        return ret
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{reduction} is not a valid value for reduction")
    return reduction


def _reduce(loss, reduction: str):
    from ir import ops
    if reduction == "mean":
        return ops.mean(loss)
    if reduction == "sum":
        return ops.sum(loss)
    return loss


def _warn_size(input, target) -> None:
    ti, tt = type_of(input), type_of(target)
    if ti.shape != tt.shape:
        warnings.warn(f"Using a target size ({shape_str(tt.shape)}) that is different to the "
                      f"input size ({shape_str(ti.shape)}). This will likely lead to incorrect "
                      "results due to broadcasting. Please ensure they have the same size.",
                      UserWarning, stacklevel=3)


def _weighted(loss, input, weight, reduction: str, normalize: bool):
    """PyTorch's per-element ``weight`` of mse/l1/huber: same shape as input; the mean
    divides by ``sum(weight)`` (mse, l1) or by the element count (huber)."""
    from ir import ops
    if type_of(weight).shape != type_of(input).shape:
        raise ValueError("Weights and input must have the same size.")
    loss = ops.mul(loss, weight)
    if reduction == "none":
        return loss
    if reduction == "sum":
        return ops.sum(loss)
    if reduction == "mean":
        return ops.div(ops.sum(loss), ops.sum(weight)) if normalize else ops.mean(loss)
    raise ValueError(f"Invalid reduction mode: {reduction}. Expected one of 'none', 'mean', "
                     "'sum'.")


def _check_float(dtype, kernel: str) -> None:
    if dtype.category != dtypes.CATEGORY_FLOAT:
        raise NotImplementedError(f"\"{kernel}\" not implemented for '{dtype.torch_name}'")


# --- regression losses (compositions) ------------------------------------------------------

def mse_loss(input, target, size_average=None, reduce=None, reduction: str = "mean",
             weight=None):
    """Mean squared error ``(input - target) ** 2`` (they broadcast, with a warning)."""
    from ir import ops
    _warn_size(input, target)
    if size_average is not None or reduce is not None:
        reduction = _reduction(reduction, size_average, reduce)
    loss = ops.square(ops.sub(input, target))
    if weight is not None:
        return _weighted(loss, input, weight, reduction, True)
    _check_float(promote_operands(input, target), "mse_cpu")
    return _reduce(loss, _reduction(reduction))


def l1_loss(input, target, size_average=None, reduce=None, reduction: str = "mean",
            weight=None):
    """Mean absolute error ``|input - target|`` (they broadcast, with a warning)."""
    from ir import ops
    _warn_size(input, target)
    if size_average is not None or reduce is not None:
        reduction = _reduction(reduction, size_average, reduce)
    loss = ops.abs(ops.sub(input, target))
    if weight is not None:
        return _weighted(loss, input, weight, reduction, True)
    return _reduce(loss, _reduction(reduction))


def _smooth(input, target, beta: float, scale_quadratic: bool):
    from ir import ops
    d = ops.abs(ops.sub(input, target))
    # smooth_l1: 0.5 d^2 / beta below beta, d - beta/2 above;
    # huber: 0.5 d^2 below delta, delta (d - delta/2) above
    quad = ops.mul(ops.square(d), 0.5 / beta if scale_quadratic else 0.5)
    lin = ops.sub(d, 0.5 * beta)
    if not scale_quadratic:
        lin = ops.mul(lin, beta)
    return ops.where(ops.lt(d, beta), quad, lin)


def smooth_l1_loss(input, target, size_average=None, reduce=None, reduction: str = "mean",
                   beta: float = 1.0):
    """Squared error below ``beta`` (scaled by ``1 / beta``), absolute error above."""
    _warn_size(input, target)
    reduction = _reduction(reduction, size_average, reduce)
    if beta < 0:
        raise RuntimeError("smooth_l1_loss does not support negative values for beta.")
    if beta == 0.0:
        return l1_loss(input, target, reduction=reduction)
    _check_float(promote_operands(input, target), "smooth_l1_cpu")
    return _reduce(_smooth(input, target, float(beta), True), reduction)


def huber_loss(input, target, reduction: str = "mean", delta: float = 1.0, weight=None):
    """Squared error below ``delta``, ``delta``-scaled absolute error above."""
    _warn_size(input, target)
    if weight is None:
        reduction = _reduction(reduction)
    if delta <= 0:
        raise RuntimeError("huber_loss does not support non-positive values for delta.")
    _check_float(promote_operands(input, target), "huber_cpu")
    loss = _smooth(input, target, float(delta), False)
    ti = type_of(input)
    if ti.dtype.category == dtypes.CATEGORY_FLOAT and type_of(loss).dtype is not ti.dtype:
        from ir import ops
        loss = ops.to_dtype(loss, ti.dtype)   # PyTorch's huber_loss keeps the input's dtype
    if weight is not None:
        return _weighted(loss, input, weight, reduction, False)
    return _reduce(loss, reduction)


# --- nll_loss (primitive) ----------------------------------------------------------------

def _nll_rule(types, reduction, ignore_index, has_weight):
    device = common_device(types)
    x, t = types[0], types[1]
    if reduction == "none":
        shape = t.shape if x.ndim > 1 else ()
    else:
        shape = ()
    return TensorType(shape, x.dtype, device)


def _nll_pick(x, t, ignore_index, weight):
    """(-x[target] per target, weight per target with ignored ones 0), in target's shape."""
    c = x.shape[0] if x.ndim == 1 else x.shape[1]
    safe, valid = _checked_targets(t, c, ignore_index)
    if x.ndim == 1:
        picked = x[safe]
    elif x.ndim == 2:   # (an index per row: what take_along_axis does, without its set-up)
        picked = x[np.arange(x.shape[0]), safe]
    else:
        picked = np.squeeze(np.take_along_axis(x, np.expand_dims(safe, 1), axis=1), 1)
    w = (weight[safe] if weight is not None else np.ones_like(x, shape=safe.shape)) * valid
    return -picked * w, w.astype(x.dtype, copy=False)


def _nll_impl(x, t, *weight, reduction, ignore_index, has_weight):
    loss, w = _nll_pick(x, t, ignore_index, weight[0] if has_weight else None)
    if x.ndim == 1:   # unbatched: a target of shape (1,) gives a 0-d loss too
        loss, w = loss.reshape(()), w.reshape(())
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    return loss.sum() / w.sum()  # 0 / 0 = nan when every target is ignored (ir.fperr quiet)


def _nll_vjp(ctx, g):
    if ctx.attrs["has_weight"] and ctx.needs_input_grad[2]:
        # PyTorch has no derivative for the class weights either; never drop it silently
        raise RuntimeError("The function 'nll_loss_forward' is not differentiable with respect "
                           "to argument 'weight'. This input cannot have requires_grad True.")
    weight = (ctx.inputs[2],) if ctx.attrs["has_weight"] else ()
    grad = nll_loss_backward(g, ctx.inputs[1], *weight, input_shape=ctx.input_types[0].shape,
                             reduction=ctx.attrs["reduction"],
                             ignore_index=ctx.attrs["ignore_index"])
    return (grad, None) + ((None,) if ctx.attrs["has_weight"] else ())


# --- nll_loss_backward: the gradient of nll_loss's input, as one op ----------------------
#
# Eagerly one NumPy computation instead of the dozen ops of its primitive form (which
# cost ~140 us of dispatch on a [32, 10] batch); passes.decompose rewrites it into that
# primitive form (nll_loss_backward_primitives), so compiled programs fuse it as before.

def _nll_backward_rule(types, input_shape, reduction, ignore_index, has_weight):
    return TensorType(tuple(input_shape), types[0].dtype, common_device(types))


def _nll_backward_impl(g, target, *weight, input_shape, reduction, ignore_index, has_weight):
    # the arithmetic of nll_loss_backward_primitives, op for op, on arrays
    ndim = len(input_shape)
    c = input_shape[0 if ndim == 1 else 1]
    safe, valid = _checked_targets(target, c, ignore_index)
    coef = valid.astype(g.dtype) * (weight[0][safe] if has_weight else 1.0)
    if reduction == "mean":
        coef = coef / np.add.reduce(coef, axis=tuple(range(coef.ndim)))
    coef = -(coef * g)
    classes = arange_like(c, g)
    if ndim > 2:
        classes = classes.reshape((c,) + (1,) * (ndim - 2))
    if ndim > 1:   # (unsqueeze(1) as reshapes: np.expand_dims is Python-heavy)
        safe = safe.reshape(safe.shape[:1] + (1,) + safe.shape[1:])
        coef = coef.reshape(coef.shape[:1] + (1,) + coef.shape[1:])
    else:
        safe, coef = safe.reshape(()), coef.reshape(())
    return np.where(classes == safe, coef, 0.0).astype(g.dtype, copy=False)


def _nll_backward_vjp(ctx, gg):
    # linear in its incoming gradient: the VJP is nll_loss of the cotangent (PyTorch's
    # derivative of nll_loss_backward), nothing for the targets and weights
    has_weight = ctx.attrs["has_weight"]
    if has_weight and ctx.needs_input_grad[2]:
        raise RuntimeError("The function 'nll_loss_backward' is not differentiable with "
                           "respect to argument 'weight'. This input cannot have "
                           "requires_grad True.")
    args = (gg, ctx.inputs[1]) + ((ctx.inputs[2],) if has_weight else ())
    gy = apply(NLL_LOSS, *args, reduction=ctx.attrs["reduction"],
               ignore_index=ctx.attrs["ignore_index"], has_weight=has_weight)
    return (gy, None) + ((None,) if has_weight else ())


def _nll_backward_samples():
    t = np.array([1, 0, 4])
    for reduction, g in (("mean", arr()), ("sum", arr()), ("none", arr(3))):
        yield Sample((g, t), {"input_shape": (3, 5), "reduction": reduction,
                              "ignore_index": -100}, torch=False, note="internal op")
    yield Sample((arr(), np.array([1, 2, 4])), {"input_shape": (3, 5), "reduction": "mean",
                                                "ignore_index": 2}, torch=False,
                 note="internal op, an ignored target")
    yield Sample((arr(), t, positive(5)), {"input_shape": (3, 5), "reduction": "mean",
                                           "ignore_index": -100}, torch=False, grad=False,
                 note="internal op, class weights (which take no gradient)")
    yield Sample((arr(2, 3), np.array([[1, 0, 3], [2, 2, 0]])),
                 {"input_shape": (2, 4, 3), "reduction": "none", "ignore_index": -100},
                 torch=False, note="internal op, spatial")
    yield Sample((arr(), np.array([3])), {"input_shape": (5,), "reduction": "sum",
                                          "ignore_index": -100}, torch=False,
                 note="internal op, unbatched")
    yield ErrorSample((arr(), np.array([1, 5, 0])), {"input_shape": (3, 5), "reduction": "sum",
                                                     "ignore_index": -100}, IndexError,
                      "Target 5 is out of bounds.", torch=False)


NLL_LOSS_BACKWARD = register(OpDef(
    "nll_loss_backward", OpKind.OPAQUE, _nll_backward_rule, _nll_backward_impl,
    _nll_backward_vjp, _nll_backward_samples, public="_ops.nll_loss_backward",
    fresh_result=True))


def nll_loss_backward(g, target, weight=None, *, input_shape, reduction: str,
                      ignore_index: int):
    """Internal: the gradient of nll_loss's input (of shape ``input_shape``) given the
    loss's gradient ``g`` (the VJP of nll_loss; decomposed into primitives when compiled)."""
    args = (g, target) if weight is None else (g, target, weight)
    return apply(NLL_LOSS_BACKWARD, *args, input_shape=tuple(int(n) for n in input_shape),
                 reduction=reduction, ignore_index=int(ignore_index),
                 has_weight=weight is not None)


def nll_loss_backward_primitives(g, x_type: TensorType, target, weight, reduction: str,
                                 ignore_index: int):
    """nll_loss_backward as primitive ops (its decomposition): a compare of each class
    index with the checked target, elementwise, so fusion computes the one-hot in the
    kernel that uses it instead of materialising it."""
    from ir import ops
    cdim = 0 if x_type.ndim == 1 else 1
    c = x_type.shape[cdim]
    # the checked class of each target (0 where ignored): it raises the forward's error for
    # a target out of range, even where the loss itself is never computed
    safe = nll_target(target, c, ignore_index)
    if type_of(target).dtype is not dtypes.int64:   # uint8 targets: compare as int64
        target = ops.to_dtype(target, dtypes.int64)
    valid = ops.ne(target, ignore_index)
    w = ops.take(weight, safe) if weight is not None else 1.0
    coef = ops.mul(ops.to_dtype(valid, x_type.dtype), w)
    if reduction == "mean":
        coef = ops.div(coef, ops.sum(coef))
    coef = ops.neg(ops.mul(coef, g))
    classes = ops.arange(c, device=x_type.device)
    if x_type.ndim > 2:
        classes = ops.reshape(classes, (c,) + (1,) * (x_type.ndim - 2))
    if x_type.ndim > 1:
        safe, coef = ops.unsqueeze(safe, 1), ops.unsqueeze(coef, 1)
    else:
        safe, coef = ops.reshape(safe, ()), ops.reshape(coef, ())
    return ops.where(ops.eq(classes, safe), coef, 0.0)


def _nll_samples():
    t = np.array([1, 0, 4])
    yield Sample((arr(3, 5), t))
    yield Sample((arr(3, 5), t), {"reduction": "sum"})
    yield Sample((arr(3, 5), t), {"reduction": "none"})
    # PyTorch has no gradient for the class weights (it refuses weights that require grad):
    # the sweep would differentiate them, so these are checked in tests/ops/test_norm_loss.py
    yield Sample((arr(3, 5), t, positive(5, seed=1)), grad=False)
    yield Sample((arr(3, 5), np.array([1, -100, 4]), positive(5, seed=1)), grad=False)
    yield Sample((noncontig(3, 5), np.array([1, 3, 4])), {"ignore_index": 3, "reduction": "none"})
    yield Sample((arr(5), np.array(2)))
    yield Sample((arr(5), np.array(2)), {"reduction": "none"})
    yield Sample((arr(5), np.array([2])), {"reduction": "none"}, torch=False,
                 note="PyTorch's backward fails on this layout (size mismatch); the forward is "
                      "compared in tests/ops/test_norm_loss.py")
    yield Sample((arr(2, 4, 3), np.array([[0, 3, 1], [2, 2, 0]])))
    yield Sample((arr(2, 4, 3, 2), ints(2, 3, 2, low=0, high=3), positive(4)),
                 {"reduction": "none"}, grad=False)
    yield Sample((arr(3, 5, dtype=np.float64), np.array([1, 0, 4], dtype=np.uint8)),
                 {"reduction": "sum"})
    yield Sample((arr(3, 5), np.array([-100, -100, -100])), grad=False, note="0 / 0 = nan")
    yield Sample((arr(0, 5), np.zeros(0, dtype=np.int64)), {"reduction": "sum"})
    yield ErrorSample((arr(3, 5), t.astype(np.float32)), {}, RuntimeError,
                      "expected target dtype to be Long or Byte, but got Float")
    yield ErrorSample((arr(3, 5), t[:2]), {}, ValueError,
                      "Expected input batch_size (3) to match target batch_size (2).")
    yield ErrorSample((arr(3, 5), np.array([1, 5, 0])), {}, IndexError,
                      "Target 5 is out of bounds.")
    yield ErrorSample((arr(3, 5), np.array([1, -1, 0])), {}, IndexError,
                      "Target -1 is out of bounds.")
    yield ErrorSample((arr(3, 5), t), {"reduction": "foo"}, ValueError,
                      "foo is not a valid value for reduction")
    yield ErrorSample((arr(3, 5), t, arr(4)), {}, RuntimeError,
                      "weight tensor should be defined either for all 5 classes or no classes "
                      "but got weight tensor of shape: [4]")
    yield ErrorSample((arr(3, 5), t, arr(5, dtype=np.float64)), {}, RuntimeError,
                      "expected scalar type Float but found Double")
    yield ErrorSample((arr(), np.array(2)), {}, ValueError, "Expected 1 or more dimensions")
    yield ErrorSample((arr(5), np.array([1, 2])), {}, ValueError,
                      "For 1D input, 1D target must have size 1, but got target size: 2")
    yield ErrorSample((arr(3, 5), t.reshape(3, 1)), {}, RuntimeError,
                      "0D or 1D target tensor expected, multi-target not supported")
    yield ErrorSample((arr(3, 5, 2), np.zeros((3, 3), dtype=np.int64)), {}, RuntimeError,
                      "Expected target size [3, 2], got [3, 3]")
    yield ErrorSample((ints(3, 5), t), {}, NotImplementedError,
                      "\"nll_loss_out_frame\" not implemented for 'Long'")


NLL_LOSS = register(OpDef("nll_loss", OpKind.OPAQUE, _nll_rule, _nll_impl, _nll_vjp,
                          _nll_samples, public="nn.functional.nll_loss"))


# --- nll_target (internal) -----------------------------------------------------------------

def _nll_target_rule(types, num_classes, ignore_index):
    (t,) = types
    if t.dtype not in (dtypes.int64, dtypes.uint8):
        raise RuntimeError("expected target dtype to be Long or Byte, but got "
                           f"{t.dtype.torch_name}")
    return TensorType(t.shape, dtypes.int64, t.device)


def _checked_targets(t, num_classes: int, ignore_index: int):
    """``(safe, valid)`` of class-index targets: each as int64 with ignored ones replaced
    by class 0, and where they are not ignored. nll_loss's ``IndexError`` for a target
    outside ``[0, num_classes)`` (nll_loss, its backward and nll_target check alike)."""
    t = t.astype(np.int64, copy=False)
    valid = t != ignore_index
    bad = valid & ((t < 0) | (t >= num_classes))
    if bad.any():
        raise IndexError(f"Target {int(t[bad].ravel()[0])} is out of bounds.")
    return np.where(valid, t, 0), valid


def _nll_target_impl(t, num_classes, ignore_index):
    return _checked_targets(t, num_classes, ignore_index)[0]


def _nll_target_samples():
    yield Sample((np.array([1, 0, 4]), 5, -100), grad=False, torch=False, note="internal op")
    yield Sample((np.array([[1, -100], [3, 2]]), 4, -100), grad=False, torch=False,
                 note="internal op")
    yield Sample((np.array([2, 3], dtype=np.uint8), 4, 3), grad=False, torch=False,
                 note="internal op")
    yield Sample((np.array(2), 3, -100), grad=False, torch=False, note="internal op")
    yield ErrorSample((np.array([1, 5, 0]), 5, -100), {}, IndexError,
                      "Target 5 is out of bounds.", torch=False)
    yield ErrorSample((np.array([1, -1, 0]), 5, -100), {}, IndexError,
                      "Target -1 is out of bounds.", torch=False)


# an indexing op, because it may raise from data: DCE keeps it when its result is unused
NLL_TARGET = register(OpDef("nll_target", OpKind.INDEXING, _nll_target_rule, _nll_target_impl,
                            None, _nll_target_samples, public="_ops.nll_target",
                            differentiable=False))


def nll_target(target, num_classes: int, ignore_index: int):
    """Internal: ``target`` as int64 with ``ignore_index`` entries replaced by class 0,
    raising nll_loss's ``IndexError`` for a target outside ``[0, num_classes)`` (used by
    the nll_loss VJP and its decomposition)."""
    return apply(NLL_TARGET, target, num_classes=int(num_classes),
                 ignore_index=int(ignore_index))


def _nll(input, target, weight, ignore_index: int, reduction: str):
    ti, tt = type_of(input), type_of(target)
    if ti.ndim < 1:
        raise ValueError(f"Expected 1 or more dimensions (got {ti.ndim})")
    if ti.ndim != 1 and tt.ndim >= 1 and ti.shape[0] != tt.shape[0]:
        raise ValueError(f"Expected input batch_size ({ti.shape[0]}) to match target "
                         f"batch_size ({tt.shape[0]}).")
    if ti.ndim <= 2:
        if tt.ndim > 1:
            raise RuntimeError("0D or 1D target tensor expected, multi-target not supported")
        if ti.ndim == 1 and tt.ndim == 1 and tt.shape[0] != 1:
            raise ValueError("For 1D input, 1D target must have size 1, but got target size: "
                             f"{tt.shape[0]}")
        if ti.ndim == 2 and (tt.numel if tt.ndim else 1) != ti.shape[0]:
            raise RuntimeError(f"size mismatch (got input: {shape_str(ti.shape)}, target: "
                               f"{shape_str(tt.shape)})")
    elif ti.ndim == 4 and tt.ndim != 3:
        raise RuntimeError("only batches of spatial targets supported (3D tensors) but got "
                           f"targets of dimension: {tt.ndim}")
    elif tt.shape[1:] != ti.shape[2:]:
        raise RuntimeError(f"Expected target size {shape_str((ti.shape[0],) + ti.shape[2:])}, "
                           f"got {shape_str(tt.shape)}")
    # PyTorch checks shapes before the target dtype
    if tt.dtype not in (dtypes.int64, dtypes.uint8):
        raise RuntimeError("expected target dtype to be Long or Byte, but got "
                           f"{tt.dtype.torch_name}")
    c = ti.shape[0] if ti.ndim == 1 else ti.shape[1]
    if weight is not None:
        tw = type_of(weight)
        if tw.ndim != 1 or tw.numel != c:
            raise RuntimeError(f"weight tensor should be defined either for all {c} classes or "
                               f"no classes but got weight tensor of shape: "
                               f"{shape_str(tw.shape)}")
        if tw.dtype is not ti.dtype:
            raise RuntimeError(f"expected scalar type {ti.dtype.torch_name} but found "
                               f"{tw.dtype.torch_name}")
    _check_float(ti.dtype, "nll_loss_out_frame")
    args = (input, target) if weight is None else (input, target, weight)
    return apply(NLL_LOSS, *args, reduction=reduction, ignore_index=int(ignore_index),
                 has_weight=weight is not None)


def nll_loss(input, target, weight=None, size_average=None, ignore_index: int = -100,
             reduce=None, reduction: str = "mean"):
    """Negative log-likelihood of class-index targets given log-probabilities ``input``
    (``(N, C)``, ``(C,)`` or ``(N, C, d1, ...)``). The mean divides by the summed weights
    of the targets that are not ``ignore_index``."""
    reduction = _reduction(reduction, size_average, reduce)
    return _nll(input, target, weight, ignore_index, reduction)


# --- cross_entropy (composition) -------------------------------------------------------------

def _class_view(weight, ndim: int, cdim: int):
    from ir import ops
    shape = [1] * ndim
    shape[cdim] = -1
    return ops.reshape(weight, tuple(shape))


def _ce_probs(logp, target, weight, reduction: str, label_smoothing: float, cdim: int):
    from ir import ops
    tl = type_of(logp)
    c = tl.shape[cdim]
    if label_smoothing > 0.0:
        target = ops.add(ops.mul(target, 1 - label_smoothing), label_smoothing / c)
    prod = ops.mul(logp, target)
    if weight is not None:
        prod = ops.mul(prod, _class_view(weight, tl.ndim, cdim))
    if reduction == "none":
        return ops.neg(ops.sum(prod, cdim))
    total = ops.neg(ops.sum(prod))
    if reduction == "sum":
        return total
    return ops.div(total, tl.numel // c if tl.numel else 0.0)


def _ce_smoothing(logp, target, weight, ignore_index, reduction, label_smoothing, cdim):
    from ir import ops
    tl = type_of(logp)
    c = tl.shape[cdim]
    nll = _nll(logp, target, weight, ignore_index, reduction)
    if type_of(target).dtype is not dtypes.int64:
        target = ops.to_dtype(target, dtypes.int64)
    prod = logp if weight is None else ops.mul(logp, _class_view(weight, tl.ndim, cdim))
    ignored = ops.eq(target, ignore_index)
    smooth = ops.masked_fill(ops.neg(ops.sum(prod, cdim)), ignored, 0.0)
    if reduction == "mean":
        if weight is None:
            denom = ops.sum(ops.logical_not(ignored))
        else:
            safe = ops.where(ignored, 0, target)
            denom = ops.sum(ops.masked_fill(ops.take(weight, safe), ignored, 0.0))
        smooth = ops.div(ops.sum(smooth), denom)
    elif reduction == "sum":
        smooth = ops.sum(smooth)
    return ops.add(ops.mul(nll, 1 - label_smoothing), ops.mul(smooth, label_smoothing / c))


def cross_entropy(input, target, weight=None, size_average=None, ignore_index: int = -100,
                  reduce=None, reduction: str = "mean", label_smoothing: float = 0.0):
    """Cross entropy of unnormalised logits ``input`` (classes on dim 1, or dim 0 when 1-D)
    against class indices (int64) or class probabilities (float, same shape as input):
    ``log_softmax`` then ``nll_loss``, with optional ``label_smoothing``."""
    from ir.ops.nnfunc import log_softmax
    reduction = _reduction(reduction, size_average, reduce)
    ti, tt = type_of(input), type_of(target)
    cdim = 0 if ti.ndim == 1 else 1
    label_smoothing = float(label_smoothing)
    if ti.shape == tt.shape:   # class probabilities
        if tt.dtype.category != dtypes.CATEGORY_FLOAT:
            raise RuntimeError("Expected floating point type for target with class "
                               f"probabilities, got {tt.dtype.torch_name}")
        if ignore_index >= 0:
            raise RuntimeError("ignore_index is not supported for floating point target")
        c = ti.shape[cdim] if ti.ndim else 1
        if weight is not None and (type_of(weight).ndim != 1 or type_of(weight).numel != c):
            raise RuntimeError(f"cross_entropy: weight tensor should be defined either for all "
                               f"{c} classes or no classes but got weight tensor of shape: "
                               f"{shape_str(type_of(weight).shape)}")
        if label_smoothing > 1.0:
            raise RuntimeError(f"label_smoothing must be between 0.0 and 1.0. Got: "
                               f"{label_smoothing}")
        logp = log_softmax(input, cdim)
        return _ce_probs(logp, target, weight, reduction, label_smoothing, cdim)
    if label_smoothing > 0.0:
        if label_smoothing > 1.0:
            raise RuntimeError(f"label_smoothing must be between 0.0 and 1.0. Got: "
                               f"{label_smoothing}")
        if tt.dtype not in (dtypes.int64, dtypes.uint8):
            raise RuntimeError("expected target dtype to be Long or Byte, but got "
                               f"{tt.dtype.torch_name}")
        logp = log_softmax(input, cdim)
        return _ce_smoothing(logp, target, weight, ignore_index, reduction, label_smoothing,
                             cdim)
    if ti.ndim < 1:
        raise ValueError(f"Expected 1 or more dimensions (got {ti.ndim})")
    return _nll(log_softmax(input, cdim), target, weight, ignore_index, reduction)


# --- binary cross entropy ------------------------------------------------------------------

_LOG_FLOOR = -100.0   # PyTorch clamps the logs so that 0 * log(0) stays finite
_BCE_EPS = 1e-12      # and the backward's denominator x (1 - x) at this


def _bce_rule(types):
    device = common_device(types)
    x, t = types
    _check_float(x.dtype, "binary_cross_entropy")
    if t.dtype is not x.dtype:
        raise RuntimeError(f"Found dtype {t.dtype.torch_name} but expected {x.dtype.torch_name}")
    if t.shape != x.shape:
        raise ValueError(f"Using a target size ({shape_str(t.shape)}) that is different to the "
                         f"input size ({shape_str(x.shape)}) is deprecated. Please ensure they "
                         "have the same size.")
    return TensorType(x.shape, x.dtype, device)


def _bce_impl(x, t):
    if x.size and not ((x >= 0) & (x <= 1)).all():
        raise RuntimeError("all elements of input should be between 0 and 1")
    with np.errstate(divide="ignore"):
        lx = np.maximum(np.log(x), _LOG_FLOOR)
        l1x = np.maximum(np.log1p(-x), _LOG_FLOOR)
    return -(t * lx + (1 - t) * l1x)


def _bce_vjp(ctx, g):
    from ir import ops
    x, t = ctx.inputs
    gx = gt = None
    if ctx.needs_input_grad[0]:
        denom = ops.clamp_min(ops.mul(x, ops.rsub(x, 1)), _BCE_EPS)
        gx = ops.mul(g, ops.div(ops.sub(x, t), denom))
    if ctx.needs_input_grad[1]:
        gt = ops.mul(g, ops.sub(ops.log1p(ops.neg(x)), ops.log(x)))
    return gx, gt


def _bce_samples():
    p = arr(3, 4, low=0.05, high=0.95)
    yield Sample((p, arr(3, 4, low=0, high=1, seed=1)), {"reduction": "none"})
    yield Sample((p, arr(3, 4, low=0, high=1, seed=1)))
    yield Sample((p, arr(3, 4, low=0, high=1, seed=1), positive(4)), {"reduction": "sum"})
    yield Sample((noncontig(3, 4, low=0.1, high=0.9), (arr(3, 4, seed=2) > 0).astype(
        np.float32)), {"reduction": "none"})
    yield Sample((arr(low=0.1, high=0.9), arr(low=0, high=1, seed=1)))
    yield Sample((arr(4, low=0.1, high=0.9, dtype=np.float64), arr(4, low=0, high=1,
                                                                     dtype=np.float64)))
    yield Sample((np.array([0.0, 1.0, 0.5], dtype=np.float32),
                  np.array([1.0, 0.0, 0.5], dtype=np.float32)), {"reduction": "none"},
                 grad=False, note="log clamped at -100")
    yield Sample((arr(0, 3, low=0.1, high=0.9), arr(0, 3)), {"reduction": "sum"})
    yield ErrorSample((arr(3, 4), arr(3, 4)), {}, RuntimeError,
                      "all elements of input should be between 0 and 1")
    yield ErrorSample((p, p[:2]), {}, ValueError, "Using a target size")
    yield ErrorSample((p, p.astype(np.float64)), {}, RuntimeError,
                      "Found dtype Double but expected Float")
    yield ErrorSample((ints(3, 4, low=0, high=1), ints(3, 4, low=0, high=1)), {},
                      NotImplementedError, "\"binary_cross_entropy\" not implemented for 'Long'")
    yield ErrorSample((p, p), {"reduction": "avg"}, ValueError,
                      "avg is not a valid value for reduction")


BINARY_CROSS_ENTROPY = register(OpDef(
    "binary_cross_entropy", OpKind.ELEMENTWISE, _bce_rule, _bce_impl, _bce_vjp, _bce_samples,
    public="nn.functional.binary_cross_entropy"))


def binary_cross_entropy(input, target, weight=None, size_average=None, reduce=None,
                         reduction: str = "mean"):
    """``-(target log(input) + (1 - target) log(1 - input))`` for probabilities ``input``
    (logs clamped at -100); ``weight`` broadcasts against the target."""
    from ir import ops
    reduction = _reduction(reduction, size_average, reduce)
    ti, tt = type_of(input), type_of(target)
    if ti.shape != tt.shape:
        raise ValueError(f"Using a target size ({shape_str(tt.shape)}) that is different to the "
                         f"input size ({shape_str(ti.shape)}) is deprecated. Please ensure they "
                         "have the same size.")
    loss = apply(BINARY_CROSS_ENTROPY, input, target)
    if weight is not None:
        from ir.types import broadcast_shapes
        wshape = type_of(weight).shape
        full = broadcast_shapes(tt.shape, wshape)
        if full != tt.shape:
            raise RuntimeError(f"weight of shape {shape_str(wshape)} can't be broadcast to the "
                               f"target's shape {shape_str(tt.shape)}")
        loss = ops.mul(loss, weight)
    return _reduce(loss, reduction)


def binary_cross_entropy_with_logits(input, target, weight=None, size_average=None,
                                     reduce=None, reduction: str = "mean", pos_weight=None):
    """Binary cross entropy of logits, computed stably as
    ``(1 - target) * input - log_weight * logsigmoid(input)`` with
    ``log_weight = 1 + (pos_weight - 1) * target``."""
    from ir import ops
    reduction = _reduction(reduction, size_average, reduce)
    ti, tt = type_of(input), type_of(target)
    if ti.shape != tt.shape:
        raise ValueError(f"Target size ({shape_str(tt.shape)}) must be the same as input size "
                         f"({shape_str(ti.shape)})")
    if tt.dtype.category != dtypes.CATEGORY_FLOAT:
        raise RuntimeError(f"result type Float can't be cast to the desired output type "
                           f"{tt.dtype.torch_name}")
    ls = ops.logsigmoid(input)
    if pos_weight is not None:
        ls = ops.mul(ops.add(ops.mul(ops.sub(pos_weight, 1), target), 1), ls)
    loss = ops.sub(ops.mul(ops.rsub(target, 1), input), ls)
    if weight is not None:
        loss = ops.mul(loss, weight)
    return _reduce(loss, reduction)


# --- kl_div --------------------------------------------------------------------------------

def kl_div(input, target, size_average=None, reduce=None, reduction: str = "mean",
           log_target: bool = False):
    """Pointwise KL divergence ``target * (log(target) - input)`` with log-probabilities
    ``input`` (``log_target``: the target is given as log-probabilities too).
    ``reduction='batchmean'`` divides the sum by the batch size (the true KL divergence)."""
    from ir import ops
    batchmean = False
    if size_average is not None or reduce is not None:
        reduction = _reduction(reduction, size_average, reduce)
    else:
        if reduction == "mean":
            warnings.warn("reduction: 'mean' divides the total loss by both the batch size and "
                          "the support size.'batchmean' divides only by the batch size, and "
                          "aligns with the KL div math definition.'mean' will be changed to "
                          "behave the same as 'batchmean' in the next major release.",
                          UserWarning, stacklevel=2)
        if reduction == "batchmean":
            batchmean, reduction = True, "sum"
        else:
            reduction = _reduction(reduction)
    if promote_operands(input, target).category != dtypes.CATEGORY_FLOAT:
        raise RuntimeError("kl_div: Integral inputs not supported.")
    if log_target:
        loss = ops.mul(ops.exp(target), ops.sub(target, input))
    else:
        # xlogy(target, target): 0 where the target is 0 (log of a safe 1 there keeps the
        # gradient finite), nan for negative targets as in PyTorch
        safe = ops.where(ops.eq(target, 0), 1.0, target)
        loss = ops.sub(ops.mul(target, ops.log(safe)), ops.mul(target, input))
    out = _reduce(loss, reduction)
    ti = type_of(input)
    if batchmean and ti.ndim != 0:
        out = ops.div(out, ti.shape[0])
    return out

"""Functionals that update tensors in place: ``batch_norm`` and ``instance_norm``.

Their math lives in ``ir.ops.normalization``; what ir cannot do (it has no Tensor) is
update the running statistics, which PyTorch does in place. Here every check runs
before anything is written, both new statistics are computed before either is
written, and the writes go through ``Tensor._write`` under ``no_grad`` (so version
counters and views see them, and autograd records nothing).
"""

from __future__ import annotations

from compgrad.autograd.grad_mode import no_grad
from ir import ops
from ir.ops.normalization import (
    batch_norm_elemt,
    batch_norm_stats,
    batch_norm_train,
    check_norm_input,
    check_norm_param,
    instance_norm_train,
)
from ir.types import shape_str

__all__ = ["batch_norm", "instance_norm"]


def _check_momentum(momentum) -> float:
    # PyTorch's kernel takes a float: momentum=None (a cumulative average) is the
    # module's business, which passes 1 / num_batches_tracked instead
    if momentum is None or isinstance(momentum, bool) or \
            not isinstance(momentum, (int, float)):
        raise TypeError("batch_norm(): argument 'momentum' (position 7) must be float, not "
                        f"{type(momentum).__name__}")
    return float(momentum)


def _check_eps(eps: float, training: bool) -> None:
    if training and eps <= 0.0:
        raise ValueError(f"batch_norm eps must be positive during training, but got {eps}")
    if eps < 0.0:
        raise ValueError(f"batch_norm eps must be non-negative, but got {eps}")


def _update(running, stat, momentum: float):
    """``(1 - momentum) * running + momentum * stat`` in the running tensor's shape."""
    new = ops.add(ops.mul(running, 1.0 - momentum), ops.mul(stat, momentum))
    return ops.reshape(new, running.shape)


def _write_stats(running_mean, running_var, mean, unbiased_var, momentum: float) -> None:
    with no_grad():
        new_mean = None if running_mean is None else _update(running_mean, mean, momentum)
        new_var = None if running_var is None else _update(running_var, unbiased_var, momentum)
        if new_mean is not None:
            running_mean._write(new_mean)
        if new_var is not None:
            running_var._write(new_var)


def _check_params(t, channels: int, **params) -> None:
    for name, p in params.items():
        check_norm_param(p, name, channels, t.dtype)


def batch_norm(input, running_mean, running_var, weight=None, bias=None,
               training: bool = False, momentum: float = 0.1, eps: float = 1e-5):
    """Normalise each channel (dim 1) of ``input``.

    In training the batch's statistics are used (the gradient flows through them) and
    ``running_mean``/``running_var`` (when given) are updated in place with
    ``momentum``, the variance with the unbiased batch variance, as in PyTorch. In
    evaluation the running statistics are used.
    """
    size = list(input.shape)
    if training:
        count = size[0] if size else 1
        for s in size[2:]:
            count *= s
        if count == 1:
            raise ValueError("Expected more than 1 value per channel when training, got input "
                             f"size {shape_str(tuple(size))}")
    _check_eps(eps, training)
    momentum = _check_momentum(momentum)
    t = check_norm_input(input, "batch_norm")
    channels = size[1] if len(size) > 1 else 0
    _check_params(t, channels, running_mean=running_mean, running_var=running_var,
                  weight=weight, bias=bias)
    if not training:
        if running_mean is None:
            raise RuntimeError("running_mean must be defined in evaluation mode")
        if running_var is None:
            raise RuntimeError("running_var must be defined in evaluation mode")
        return batch_norm_elemt(input, running_mean, running_var, weight, bias, eps)
    out = batch_norm_train(input, weight, bias, eps)
    if running_mean is not None or running_var is not None:
        with no_grad():
            mean, var = batch_norm_stats(input.detach())
            n = t.numel // channels if channels else 0
            unbiased = ops.mul(var, n / (n - 1)) if n > 1 else var
        _write_stats(running_mean, running_var, mean, unbiased, momentum)
    return out


def instance_norm(input, running_mean=None, running_var=None, weight=None, bias=None,
                  use_input_stats: bool = True, momentum: float = 0.1, eps: float = 1e-5):
    """Normalise each channel of each sample over its spatial dims.

    With ``use_input_stats`` the sample's own statistics are used, and running
    statistics (when given) are updated in place with their mean over the batch;
    otherwise the running statistics normalise.
    """
    size = list(input.shape)
    if use_input_stats:
        count = 1
        for s in size[2:]:
            count *= s
        if count == 1:
            raise ValueError("Expected more than 1 spatial element when training, got input "
                             f"size {shape_str(tuple(size))}")
    momentum = _check_momentum(momentum)
    t = check_norm_input(input, "batch_norm")
    channels = size[1] if len(size) > 1 else 0
    _check_params(t, channels, running_mean=running_mean, running_var=running_var,
                  weight=weight, bias=bias)
    if not use_input_stats:
        if running_mean is None or running_var is None:
            raise RuntimeError("Expected running_mean and running_var to be defined when "
                               "use_input_stats is false")
        return batch_norm_elemt(input, running_mean, running_var, weight, bias, eps)
    out = instance_norm_train(input, weight, bias, eps)
    if running_mean is not None or running_var is not None:
        with no_grad():
            dims = tuple(range(2, t.ndim))
            var, mean = ops.var_mean(input.detach(), dims, correction=0)
            n = t.numel // (size[0] * channels) if size[0] * channels else 0
            unbiased = ops.mul(var, n / (n - 1)) if n > 1 else var
            mean, unbiased = ops.mean(mean, 0), ops.mean(unbiased, 0)
        _write_stats(running_mean, running_var, mean, unbiased, momentum)
    return out

"""``compgrad.autograd``: reverse-mode automatic differentiation with PyTorch's semantics.

Every op's derivative is its VJP rule in ``ir`` (one definition); this package
records the graph of eager ops, runs it backward, and offers PyTorch's
autograd API around it.
"""

from __future__ import annotations

from compgrad import _eager
from compgrad.autograd import record as _record
from compgrad.autograd.anomaly import detect_anomaly, set_detect_anomaly
from compgrad.autograd.api import backward, grad
from compgrad.autograd.function import Function, FunctionCtx, once_differentiable
from compgrad.autograd.grad_mode import (
    enable_grad,
    inference_mode,
    is_grad_enabled,
    is_inference_mode_enabled,
    no_grad,
    set_grad_enabled,
)
from compgrad.autograd.gradcheck import GradcheckError, gradcheck, gradgradcheck
from compgrad.autograd.node import AccumulateGrad, Node
from compgrad.tensor import INPLACE_HOOKS as _INPLACE_HOOKS
from compgrad.tensor import VIEW_HOOKS as _VIEW_HOOKS

__all__ = ["backward", "grad", "no_grad", "enable_grad", "set_grad_enabled", "inference_mode",
           "is_grad_enabled", "is_inference_mode_enabled", "set_detect_anomaly",
           "detect_anomaly", "Node", "AccumulateGrad", "Function", "FunctionCtx",
           "once_differentiable", "gradcheck", "gradgradcheck", "GradcheckError", "functional"]

if _record.record not in _eager.RECORD_HOOKS:
    _eager.RECORD_HOOKS.append(_record.record)
if _record.check_inplace not in _INPLACE_HOOKS:
    _INPLACE_HOOKS.append(_record.check_inplace)
if _record.stale_view_requires_grad not in _VIEW_HOOKS:
    _VIEW_HOOKS.append(_record.stale_view_requires_grad)

from compgrad.autograd import functional  # noqa: E402

"""Dropout layers: ``Dropout`` (elementwise), ``Dropout1d``/``Dropout2d`` (whole channels)."""

from __future__ import annotations

import warnings

from compgrad import factories
from compgrad.autograd.grad_mode import no_grad
from compgrad.nn import functional as F
from compgrad.nn.modules.module import Module
from compgrad.tensor import Tensor

__all__ = ["Dropout", "Dropout1d", "Dropout2d"]


def _check_p(p: float) -> None:
    if p < 0 or p > 1:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")


def _feature_dropout(input: Tensor, p: float, training: bool, inplace: bool) -> Tensor:
    """Zero whole channels (dims 0 and 1 pick one) with probability ``p``; scale the kept
    ones by ``1 / (1 - p)``."""
    if not training or p == 0:
        return input
    shape = tuple(input.shape[:2]) + (1,) * (input.dim() - 2)
    with no_grad():
        mask = factories.empty(shape, dtype=input.dtype, device=input.device)
        mask.bernoulli_(1 - p)
        if p < 1:
            mask.div_(1 - p)
    return input.mul_(mask) if inplace else input * mask


def _dropout1d(input: Tensor, p: float, training: bool, inplace: bool) -> Tensor:
    fn = getattr(F, "dropout1d", None)
    if fn is not None:
        return fn(input, p, training, inplace)
    _check_p(p)
    if input.dim() not in (2, 3):
        raise RuntimeError(f"dropout1d: Expected 2D or 3D input, but received a {input.dim()}D "
                           "input. Note that dropout1d exists to provide channel-wise dropout "
                           "on inputs with 1 spatial dimension, a channel dimension, and an "
                           "optional batch dimension (i.e. 2D or 3D inputs).")
    if input.dim() == 3:
        return _feature_dropout(input, p, training, inplace)
    # unbatched (C, L): each of the C channels is dropped on its own
    result = _feature_dropout(input.unsqueeze(0), p, training, False).squeeze(0)
    return input.copy_(result) if inplace and result is not input else result


def _dropout2d(input: Tensor, p: float, training: bool, inplace: bool) -> Tensor:
    fn = getattr(F, "dropout2d", None)
    if fn is not None:
        return fn(input, p, training, inplace)
    _check_p(p)
    ndim = input.dim()
    if ndim not in (3, 4):
        warnings.warn(f"dropout2d: Received a {ndim}-D input to dropout2d, which is deprecated "
                      "and will result in an error in a future release. To retain the behavior "
                      "and silence this warning, please use dropout instead. Note that "
                      "dropout2d exists to provide channel-wise dropout on inputs with 2 "
                      "spatial dimensions, a channel dimension, and an optional batch "
                      "dimension (i.e. 3D or 4D inputs).", stacklevel=3)
    if ndim == 3:
        # PyTorch keeps its historical reading of 3-D inputs as (N, C, L)
        warnings.warn("dropout2d: Received a 3D input to dropout2d and assuming that "
                      "channel-wise 1D dropout behavior is desired - input is interpreted as "
                      "shape (N, C, L), where C is the channel dim. This behavior will change "
                      "in a future release to interpret the input as one without a batch "
                      "dimension, i.e. shape (C, H, W). To maintain the 1D channel-wise "
                      "dropout behavior, please switch to using dropout1d instead.",
                      stacklevel=3)
    return _feature_dropout(input, p, training, inplace)


class _DropoutNd(Module):
    def __init__(self, p: float = 0.5, inplace: bool = False) -> None:
        super().__init__()
        _check_p(p)
        self.p = p
        self.inplace = inplace

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"


class Dropout(_DropoutNd):
    """In training, zero each element with probability ``p`` and scale the rest by
    ``1 / (1 - p)``; in eval, the identity."""

    def forward(self, input: Tensor) -> Tensor:
        return F.dropout(input, self.p, self.training, self.inplace)


class Dropout1d(_DropoutNd):
    """In training, zero whole channels of ``(N, C, L)`` / ``(C, L)`` inputs with
    probability ``p`` (scaling the rest by ``1 / (1 - p)``); in eval, the identity."""

    def forward(self, input: Tensor) -> Tensor:
        return _dropout1d(input, self.p, self.training, self.inplace)


class Dropout2d(_DropoutNd):
    """In training, zero whole channels of ``(N, C, H, W)`` inputs with probability ``p``
    (scaling the rest by ``1 / (1 - p)``); in eval, the identity."""

    def forward(self, input: Tensor) -> Tensor:
        return _dropout2d(input, self.p, self.training, self.inplace)

"""Linear layers: ``Identity``, ``Linear``, ``Bilinear`` (as ``torch.nn``)."""

from __future__ import annotations

import math

from compgrad import factories
from compgrad.nn import functional as F
from compgrad.nn import init
from compgrad.nn.modules.module import Module
from compgrad.nn.parameter import Parameter
from compgrad.tensor import Tensor

__all__ = ["Identity", "Linear", "Bilinear"]


def _uniform_fan_in_bias(bias: Tensor | None, fan_in: int) -> None:
    """PyTorch's default bias draw: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (0 for empty fans)."""
    if bias is not None:
        bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
        init.uniform_(bias, -bound, bound)


def _fan_in(weight: Tensor) -> int:
    """Inputs feeding one output: ``weight.size(1)`` times the receptive field."""
    receptive = 1
    for s in weight.shape[2:]:
        receptive *= s
    return weight.shape[1] * receptive if weight.dim() > 1 else 0


def reset_kaiming(weight: Tensor, bias: Tensor | None) -> None:
    """``kaiming_uniform_(weight, a=sqrt(5))`` and the matching bias draw, as PyTorch's
    Linear and Conv layers initialise (both are U(-1/sqrt(fan_in), 1/sqrt(fan_in)))."""
    fan_in = _fan_in(weight)
    if weight.numel() > 0:  # PyTorch warns and skips initialising zero-element tensors
        init.kaiming_uniform_(weight, a=math.sqrt(5))
    _uniform_fan_in_bias(bias, fan_in)


class Identity(Module):
    """Returns its input unchanged; accepts (and ignores) any constructor arguments."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__()

    def forward(self, input: Tensor) -> Tensor:
        return input


class Linear(Module):
    """``y = x @ weight.T + bias`` with ``weight`` of shape ``[out_features, in_features]``."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, device=None,
                 dtype=None) -> None:
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.weight = Parameter(factories.empty((out_features, in_features), device=device,
                                                dtype=dtype))
        if bias:
            self.bias = Parameter(factories.empty(out_features, device=device, dtype=dtype))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Redraw weight and bias from U(-1/sqrt(in_features), 1/sqrt(in_features))."""
        reset_kaiming(self.weight, self.bias)

    def forward(self, input: Tensor) -> Tensor:
        return F.linear(input, self.weight, self.bias)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}")


def _bilinear(input1: Tensor, input2: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """``y[..., o] = sum_ij x1[..., i] W[o, i, j] x2[..., j] + b[o]`` (PyTorch's bilinear)."""
    fn = getattr(F, "bilinear", None)
    if fn is not None:
        return fn(input1, input2, weight, bias)
    from compgrad import einsum
    if input1.dim() != input2.dim():
        raise RuntimeError(f"bilinear(): input dimensions do not match: got {input1.dim()} "
                           f"and {input2.dim()}")
    if tuple(input1.shape[:-1]) != tuple(input2.shape[:-1]):
        raise RuntimeError("bilinear(): input batch dimensions do not match: got "
                           f"{list(input1.shape[:-1])} and {list(input2.shape[:-1])}")
    if input1.shape[-1] != weight.shape[1]:
        raise RuntimeError(f"bilinear(): input1 size does not match weight size: got "
                           f"{input1.shape[-1]} but expected {weight.shape[1]}")
    if input2.shape[-1] != weight.shape[2]:
        raise RuntimeError(f"bilinear(): input2 size does not match weight size: got "
                           f"{input2.shape[-1]} but expected {weight.shape[2]}")
    out = einsum("...i,oij,...j->...o", input1, weight, input2)
    return out if bias is None else out + bias


class Bilinear(Module):
    """``y = x1^T A x2 + b`` with ``weight`` of shape ``[out, in1, in2]``."""

    def __init__(self, in1_features: int, in2_features: int, out_features: int,
                 bias: bool = True, device=None, dtype=None) -> None:
        super().__init__()
        self.in1_features = in1_features
        self.in2_features = in2_features
        self.out_features = out_features
        self.weight = Parameter(factories.empty((out_features, in1_features, in2_features),
                                                device=device, dtype=dtype))
        if bias:
            self.bias = Parameter(factories.empty(out_features, device=device, dtype=dtype))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Redraw weight and bias from U(-1/sqrt(in1_features), 1/sqrt(in1_features))."""
        if self.in1_features <= 0:
            raise ValueError(f"in1_features must be > 0, but got (in1_features="
                             f"{self.in1_features})")
        bound = 1 / math.sqrt(self.weight.size(1))
        init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            init.uniform_(self.bias, -bound, bound)

    def forward(self, input1: Tensor, input2: Tensor) -> Tensor:
        return _bilinear(input1, input2, self.weight, self.bias)

    def extra_repr(self) -> str:
        return (f"in1_features={self.in1_features}, in2_features={self.in2_features}, "
                f"out_features={self.out_features}, bias={self.bias is not None}")

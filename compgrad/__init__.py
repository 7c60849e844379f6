"""compgrad: PyTorch-style tensors, autograd and training, compiled with Numba.

``import compgrad as torch`` is meant to be enough for ordinary PyTorch code.
"""

from __future__ import annotations

import builtins as _builtins

from compgrad import _eager as _eager_module
from compgrad import _methods, cuda
from compgrad import allocator as _allocator
from compgrad._eager import EAGER as _EAGER
from compgrad.creation import as_tensor, asarray, from_numpy, is_tensor, numel, tensor
from compgrad.device import device
from compgrad.size import Size
from compgrad.tensor import Tensor
from ir import dispatch as _dispatch
from ir import ops as _ops
from ir.dtypes import DType as dtype
from ir.dtypes import (
    bool_,
    double,
    float16,
    float32,
    float64,
    half,
    int8,
    int16,
    int32,
    int64,
    long,
    short,
    uint8,
)
from ir.dtypes import promote_types as _promote_types

_allocator.tune_malloc()
_dispatch.set_base_interpreter(_EAGER)
_eager_module.bind_tensor_class(Tensor)
_methods.bind_methods(Tensor)

# PyTorch's dtype names that shadow builtins inside this module, as in torch
globals()["bool"] = bool_
globals()["float"] = float32
globals()["int"] = int32

# every public op function at the top level (compgrad.add, compgrad.sum, ...)
def _export_ops() -> None:
    namespace = globals()
    for family in _ops.FAMILIES:
        for name in getattr(family, "__all__", ()):
            if name not in namespace:
                namespace[name] = getattr(family, name)
        # PyTorch's top-level in-place functions (compgrad.relu_(x), compgrad.exp_(x), ...)
        for name in getattr(family, "INPLACE", ()):
            if name in family.__all__ and name + "_" not in namespace:
                namespace[name + "_"] = getattr(Tensor, name + "_")


_export_ops()

from compgrad import autograd, linalg, nn, optim, random, utils  # noqa: E402 - after the op functions they wrap
from compgrad._tensor_str import get_printoptions, printoptions, set_printoptions  # noqa: E402
from compgrad.autograd import (  # noqa: E402
    enable_grad,
    inference_mode,
    is_grad_enabled,
    is_inference_mode_enabled,
    no_grad,
    set_grad_enabled,
)
from compgrad.compile import compile  # noqa: E402
from compgrad.factories import *  # noqa: E402,F403
from compgrad.random import (  # noqa: E402
    Generator,
    bernoulli,
    default_generator,
    get_rng_state,
    initial_seed,
    manual_seed,
    multinomial,
    normal,
    rand,
    rand_like,
    randint,
    randint_like,
    randn,
    randn_like,
    randperm,
    seed,
    set_rng_state,
)
from compgrad.serialization import load, save  # noqa: E402


def promote_types(type1: dtype, type2: dtype) -> dtype:
    """The smallest dtype both arguments convert to (``torch.promote_types``)."""
    return _promote_types(type1, type2)


def result_type(tensor1, tensor2) -> dtype:
    """The dtype of an op on ``tensor1`` and ``tensor2`` (``torch.result_type``)."""
    return _ops.promote_operands(tensor1, tensor2)


def can_cast(from_: dtype, to: dtype) -> _builtins.bool:
    from ir.dtypes import can_cast as _can_cast
    return _can_cast(from_, to)


def is_floating_point(input: Tensor) -> _builtins.bool:
    return input.is_floating_point()


def get_default_dtype() -> dtype:
    return float32


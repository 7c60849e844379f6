"""``compgrad.nn.functional``: the functional forms of layers, activations and losses.

The math is in ``ir.ops`` (each family's ``FUNCTIONAL`` table names what
belongs here); this module re-exports it, adds PyTorch's ``inplace=``
arguments (an in-place call writes the result into the input through
``Tensor._write``, so every in-place rule applies), and supplies the default
random generator to the ops that draw numbers.
"""

from __future__ import annotations

import functools
import inspect

from ir import ops as _ops

__all__: list[str] = []

# functions whose PyTorch signature ends with ``inplace=False``
_INPLACE_ARG = ("relu", "relu6", "hardtanh", "leaky_relu", "elu", "selu", "celu", "silu",
                "mish", "hardsigmoid", "hardswish", "threshold")
# PyTorch's in-place functional aliases: F.relu_(x) is F.relu(x, inplace=True)
_INPLACE_ALIASES = ("relu", "elu", "leaky_relu", "hardtanh", "threshold", "celu", "selu",
                    "rrelu")


def _with_inplace(fn):
    """``fn`` plus PyTorch's trailing ``inplace`` argument (positional or keyword)."""
    n_positional = sum(1 for p in inspect.signature(fn).parameters.values()
                       if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD))

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        inplace = kwargs.pop("inplace", False)
        if len(args) > n_positional:
            args, inplace = args[:n_positional], args[n_positional]
        result = fn(*args, **kwargs)
        return args[0]._write(result) if inplace else result

    return wrapper


def _inplace_alias(fn):
    @functools.wraps(fn)
    def alias(input, *args, **kwargs):
        return input._write(fn(input, *args, **kwargs))

    alias.__name__ = fn.__name__ + "_"
    return alias


def _export_functional() -> None:
    namespace = globals()
    for family in _ops.FAMILIES:
        for name in getattr(family, "FUNCTIONAL", ()):
            fn = getattr(family, name)
            namespace[name] = _with_inplace(fn) if name in _INPLACE_ARG else fn
            __all__.append(name)
    for name in _INPLACE_ALIASES:
        if name in namespace:
            namespace[name + "_"] = _inplace_alias(getattr(_ops, name))
            __all__.append(name + "_")


_export_functional()


def dropout(input, p: float = 0.5, training: bool = True, inplace: bool = False):
    """Zero each element with probability ``p`` and scale the rest by ``1 / (1 - p)``
    (only when ``training``), drawing from compgrad's default generator."""
    from compgrad.random import default_generator_for
    generator = default_generator_for(getattr(input, "device", None))
    result = _ops.dropout(input, p, training, generator=generator)
    if inplace and result is not input:
        return input._write(result)
    return result


__all__.append("dropout")


# batch/instance norm update running statistics in place (compgrad-level, not ir ops)
from compgrad.nn._stateful import batch_norm, instance_norm  # noqa: E402

__all__ += ["batch_norm", "instance_norm"]

# attention is composed from the functions above (it imports this module), so it comes last
from compgrad.nn._attention import (  # noqa: E402
    multi_head_attention_forward,
    scaled_dot_product_attention,
)

__all__ += ["scaled_dot_product_attention", "multi_head_attention_forward"]

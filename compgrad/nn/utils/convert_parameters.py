"""Flatten parameters into one vector and back, as ``torch.nn.utils.convert_parameters``."""

from __future__ import annotations

from collections.abc import Iterable

from compgrad.tensor import Tensor

__all__ = ["parameters_to_vector", "vector_to_parameters"]


def parameters_to_vector(parameters: Iterable[Tensor]) -> Tensor:
    """One 1-D tensor holding every parameter's values, flattened, in order."""
    from compgrad import cat
    param_device = None
    vec = []
    for param in parameters:
        param_device = _check_param_device(param, param_device)
        vec.append(param.view(-1))
    return cat(vec)


def vector_to_parameters(vec: Tensor, parameters: Iterable[Tensor]) -> None:
    """Copy consecutive slices of the 1-D ``vec`` into ``parameters`` (as their ``.data``).

    Every size is checked before any parameter changes, so a short ``vec`` raises
    without leaving the parameters half-updated.
    """
    if not isinstance(vec, Tensor):
        raise TypeError(f"expected torch.Tensor, but got: {_typename(vec)}")
    parameters = list(parameters)
    param_device = None
    for param in parameters:
        param_device = _check_param_device(param, param_device)
    needed = sum(p.numel() for p in parameters)
    if vec.ndim != 1 and parameters:
        raise RuntimeError(f"vector_to_parameters expects a 1-D vector, got shape "
                           f"{list(vec.shape)}")
    if parameters and vec.numel() < needed:
        raise RuntimeError(f"vector_to_parameters: the vector has {vec.numel()} elements but "
                           f"the parameters need {needed}")
    pointer = 0
    for param in parameters:
        num_param = param.numel()
        param.data = vec[pointer:pointer + num_param].view_as(param).data
        pointer += num_param


def _check_param_device(param: Tensor, old_param_device: int | None) -> int:
    # -1 stands for the CPU, as in PyTorch; mixing devices is refused
    device = param.device
    index = -1 if device.type == "cpu" else (device.index or 0)
    if old_param_device is None:
        return index
    if index != old_param_device:
        raise TypeError("Found two parameters on different devices, this is currently not "
                        "supported.")
    return old_param_device


def _typename(obj) -> str:
    """``torch.typename``: a tensor's type string, otherwise the qualified type name."""
    if isinstance(obj, Tensor):
        return obj.type()
    module = getattr(obj, "__module__", "") or ""
    if hasattr(obj, "__qualname__"):
        qualname = obj.__qualname__
    elif hasattr(obj, "__name__"):
        qualname = obj.__name__
    else:
        module = obj.__class__.__module__ or ""
        qualname = obj.__class__.__qualname__
    if module in ("", "builtins"):
        return qualname
    return f"{module}.{qualname}"

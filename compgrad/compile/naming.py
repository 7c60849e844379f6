"""Readable names for captured tensors: parameters, buffers, optimizer state and
grads get the dotted names a user knows (``fc1.weight``, ``fc1.weight.grad``,
``fc1.weight.momentum_buffer``) in printed IR, dumps and explain()."""

from __future__ import annotations

import inspect

from ir.graph import Role

__all__ = ["captured_names"]


def _objects(fn, args, kwargs):
    """Modules and optimizers the function can reach: arguments, closure cells,
    globals it names, and ``self`` of a bound method."""
    seen = list(args) + list(kwargs.values())
    target = getattr(fn, "__func__", fn)
    if getattr(fn, "__self__", None) is not None:
        seen.append(fn.__self__)
    code = getattr(target, "__code__", None)
    if code is not None:
        glb = getattr(target, "__globals__", {})
        seen += [glb[n] for n in code.co_names if n in glb]
        for cell in getattr(target, "__closure__", None) or ():
            try:
                seen.append(cell.cell_contents)
            except ValueError:
                pass
    return seen


def captured_names(fn, args=(), kwargs=None) -> dict[int, tuple[str, Role]]:
    """``id(tensor) -> (name, role)`` for tensors owned by reachable modules/optimizers."""
    from compgrad.nn.modules.module import Module
    from compgrad.optim.optimizer import Optimizer
    names: dict[int, tuple[str, Role]] = {}
    modules, optimizers = [], []
    for obj in _objects(fn, args, kwargs or {}):
        if isinstance(obj, Module):
            modules.append(obj)
        elif isinstance(obj, Optimizer):
            optimizers.append(obj)
        elif inspect.ismodule(obj) or obj is None:
            continue
    param_names: dict[int, str] = {}
    for prefix, m in enumerate(modules):
        lead = "" if prefix == 0 else f"m{prefix}."
        for name, p in m.named_parameters():
            param_names.setdefault(id(p), lead + name)
            names.setdefault(id(p), (lead + name, Role.PARAMETER))
            if p._grad is not None:
                names.setdefault(id(p._grad), (lead + name + ".grad", Role.GRAD))
        for name, b in m.named_buffers():
            names.setdefault(id(b), (lead + name, Role.BUFFER))
    for k, opt in enumerate(optimizers):
        for group in opt.param_groups:
            for i, p in enumerate(group["params"]):
                pname = param_names.get(id(p), f"opt{k}.p{i}")
                if p._grad is not None:
                    names.setdefault(id(p._grad), (pname + ".grad", Role.GRAD))
                for key, value in opt.state.get(p, {}).items():
                    if hasattr(value, "_type_cache"):
                        names.setdefault(id(value), (f"{pname}.{key}", Role.OPTIMIZER_STATE))
    return {k: (_identifier(name), role) for k, (name, role) in names.items()}


def _identifier(name: str) -> str:
    # Sequential's children are named "0", "1", ...: IR names start with a letter
    return name if name[:1].isalpha() or name[:1] == "_" else f"m.{name}"

"""Readable names for captured tensors: parameters, buffers, optimizer state and
grads get the dotted names a user knows (``fc1.weight``, ``fc1.weight.grad``,
``fc1.weight.momentum_buffer``) in printed IR, dumps and explain()."""

from __future__ import annotations

from compgrad.state_epoch import STRUCTURE
from ir.graph import Role

__all__ = ["captured_names", "NameCache", "input_role", "input_name"]


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


class NameCache:
    """A cache of each reachable module's named parameters and buffers, for one compiled
    function: walking a module tree costs more than the rest of the naming, and a
    training step names the same modules on every call. Entries hold while
    ``STRUCTURE`` (:mod:`compgrad.state_epoch`: bumped by every change to a module's
    attributes, parameters, buffers or submodules) stays where it was."""

    LIMIT = 64   # modules kept (a function given new modules on each call stays bounded)

    def __init__(self):
        self.epoch = -1
        self.entries: dict[tuple[int, str], tuple] = {}

    def members(self, module, lead: str) -> tuple[list, list]:
        """``([(parameter, name)], [(buffer, name)])`` of ``module``, names prefixed
        with ``lead`` and made identifiers."""
        if self.epoch != STRUCTURE[0] or len(self.entries) > self.LIMIT:
            self.entries = {}
            self.epoch = STRUCTURE[0]
        key = (id(module), lead)
        entry = self.entries.get(key)
        if entry is None or entry[0] is not module:   # (an id is reused once its object dies)
            entry = self.entries[key] = (
                module,
                [(p, _identifier(lead + name)) for name, p in module.named_parameters()],
                [(b, _identifier(lead + name)) for name, b in module.named_buffers()])
        return entry[1], entry[2]


def captured_names(fn, args=(), kwargs=None,
                   cache: NameCache | None = None) -> dict[int, tuple[str, Role]]:
    """``id(tensor) -> (name, role)`` for tensors owned by reachable modules/optimizers
    (``cache``: the compiled function's, else the modules are walked afresh)."""
    from compgrad.nn.modules.module import Module
    from compgrad.optim.optimizer import Optimizer
    names: dict[int, tuple[str, Role]] = {}
    modules, optimizers = [], []
    for obj in _objects(fn, args, kwargs or {}):
        if isinstance(obj, Module):
            modules.append(obj)
        elif isinstance(obj, Optimizer):
            optimizers.append(obj)
    if cache is None:
        cache = NameCache()
    # names are identifiers from the start: _identifier looks at the first character
    # only, so a name extended with ".grad" or ".momentum_buffer" stays one
    param_names: dict[int, str] = {}
    for prefix, m in enumerate(modules):
        params, buffers = cache.members(m, "" if prefix == 0 else f"m{prefix}.")
        for p, name in params:
            param_names.setdefault(id(p), name)
            names.setdefault(id(p), (name, Role.PARAMETER))
            if p._grad is not None:
                names.setdefault(id(p._grad), (name + ".grad", Role.GRAD))
        for b, name in buffers:
            names.setdefault(id(b), (name, Role.BUFFER))
    for k, opt in enumerate(optimizers):
        for group in opt.param_groups:
            for i, p in enumerate(group["params"]):
                pname = param_names.get(id(p), f"opt{k}.p{i}")
                if p._grad is not None:
                    names.setdefault(id(p._grad), (pname + ".grad", Role.GRAD))
                for key, value in opt.state.get(p, {}).items():
                    if hasattr(value, "_type_cache"):
                        names.setdefault(id(value), (f"{pname}.{key}", Role.OPTIMIZER_STATE))
    return names


_PREFIX = {Role.ARGUMENT: "x", Role.PARAMETER: "p", Role.BUFFER: "b", Role.OPTIMIZER_STATE: "st",
           Role.GRAD: "g", Role.RNG_STATE: "rng", Role.CONSTANT: "c"}


def input_role(t) -> Role:
    """The role of a tensor from outside a call that has no captured name."""
    from compgrad.nn.parameter import Parameter
    if isinstance(t, Parameter):
        return Role.PARAMETER
    return Role.RNG_STATE if t.__dict__.get("_rng_key") else Role.ARGUMENT


def input_name(role: Role, n: int) -> str:
    """The name of a call's ``n``-th input when it has no captured name (``x0``, ``p3``)."""
    return f"{_PREFIX[role]}{n}"


def _identifier(name: str) -> str:
    # Sequential's children are named "0", "1", ...: IR names start with a letter
    return name if name[:1].isalpha() or name[:1] == "_" else f"m.{name}"

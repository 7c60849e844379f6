"""Readable names for captured tensors: parameters, buffers, optimizer state and
grads get the dotted names a user knows (``fc1.weight``, ``fc1.weight.grad``,
``fc1.weight.momentum_buffer``) in printed IR, dumps and explain()."""

from __future__ import annotations

import functools

from compgrad.state_epoch import STRUCTURE
from ir.graph import Role

__all__ = ["captured_names", "NameCache", "input_role", "input_name"]


class _Reach:
    """Where a function finds objects besides its arguments: ``self`` of a bound method,
    the globals its code names, its closure cells. Worked out once per function (a
    compiled function names its modules on every call); what they hold is read each
    time, since globals and cells may be rebound between calls."""

    __slots__ = ("fn", "bound", "globals", "names", "cells")

    def __init__(self, fn):
        self.fn = fn
        target = getattr(fn, "__func__", fn)
        self.bound = getattr(fn, "__self__", None)
        code = getattr(target, "__code__", None)
        self.globals = getattr(target, "__globals__", {}) if code is not None else {}
        self.names = code.co_names if code is not None else ()
        self.cells = (getattr(target, "__closure__", None) or ()) if code is not None else ()

    def objects(self, args, kwargs) -> list:
        """Modules and optimizers the function can reach this call, and other objects:
        arguments, ``self``, named globals, closure cells."""
        seen = list(args)
        if kwargs:
            seen += kwargs.values()
        if self.bound is not None:
            seen.append(self.bound)
        glb = self.globals
        seen += [glb[n] for n in self.names if n in glb]
        for cell in self.cells:
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
        self.reach: _Reach | None = None   # the (last) named function's reach

    def reach_of(self, fn) -> _Reach:
        """``fn``'s :class:`_Reach` (kept for the next call of the same function)."""
        reach = self.reach
        if reach is None or reach.fn is not fn:
            reach = self.reach = _Reach(fn)
        return reach

    def members(self, module, lead: str) -> tuple[list, list]:
        """``([(parameter, name, (name, PARAMETER), grad name)], [(buffer, (name,
        BUFFER))])`` of ``module``, names prefixed with ``lead`` and made identifiers
        (the entries :func:`captured_names` makes, made once)."""
        if self.epoch != STRUCTURE[0] or len(self.entries) > self.LIMIT:
            self.entries = {}
            self.epoch = STRUCTURE[0]
        key = (id(module), lead)
        entry = self.entries.get(key)
        if entry is None or entry[0] is not module:   # (an id is reused once its object dies)
            params = [(p, _identifier(lead + name)) for name, p in module.named_parameters()]
            entry = self.entries[key] = (
                module,
                [(p, name, (name, Role.PARAMETER), name + ".grad") for p, name in params],
                [(b, (_identifier(lead + name), Role.BUFFER))
                 for name, b in module.named_buffers()])
        return entry[1], entry[2]


def captured_names(fn, args=(), kwargs=None,
                   cache: NameCache | None = None) -> dict[int, tuple[str, Role]]:
    """``id(tensor) -> (name, role)`` for tensors owned by reachable modules/optimizers
    (``cache``: the compiled function's, else the modules are walked afresh)."""
    module_class, optimizer_class, _ = _classes()
    names: dict[int, tuple[str, Role]] = {}
    modules, optimizers = [], []
    if cache is None:
        cache = NameCache()
    for obj in cache.reach_of(fn).objects(args, kwargs):
        if isinstance(obj, module_class):
            modules.append(obj)
        elif isinstance(obj, optimizer_class):
            optimizers.append(obj)
    if not modules and not optimizers:
        return names
    # names are identifiers from the start: _identifier looks at the first character
    # only, so a name extended with ".grad" or ".momentum_buffer" stays one
    param_names: dict[int, str] = {}
    setname = names.setdefault
    for prefix, m in enumerate(modules):
        params, buffers = cache.members(m, "" if prefix == 0 else f"m{prefix}.")
        for p, name, entry, grad_name in params:
            pid = id(p)
            param_names.setdefault(pid, name)
            setname(pid, entry)
            if (grad := p._grad) is not None:
                setname(id(grad), (grad_name, _GRAD))
        for b, entry in buffers:
            setname(id(b), entry)
    for k, opt in enumerate(optimizers):
        state = opt.state
        for group in opt.param_groups:
            for i, p in enumerate(group["params"]):
                pname = param_names.get(id(p))
                if pname is None:
                    pname = f"opt{k}.p{i}"
                    if (grad := p._grad) is not None:
                        setname(id(grad), (pname + ".grad", _GRAD))
                # (else its module named its grad above, by the same name)
                for key, value in state.get(p, _NONE).items():
                    if hasattr(value, "_type_cache"):
                        setname(id(value), (f"{pname}.{key}", Role.OPTIMIZER_STATE))
    return names


_GRAD = Role.GRAD
_NONE: dict = {}   # (read only: an optimizer's state for a parameter it has none for)


_PREFIX = {Role.ARGUMENT: "x", Role.PARAMETER: "p", Role.BUFFER: "b", Role.OPTIMIZER_STATE: "st",
           Role.GRAD: "g", Role.RNG_STATE: "rng", Role.CONSTANT: "c"}


def input_role(t) -> Role:
    """The role of a tensor from outside a call that has no captured name."""
    if isinstance(t, _classes()[2]):
        return Role.PARAMETER
    return Role.RNG_STATE if t.__dict__.get("_rng_key") else Role.ARGUMENT


@functools.cache
def _classes() -> tuple[type, type, type]:
    """Module, Optimizer and Parameter (imported at first use: compgrad.nn and
    compgrad.optim import compgrad.compile; an import statement per call costs ~1 us)."""
    from compgrad.nn.modules.module import Module
    from compgrad.nn.parameter import Parameter
    from compgrad.optim.optimizer import Optimizer
    return Module, Optimizer, Parameter


def input_name(role: Role, n: int) -> str:
    """The name of a call's ``n``-th input when it has no captured name (``x0``, ``p3``)."""
    return f"{_PREFIX[role]}{n}"


def _identifier(name: str) -> str:
    # Sequential's children are named "0", "1", ...: IR names start with a letter
    return name if name[:1].isalpha() or name[:1] == "_" else f"m.{name}"

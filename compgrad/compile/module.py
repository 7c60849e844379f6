"""``compile(module)``: a module whose calls run compiled (``torch``'s OptimizedModule)."""

from __future__ import annotations

from compgrad.nn.modules.module import Module

__all__ = ["OptimizedModule"]


class OptimizedModule(Module):
    """Wraps ``_orig_mod``; calling it runs the original module's ``__call__`` compiled.
    Parameters, buffers and state_dict keys are the original's under ``_orig_mod.``,
    as in PyTorch."""

    def __init__(self, mod: Module, compiled) -> None:
        super().__init__()
        self._orig_mod = mod
        object.__setattr__(self, "_compiled_call", compiled)

    def __call__(self, *args, **kwargs):
        return self._compiled_call(*args, **kwargs)

    def forward(self, *args, **kwargs):
        return self._compiled_call(*args, **kwargs)

    def explain(self):
        return self._compiled_call.explain()

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self._modules["_orig_mod"], name)

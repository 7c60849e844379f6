"""``compgrad.compile``: capture whole training steps into the IR and run them as
compiled programs (see :func:`compgrad.compile.api.compile`)."""

from compgrad.compile.api import BACKENDS, CompiledFunction, compile
from compgrad.compile.explain import BreakReason, ExplainOutput

__all__ = ["compile", "CompiledFunction", "ExplainOutput", "BreakReason", "BACKENDS"]

"""The layers of ``compgrad.nn`` (one module per family, as in PyTorch)."""

from compgrad.nn.modules.container import (
    ModuleDict,
    ModuleList,
    ParameterDict,
    ParameterList,
    Sequential,
)
from compgrad.nn.modules.module import Module

__all__ = ["Module", "Sequential", "ModuleList", "ModuleDict", "ParameterList", "ParameterDict"]

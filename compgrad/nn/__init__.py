"""``compgrad.nn``: modules, parameters, layers, losses and their functional forms."""

from compgrad.nn import functional
from compgrad.nn.modules import *  # noqa: F403
from compgrad.nn.modules import __all__ as _modules_all
from compgrad.nn.parameter import Buffer, Parameter

__all__ = ["functional", "Parameter", "Buffer", *_modules_all]

"""``compgrad.nn``: modules, parameters, layers, losses and their functional forms."""

from compgrad.nn import functional, init, utils
from compgrad.nn.modules import *  # noqa: F403
from compgrad.nn.modules import __all__ as _modules_all
from compgrad.nn.parameter import Buffer, Parameter

__all__ = ["functional", "init", "utils", "Parameter", "Buffer", *_modules_all]

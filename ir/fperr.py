"""Running reference implementations with NumPy's floating-point errors ignored.

PyTorch never warns when an op produces inf or nan (``log(0)``, ``0/0``,
``exp(1000)``); NumPy does, and under ``-W error`` (or ``np.seterr(all='raise')``)
the warning becomes an exception. Every place that runs an op's reference
implementation therefore runs it with NumPy's error handling set to ignore.

``np.errstate`` costs about 1 us a call, more than a small op. NumPy 2 keeps the
state in a context variable, so setting that variable to a prepared "ignore
everything" value costs about 0.2 us; where that private detail is missing
(another NumPy), ``np.errstate`` is used. ``ERRSTATE``/``IGNORE_ALL`` let the eager
interpreter's hot path do the same inline (None on such a NumPy).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["quiet_call", "ERRSTATE", "IGNORE_ALL"]

try:  # NumPy 2's error state: a context variable holding an "extobj" capsule
    from numpy._core._ufunc_config import _extobj_contextvar as ERRSTATE
    from numpy._core._ufunc_config import _make_extobj

    IGNORE_ALL = _make_extobj(all="ignore")
except (ImportError, AttributeError, TypeError):  # pragma: no cover - other NumPy versions
    ERRSTATE = IGNORE_ALL = None


def quiet_call(fn: Callable[..., Any], *args, **kwargs) -> Any:
    """``fn(*args, **kwargs)`` with NumPy's floating-point errors ignored."""
    if ERRSTATE is None:  # pragma: no cover - other NumPy versions
        with np.errstate(all="ignore"):
            return fn(*args, **kwargs)
    token = ERRSTATE.set(IGNORE_ALL)
    try:
        return fn(*args, **kwargs)
    finally:
        ERRSTATE.reset(token)

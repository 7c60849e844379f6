"""Faults the benchmark tests plant in the NumPy contestant's worker process, one per case.

``plant`` is a worker preload (``module:function``, called with the contestant's name
before the worker serves). In the NumPy worker only, it breaks the hand-written step of:

- W3: the gradient comes out doubled (a result mismatch);
- W4-lsm: raises ``RuntimeError: kernel exploded`` (the worker lives on);
- W4-ln: prints a line to stderr and ends the process with status 7;
- W1 and W2 (``NumpyMLP.step``): never returns.

W5 is left alone, so a worker started after a crash can be seen to work.

``refuse_replay`` (another preload) makes compgrad.replay's step refuse to be replayed,
as a step reading Python state the guards cannot cover would.
"""

from __future__ import annotations

import importlib
import os
import sys
import time
from typing import Any

import numpy as np

from benchmarks.compiled import by_hand

_real_gelu = by_hand.gelu_sum_grad_numpy


def _wrong_gelu(x: np.ndarray) -> tuple:
    s, grad = _real_gelu(x)
    return s, 2 * grad


def _broken_log_softmax(logits: np.ndarray, target: np.ndarray) -> tuple:
    raise RuntimeError("kernel exploded")


def _crashing_layer_norm(*args: Any, **kwargs: Any) -> tuple:
    print("the numpy worker is about to crash", file=sys.stderr, flush=True)
    os._exit(7)


def _hanging_mlp_step(self: by_hand.NumpyMLP, x: np.ndarray, y: np.ndarray) -> Any:
    time.sleep(3600)
    raise AssertionError("unreachable")


def plant(contestant: str) -> None:
    """Install the faults above when ``contestant`` is the NumPy one."""
    if contestant != "numpy":
        return
    by_hand.gelu_sum_grad_numpy = _wrong_gelu
    by_hand.log_softmax_nll_numpy = _broken_log_softmax
    by_hand.layer_norm_vjp_numpy = _crashing_layer_norm
    by_hand.NumpyMLP.step = _hanging_mlp_step


REPLAY_REFUSAL = "refused by tests/benchmarks/_faults.py"


class _Refused:
    """What ``pyreads.observe`` returns for a step it cannot guard."""

    refusal = REPLAY_REFUSAL

    def check(self, args: tuple, kwargs: dict) -> bool:
        return False

    def describe(self) -> list[str]:
        return []


def _refusing_observe(fn: Any, args: tuple, kwargs: dict) -> tuple[Any, _Refused]:
    return fn(*args, **kwargs), _Refused()


def refuse_replay(contestant: str) -> None:
    """In compgrad.replay's worker: every watched call refuses replay."""
    if contestant != "compgrad.replay":
        return
    import compgrad  # noqa: F401 - the package first, as the worker's hello loads it

    importlib.import_module("compgrad.compile.pyreads").observe = _refusing_observe

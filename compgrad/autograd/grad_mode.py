"""Grad modes: ``no_grad``, ``enable_grad``, ``set_grad_enabled``, ``inference_mode``.

The state is per thread, as in PyTorch. Each mode works as a context
manager and as a decorator.
"""

from __future__ import annotations

import functools
import inspect
import threading

__all__ = ["no_grad", "enable_grad", "set_grad_enabled", "inference_mode", "is_grad_enabled",
           "is_inference_mode_enabled"]


class _State(threading.local):
    def __init__(self):
        self.enabled = True
        self.inference = False


_STATE = _State()


def is_grad_enabled() -> bool:
    """Whether ops on tensors that require grad are recorded for backward (this thread)."""
    return _STATE.enabled


def is_inference_mode_enabled() -> bool:
    return _STATE.inference


class _Mode:
    """Base of the grad-mode context managers; subclasses set ``_target``."""

    _target: bool = True

    def _enter_state(self):
        self._prev = _STATE.enabled
        _STATE.enabled = self._target

    def _exit_state(self):
        _STATE.enabled = self._prev

    def __enter__(self):
        self._enter_state()
        return None

    def __exit__(self, *exc) -> bool:
        self._exit_state()
        return False

    def clone(self):
        return type(self)()

    def __call__(self, fn):
        if inspect.isclass(fn):
            raise TypeError(f"{type(self).__name__} cannot decorate a class")
        if inspect.isgeneratorfunction(fn):
            @functools.wraps(fn)
            def generator(*args, **kwargs):
                gen = fn(*args, **kwargs)
                with self.clone():
                    value = next(gen)
                while True:
                    try:
                        sent = yield value
                    except GeneratorExit:
                        gen.close()
                        raise
                    with self.clone():
                        value = gen.send(sent)
            return generator

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with self.clone():
                return fn(*args, **kwargs)
        return wrapper


class no_grad(_Mode):
    """Disable gradient recording inside the block or the decorated function."""

    _target = False

    def __init__(self, orig_func=None):
        if orig_func is not None and callable(orig_func):
            raise TypeError("use @no_grad() (with parentheses)")


class enable_grad(_Mode):
    """Enable gradient recording (inside a ``no_grad`` block, say)."""

    _target = True


class set_grad_enabled(_Mode):
    """Set gradient recording on or off; works as a function call too."""

    def __init__(self, mode: bool):
        if not isinstance(mode, bool):
            raise TypeError(f"set_grad_enabled(): argument 'mode' must be bool, not "
                            f"{type(mode).__name__}")
        self._target = mode
        self._prev = _STATE.enabled
        _STATE.enabled = mode  # takes effect as a plain call, as in PyTorch

    def __enter__(self):
        return None

    def __exit__(self, *exc) -> bool:
        _STATE.enabled = self._prev
        return False

    def __call__(self, fn):
        # used as a decorator: the call in __init__ must not outlive the decoration
        _STATE.enabled = self._prev
        return super().__call__(fn)

    def clone(self):
        prev = _STATE.enabled
        out = set_grad_enabled(self._target)
        out._prev = prev
        return out


class inference_mode(_Mode):
    """Like ``no_grad``, and marks the block as inference (``mode=False`` disables it)."""

    def __init__(self, mode: bool = True):
        self.mode = mode
        self._target = not mode if mode else _STATE.enabled

    def _enter_state(self):
        self._prev = (_STATE.enabled, _STATE.inference)
        if self.mode:
            _STATE.enabled = False
            _STATE.inference = True

    def _exit_state(self):
        _STATE.enabled, _STATE.inference = self._prev

    def clone(self):
        return inference_mode(self.mode)

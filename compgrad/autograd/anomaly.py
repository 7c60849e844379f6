"""Anomaly detection: remember where each node was created, name it when backward fails."""

from __future__ import annotations

import os
import threading
import traceback

__all__ = ["set_detect_anomaly", "detect_anomaly", "is_enabled", "capture_stack",
           "user_frame"]


class _Anomaly(threading.local):
    def __init__(self):
        self.enabled = False
        self.check_nan = True


_STATE = _Anomaly()
_COMPGRAD_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# frames in these folders are the library's, not the user's
_LIBRARY_DIRS = (_COMPGRAD_DIR + os.sep,
                 os.path.join(os.path.dirname(_COMPGRAD_DIR), "ir") + os.sep)


def is_enabled() -> bool:
    return _STATE.enabled


class set_detect_anomaly:
    """Turn anomaly detection on or off (function call, context manager)."""

    def __init__(self, mode: bool, check_nan: bool = True):
        self._prev = (_STATE.enabled, _STATE.check_nan)
        _STATE.enabled = bool(mode)
        _STATE.check_nan = check_nan

    def __enter__(self):
        return None

    def __exit__(self, *exc) -> bool:
        _STATE.enabled, _STATE.check_nan = self._prev
        return False


class detect_anomaly(set_detect_anomaly):
    """Context manager enabling anomaly detection inside the block."""

    def __init__(self, check_nan: bool = True):
        super().__init__(True, check_nan)


def capture_stack() -> list[traceback.FrameSummary]:
    return traceback.extract_stack()[:-2]


def _is_library(filename: str) -> bool:
    return os.path.abspath(filename).startswith(_LIBRARY_DIRS)


def user_frame(stack) -> traceback.FrameSummary | None:
    """The innermost frame of the user's code in a captured stack."""
    for frame in reversed(stack or ()):
        if not _is_library(frame.filename):
            return frame
    return None


def check_nan_enabled() -> bool:
    return _STATE.enabled and _STATE.check_nan

"""Every environment flag compgrad reads, in one place (read at use, so tests and
users can set them at any time).

- ``COMPGRAD_DISABLE=1``: ``@compile`` runs the plain eager function everywhere.
- ``COMPGRAD_DUMP=dir``: write the IR of every program compiled (after capture,
  and after each pass once passes run) into ``dir``, one file per stage.
- ``COMPGRAD_RECOMPILE_LIMIT=n``: programs one compiled function may compile
  before it runs eagerly with a warning (default 8).
- ``COMPGRAD_CACHE_DIR=dir``: the kernel cache directory (codegen).
- ``COMPGRAD_TUNE_MALLOC=0``: leave glibc's malloc thresholds alone (by default
  ``import compgrad`` raises them so freed arrays are reused; see
  ``compgrad.allocator``).
- ``COMPGRAD_VERIFY_ROUNDTRIP=1``: ``ir.verify`` also checks that the printed IR
  parses back to the same text (the test-suite sets it; read by ``ir.verify``,
  which cannot import this module).
"""

from __future__ import annotations

import os

__all__ = ["disabled", "dump_dir", "recompile_limit", "tune_malloc"]

_ON = frozenset(("1", "true", "yes", "on"))


def disabled() -> bool:
    """Whether ``COMPGRAD_DISABLE`` turns compilation off."""
    value = os.environ.get("COMPGRAD_DISABLE")   # (read on every compiled call: unset is
    return value is not None and value.strip().lower() in _ON   # answered without parsing)


def dump_dir() -> str | None:
    """The ``COMPGRAD_DUMP`` directory, or None."""
    return os.environ.get("COMPGRAD_DUMP") or None


def recompile_limit() -> int:
    """``COMPGRAD_RECOMPILE_LIMIT`` (default 8)."""
    return int(os.environ.get("COMPGRAD_RECOMPILE_LIMIT", "8"))


def tune_malloc() -> bool:
    """Whether ``import compgrad`` may raise glibc's malloc thresholds
    (``COMPGRAD_TUNE_MALLOC``, default on)."""
    return os.environ.get("COMPGRAD_TUNE_MALLOC", "1").strip().lower() not in (
        "0", "false", "no", "off")

"""Joining and splitting: cat, stack, hstack, vstack, split, chunk, unbind."""

from __future__ import annotations

__all__: list[str] = []
METHODS: tuple[str, ...] = ()
INPLACE: tuple[str, ...] = ()
FUNCTIONAL: tuple[str, ...] = ()
INTERNAL: tuple[str, ...] = ()

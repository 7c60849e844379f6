"""Comparisons, logical and bitwise ops, where, isclose/allclose/equal."""

from __future__ import annotations

__all__: list[str] = []
METHODS: tuple[str, ...] = ()
INPLACE: tuple[str, ...] = ()
FUNCTIONAL: tuple[str, ...] = ()
INTERNAL: tuple[str, ...] = ()

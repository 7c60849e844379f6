"""Sorting and selection: sort, argsort, topk, kthvalue, median, mode, unique."""

from __future__ import annotations

__all__: list[str] = []
METHODS: tuple[str, ...] = ()
INPLACE: tuple[str, ...] = ()
FUNCTIONAL: tuple[str, ...] = ()
INTERNAL: tuple[str, ...] = ()

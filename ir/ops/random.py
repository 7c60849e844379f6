"""Random ops keyed by a generator key: rand, randn, randint, randperm, normal, ...."""

from __future__ import annotations

__all__: list[str] = []
METHODS: tuple[str, ...] = ()
INPLACE: tuple[str, ...] = ()
FUNCTIONAL: tuple[str, ...] = ()
INTERNAL: tuple[str, ...] = ()

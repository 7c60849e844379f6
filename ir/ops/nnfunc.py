"""nn.functional math: softmax, log_softmax, dropout, linear, one_hot, normalize, ...."""

from __future__ import annotations

__all__: list[str] = []
METHODS: tuple[str, ...] = ()
INPLACE: tuple[str, ...] = ()
FUNCTIONAL: tuple[str, ...] = ()
INTERNAL: tuple[str, ...] = ()

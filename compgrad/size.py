"""``compgrad.Size``: the shape tuple, printed like ``torch.Size``."""

from __future__ import annotations

import math

__all__ = ["Size"]


class Size(tuple):
    """A tuple of dims (``t.shape``); ``Size([2, 3])``."""

    def __new__(cls, sizes=()):
        return super().__new__(cls, (int(s) for s in sizes))

    def numel(self) -> int:
        """The number of elements a tensor of this shape holds."""
        return math.prod(self)

    def __repr__(self) -> str:
        return f"compgrad.Size({list(self)!r})"

    def __getitem__(self, item):
        out = super().__getitem__(item)
        return Size(out) if isinstance(item, slice) else out

    def __add__(self, other):
        return Size(tuple(self) + tuple(other))

    def __radd__(self, other):
        return Size(tuple(other) + tuple(self))

"""``compgrad.nn.functional``: the functional forms of layers, activations and losses.

The math is in ``ir.ops`` (each family's ``FUNCTIONAL`` table names what
belongs here); this module re-exports it and supplies the default random
generator to the ops that draw numbers.
"""

from __future__ import annotations

from ir import ops as _ops

__all__: list[str] = []


def _export_functional() -> None:
    for family in _ops.FAMILIES:
        for name in getattr(family, "FUNCTIONAL", ()):
            globals()[name] = getattr(family, name)
            __all__.append(name)


_export_functional()

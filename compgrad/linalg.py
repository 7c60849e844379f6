"""``compgrad.linalg``: linear-algebra functions (``linalg.norm``, ...).

Each op family's ``LINALG`` table names the functions exported here.
"""

from __future__ import annotations

from ir import ops as _ops

__all__: list[str] = []


def _export_linalg() -> None:
    for family in _ops.FAMILIES:
        for name in getattr(family, "LINALG", ()):
            globals()[name] = getattr(family, name)
            __all__.append(name)


_export_linalg()

"""``compgrad.linalg``: linear-algebra functions (``linalg.norm``, ...).

Each op family's ``LINALG`` dict maps a name here to the family's function
(``{"norm": "linalg_norm"}``, since ``torch.norm`` and ``torch.linalg.norm`` differ).
"""

from __future__ import annotations

from ir import ops as _ops

__all__: list[str] = []


def _export_linalg() -> None:
    for family in _ops.FAMILIES:
        for name, attr in getattr(family, "LINALG", {}).items():
            globals()[name] = getattr(family, attr)
            __all__.append(name)


_export_linalg()

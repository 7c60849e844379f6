"""The op functions: what users call (through compgrad), what VJP rules call.

Each family module registers its records on import and declares tables of
names: ``__all__`` (also ``compgrad.<name>``), ``METHODS`` (also
``Tensor.<name>``), ``INPLACE`` (``Tensor.<name>_``), ``FUNCTIONAL`` (also
``compgrad.nn.functional.<name>``), ``LINALG`` (a dict: ``compgrad.linalg.<key>``
is the family's function named by the value) and ``INTERNAL`` (used by VJP rules and
compgrad, not exported to users). This package re-exports all of them, so
``ir.ops.add`` is the one ``add``.
"""

import types
import warnings

from ir.ops import (
    activation,
    compare,
    contract,
    conv,
    creation,
    elementwise,
    fused,
    indexing,
    indexing_masked,
    indexing_scatter,
    join,
    linalg,
    losses,
    movement,
    nnfunc,
    normalization,
    norms,
    pointwise,
    pool,
    random,
    rearrange,
    reduce,
    reduce_grad,
    reduce_stats,
    resample,
    scan,
    sort,
    unary,
)
from ir.ops._util import promote_operands

# the family modules, in the order compgrad binds their names
FAMILIES = (elementwise, pointwise, unary, activation, compare, reduce, reduce_stats,
            scan, reduce_grad, sort, movement,
            rearrange, join, indexing, indexing_masked, indexing_scatter, linalg, contract,
            norms, nnfunc, conv, pool, resample, creation, random, normalization, losses, fused)


def _export() -> None:
    namespace = globals()
    for family in FAMILIES:
        for table in ("__all__", "METHODS", "FUNCTIONAL", "INTERNAL"):
            for name in getattr(family, table, ()):
                fn = getattr(family, name)
                existing = namespace.get(name, fn)
                # a function may take the name of a family module (ir.ops.sort)
                if existing is not fn and not isinstance(existing, types.ModuleType):
                    raise ImportError(f"ir.ops.{name} is defined by two families")
                namespace[name] = fn


_export()

# PyTorch does not warn when an op produces inf or nan (log(0), 0/0): NumPy's
# RuntimeWarnings raised from inside the op kernels are not the user's concern.
warnings.filterwarnings("ignore", category=RuntimeWarning, module=r"ir\.ops(\.|$)")
__all__ = ["FAMILIES", "promote_operands"]

"""compgrad's IR: dtypes, types, the op registry and the interpreter stack.

Nothing in this package imports ``compgrad``, ``codegen`` or ``passes``.
"""

from ir import dtypes, ops, types
from ir.dispatch import apply, interpreter, type_of
from ir.opdef import REGISTRY, OpDef, OpKind, get_op

__all__ = ["dtypes", "types", "ops", "apply", "interpreter", "type_of", "REGISTRY", "OpDef",
           "OpKind", "get_op"]

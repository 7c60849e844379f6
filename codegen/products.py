"""Matrix products of a compiled program: one BLAS call writing into a pooled buffer.

The runtime (:mod:`codegen.runtime`) runs a product node through a
:class:`ProductKernel` instead of the op's reference implementation when
:func:`product_kernel` gives one: ``mm``, ``matmul`` and ``bmm``, and the scaled
products ``addmm``, ``addmv`` and ``baddbmm`` (``beta * input + alpha * product``;
``nn.Linear`` records ``addmm(bias, x, weight.T)``). The product is one
``np.matmul(a, b, out=buf)`` into a buffer from the program's pool (a fresh 4 MiB
result costs ~1 ms of page faults here); a scaled product then finishes in place,
``buf *= alpha`` and ``buf += input`` (or ``input * beta``, broadcast), the operations
and order of the reference (``ir/ops/linalg.py``, ``_addmm_impl``), swapped (below) where
the reference swaps: on the same BLAS thread count the result is the interpreter's bit for
bit (:mod:`codegen.threads` may run a product on one thread; OpenBLAS rounds some
products differently on one thread and on two, W1's [32,784] @ [784,512] among them);
``beta == 0`` ignores the input, NaNs included, as PyTorch does.

Transposed operands are never copied: a transposed view is handed to ``np.matmul``,
which passes BLAS the transpose flag.

**Layout swap.** OpenBLAS is slow on a product with few rows whose right operand is a
transposed matrix -- Linear's forward, ``x @ weight.T`` with a small batch (packing the
transposed weight dominates when there are few rows to amortise it over). Its
transpose, ``weight @ x.T``, is fast. Measured here (float32, us, one BLAS thread /
two), direct against swapped plus the copy back to row-major:

    product                 direct     swapped    copy back
    [16,784] @ [784,512]    275 / 159   147 /  79      3
    [32,784] @ [784,512]    354 / 198   221 / 108     12
    [32,512] @ [512,512]    205 / 140   145 /  82     13
    [64,784] @ [784,512]    463 / 261   371 / 214     37
    [128,512] @ [512,512]   468 / 276   400 / 254     75
    [256,784] @ [784,512]  1392 / 740  1307 / 741    147

So a product that the rule of ``ir.ops.linalg.swap_may_pay`` admits (at most
``SWAP_MAX_ROWS`` rows, fewer than its columns, a right factor of at least
``SWAP_MIN_FACTOR`` elements), whose right factor is a transposed matrix at run time
(strides are not in the types), is computed as ``b.T @ a.T`` into a ``[N, M]`` buffer
from the pool and copied into the row-major result (``swapped_matmul_into``). The
result keeps the layout every consumer expects (a column-major one made the phase
kernels after it take their strided loop: +30 us on W1's [32,512] ReLU, more than the
copy). The reference implementation (``ir.ops.linalg.blas_matmul``) swaps on the same
rule with the same function, so the two compute the same expression; BLAS may round a
swapped product differently in the last bit from an unswapped one (the same dot
products, blocked in another order).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from codegen.buffers import BufferPool
from ir.fperr import quiet_call
from ir.graph import Node, Value
from ir.ops.linalg import is_transposed_matrix, swap_may_pay, swapped_matmul_into

__all__ = ["PLAIN_PRODUCTS", "PRODUCTS", "SCALED_PRODUCTS", "ProductKernel", "product_kernel"]

# the plain products: (a, b) -> a @ b
PLAIN_PRODUCTS = frozenset(("mm", "matmul", "bmm"))
# beta * input + alpha * (a @ b), inputs (input, a, b), attributes beta and alpha
SCALED_PRODUCTS = frozenset(("addmm", "addmv", "baddbmm"))
PRODUCTS = PLAIN_PRODUCTS | SCALED_PRODUCTS

# the dtypes BLAS computes in (float16's reference computes in float32 and rounds;
# numpy's own float16 matmul would not give that result)
_BLAS_DTYPES = frozenset((np.dtype(np.float32), np.dtype(np.float64)))


@dataclass(frozen=True)
class ProductKernel:
    """How one product node runs: ``kernel(values, pool)`` is its result array.

    ``values`` are the node's input values in order; ``shape``/``dtype`` the result's;
    ``scaled``: an addmm-like node (input first, then the factors) with ``beta`` and
    ``alpha``; ``swappable``: a 2-D product the layout swap may speed up
    (``ir.ops.linalg.swap_may_pay``), computed as its transpose when the right factor is
    a transposed matrix (module docstring)."""

    shape: tuple
    dtype: np.dtype
    scaled: bool
    beta: float = 1
    alpha: float = 1
    swappable: bool = False

    def __call__(self, values: list, pool: BufferPool) -> np.ndarray:
        # NumPy's floating-point warnings off, as for every reference implementation
        # (PyTorch never warns when a product overflows or meets a NaN)
        return quiet_call(self._compute, values, pool)

    def _compute(self, values: list, pool: BufferPool) -> np.ndarray:
        if self.scaled:
            c, a, b = values
        else:
            a, b = values
        out = pool.empty(self.shape, self.dtype)
        if self.swappable and is_transposed_matrix(b):
            swapped_matmul_into(out, a, b, pool.empty(self.shape[::-1], self.dtype))
        else:
            np.matmul(a, b, out=out)
        if self.scaled:
            _scale_and_add(out, c, self.beta, self.alpha)
        return out


def _scale_and_add(out: np.ndarray, c, beta, alpha) -> None:
    """``out = alpha * out + beta * c`` in place, as the reference computes it: the
    product scaled first, then the (scaled) input added; beta 0 ignores ``c``."""
    if alpha != 1:
        np.multiply(out, alpha, out=out)
    if beta == 0:
        return
    np.add(out, c if beta == 1 else c * beta, out=out)


def product_kernel(node: Node) -> ProductKernel | None:
    """The :class:`ProductKernel` of ``node``, or None when it runs on its reference
    implementation: not a product op, or not a float32/float64 product of arrays of
    the result's dtype."""
    name = node.op.name
    if name not in PRODUCTS or len(node.outputs) != 1:
        return None
    out = node.outputs[0].type
    dtype = out.dtype.np_dtype
    scaled = name in SCALED_PRODUCTS
    factors = node.inputs[1:] if scaled else node.inputs
    if (dtype not in _BLAS_DTYPES or out.ndim == 0 or len(factors) != 2
            or not all(isinstance(a, Value) and a.type.dtype.np_dtype == dtype
                       for a in node.inputs)
            or not all(a.type.ndim >= 1 for a in factors)):
        return None
    shape = tuple(out.shape)
    swappable = (out.ndim == 2 and factors[0].type.ndim == 2 and factors[1].type.ndim == 2
                 and swap_may_pay(shape[0], factors[0].type.shape[1], shape[1]))
    if not scaled:
        return ProductKernel(shape, dtype, False, swappable=swappable)
    return ProductKernel(shape, dtype, True, node.attrs["beta"], node.attrs["alpha"],
                         swappable)

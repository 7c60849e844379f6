"""Reference implementations that take a faster NumPy path for some inputs: each path
gives the plain path's result (bit for bit where the docstring says so), on the inputs
that select it, special values included."""

from __future__ import annotations

import numpy as np
import pytest

import compgrad
from ir.ops import activation, linalg


def _specials(shape, dtype):
    x = np.random.default_rng(0).standard_normal(shape).astype(dtype)
    x[::3, ::5] = -0.0
    if np.dtype(dtype).kind == "f":
        x[1::7, 2::3] = np.nan
        x[5, :] = -np.inf
        x[6, 1::2] = np.inf
    return x


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16, np.int32, np.uint8])
def test_relu_against_a_row_of_zeros_gives_the_scalar_loops_bits(dtype):
    x = _specials((96, 130), dtype)       # 12480 elements, rows of 130: the SIMD path
    with np.errstate(invalid="ignore"):
        want = np.maximum(x, x.dtype.type(0))
    got = activation._relu_np(x)
    assert got.dtype == want.dtype and got.flags.c_contiguous
    assert got.tobytes() == want.tobytes()
    assert not np.shares_memory(got, activation._zeros_row(130, x.dtype))


def test_relu_rows_of_zeros_are_read_only():
    row = activation._zeros_row(128, np.dtype(np.float32))
    with pytest.raises(ValueError):
        row[0] = 1


def test_relu_gradient_masks_by_the_output():
    x = compgrad.tensor([-2.0, -0.0, 0.0, 1.5, float("inf"), float("nan")], requires_grad=True)
    compgrad.relu(x).backward(compgrad.full((6,), 3.0))
    np.testing.assert_array_equal(x.grad.numpy(), [0, 0, 0, 3, 3, 0])
    assert x.grad.dtype == compgrad.float32


@pytest.mark.parametrize("rows,inner,cols", [(32, 784, 512), (8, 512, 512), (64, 128, 256)])
def test_matmul_swap_for_few_rows_and_a_transposed_right_factor(rows, inner, cols):
    rng = np.random.default_rng(1)
    a = rng.standard_normal((rows, inner), dtype=np.float32)
    w = rng.standard_normal((cols, inner), dtype=np.float32)
    assert linalg.swap_may_pay(rows, inner, cols) and linalg.is_transposed_matrix(w.T)
    got = linalg.blas_matmul(a, w.T)
    assert got.flags.c_contiguous and got.shape == (rows, cols) and got.dtype == np.float32
    np.testing.assert_allclose(got, a.astype(np.float64) @ w.T.astype(np.float64),
                               rtol=1e-4, atol=1e-4)
    # eager Linear computes the same product (addmm(bias, x, weight.T))
    lin = compgrad.nn.Linear(inner, cols)
    with compgrad.no_grad():
        lin.weight.copy_(compgrad.from_numpy(w))
        lin.bias.zero_()
    out = lin(compgrad.from_numpy(a)).detach().numpy()
    assert out.flags.c_contiguous
    np.testing.assert_array_equal(out, got)


@pytest.mark.parametrize("rows,inner,cols,transposed", [
    (65, 512, 512, True),     # too many rows
    (32, 512, 16, True),      # fewer columns than rows
    (32, 64, 128, True),      # a right factor too small to pay for the copy
    (32, 512, 512, False),    # a row-major right factor
])
def test_matmul_without_swap_is_numpys_product(rows, inner, cols, transposed):
    rng = np.random.default_rng(2)
    a = rng.standard_normal((rows, inner), dtype=np.float32)
    b = (rng.standard_normal((cols, inner), dtype=np.float32).T if transposed
         else rng.standard_normal((inner, cols), dtype=np.float32))
    np.testing.assert_array_equal(linalg.blas_matmul(a, b), np.matmul(a, b))


def test_addmm_adds_into_the_product_and_leaves_its_input_alone():
    rng = np.random.default_rng(3)
    c = rng.standard_normal(256, dtype=np.float32)
    a = rng.standard_normal((32, 128), dtype=np.float32)
    b = rng.standard_normal((256, 128), dtype=np.float32).T
    c0 = c.copy()
    got = linalg._addmm_impl(c, a, b, 1, 1)
    np.testing.assert_array_equal(c, c0)
    assert not np.shares_memory(got, c)
    np.testing.assert_array_equal(got, linalg.blas_matmul(a, b) + c)
    scaled = linalg._addmm_impl(c, a, b, 0.5, 2.0)
    np.testing.assert_array_equal(scaled, linalg.blas_matmul(a, b) * 2.0 + c * 0.5)

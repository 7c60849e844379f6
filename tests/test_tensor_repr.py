"""``repr`` of tensors matches PyTorch's character for character."""

from __future__ import annotations

import numpy as np
import pytest

import compgrad
from compgrad import _tensor_str

torch = pytest.importorskip("torch")


def _cases():
    rng = np.random.default_rng(0)
    f32 = np.float32
    yield np.array([1.0, 2.0], f32)
    yield np.array([1, 2], np.int64)
    yield np.array(3.5, f32)
    yield np.array(3, np.int64)
    yield np.array(True)
    yield np.array([[1.0, 2.5], [-3.25, 4.0]], f32)
    yield np.array([1e-5, 1e5], f32)
    yield np.array([1e-5, 1.0], np.float64)
    yield np.array([1e9, 2.0], f32)
    yield np.array([np.nan, np.inf, -np.inf, 1.5], f32)
    yield np.array([np.nan, 1.0, -np.inf], f32)
    yield np.array([np.nan, np.inf], f32)
    yield np.array([0.0, -0.0, 0.0], f32)
    yield np.array([-1, 10, 200, -3000], np.int64)
    yield np.array([True, False])
    yield np.array([[True], [False]])
    yield np.arange(2000, dtype=f32).reshape(40, 50)
    yield np.arange(1500, dtype=np.int64)
    yield rng.standard_normal((30, 40)).astype(f32)
    yield rng.standard_normal((4, 3, 2)).astype(f32)
    yield rng.standard_normal((12, 12, 12)).astype(np.float64)
    yield rng.standard_normal(25).astype(f32) * 100
    yield rng.standard_normal(7).astype(np.float16)
    yield np.array([1, 2], np.int32)
    yield np.array([1, 2], np.uint8)
    yield np.array([-5, 3], np.int8)
    yield np.array([1, 2], np.int16)
    yield np.array([1.5, 2.0], np.float64)
    yield np.zeros((0,), f32)
    yield np.zeros((0, 3), f32)
    yield np.zeros((0,), np.int64)
    yield np.zeros((2, 0), np.float64)
    yield np.zeros((0,), np.bool_)
    yield np.array([123456.789, 0.001], np.float64)
    yield np.array([1.0, 2.0, 3.0], np.float64)
    yield np.linspace(-1, 1, 30).astype(f32)


CASES = list(_cases())


def _same(ours, theirs):
    assert repr(ours) == repr(theirs).replace("torch.", "compgrad.")


@pytest.mark.parametrize("index", range(len(CASES)))
def test_repr_matches_torch(index):
    a = CASES[index]
    _same(compgrad.from_numpy(a.copy()), torch.from_numpy(a.copy()))


def test_requires_grad_suffix():
    a = np.array([[1.0, 2.0], [3.0, 4.0]], np.float32)
    _same(compgrad.from_numpy(a.copy()).requires_grad_(),
          torch.from_numpy(a.copy()).requires_grad_())
    b = np.arange(30, dtype=np.float64) / 7
    _same(compgrad.from_numpy(b.copy()).requires_grad_(),
          torch.from_numpy(b.copy()).requires_grad_())


def test_grad_fn_suffix():
    class AddBackward0:
        pass

    t = compgrad.from_numpy(np.array([1.0, 2.0], np.float32))
    t.grad_fn = AddBackward0()
    x = torch.tensor([0.5, 1.0], requires_grad=True)
    _same(t, x + torch.tensor([0.5, 1.0]))


def test_print_options():
    a = np.arange(10, dtype=np.float32) / 3
    with _tensor_str.printoptions(precision=2, threshold=5, edgeitems=2), \
            torch._tensor_str.printoptions(precision=2, threshold=5, edgeitems=2):
        _same(compgrad.from_numpy(a.copy()), torch.from_numpy(a.copy()))
    assert _tensor_str.get_printoptions()["precision"] == 4


def test_str_and_format():
    t = compgrad.from_numpy(np.array([1.0, 2.0], np.float32))
    assert str(t) == "tensor([1., 2.])"
    assert f"{compgrad.from_numpy(np.array(2.5))}" == "2.5"


def test_device_suffix():
    from compgrad.tensor import Tensor
    from ir.types import Device
    t = Tensor._from_array(np.array([1.0, 2.0], np.float32), Device("cuda", 0))
    assert repr(t) == "tensor([1., 2.], device='cuda:0')"
    t = Tensor._from_array(np.array([1, 2], np.int32), Device("cuda"))
    assert repr(t) == "tensor([1, 2], device='cuda:0', dtype=compgrad.int32)"

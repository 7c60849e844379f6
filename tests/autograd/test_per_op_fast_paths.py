"""The per-op and per-node shortcuts of eager mode keep the generic behaviour.

- The eager interpreter wraps a fresh CPU result inline and tests aliasing by NumPy
  ``base`` before ``np.may_share_memory`` (compgrad/_eager.py): results own their
  storage, view ops still share it (and the version counter), and a kernel that returns
  an input unchanged still gets a copy.
- Graph nodes start with one shared, empty hook table (compgrad/autograd/node.py):
  registering a hook, retaining a gradient or writing ``metadata`` on one node gives
  that node its own table and leaves every other node's empty.
"""

from __future__ import annotations

import numpy as np

import compgrad
from compgrad._eager import EAGER
from compgrad.autograd.node import NO_HOOKS
from ir.opdef import OpDef, OpKind
from ir.types import TensorType


def _t(*shape, requires_grad=False):
    data = np.arange(np.prod(shape), dtype=np.float32).reshape(shape) + 1.0
    return compgrad.tensor(data, requires_grad=requires_grad)


# --- results of the eager interpreter ----------------------------------------------------

def test_fresh_results_own_their_storage():
    a, b = _t(3), _t(3)
    for out in (a + b, a * 2.0, a.exp(), a @ _t(3, 3), a.sum()):
        assert out._base is None and out._version == [0]
        assert out._type_cache is not None and out.device == a.device
        assert not np.may_share_memory(out._data, a._data)


def test_view_results_share_storage_and_version():
    a = _t(2, 3)
    for view in (a.t(), a.reshape(6), a.expand(2, 2, 3), a.t().t()):
        assert view._base is a and view._version is a._version
        assert np.may_share_memory(view._data, a._data)
    view = a.t()
    a.add_(1.0)
    np.testing.assert_array_equal(view.numpy(), a.numpy().T)


def test_a_kernel_returning_its_input_gets_a_copy():
    # an op that is not a view must not hand out its input's storage
    ident = OpDef("test_identity_kernel", OpKind.OPAQUE, _same_type, _identity)
    a = _t(4)
    out = EAGER.apply(ident, (a,), {})
    assert not np.may_share_memory(out._data, a._data)
    np.testing.assert_array_equal(out.numpy(), a.numpy())


def test_a_kernel_returning_the_owner_of_its_input_view_gets_a_copy():
    owner = np.arange(6, dtype=np.float32)
    view = compgrad.from_numpy(owner[:4])
    ident = OpDef("test_base_kernel", OpKind.OPAQUE, _owner_type, _owner)
    out = EAGER.apply(ident, (view,), {})
    assert out._data is not owner and not np.may_share_memory(out._data, owner)


def _same_type(types):
    return types[0]


def _identity(a):
    return a


def _owner_type(types):
    return TensorType((6,), types[0].dtype, types[0].device)


def _owner(a):
    return a.base


# --- hook tables of graph nodes ----------------------------------------------------------

def _two_nodes():
    x = _t(3, requires_grad=True)
    y = x * 2.0
    z = y + 1.0
    return x, y, z


def test_new_nodes_share_the_empty_tables():
    _, y, z = _two_nodes()
    for node in (y.grad_fn, z.grad_fn):
        assert node._pre_hooks is NO_HOOKS and node._post_hooks is NO_HOOKS
        assert node._tensor_pre_hooks is NO_HOOKS and node._retained is NO_HOOKS


def test_hooks_on_one_node_leave_the_others_without():
    x, y, z = _two_nodes()
    calls = []
    z.grad_fn.register_prehook(lambda grads: calls.append("pre"))
    z.grad_fn.register_hook(lambda gi, go: calls.append("post"))
    y.register_hook(lambda g: calls.append("tensor"))
    y.retain_grad()
    assert y.grad_fn._retained and y.grad_fn._tensor_pre_hooks
    assert z.grad_fn._retained is NO_HOOKS and z.grad_fn._tensor_pre_hooks is NO_HOOKS
    assert y.grad_fn._pre_hooks is NO_HOOKS and y.grad_fn._post_hooks is NO_HOOKS
    assert not NO_HOOKS
    z.sum().backward()
    assert calls == ["pre", "post", "tensor"]
    np.testing.assert_array_equal(y.grad.numpy(), np.ones(3, np.float32))
    np.testing.assert_array_equal(x.grad.numpy(), np.full(3, 2.0, np.float32))


def test_removed_hooks_stop_running():
    _, y, z = _two_nodes()
    calls = []
    handle = z.grad_fn.register_hook(lambda gi, go: calls.append("post"))
    handle.remove()
    z.sum().backward()
    assert calls == []


def test_metadata_is_a_dict_of_each_node():
    _, y, z = _two_nodes()
    y.grad_fn.metadata["tag"] = 1
    assert y.grad_fn.metadata == {"tag": 1}
    assert z.grad_fn.metadata == {}
    assert y.grad_fn.metadata is y.grad_fn.metadata

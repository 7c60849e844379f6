"""The CuPy emulator's rules, each checked on the fake and, where a GPU and CuPy are there,
on the real CuPy (so a GPU run checks the emulator's fidelity); then the fake GPU installed
into compgrad.cuda."""

from __future__ import annotations

import operator
import warnings

import numpy as np
import pytest

from tests.support.fake_cupy import FakeCupy, OutOfMemoryError, PerformanceWarning
from tests.support.fake_gpu import fake_gpu, gpu, install_fake_gpu, real_cupy  # noqa: F401


@pytest.fixture(params=["fake", "real"])
def cp(request):
    """The fake CuPy (two devices), then the real one (skipped without a GPU)."""
    if request.param == "fake":
        return FakeCupy(n_devices=2)
    cupy = real_cupy()
    if cupy is None:
        pytest.skip("needs CuPy and a CUDA GPU")
    return cupy


def _fake_only(cp) -> FakeCupy:
    if not isinstance(cp, FakeCupy):
        pytest.skip("checks the emulator's own bookkeeping")
    return cp


# --- no implicit transfers ----------------------------------------------------------------------

@pytest.mark.parametrize("convert", [np.asarray, np.array, np.ascontiguousarray,
                                     np.lib.stride_tricks.as_strided])
def test_implicit_conversion_to_numpy_raises(cp, convert):
    with pytest.raises(TypeError, match="Implicit conversion to a NumPy array is not allowed"):
        convert(cp.arange(3.0))


def _ufunc_call(a, h):
    return np.add(a, h)


def _operator(a, h):
    return a * h


def _reflected(a, h):
    return h - a


def _inplace(a, h):
    a += h


def _comparison(a, h):
    return a == h


def _ufunc_out(a, h):
    return np.exp(a, out=h)


def _function(a, h):
    return np.concatenate([a, h])


def _where(a, h):
    return np.where(a > 0, a, h)


@pytest.mark.parametrize("mix", [_ufunc_call, _operator, _reflected, _inplace, _comparison,
                                 _ufunc_out, _function, _where])
def test_numpy_arrays_as_operands_raise(cp, mix):
    with pytest.raises(TypeError):
        mix(cp.ones(3), np.ones(3))


def test_lists_as_ufunc_operands_raise(cp):
    with pytest.raises(TypeError):
        np.add(cp.ones(3), [1.0, 2.0, 3.0])


def test_scalars_meet_device_arrays(cp):
    a = cp.ones(3, dtype=np.float32)
    for result in (a + 1, 1.5 * a, 2 ** a, np.multiply(a, np.float32(2)), -a, abs(a),
                   np.add(a, 1)):
        assert isinstance(result, cp.ndarray) and result.shape == (3,)
    assert (a * 2.0).dtype == np.float32          # NEP 50: a Python float is weak
    assert (a + np.float64(1)).dtype == np.float64


def test_ufunc_keywords_are_cupys(cp):
    a, out = cp.arange(3.0), cp.empty(3)
    assert np.add(a, 1, out=out) is out and out.tolist() == [1.0, 2.0, 3.0]
    assert np.add(a, 1, dtype=np.float32).dtype == np.float32
    with pytest.raises(TypeError):
        np.add(a, 1, where=a > 0)


# --- ufunc methods ----------------------------------------------------------------------------

def test_supported_ufunc_methods(cp):
    a = cp.arange(6.0).reshape(2, 3)
    assert np.add.reduce(a, axis=0).tolist() == [3.0, 5.0, 7.0]
    assert np.multiply.reduce(a, axis=1).tolist() == [0.0, 60.0]
    assert np.add.accumulate(a, axis=1).tolist() == [[0.0, 1.0, 3.0], [3.0, 7.0, 12.0]]
    assert np.multiply.outer(cp.arange(2.0), cp.arange(3.0)).shape == (2, 3)
    z = cp.zeros(3, dtype=np.float32)
    np.add.at(z, cp.asarray([0, 0, 2]), cp.ones(3, dtype=np.float32))
    assert z.tolist() == [2.0, 0.0, 1.0]   # repeated indices accumulate


def _maximum_reduce(a):
    np.maximum.reduce(a)


def _logaddexp_accumulate(a):
    np.logaddexp.accumulate(a)


def _multiply_at(a):
    np.multiply.at(a, a.astype(np.int32), 2.0)


@pytest.mark.parametrize("call", [_maximum_reduce, _logaddexp_accumulate, _multiply_at])
def test_ufunc_methods_cupy_lacks_raise_not_implemented(cp, call):
    with pytest.raises(NotImplementedError):
        call(cp.zeros(3))


def test_ufunc_at_rules(cp):
    a = cp.zeros((2, 2), dtype=np.float32)
    index = (cp.asarray([0, 1]), cp.asarray([1, 1]))
    with pytest.raises(TypeError):   # a tuple of index arrays: NotImplemented from CuPy
        np.add.at(a, index, 1.0)
    with pytest.raises(TypeError, match="scatter_add only supports"):
        np.add.at(cp.zeros(3, dtype=np.int64), cp.asarray([0]), 1)
    with pytest.raises(TypeError):
        np.add.reduce(cp.ones(3), axis=0, initial=0.0)


def test_ufuncs_cupy_lacks_raise(cp):
    with pytest.raises(TypeError):
        np.spacing(cp.ones(3))


# --- results ----------------------------------------------------------------------------------

def test_full_reductions_and_scalar_results_are_0d_device_arrays(cp):
    a = cp.arange(6.0).reshape(2, 3)
    v = cp.arange(3.0)
    results = [a.sum(), np.sum(a), a.max(), np.mean(a), a.argmax(), np.dot(v, v), a[0, 0],
               v[1], np.count_nonzero(a), a.all(), v.std(), np.array_equal(v, v)]
    for r in results:
        assert isinstance(r, cp.ndarray) and r.shape == (), r
    assert float(a.sum()) == 15.0 and int(a.argmax()) == 5


def test_views_share_memory_and_write_through(cp):
    a = cp.zeros((3, 4))
    row = a[1]
    row[...] = 1.0
    a.T[0, 2] = 5.0
    a.reshape(12)[0] = 7.0
    np.transpose(a)[3, 0] = 9.0
    assert a.tolist() == [[7, 0, 0, 9], [1, 1, 1, 1], [5, 0, 0, 0]]
    assert row.base is a and row[1:].base is a and a.T.base is a
    assert a.flags.owndata and not row.flags.owndata and not hasattr(a.flags, "writeable")
    assert cp.shares_memory(a, row) and not cp.shares_memory(a, a.copy())
    assert row.data.ptr == a.data.ptr + 4 * a.itemsize
    assert cp.may_share_memory(np.broadcast_to(a[0], (2, 4)), a)
    a.diagonal()[...] = 3.0   # CuPy views are writeable
    assert a[1, 1].item() == 3.0


def test_transpose_of_vectors_is_the_array_and_mT_needs_a_matrix(cp):
    v = cp.arange(3.0)
    assert v.T is v
    with pytest.raises(ValueError, match="ndim < 2"):
        v.mT  # noqa: B018
    assert cp.ones((2, 3, 4)).mT.shape == (2, 4, 3)


def test_astype_and_asarray_avoid_copies_when_asked(cp):
    a = cp.arange(3.0)
    assert a.astype(np.float64, copy=False) is a and a.astype(np.float64) is not a
    assert cp.asarray(a) is a
    assert cp.asarray(a, dtype=np.float32).dtype == np.float32


def test_truth_length_iteration_and_conversions(cp):
    one, many, empty, zero_d = cp.ones(1), cp.ones(3), cp.ones(0), cp.asarray(2.0)
    assert bool(one) and float(zero_d) == 2.0 and int(zero_d) == 2
    with pytest.raises(ValueError, match="more than one element"):
        bool(many)
    with pytest.warns(DeprecationWarning):
        assert not bool(empty)
    for call in (len, iter):
        with pytest.raises(TypeError):
            call(zero_d)
    with pytest.raises(TypeError):   # CuPy arrays define no __index__
        operator.index(cp.asarray(1))
    assert len(many) == 3 and [x.shape for x in many] == [(), (), ()]


def test_cuda_array_interface(cp):
    a = cp.arange(6, dtype=np.float32).reshape(2, 3)
    cai = a.__cuda_array_interface__
    assert cai["version"] == 3 and cai["shape"] == (2, 3) and cai["typestr"] == "<f4"
    assert cai["data"] == (a.data.ptr, False) and cai["strides"] is None
    assert a.T.__cuda_array_interface__["strides"] == (4, 12)
    assert cp.ones(0).__cuda_array_interface__["data"] == (0, False)


# --- indexing ---------------------------------------------------------------------------------

def test_integer_array_indices_wrap_around(cp):
    x = cp.arange(3)
    assert x[cp.asarray([1, 3])].tolist() == [1, 0]
    assert x[[1, -4]].tolist() == [1, 2]
    x[cp.asarray([4])] = 10
    assert x.tolist() == [0, 10, 2]
    assert x.take(cp.asarray([5])).tolist() == [2]
    assert np.take_along_axis(x, cp.asarray([4, -1]), 0).tolist() == [10, 2]


def test_index_kinds(cp):
    x = cp.arange(6).reshape(2, 3)
    assert x[np.array([1])].tolist() == [[3, 4, 5]]   # NumPy index arrays are copied over
    assert x[x > 3].tolist() == [4, 5]
    assert x[None, ..., 1].shape == (1, 2)
    with pytest.raises(IndexError):
        x[2]
    with pytest.raises(IndexError):
        x[0, 0, 0]


def test_assigning_numpy_arrays(cp):
    x = cp.zeros(3)
    with pytest.raises(ValueError, match="non-scalar numpy.ndarray cannot be used for fill"):
        x[0:2] = np.array([5.0, 6.0])
    x[cp.asarray([0, 1])] = np.array([5.0, 6.0])   # advanced indexing copies it over
    x[2:] = np.float64(7.0)
    assert x.tolist() == [5.0, 6.0, 7.0]


def test_copyto_rules(cp):
    dst = cp.zeros(3)
    with pytest.raises(ValueError, match="non-scalar numpy.ndarray cannot be used for copyto"):
        np.copyto(dst, np.ones(3))
    np.copyto(dst, np.array([2.0]))          # a size-1 NumPy array is a scalar
    cp.copyto(dst, cp.arange(3.0)[None])     # leading unit axes are dropped
    assert dst.tolist() == [0.0, 1.0, 2.0]
    with pytest.raises(TypeError, match="Cannot cast"):
        cp.copyto(cp.zeros(3, dtype=np.int32), dst)
    np.copyto(dst, 5.0, where=dst > 0)
    assert dst.tolist() == [0.0, 5.0, 5.0]


# --- NumPy functions --------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["astype", "unstack", "trapezoid", "cumulative_sum",
                                  "unique_values", "block", "insert"])
def test_functions_cupy_lacks_raise_type_error(cp, name):
    a = cp.arange(4.0)
    args = {"astype": (np.float32,), "insert": (0, 1.0), "block": ()}.get(name, ())
    target = [a, a] if name == "block" else a
    with pytest.raises(TypeError):
        getattr(np, name)(target, *args)
    assert not hasattr(cp, name)


def test_functions_cupy_has_run_on_the_device(cp):
    a = cp.arange(6.0).reshape(2, 3)
    results = [np.concatenate([a, a]), np.stack([a, a]), np.einsum("ij->j", a),
               np.take_along_axis(a, cp.zeros((2, 1), dtype=np.int64), 1), np.where(a > 2, a, 0),
               np.clip(a, 1, 4), np.pad(a, 1), np.concat([a, a]),
               np.lib.stride_tricks.sliding_window_view(a, 2, axis=1)]
    for r in results:
        assert isinstance(r, cp.ndarray)
    assert np.shape(a) == (2, 3) and np.ndim(a) == 2 and np.result_type(a, 1) == np.float64


def test_reductions_refuse_where_and_initial(cp):
    a = cp.arange(3.0)
    with pytest.raises(TypeError):
        np.sum(a, where=a > 0)
    with pytest.raises(TypeError):
        np.max(a, initial=0.0)


def test_module_functions(cp):
    a = cp.arange(6.0).reshape(2, 3)
    assert cp.get_array_module(a) is cp and cp.get_array_module(np.ones(1)) is np
    host = cp.asnumpy(a)
    assert isinstance(host, np.ndarray) and host.tolist() == a.tolist()
    assert cp.ascontiguousarray(a.T).flags.c_contiguous
    assert cp.zeros_like(a).tolist() == [[0.0] * 3] * 2 and cp.ones_like(a, shape=4).shape == (4,)
    assert cp.full((2,), 3, dtype=np.int32).tolist() == [3, 3] and cp.full_like(a, 1).sum() == 6
    assert cp.empty_like(a).shape == (2, 3) and cp.arange(1, 7, 2).tolist() == [1, 3, 5]
    assert cp.matmul(a, a.T).shape == (2, 2) and (a @ a.T).shape == (2, 2)
    assert cp.dot(a[0], a[0]).item() == 5.0
    assert cp.array([cp.ones(2), cp.zeros(2)]).shape == (2, 2)
    assert cp.float32 is np.float32 and cp.exp(a).shape == (2, 3)


# --- memory, transfers, devices -----------------------------------------------------------

def test_pool_counts_allocations_rounded_to_512_bytes(cp):
    pool = cp.get_default_memory_pool()
    before = pool.used_bytes()
    a = cp.empty(1000, dtype=np.float32)       # 4000 bytes -> 4096
    assert pool.used_bytes() - before == 4096
    view, empty = a[10:], cp.empty(0)
    assert pool.used_bytes() - before == 4096 and empty.data.ptr == 0
    reserved = pool.total_bytes()
    assert reserved >= pool.used_bytes()
    del a, view
    assert pool.used_bytes() == before and pool.total_bytes() == reserved   # cached
    pool.free_all_blocks()
    assert pool.total_bytes() <= reserved
    if isinstance(cp, FakeCupy):
        assert pool.total_bytes() == pool.used_bytes()


def test_pool_limits_and_capacity_raise_out_of_memory():
    cp = FakeCupy(device_memory=8192)
    a = cp.empty(1024, dtype=np.float32)
    with pytest.raises(OutOfMemoryError, match="Out of memory allocating 8,192 bytes"):
        cp.empty(2048, dtype=np.float32)
    del a
    b = cp.empty(2048, dtype=np.float32)   # the cached block was given back and retried
    del b
    pool = cp.get_default_memory_pool()
    cp.empty(1024, dtype=np.float32)   # served from the cached block: no new memory
    pool.free_all_blocks()
    pool.set_limit(size=1024)
    with pytest.raises(OutOfMemoryError, match="limit set to: 1,024 bytes"):
        cp.empty(512, dtype=np.float32)


def test_empty_holds_garbage():
    cp = FakeCupy()
    assert np.isnan(cp.empty(3).get()).all() and (cp.empty(2, dtype=np.int32).get() == -1).all()


def test_transfer_counter(cp):
    cp = _fake_only(cp)
    a = cp.asarray(np.arange(4.0))
    assert cp.transfers.host_to_device == 1 and cp.transfers.device_to_host == 0
    before = cp.transfers
    b = np.exp(a) + a.sum()
    assert cp.transfers == before   # a snapshot: nothing crossed
    b[cp.zeros(1, dtype=np.int64)] = 0.0   # the scalar value is copied over (advanced)
    assert cp.transfers.host_to_device == 2 and cp.transfers.device_to_host == 0
    b.get()
    float(b[0])
    assert cp.transfers.device_to_host == 2
    a[a > 1]   # a boolean mask reads its count on the host
    assert cp.transfers.device_to_host == 3
    assert [e.what for e in cp.transfer_log.events][-1].startswith("boolean mask")
    cp.transfer_log.reset()
    with cp.transfer_log.forbid():
        np.tanh(a).sum(axis=0)
        with pytest.raises(AssertionError, match="device-to-host"):
            a.tolist()


def _peer_refusal(cp):
    """CuPy raises where devices 0 and 1 have no peer access, and warns where it enables
    it (as on machines whose GPUs are linked)."""
    if isinstance(cp, FakeCupy):
        peer_access = cp.peer_access
    else:
        peer_access = bool(cp.cuda.runtime.deviceCanAccessPeer(1, 0))
    if peer_access:
        return pytest.warns(Warning, match="is different from the current device")
    return pytest.raises(ValueError, match="is different from the current device")


def test_kernels_on_another_devices_arrays_raise(cp):
    if cp.cuda.runtime.getDeviceCount() < 2:
        pytest.skip("needs two GPUs")
    a = cp.ones(3)
    with cp.cuda.Device(1):
        for call in (np.exp, cp.sum, _double):
            with _peer_refusal(cp):
                call(a)
        b, c = a.copy(), cp.asarray(a)
        assert b.device.id == 1 and c.device.id == 1 and c is not a
        assert a.shape == (3,) and a[1:].device.id == 0 and a.get().tolist() == [1.0] * 3
    assert a.device.id == 0 and cp.cuda.runtime.getDevice() == 0


def _double(a):
    return a * 2


def test_peer_access_warns_instead():
    cp = FakeCupy(2, peer_access=True)
    a = cp.ones(3)
    with cp.cuda.Device(1), pytest.warns(PerformanceWarning, match="activated automatically"):
        assert (a + 1).device.id == 1


def test_invalid_device_raises(cp):
    count = cp.cuda.runtime.getDeviceCount()
    with pytest.raises(cp.cuda.runtime.CUDARuntimeError, match="invalid device ordinal"):
        cp.cuda.Device(count).use()


def test_streams_and_synchronisations(cp):
    cp = _fake_only(cp)
    stream = cp.cuda.Stream()
    assert cp.cuda.get_current_stream() is cp.cuda.Stream.null
    with stream:
        assert cp.cuda.get_current_stream() is stream
        assert cp.ones(1).__cuda_array_interface__["stream"] == stream.ptr
        cp.cuda.get_current_stream().synchronize()
    with cp.cuda.Device(1):
        cp.cuda.Device().synchronize()
    assert cp.synchronizations == [("cupy", 0), ("device", 1)]


def test_machines_are_isolated():
    one, two = FakeCupy(), FakeCupy()
    with pytest.raises(TypeError):
        one.ones(2) + two.ones(2)
    reserved = two.get_default_memory_pool().total_bytes()
    one.asarray(np.ones(100))
    assert two.get_default_memory_pool().total_bytes() == reserved
    assert one.transfers.host_to_device == 1 and not two.transfer_log.events


def test_no_floating_point_warnings(cp):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.isinf((cp.ones(2) / 0).get()).all()


# --- the fake GPU in compgrad.cuda ------------------------------------------------------------

def test_install_fake_gpu_is_undone_after_the_test(monkeypatch):
    from compgrad import cuda
    really = cuda.is_available()
    with monkeypatch.context() as mp:
        machine = install_fake_gpu(mp, 2)
        assert cuda.is_available() and cuda.device_count() == 2
        assert cuda.get_device_name(1) == "NVIDIA Fake GPU 1"
        assert cuda.get_device_capability(0) == (9, 0)
        cuda.set_device(1)
        assert machine.cupy.cuda.runtime.getDevice() == 1
        assert machine.numba_cuda.get_current_device().id == 1
        cuda.synchronize()
        assert machine.synchronizations == [("numba", 1), ("cupy", 1)]
        a = machine.cupy.empty(100)   # 800 bytes -> 1024 on device 1
        assert cuda.memory_allocated(1) == 1024 and cuda.memory_allocated(0) == 0
        del a
    assert cuda.is_available() is really


def test_fake_gpu_fixture(fake_gpu):  # noqa: F811 - the fixture
    from compgrad import cuda
    assert isinstance(fake_gpu, FakeCupy) and fake_gpu.cuda.runtime.getDeviceCount() == 1
    assert cuda.is_available() and cuda._cupy() is fake_gpu


@pytest.mark.parametrize("fake_gpu", [2], indirect=True)
def test_fake_gpu_fixture_with_more_devices(fake_gpu):  # noqa: F811 - the fixture
    from compgrad import cuda
    assert cuda.device_count() == 2 == fake_gpu.n_devices


def test_gpu_fixture_runs_on_fake_and_real(gpu):  # noqa: F811 - the fixture
    from compgrad import cuda
    assert cuda.is_available() and cuda._cupy() is gpu
    a = gpu.arange(4.0)
    assert (a * 2).sum().item() == 12.0 and isinstance(a, gpu.ndarray)

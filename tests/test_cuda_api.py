"""compgrad.cuda's PyTorch API: what it does without a GPU (against torch's CPU build where
torch is importable), how device arguments are read, and the with-GPU paths run against a
fake numba.cuda and a fake CuPy."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import pytest

import compgrad
from compgrad import cuda, cuda_memory

needs_no_gpu = pytest.mark.skipif(cuda.is_available(), reason="needs a machine without a GPU")


# --- without a GPU, against torch ------------------------------------------------------------

RAISES_NO_GPU = [
    ("synchronize", ()), ("synchronize", (0,)), ("synchronize", ("cuda:1",)),
    ("synchronize", ("cpu",)), ("get_device_name", ()), ("get_device_name", (0,)),
    ("get_device_capability", ()), ("get_device_capability", ("cpu",)),
    ("current_device", ()), ("initial_seed", ()),
]
RETURNS = [
    ("is_available", (), False), ("device_count", (), 0), ("is_initialized", (), False),
    ("manual_seed", (1,), None), ("manual_seed", (2**70,), None), ("manual_seed_all", (1,), None),
    ("seed", (), None), ("seed_all", (), None), ("empty_cache", (), None),
    ("set_device", (-1,), None), ("memory_allocated", (), 0), ("memory_allocated", (0,), 0),
    ("memory_allocated", ("cpu",), 0), ("max_memory_allocated", ("cuda",), 0),
    ("memory_reserved", (), 0), ("max_memory_reserved", ("cuda:3",), 0),
]
RAISES_OTHER = [
    ("manual_seed", ("x",), ValueError), ("manual_seed_all", ("x",), ValueError),
    ("set_device", ("cpu",), ValueError), ("set_device", ("cuda",), ValueError),
    ("set_device", (None,), ValueError), ("set_device", ("foo",), RuntimeError),
    ("reset_peak_memory_stats", ("cpu",), ValueError),
]


def _torch_cuda():
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("needs torch's behaviour without a GPU")
    return torch.cuda


def _raised(fn, *args) -> type[BaseException] | None:
    try:
        fn(*args)
    except Exception as exc:  # noqa: BLE001 - the type is what is compared
        return type(exc)
    return None


@needs_no_gpu
@pytest.mark.parametrize(("name", "args"), RAISES_NO_GPU)
def test_functions_that_need_a_gpu_raise(name, args):
    with pytest.raises(cuda.CudaUnavailableError) as info:
        getattr(cuda, name)(*args)
    message = str(info.value)
    assert "compgrad found no CUDA device" in message and "pip install compgrad[cuda]" in message
    # both what torch's CPU build raises and what its CUDA build raises without a driver
    assert isinstance(info.value, AssertionError) and isinstance(info.value, RuntimeError)
    theirs = _raised(getattr(_torch_cuda(), name), *args)
    assert theirs is not None and issubclass(cuda.CudaUnavailableError, theirs)


@needs_no_gpu
@pytest.mark.parametrize(("name", "args", "expected"), RETURNS)
def test_functions_that_answer_without_a_gpu(name, args, expected):
    assert getattr(cuda, name)(*args) == expected
    assert getattr(_torch_cuda(), name)(*args) == expected


@needs_no_gpu
@pytest.mark.parametrize(("name", "args", "error"), RAISES_OTHER)
def test_argument_errors_match_torch(name, args, error):
    assert _raised(getattr(cuda, name), *args) is error
    assert issubclass(_raised(getattr(_torch_cuda(), name), *args), error)


def _enter(device_cls, arg):
    with device_cls(arg):
        pass


@needs_no_gpu
@pytest.mark.parametrize(("arg", "error"), [(-1, None), ("cpu", ValueError),
                                            (0, RuntimeError), ("cuda:1", RuntimeError)])
def test_device_context_matches_torch(arg, error):
    ours = _raised(_enter, cuda.device, arg)
    assert ours is error or issubclass(ours, error)
    theirs = _raised(_enter, _torch_cuda().device, arg)
    assert theirs is error or issubclass(theirs, error)


@needs_no_gpu
def test_where_torch_cpu_build_fails_by_accident():
    # torch's CPU build raises AttributeError (a missing binding) from set_device(0) and
    # reset_peak_memory_stats(), TypeError from device('cuda'); compgrad says why instead
    for fn, args in ((cuda.set_device, (0,)), (cuda.reset_peak_memory_stats, ()),
                     (_enter, (cuda.device, "cuda"))):
        with pytest.raises(cuda.CudaUnavailableError):
            fn(*args)
    _enter(cuda.device, None)   # None does nothing, as torch documents
    assert cuda.default_generators == () == tuple(_torch_cuda().default_generators)


def test_compgrad_cuda_is_importable_from_the_package():
    assert compgrad.cuda is cuda and "synchronize" in cuda.__all__
    with pytest.raises(AttributeError):
        cuda.no_such_function  # noqa: B018


# --- device arguments -----------------------------------------------------------------------

@pytest.mark.parametrize(("arg", "index"), [
    (None, None), (0, 0), (3, 3), (-1, -1), ("cuda", None), ("cuda:1", 1),
    (compgrad.device("cuda", 2), 2), (compgrad.device("cuda:3"), 3),
    (compgrad.device("cuda"), None),
])
def test_device_index(arg, index):
    assert cuda._device_index(arg) == index


@pytest.mark.parametrize(("arg", "error", "match"), [
    ("cpu", ValueError, "Expected a cuda device, but got: cpu"),
    (compgrad.device("cpu"), ValueError, "Expected a cuda device, but got: cpu"),
    (1.5, ValueError, "with a specified index or an integer"),
    (True, ValueError, "with a specified index or an integer"),
    ("foo", RuntimeError, "Expected one of cpu, cuda"),
    ("cuda:x", RuntimeError, "Invalid device string"),
])
def test_device_index_rejects(arg, error, match):
    with pytest.raises(error, match=match):
        cuda._device_index(arg)


@pytest.mark.parametrize("arg", [None, "cuda", compgrad.device("cuda")])
def test_device_index_required(arg):
    with pytest.raises(ValueError, match="with a specified index or an integer"):
        cuda._device_index(arg, optional=False)


# --- with a GPU: fake numba.cuda and CuPy ---------------------------------------------------------

@dataclass
class _FakeGpu:
    id: int
    name: str | bytes
    compute_capability: tuple[int, int] = (9, 0)


@dataclass
class _Driver:
    """What the fakes share: the current device, synchronisations and pool contents."""
    current: int = 0
    synced: list = field(default_factory=list)
    used: dict = field(default_factory=dict)
    total: dict = field(default_factory=dict)


class _FakeNumbaCuda:
    def __init__(self, driver: _Driver):
        self.driver = driver
        self.gpus = [_FakeGpu(0, b"Fake GPU 0"), _FakeGpu(1, "Fake GPU 1", (8, 6))]

    def is_available(self) -> bool:
        return True

    def get_current_device(self) -> _FakeGpu:
        return self.gpus[self.driver.current]

    def select_device(self, index: int) -> _FakeGpu:
        self.driver.current = index
        return self.gpus[index]

    def synchronize(self) -> None:
        self.driver.synced.append(("numba", self.driver.current))


class _FakePool:
    def __init__(self, driver: _Driver):
        self.driver = driver

    def used_bytes(self) -> int:
        return self.driver.used.get(self.driver.current, 0)

    def total_bytes(self) -> int:
        return self.driver.total.get(self.driver.current, 0)

    def free_all_blocks(self) -> None:
        self.driver.total[self.driver.current] = self.used_bytes()


class _FakeCupy:
    """The parts of CuPy compgrad.cuda uses: cupy.cuda.{runtime, Device,
    get_current_stream} and get_default_memory_pool."""

    def __init__(self, driver: _Driver):
        self.driver = driver
        self.cuda = self
        self.runtime = self
        self.pool = _FakePool(driver)

    def getDevice(self) -> int:  # noqa: N802 - CuPy's name
        return self.driver.current

    def setDevice(self, index: int) -> None:  # noqa: N802 - CuPy's name
        self.driver.current = index

    @contextlib.contextmanager
    def Device(self, index: int):  # noqa: N802 - CuPy's name
        prev, self.driver.current = self.driver.current, index
        try:
            yield
        finally:
            self.driver.current = prev

    def get_current_stream(self) -> _FakeCupy:
        return self

    def synchronize(self) -> None:   # the stream's
        self.driver.synced.append(("cupy", self.driver.current))

    def get_default_memory_pool(self) -> _FakePool:
        return self.pool


def _install(monkeypatch, numba_cuda, cupy) -> None:
    def fake_numba_cuda():
        if isinstance(numba_cuda, Exception):
            raise numba_cuda
        return numba_cuda

    def fake_cupy():
        return cupy

    monkeypatch.setattr(cuda, "_numba_cuda", fake_numba_cuda)
    monkeypatch.setattr(cuda, "_cupy", fake_cupy)
    monkeypatch.setattr(cuda, "_initialized", False)
    monkeypatch.setattr(cuda_memory, "_peaks", {})
    cuda._probe.cache_clear()
    cuda._generators.cache_clear()


@pytest.fixture
def fake_driver(monkeypatch):
    """A two-GPU machine with CuPy; the caches are cleared again afterwards."""
    driver = _Driver()
    _install(monkeypatch, _FakeNumbaCuda(driver), _FakeCupy(driver))
    yield driver
    cuda._probe.cache_clear()
    cuda._generators.cache_clear()


@pytest.fixture
def fake_no_cupy(monkeypatch, fake_driver):
    """A two-GPU machine with numba-cuda only."""
    monkeypatch.setattr(cuda, "_cupy", lambda: None)
    return fake_driver


def test_fake_gpu_devices(fake_driver):
    assert cuda.is_available() and cuda.device_count() == 2 and not cuda.is_initialized()
    assert cuda.current_device() == 0 and cuda.is_initialized()
    assert cuda.get_device_name() == "Fake GPU 0"   # numba's ctypes binding gives bytes
    assert cuda.get_device_name("cuda:1") == cuda.get_device_name(compgrad.device("cuda", 1)) \
        == "Fake GPU 1"
    assert cuda.get_device_capability() == (9, 0) and cuda.get_device_capability(1) == (8, 6)
    with pytest.raises(RuntimeError, match="invalid device ordinal 2"):
        cuda.get_device_name(2)
    with pytest.raises(ValueError, match="Expected a cuda device, but got: cpu"):
        cuda.synchronize("cpu")


@pytest.mark.parametrize("fixture", ["fake_driver", "fake_no_cupy"])
def test_fake_gpu_set_device_and_context(fixture, request):
    driver = request.getfixturevalue(fixture)
    cuda.set_device("cuda:1")
    assert cuda.current_device() == 1 == driver.current
    cuda.set_device(-1)   # does nothing
    assert cuda.current_device() == 1
    with cuda.device(0) as guard:
        assert cuda.current_device() == 0 and guard.idx == 0
        with cuda.device(None), cuda.device("cuda"):
            assert cuda.current_device() == 0
    assert cuda.current_device() == 1
    with pytest.raises(RuntimeError, match="invalid device ordinal"):
        cuda.set_device(5)


def test_fake_gpu_synchronize(fake_driver):
    cuda.synchronize()
    assert fake_driver.synced == [("numba", 0), ("cupy", 0)]
    fake_driver.synced.clear()
    cuda.synchronize(1)   # on device 1, then back on the current one
    assert fake_driver.synced == [("numba", 1), ("cupy", 1)] and fake_driver.current == 0


def test_fake_gpu_synchronize_without_cupy(fake_no_cupy):
    cuda.synchronize()
    assert fake_no_cupy.synced == [("numba", 0)]


def test_fake_gpu_generators(fake_driver):
    gens = cuda.default_generators
    assert [str(g.device) for g in gens] == ["cuda:0", "cuda:1"]
    assert cuda.default_generators is gens   # one generator per device for the process
    cuda.manual_seed_all(7)
    assert [g.initial_seed() for g in gens] == [7, 7] and cuda.initial_seed() == 7
    cuda.set_device(1)
    cuda.manual_seed(11)
    assert [g.initial_seed() for g in gens] == [7, 11] and cuda.initial_seed() == 11
    cuda.seed()
    assert gens[0].initial_seed() == 7 and gens[1].initial_seed() != 11
    cuda.seed_all()
    assert gens[0].initial_seed() == gens[1].initial_seed() != 7
    with pytest.raises(RuntimeError, match="Overflow"):
        cuda.manual_seed_all(2**70)   # a GPU seeds at once, and checks the range


def test_fake_gpu_memory_statistics(fake_driver):
    fake_driver.used[0], fake_driver.total[0] = 100, 200
    assert cuda.memory_allocated() == 100 and cuda.memory_reserved() == 200
    fake_driver.used[0], fake_driver.total[0] = 300, 400
    cuda.note_allocation()   # the runtime's hook sees the peak ...
    fake_driver.used[0] = 50   # ... which is gone before the statistics are read
    assert cuda.memory_allocated(0) == 50 and cuda.max_memory_allocated() == 300
    assert cuda.max_memory_reserved("cuda:0") == 400
    assert cuda.memory_allocated(1) == 0 and cuda.max_memory_allocated(1) == 0
    cuda.empty_cache()   # frees the unused blocks, keeps the reserved peak
    assert cuda.memory_reserved() == 50 and cuda.max_memory_reserved() == 400
    cuda.reset_peak_memory_stats()
    assert cuda.max_memory_allocated() == 50 and cuda.max_memory_reserved() == 50
    fake_driver.used[1] = 10
    cuda.note_allocation(1)
    fake_driver.used[1] = 0
    assert cuda.max_memory_allocated(compgrad.device("cuda:1")) == 10
    assert fake_driver.current == 0   # reading device 1 left the current device alone
    with pytest.raises(ValueError, match="Expected a cuda device, but got: cpu"):
        cuda.memory_allocated("cpu")   # with a GPU, as torch once CUDA is initialised


def test_fake_gpu_without_cupy_has_allocated_nothing(fake_no_cupy):
    fake_no_cupy.used[0] = 100
    cuda.note_allocation()
    cuda.empty_cache()
    assert cuda.memory_allocated() == 0 and cuda.max_memory_allocated() == 0
    assert cuda.memory_reserved() == 0 and cuda.max_memory_reserved() == 0


class _NoDriver(_FakeNumbaCuda):
    def is_available(self) -> bool:
        return False


@pytest.mark.parametrize(("numba_cuda", "reason"), [
    (_NoDriver(_Driver()), "no CUDA driver was found"),
    (ImportError("no module named numba.cuda"), "numba.cuda cannot be imported"),
])
def test_probe_says_why_there_is_no_gpu(monkeypatch, fake_driver, numba_cuda, reason):
    _install(monkeypatch, numba_cuda, None)
    assert not cuda.is_available() and cuda.device_count() == 0
    assert cuda.default_generators == ()
    with pytest.raises(cuda.CudaUnavailableError, match=reason):
        cuda.synchronize()
    assert cuda.memory_allocated() == 0 and cuda.manual_seed_all(1) is None

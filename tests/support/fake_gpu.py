"""A GPU for compgrad's tests: a fake machine (FakeCupy plus a fake numba.cuda) installed
into ``compgrad.cuda``, or the real GPU when one is lent.

``install_fake_gpu(monkeypatch, n_devices=1)`` makes ``compgrad.cuda.is_available()`` True
on any machine: ``compgrad.cuda._numba_cuda`` and ``compgrad.cuda._cupy`` return the fakes,
and the cached probe and generators start afresh (the cached functions are replaced by
fresh caches through ``monkeypatch``, so the real answers come back, untouched, when the
test ends); it returns the :class:`FakeGpuMachine`. Test modules use the fixtures, which
all give the CuPy namespace (``cp.ndarray``, ``cp.asarray`` ...), by importing them::

    from tests.support.fake_gpu import fake_gpu  # noqa: F401   (the fake CuPy)
    from tests.support.fake_gpu import gpu  # noqa: F401        (fake, then the real one)
    from tests.support.fake_gpu import real_gpu  # noqa: F401   (the real one, or skip)

``gpu`` runs a test twice: on the fake machine, and on the real GPU when
``compgrad.cuda.is_available()`` is really True and CuPy imports (skipped otherwise), so the
same GPU tests check compgrad on a lent GPU. Only the fake counts transfers
(``cp.transfers``, ``cp.transfer_log``) and synchronisations (``cp.synchronizations``):
check ``isinstance(cp, FakeCupy)`` (or ``hasattr(cp, "transfers")``) before reading them.
The fake numba.cuda lists devices, selects and synchronises them; it compiles and launches
no kernels (codegen's CUDA kernels are tested on Numba's simulator).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import pytest

from tests.support.fake_cupy import FakeCupy

__all__ = ["FakeGpu", "FakeNumbaCuda", "FakeGpuMachine", "install_fake_gpu", "real_cupy",
           "fake_gpu", "real_gpu", "gpu"]


@dataclass
class FakeGpu:
    """A device as numba.cuda lists it in ``numba.cuda.gpus``."""

    id: int
    name: bytes   # numba's ctypes binding gives bytes
    compute_capability: tuple[int, int]


class _GpuList:
    """``numba.cuda.gpus``: indexable, sized, iterable."""

    def __init__(self, gpus: list[FakeGpu]):
        self._gpus = gpus

    def __len__(self) -> int:
        return len(self._gpus)

    def __getitem__(self, index: int) -> FakeGpu:
        return self._gpus[index]

    def __iter__(self):
        return iter(self._gpus)


class FakeNumbaCuda:
    """The parts of ``numba.cuda`` compgrad.cuda uses, on the same machine as a FakeCupy:
    selecting a device makes it CuPy's current device too (cudaSetDevice makes its
    primary context current, which both libraries use)."""

    def __init__(self, cupy: FakeCupy):
        self._cupy = cupy
        self.gpus = _GpuList([FakeGpu(i, cupy.device_name(i).encode(), cupy.compute_capability)
                              for i in range(cupy.n_devices)])

    def is_available(self) -> bool:
        return True

    def select_device(self, index: int) -> FakeGpu:
        """Make device ``index`` current (for numba and CuPy alike)."""
        self._cupy.cuda.runtime.setDevice(index)
        return self.gpus[index]

    def get_current_device(self) -> FakeGpu:
        return self.gpus[self._cupy.cuda.runtime.getDevice()]

    def synchronize(self) -> None:
        """Wait for the current device (recorded as ``("numba", device)``)."""
        self._cupy.record_synchronization("numba", self._cupy.cuda.runtime.getDevice())


@dataclass
class FakeGpuMachine:
    """A fake GPU machine: its CuPy and its numba.cuda, which share the current device and
    the record of synchronisations (``cupy.synchronizations``)."""

    cupy: FakeCupy
    numba_cuda: FakeNumbaCuda

    @property
    def transfers(self):
        """The host/device copies made so far (a snapshot: ``cupy.transfers``)."""
        return self.cupy.transfers

    @property
    def synchronizations(self) -> list[tuple[str, int]]:
        return self.cupy.synchronizations


def install_fake_gpu(monkeypatch, n_devices: int = 1, *, with_cupy: bool = True,
                     peer_access: bool = False, device_memory: int = 80 * 2**30
                     ) -> FakeGpuMachine:
    """Make ``compgrad.cuda`` see a fake machine of ``n_devices`` GPUs (with CuPy unless
    ``with_cupy`` is False: then numba.cuda alone) for the rest of the test."""
    from compgrad import cuda, cuda_memory

    cupy = FakeCupy(n_devices, peer_access=peer_access, device_memory=device_memory)
    numba_cuda = FakeNumbaCuda(cupy)

    def fake_numba_cuda():
        return numba_cuda

    def fake_cupy():
        return cupy if with_cupy else None

    monkeypatch.setattr(cuda, "_numba_cuda", fake_numba_cuda)
    monkeypatch.setattr(cuda, "_cupy", fake_cupy)
    monkeypatch.setattr(cuda, "_initialized", False)
    monkeypatch.setattr(cuda_memory, "_peaks", {})
    # fresh caches for this test; monkeypatch restores the real (cached) ones afterwards
    monkeypatch.setattr(cuda, "_probe", functools.cache(cuda._probe.__wrapped__))
    monkeypatch.setattr(cuda, "_generators", functools.cache(cuda._generators.__wrapped__))
    return FakeGpuMachine(cupy, numba_cuda)


def real_cupy():
    """CuPy, where compgrad finds a GPU and CuPy imports; else None."""
    from compgrad import cuda
    return cuda._cupy() if cuda.is_available() else None


def _real_or_skip():
    cupy = real_cupy()
    if cupy is None:
        pytest.skip("needs a CUDA GPU and CuPy")
    return cupy


@pytest.fixture
def fake_gpu(request, monkeypatch) -> FakeCupy:
    """The fake CuPy of a fake machine with one GPU installed into compgrad.cuda
    (``@pytest.mark.parametrize("fake_gpu", [2], indirect=True)`` for more GPUs)."""
    return install_fake_gpu(monkeypatch, getattr(request, "param", 1)).cupy


@pytest.fixture
def real_gpu():
    """The real CuPy (the test is skipped without a GPU and CuPy)."""
    return _real_or_skip()


@pytest.fixture(params=["fake", "real"])
def gpu(request, monkeypatch):
    """The CuPy a test runs on: the fake one, then the real one (skipped without a GPU)."""
    if request.param == "fake":
        return install_fake_gpu(monkeypatch).cupy
    return _real_or_skip()

"""A NumPy-backed emulator of CuPy, for testing compgrad's GPU paths on machines without one.

``cp = FakeCupy(n_devices=1)`` is a module-like namespace (``cp.asarray``, ``cp.ndarray``,
``cp.cuda.Device``, ``cp.get_default_memory_pool()`` ...) whose arrays keep their data in
private NumPy arrays and follow CuPy's observable rules wherever compgrad could notice a
difference: where CuPy raises, the emulator raises; where CuPy returns a 0-d device array,
so does the emulator. One instance is one machine (its devices, pools, streams and
transfer log), so tests are isolated from each other.

The rules are CuPy 14.x's (compgrad requires ``cupy>=14``), read in CuPy's sources on its
main branch (``cupy/_core/core.pyx``, ``_kernel.pyx``, ``_routines_indexing.pyx``,
``_routines_math.pyx``, ``cupy/cuda/memory.pyx``, ``cupy/__init__.py``) and its issues
(cupy#7082 and #7561/#7572 for ufunc methods, #8323 for NEP 50 promotion):

* No implicit transfers. ``np.asarray(a)`` raises CuPy's ``TypeError: Implicit conversion
  to a NumPy array is not allowed. Please use `.get()` ...`` (``__array__``), and so do
  NumPy functions that convert their argument instead of dispatching
  (``np.lib.stride_tricks.as_strided``). A ufunc, operator or NumPy function given a
  ``numpy.ndarray`` operand raises ``TypeError: Unsupported type <class 'numpy.ndarray'>``
  (CuPy's kernel argument check); lists as operands return NotImplemented (TypeError).
* ``__array_ufunc__``: ``__call__`` and the methods CuPy dispatches, each only for the
  ufuncs CuPy supports it for: ``outer`` (all), ``reduce`` (add, multiply), ``accumulate``
  (add, multiply), ``reduceat`` (add), ``at`` (add, subtract, maximum, minimum, bitwise
  and/or/xor, on the dtypes CUDA's atomics take: ``add.at`` on int32, uint32, uint64 and
  floats only); the others raise NotImplementedError. A tuple or list index given to
  ``np.add.at`` returns NotImplemented (TypeError). Ufunc keywords are CuPy's (``out``,
  ``dtype``, ``casting``): ``where=``, ``order=`` raise ``TypeError: Wrong arguments``.
  Ufuncs CuPy lacks (:data:`UFUNCS_CUPY_LACKS`) return NotImplemented.
* ``__array_function__`` runs the NumPy function where CuPy has one of that name;
  :data:`FUNCTIONS_CUPY_LACKS` (``np.astype``, ``np.unstack``, ``np.trapezoid``,
  ``np.cumulative_sum`` ...) return NotImplemented (TypeError), and reductions refuse
  ``where=``/``initial=`` as CuPy's signatures do; ``copyto`` takes scalars and size-1 NumPy
  arrays only (and copies across devices); ``dot``, ``may_share_memory`` and
  ``shares_memory`` take device arrays only (Cython-typed in CuPy). Any other NumPy function
  name resolves on the namespace (``cp.stack``) to a wrapper that unwraps device arrays and
  wraps results.
* Results are new C-contiguous arrays on the current device; anything NumPy returns as a
  scalar (reductions over all axes, ``a[0]`` of a vector) is a 0-d device array. Views
  (basic indexing, ``reshape``, ``T``, ``diagonal``, ``broadcast_to`` ...) share memory with
  their base, write through, and are writeable (CuPy has no read-only flag, so there is no
  ``flags.writeable``); ``base`` is the owning array; ``T`` of a 0-d or 1-d array is the
  array itself and ``mT`` of one raises ValueError.
* Indexing: lists, tuples, bools and NumPy arrays as indices are copied to the device
  (counted transfers); integer array indices wrap around (CuPy does not check bounds); a
  scalar float index is truncated; a scalar index out of bounds raises IndexError; a
  boolean mask synchronises (a device-to-host transfer of its count); assigning a NumPy
  array through basic indexing raises ValueError (CuPy fills, and ``fill`` takes scalars
  only), through advanced indexing copies it to the device; ``take`` wraps too.
* ``bool()`` only of size 1 (size 0: DeprecationWarning and False); no ``__index__``
  (``range(a)`` raises TypeError); ``int``, ``float``, ``item``, ``tolist``, ``repr`` copy to
  the host; ``len``/``iter`` of a 0-d array raise TypeError.
* Devices: an array lives on the device current at its creation (``a.device.id``); a
  kernel (ufunc, reduction, ``astype``, ``fill``, assignment, advanced indexing, NumPy
  function) on an array of another device raises CuPy's ``ValueError: The device where the
  array resides (0) is different from the current device (1). Peer access is unavailable
  between these devices.`` (``peer_access=True``: a PerformanceWarning instead); views and
  ``get`` need no kernel; ``copy``, ``asarray`` and ``array`` copy across devices. An invalid
  device raises ``CUDARuntimeError: cudaErrorInvalidDevice: invalid device ordinal``.
* Memory: the default pool counts allocations (not views), rounded up to 512 bytes, on the
  current device; freed blocks stay reserved (``total_bytes``) and are reused best-fit until
  ``free_all_blocks``; zero-size arrays allocate nothing (``data.ptr == 0``); ``data.ptr`` is
  distinct per live allocation and base+offset for a view; ``set_limit`` and the device's
  capacity raise CuPy's OutOfMemoryError. ``empty`` is filled with garbage (NaN, -1, True),
  as reused GPU memory is.
* ``cp.transfers`` counts the host-to-device and device-to-host copies (a
  :class:`TransferCount` snapshot); ``cp.transfer_log`` (:class:`TransferLog`) lists them
  and can forbid them.
* Types: NumPy 2's promotion (NEP 50, adopted by CuPy 14, cupy#8323); dtypes CuPy lacks
  (object, strings, datetimes, longdouble) raise ``ValueError: Unsupported dtype``. NumPy runs
  under ``errstate(all="ignore")``: a GPU reports no floating-point errors.

Not emulated: user kernels (``ElementwiseKernel``, ``RawKernel``, ``fuse``), ``cupy.random``,
``cupyx``, the ``cp.linalg``/``cp.fft`` namespaces (NumPy's linalg and fft functions do run
on device arrays), pinned memory, stream ordering (all work is
synchronous), events, graphs, DLPack, pickling (raises TypeError), the pool's merging of
split blocks, numerical differences of GPU math (summation order, cuBLAS), CuPy's undefined
result for duplicate indices in an assignment (NumPy's last-wins), CuPy-only arguments
(``argmax(axis=tuple)``), objects with ``__cuda_array_interface__`` other than these arrays,
and ``ndarray`` methods beyond those of ``_array.py`` (AttributeError).

The package: ``_rules`` (what CuPy has), ``_errors``, ``_transfers`` (the transfer log),
``_memory`` (pools, allocations, pointers), ``_cuda`` (devices, streams, runtime),
``_array`` (the ndarray class and its operators) and ``_machine`` (:class:`FakeCupy`), whose
method groups live in ``_kernels`` (how a kernel runs), ``_ufuncs``, ``_functions`` (NumPy
functions on device arrays), ``_indexing`` and ``_creation``.
"""

from ._errors import CUDARuntimeError, OutOfMemoryError, PerformanceWarning
from ._machine import FakeCupy
from ._memory import MemoryPointer, MemoryPool
from ._rules import CUPY_VERSION_EMULATED, FUNCTIONS_CUPY_LACKS, UFUNCS_CUPY_LACKS
from ._transfers import D2H, H2D, Transfer, TransferCount, TransferLog
from ._ufuncs import FakeUfunc

__all__ = ["FakeCupy", "TransferLog", "TransferCount", "Transfer", "OutOfMemoryError",
           "CUDARuntimeError",
           "PerformanceWarning", "FUNCTIONS_CUPY_LACKS", "UFUNCS_CUPY_LACKS",
           "CUPY_VERSION_EMULATED"]

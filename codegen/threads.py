"""The process's thread policy for compiled programs: Numba's pool and BLAS's.

Two pools share this machine's cores when a program alternates generated kernels
with matrix products: Numba's OpenMP workers and OpenBLAS's threads
(../shared/NUMBA_NOTES.md). The policy, chosen once per process:

* Numba's OpenMP workers wait passively (``codegen/__init__.py`` sets
  ``OMP_WAIT_POLICY=PASSIVE`` before libgomp loads): a spinning worker starved
  BLAS's threads, 8,666 us against 204 us an iteration when they alternate.
* A small matrix product (below ``SERIAL_BLAS_MAX_FLOPS``) runs on one BLAS thread or
  on all of them, whichever its own measured times say (:class:`ThreadChoice`). Measured
  here with another process busy on one of the 2 cores (load ~2), a [32,784] @ [784,512]
  product took 274-277 us on one thread and 183 us to 24 ms on two (its second thread
  waits for a core), and compgrad's W1 batch-32 step 4.9 ms against 84 ms; quiet, two
  threads are up to 1.5x faster on such products, and W1's batch-32 step ran 2.07 ms
  against 2.52 ms with every small product on two threads. So neither fixed choice
  is right: each product tries both, keeps the faster, and tries the other again at
  growing intervals (a busy machine that quietens down is noticed), provided both
  counts give it the same bits (checked once, on random operands); one that does not
  stays on one thread. Products of at least ``SERIAL_BLAS_MAX_FLOPS`` keep every BLAS
  thread, where it always paid.

BLAS libraries are found with ``threadpoolctl`` (numpy's OpenBLAS, or MKL/BLIS where
numpy uses those). A program run holds a :class:`BlasThreads` (``blas_threads()``):
each product asks for one thread or all, the count changes only when the answer
differs from the current one (each change is a few us of ctypes calls, as much as a
small product), and the user's counts come back when the run ends, so their own
NumPy code keeps its settings.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["SERIAL_BLAS_MAX_FLOPS", "BlasThreads", "ThreadChoice", "blas_threads", "matmul_flops",
           "serial_blas"]

# products below this many floating-point operations run on one BLAS thread
SERIAL_BLAS_MAX_FLOPS = 1 << 26

# ThreadChoice: calls measured on each thread count before choosing (one thread first),
# the first interval between tries of the other count and the longest (in calls), and the
# weight of a new time in a count's running estimate when it is not a new best
WARMUP_CALLS = 3
PROBE_MIN_CALLS = 16
PROBE_MAX_CALLS = 1024
_EMA_WEIGHT = 0.25

# the input whose last dimension is the contracted one, per matmul op
_LEFT_OPERAND = {"mm": 0, "matmul": 0, "bmm": 0, "mv": 0, "dot": 0, "addmm": 1, "baddbmm": 1,
                 "addmv": 1}

def matmul_flops(op: str, in_shapes: list[tuple], out_shape: tuple) -> float:
    """Multiply-adds x 2 of a matrix product (inf when unknown: einsum, outer)."""
    index = _LEFT_OPERAND.get(op)
    if index is None or not in_shapes[index]:
        return math.inf
    return 2.0 * max(1, math.prod(out_shape)) * in_shapes[index][-1]


@functools.cache
def _controllers() -> list:
    """threadpoolctl's controllers of the loaded BLAS libraries (found once)."""
    from threadpoolctl import ThreadpoolController
    return [c for c in ThreadpoolController().lib_controllers if c.user_api == "blas"]


@contextmanager
def serial_blas() -> Iterator[None]:
    """Run the body with every BLAS library on one thread; restore the counts after."""
    with blas_threads() as policy:
        policy.use(True)
        yield

class BlasThreads:
    """The BLAS thread count during one program run: ``use(serial)`` before each product
    (one thread, or the user's count), ``restore()`` at the end."""

    __slots__ = ("saved", "serial")

    def __init__(self):
        self.saved: list | None = None    # (controller, the user's count), found at first use
        self.serial = False

    def use(self, serial: bool) -> None:
        if serial is self.serial:
            return
        if self.saved is None:
            self.saved = [(c, n) for c in _controllers()
                          if (n := c.get_num_threads()) is not None and n > 1]
        for c, n in self.saved:
            c.set_num_threads(1 if serial else n)
        self.serial = serial

    def restore(self) -> None:
        self.use(False)


class ThreadChoice:
    """One small product's BLAS thread count, chosen by its measured run times.

    ``serial()`` says how the next call runs; ``record(serial, seconds)`` reports it. The
    first ``WARMUP_CALLS`` run on one thread, the next as many on all; from then on the
    count with the lower estimate runs, and the other is tried once every ``interval``
    calls: the interval starts at ``PROBE_MIN_CALLS``, doubles (up to ``PROBE_MAX_CALLS``)
    each time the try loses and starts again when it wins. An estimate takes a new
    time at once when it is lower (a best case is what the count can do) and moves a
    quarter of the way otherwise (so one slow call under load does not decide alone).
    The count can change a product's last bits (OpenBLAS blocks some sums per thread
    count): the runtime gives a product a ThreadChoice only after checking that both
    counts give it the same bits, so no result depends on the timing.
    """

    __slots__ = ("estimate", "calls", "best", "next_probe", "interval")

    def __init__(self) -> None:
        self.estimate = [math.inf, math.inf]   # seconds: [one thread, all threads]
        self.calls = 0
        self.best = True                        # serial: the count chosen now
        self.next_probe = -1                    # the call that tries the other count
        self.interval = PROBE_MIN_CALLS

    def serial(self) -> bool:
        """Whether the next call runs on one BLAS thread."""
        if self.calls < 2 * WARMUP_CALLS:
            return self.calls < WARMUP_CALLS
        return (not self.best) if self.calls == self.next_probe else self.best

    def record(self, serial: bool, seconds: float) -> None:
        """Account for a call that ran on one thread (``serial``) or all, for ``seconds``."""
        i = 0 if serial else 1
        old = self.estimate[i]
        self.estimate[i] = seconds if seconds < old else old + _EMA_WEIGHT * (seconds - old)
        self.calls += 1
        if self.calls < 2 * WARMUP_CALLS:
            return
        best = self.estimate[0] <= self.estimate[1]
        if self.calls == 2 * WARMUP_CALLS:
            pass
        elif serial != self.best:          # a try of the other count
            self.interval = PROBE_MIN_CALLS if best != self.best \
                else min(2 * self.interval, PROBE_MAX_CALLS)
        elif best != self.best:            # the chosen count got slower than the other
            self.interval = PROBE_MIN_CALLS
        else:
            return
        self.best = best
        self.next_probe = self.calls - 1 + self.interval   # counted from this call


@contextmanager
def blas_threads() -> Iterator[BlasThreads]:
    """A :class:`BlasThreads` for the body; the user's counts are back after it, also when
    the body raises."""
    policy = BlasThreads()
    try:
        yield policy
    finally:
        policy.restore()

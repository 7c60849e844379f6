"""A small compiled program run as ONE Numba function (DESIGN.md: "small programs run as
few Numba calls as possible").

The step runner (:meth:`codegen.runtime.CompiledProgram.run`) spends ~12 us of Python
per step (argument lists, broadcast views, pool buffers, a Numba dispatch); on a tiny
training step (issue 7's W2: 13 steps) that is most of the call. For programs of at
most :data:`MAX_ELEMENTS` elements (all values together: where per-call overhead
dominates), :func:`build_one_function` writes the whole program as one ``@njit``
function (:mod:`codegen.whole_lower`), loads it through the verified kernel cache
(``cache=True`` works across processes) and returns a :class:`OneFunction`, a callable
with ``run``'s contract: ``one(args, inplace) -> (outputs, mutation arrays)``.

Correctness first. A program is lowered only where every step can be written to give
the step runner's values (elementwise phases bit for bit, NumPy's summation order for
sums, the same BLAS for products), else :func:`build_one_function` gives None and the
reason. The built function is run once on sample inputs and compared with the step
runner there; a mismatch refuses it too. At each call the arrays must have the
program's shapes and dtypes and be C-contiguous (the layout the function was written
for): Numba checks dtypes, ranks and layouts against the one signature compiled (no
other is compiled, except for read-only arrays the function was written for), the
function's first lines the shapes. Otherwise, and when the function raises (an
out-of-range class index), the call runs on the step runner, which gives its results
or raises its error. Every array the
function returns is allocated by that call, so results the caller keeps are never
written by a later call; an update the step runner may write into its input's own array
(:mod:`codegen.inplace`) goes into a buffer the call passes: that array where the
caller allows it (as ``run`` would write it), else a new one.

Cost and gain, measured on this 2-core machine (shared, load ~1.5): a replayed W2 step
takes ~18 us instead of ~200 us (the function itself ~4.5 us: 5 BLAS calls, 5 phase
kernels, 3 NumPy-order sums, its parameter updates written in place). Building it costs
~2.5 s of Numba compile time on a cold cache (W1 at batch 32, were it allowed: 7 s and
4 s for its two programs), ~10 ms from the disk cache in a later process.
"""

from __future__ import annotations

import math
import operator
import warnings
from collections.abc import Callable, Collection, Sequence

import numpy as np

from codegen.inplace import inplace_buffers
from codegen.whole_emit import NotLowerable
from codegen.whole_lower import Lowered, lower_program
from ir.graph import Graph

__all__ = ["MAX_ELEMENTS", "OPENBLAS_SERIAL_MNK", "OneFunction", "build_one_function",
           "items_getter", "program_elements", "sample_inputs"]

# programs with more elements than this (all values, bodies included) keep the step
# runner: their kernels' work outweighs the per-step overhead saved
MAX_ELEMENTS = 1 << 16
# OpenBLAS runs a gemm of at most this many multiply-adds (m * n * k) on one thread
# (interface/gemm.c: 65536 * GEMM_MULTITHREAD_THRESHOLD, 4); a larger product inside the
# function would wake scipy's BLAS threads, outside the runtime's thread policy, so the
# call then holds every BLAS at one thread (codegen.threads: a product of a program this
# small runs on one thread there too)
OPENBLAS_SERIAL_MNK = 65536 * 4
# the sample-input comparison: the largest difference of the function's results from the
# step runner's, relative to the largest magnitude of each result (elementwise nodes the
# runner interprets use NumPy's transcendentals, the function the kernels' own: a few ulp)
_CHECK_RTOL, _CHECK_ATOL = 1e-4, 1e-6


class OneFunction:
    """The program as one Numba call; ``one(args, inplace)`` returns what
    ``fallback(args, inplace)`` (the step runner) would, ``inplace`` as
    :meth:`codegen.runtime.CompiledProgram.run` takes it. ``calls``/``fallbacks`` count
    calls and those the step runner answered."""

    __slots__ = ("fn", "fallback", "slots", "take", "converts", "buffers", "targets", "constants",
                 "outputs", "mutations", "serial", "calls", "fallbacks")

    def __init__(self, fn: Callable, fallback: Callable, lowered: Lowered):
        self.fn = fn
        self.fallback = fallback
        self.slots = lowered.slots
        # the parameters taken from a call's arguments, and (position, Python type) of
        # those converted (weak scalars)
        self.take = items_getter([i for i, _, _, _ in lowered.slots])
        self.converts = tuple((k, convert) for k, (_, _, _, convert) in enumerate(lowered.slots)
                              if convert is not None)
        self.buffers = lowered.buffers
        # the arguments whose new value the function writes into a buffer
        self.targets = tuple(i for i, _, _ in lowered.buffers)
        self.constants = lowered.constants
        # the outputs and mutation values in the function's results (buffers appended)
        self.outputs = items_getter(lowered.output_index)
        self.mutations = items_getter(lowered.mutation_index)
        self.serial: _SerialBlas | None = None
        self.calls = 0
        self.fallbacks = 0

    def __call__(self, args: Sequence, inplace: Collection[int] = ()) -> tuple[list, list]:
        self.calls += 1
        # (the function checks the arrays: Numba's call their dtype, rank, layout and
        # writability against its one signature, the function their shapes)
        values = list(self.take(args))
        for k, convert in self.converts:
            values[k] = convert(values[k])
        buffers = self.buffers_for(args, inplace)
        try:
            results = self.invoke(values, buffers)
        except Exception:
            results = self._compiled_anew(values, buffers)
            if results is None:
                # an argument the function was not written for (another dtype, rank,
                # layout or shape: nothing ran), or the function raised: the step runner
                # raises the reference's error (or, were this a fault of the function,
                # still gives the right results). No step after a write in place can
                # raise (codegen.inplace), so the runner never sees a half-written input
                self.fallbacks += 1
                return self.fallback(args, inplace) if inplace else self.fallback(args)
        return list(self.outputs(results)), list(self.mutations(results))

    def _compiled_anew(self, values: list, buffers: tuple) -> tuple | None:
        """The results of a call Numba refused that the function was written for
        (C-contiguous arrays of its shapes and dtypes; read-only ones, say), the function
        compiled for its Numba types (as any call of new types was before compiling was
        disabled). None when the call does not fit, compiling fails or the function
        raises."""
        fn = self.fn
        try:
            types = tuple(map(fn.typeof_pyval, (*values, *buffers, *self.constants)))
        except Exception:   # noqa: BLE001 - a value Numba cannot type
            return None
        if types in fn.overloads or not all(
                type(x) is np.ndarray and x.shape == shape and x.dtype == dtype
                and x.flags.c_contiguous
                for x, (_, shape, dtype, convert) in zip(values, self.slots) if convert is None):
            return None   # (compiled for: the function itself raised)
        fn.disable_compile(False)
        try:
            return self.invoke(values, buffers)
        except Exception:   # noqa: BLE001 - the step runner answers
            return None
        finally:
            fn.disable_compile()

    def buffers_for(self, args: Sequence, inplace: Collection[int]) -> tuple:
        """The buffer parameters for a call on ``args``: an argument's own array where
        ``inplace`` allows its update in place and it may be overwritten, else a new array
        (:func:`codegen.inplace.inplace_buffers`; the function checks each target as a
        parameter: its shape and dtype are its buffer's)."""
        return inplace_buffers(args, self.buffers, inplace) if self.buffers else ()

    def invoke(self, values: list, buffers: tuple = ()) -> tuple:
        """The function on its parameters (``slots`` order) and ``buffers``, constants
        appended: its tuple of distinct result arrays, the buffers after them (what
        :attr:`Lowered.output_index` and :attr:`Lowered.mutation_index` index)."""
        if self.serial is None:
            return self.fn(*values, *buffers, *self.constants) + buffers
        return self.serial.call(self.fn, *values, *buffers, *self.constants) + buffers


def items_getter(keys: Sequence) -> Callable[[Sequence], tuple]:
    """``x -> tuple(x[k] for k in keys)``, in C where it can be (``operator.itemgetter``
    gives a bare item for one key)."""
    if len(keys) == 1:
        one = operator.itemgetter(keys[0])
        return lambda x: (one(x),)
    return operator.itemgetter(*keys) if keys else lambda x: ()


class _SerialBlas:
    """Calls with every loaded BLAS library on one thread, the counts restored after
    (the libraries are found after the function's first call, when Numba has loaded
    scipy's BLAS)."""

    __slots__ = ("controllers",)

    def __init__(self):
        from threadpoolctl import ThreadpoolController
        self.controllers = [c for c in ThreadpoolController().lib_controllers
                            if c.user_api == "blas"]

    def call(self, fn: Callable, *args):
        """``fn(*args)`` on one BLAS thread."""
        saved = [(c, n) for c in self.controllers
                 if (n := c.get_num_threads()) is not None and n > 1]
        for c, _ in saved:
            c.set_num_threads(1)
        try:
            return fn(*args)
        finally:
            for c, n in saved:
                c.set_num_threads(n)


def program_elements(graph: Graph) -> int:
    """Elements of all values of ``graph``: its inputs and every node's outputs, those of
    fused groups' bodies included."""
    total = sum(math.prod(v.type.shape) for v in graph.inputs)

    def nodes(g: Graph) -> int:
        n = 0
        for node in g.nodes:
            n += sum(math.prod(o.type.shape) for o in node.outputs)
            body = node.attrs.get("body") if node.op.name == "fused" else None
            if isinstance(body, Graph):
                n += nodes(body)
        return n

    return total + nodes(graph)


def sample_inputs(graph: Graph, seed: int = 0) -> list:
    """Inputs to try a program on: standard normal floats, zero integers and booleans
    (valid indices and class targets), 0.5 / 1 / True for weak scalars, None for
    constants (the graph holds them)."""
    rng = np.random.default_rng(seed)
    args: list = []
    for v in graph.inputs:
        t = v.type
        dtype = t.dtype.np_dtype
        if v in graph.constants:
            args.append(None)
        elif t.weak:
            args.append({"f": 0.5, "b": True}.get(dtype.kind, 1))
        elif dtype.kind == "f":
            args.append(rng.standard_normal(t.shape).astype(dtype))
        else:
            args.append(np.zeros(t.shape, dtype))
    return args


def build_one_function(graph: Graph, steps: Sequence, load: Callable, fallback: Callable, *,
                       max_elements: int | None = None) -> tuple[OneFunction | None, str | None]:
    """``(function, None)``: the scheduled ``graph`` (run by ``steps``, the step runner
    ``fallback``) as a :class:`OneFunction`, its module loaded with ``load``
    (:func:`codegen.cache.load_kernel`'s signature) and compiled; or ``(None, reason)``.
    ``max_elements`` defaults to :data:`MAX_ELEMENTS` (read at each call)."""
    if max_elements is None:
        max_elements = MAX_ELEMENTS
    size = program_elements(graph)
    if size > max_elements:
        return None, (f"the program has {size} elements, more than {max_elements} (larger "
                      "programs keep the step runner)")
    args = sample_inputs(graph)
    try:
        lowered = lower_program(graph, steps, args, load)
        one = OneFunction(load(lowered.source, lowered.name), fallback, lowered)
    except NotLowerable as e:
        return None, str(e)
    except Exception as e:   # the step runner itself failed on the sample inputs
        return None, f"the program could not be tried on sample inputs: {_describe(e)}"
    values = [args[i] if convert is None else convert(args[i]) for i, _, _, convert in one.slots]
    try:
        from numba.core.errors import NumbaPerformanceWarning
        with warnings.catch_warnings():
            # a copy Numba makes for BLAS (a strided operand) is correct, only slower
            warnings.simplefilter("ignore", NumbaPerformanceWarning)
            # (compiles, or loads Numba's cache)
            results = one.invoke(values, one.buffers_for(args, ()))
    except Exception as e:
        return None, f"the generated function failed on sample inputs: {_describe(e)}"
    # later calls of another signature fail (and fall back) rather than compile one
    one.fn.disable_compile()
    got = [results[i] for i in lowered.output_index + lowered.mutation_index]
    mismatch = _mismatch(lowered.outputs + lowered.mutations, got)
    if mismatch is not None:
        return None, mismatch
    if lowered.largest_product > OPENBLAS_SERIAL_MNK:
        one.serial = _SerialBlas()
    return one, None


def _describe(e: Exception) -> str:
    """An exception's type and the first line of its message."""
    text = str(e).strip()
    return f"{type(e).__name__}: {text.splitlines()[0]}" if text else type(e).__name__


def _mismatch(expected: list, got: list) -> str | None:
    """Why the function's sample results differ from the step runner's, or None."""
    for i, (a, b) in enumerate(zip(expected, got)):
        a, b = np.asarray(a), np.asarray(b)
        if a.shape != b.shape or a.dtype != b.dtype:
            return (f"result {i}: the function gives {b.dtype}{list(b.shape)}, the step runner "
                    f"{a.dtype}{list(a.shape)}")
        if a.dtype.kind in "fc":
            # against the array's scale: a few ulp from a transcendental, multiplied through
            # later products, may be large next to an element that cancels to near zero
            finite = np.isfinite(a)
            same = np.array_equal(finite, np.isfinite(b)) and np.array_equal(
                a[~finite], b[~finite], equal_nan=True)
            scale = float(np.max(np.abs(a[finite]), initial=0.0))
            close = same and float(np.max(np.abs(a[finite] - b[finite]), initial=0.0)) \
                <= _CHECK_RTOL * scale + _CHECK_ATOL
        else:
            close = np.array_equal(a, b)
        if not close:
            return f"result {i} differs from the step runner's on sample inputs"
    return None

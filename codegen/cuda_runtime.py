"""Runs a compiled program on a CUDA device: fused groups as generated Numba-CUDA kernels,
every other node on its reference implementation over device arrays.

:class:`CudaProgram` is the GPU sibling of :class:`codegen.runtime.CompiledProgram`, with
the same contract (``run(args) -> (outputs, mutation arrays)``, ``stats``) and the same
pass pipeline (:func:`codegen.runtime.run_passes`). Its plan, per node of the scheduled
graph:

* a ``fused`` node with a CUDA form: :func:`codegen.cuda.plan_cuda`'s step (one or two
  kernel launches, outputs from ``alloc``);
* a ``matmul_epilogue`` group (a product and the elementwise nodes after it, which
  :func:`~codegen.cuda.plan_cuda` does not take): the product on its reference
  implementation (cuBLAS with CuPy arrays), then the rest as one elementwise kernel;
* a ``fused`` node without a CUDA form: its body node by node, as below (the CPU
  runtime's ``_FusedStep``, with its liveness release inside the group);
* any other node: ``op.impl(*device arrays, **attrs)``, the result cast to the node's
  dtype with ``.astype`` (:func:`_conform`; ``ir.dispatch.conform`` calls
  ``np.asarray``, which a CuPy array refuses). With CuPy arrays the reference
  implementations run on the device through NumPy's dispatch protocols (a product is
  cuBLAS).

Graph constants (host NumPy arrays) go to the device once, when the program is built,
through ``to_device`` (default ``cupy.asarray``). Values are dropped at their last use
(:func:`codegen.runtime._release_plan`), so CuPy's memory pool, the default ``alloc``
(``cupy.empty``), hands their memory to later kernels of the same call.

**One stream.** Numba launches a kernel given no stream on its default stream, the
*legacy* default stream (handle 0; Numba's per-thread mode is off unless
``NUMBA_CUDA_PER_THREAD_DEFAULT_STREAM=1``). CuPy runs its work, and orders its pool's
reuse of freed memory, on its *current* stream, which is ``cupy.cuda.Stream.null``,
the same legacy default stream, unless the caller is inside ``with some_stream:``.
:func:`one_stream` therefore runs the program with CuPy's current stream set to the
stream Numba launches on (the legacy stream, or CuPy's per-thread stream when Numba is in
per-thread mode); when the caller's stream is another one, the program's stream first
waits for the caller's pending work (an event, no host synchronisation), and the
caller's stream waits for the program's at the end. Every launch and every CuPy call
of a run is then ordered on one stream, so no host synchronisation is needed between
steps.

That is also why kernel arguments are imported with ``numba.cuda.as_cuda_array(x,
sync=False)`` (:func:`_kernel_view`): CuPy exports its current stream in
``__cuda_array_interface__`` (version 3), and Numba, by default
(``NUMBA_CUDA_ARRAY_INTERFACE_SYNC=1``), synchronises the host with that stream every
time it imports an array: a full device synchronisation per kernel argument. Within one
stream it orders nothing that is not ordered already.

``numba.cuda``, :mod:`codegen.cuda` (which imports it) and CuPy are imported lazily: this
module imports on a machine without them. Under Numba's CUDA simulator a program runs on
host arrays: pass ``alloc=np.empty`` (or the simulator's ``cuda.device_array``) and
``to_device=np.asarray``; the kernels run on the simulator, the other nodes on NumPy.
"""

from __future__ import annotations

import contextlib
import importlib.util
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING

import numpy as np

from codegen.runtime import KernelStats, _FusedStep, _release_plan, run_passes
from ir.dispatch import conform
from ir.fperr import quiet_call
from ir.graph import Graph, Node, Value
from ir.interpret import describe_node
from ir.opdef import OpKind
from ir.ops.fused import FUSED
from ir.types import TensorType

if TYPE_CHECKING:   # (codegen.cuda_launch imports numba.cuda: not at module import)
    from codegen.cuda_launch import LaunchConfig

__all__ = ["CudaProgram", "one_stream", "cuda_program_available"]


def cuda_program_available() -> bool:
    """Whether :class:`CudaProgram` can run here on a real GPU with its defaults: Numba's
    CUDA target finds a device (not the simulator) and CuPy is importable."""
    if importlib.util.find_spec("cupy") is None:
        return False
    from numba import config as numba_config
    if numba_config.ENABLE_CUDASIM:
        return False
    try:
        from numba import cuda
        return bool(cuda.is_available())
    except Exception:   # no driver, or numba built without CUDA support: no GPU here
        return False


class CudaProgram:
    """A Graph ready to run on a CUDA device: ``run(args) -> (outputs, mutation arrays)``.

    ``passes`` and ``dump_dir`` as for :class:`codegen.runtime.CompiledProgram`;
    ``load(source, name)`` loads a kernel module (default
    :func:`codegen.cache.load_kernel`); ``alloc(shape, dtype)`` makes a kernel's output
    (default ``cupy.empty``: CuPy's caching pool); ``to_device(array)`` moves a host array
    to the device (default ``cupy.asarray``); ``config`` is the kernels'
    :class:`~codegen.cuda_launch.LaunchConfig` (default ``DEFAULT_CONFIG``); ``streams()``
    gives the context each run executes in (default: :func:`one_stream` when the defaults
    use CuPy, else none).

    ``stats.kernels`` counts the groups that run as generated kernels (a
    ``matmul_epilogue`` group counts when its epilogue does), ``stats.interpreted_phases``
    the groups that run node by node.
    """

    def __init__(self, graph: Graph, *, passes: Sequence[Callable] | None = None,
                 dump_dir: str | None = None, load: Callable | None = None,
                 alloc: Callable | None = None, to_device: Callable | None = None,
                 config: LaunchConfig | None = None,
                 streams: Callable[[], contextlib.AbstractContextManager] | None = None):
        from codegen.cache import load_kernel
        from codegen.cuda_launch import DEFAULT_CONFIG
        self.stats = KernelStats()
        self.graph = run_passes(graph, passes, dump_dir=dump_dir, stats=self.stats)
        uses_cupy = alloc is None or to_device is None
        if uses_cupy:
            import cupy
        self._alloc = alloc if alloc is not None else cupy.empty
        self._to_device = to_device if to_device is not None else cupy.asarray
        self._streams = streams if streams is not None else (
            one_stream if uses_cupy else contextlib.nullcontext)
        self._load = load or load_kernel
        self.config = config if config is not None else DEFAULT_CONFIG
        start = time.perf_counter()
        g = self.graph
        # host constants (folded values, captured arrays) cross to the device once
        self.constants = {v: self._to_device(x) for v, x in g.constants.items()}
        self.steps = [self._plan(node) for node in g.nodes]
        self.release = _release_plan([n.inputs for n in g.nodes], [n.outputs for n in g.nodes],
                                     set(g.outputs) | {m.value for m in g.mutations})
        self.stats.times["codegen"] = time.perf_counter() - start

    def _plan(self, node: Node):
        if node.op.name != "fused":
            return _DeviceNodeStep(node, self._to_device)
        from codegen.cuda import plan_cuda
        step = plan_cuda(node, load=self._load, config=self.config, alloc=self._alloc)
        if step is not None:
            self.stats.kernels += 1
            return _KernelStep(step)
        if node.attrs["kind"] == "matmul_epilogue":
            steps = self._epilogue_steps(node)
            if steps is not None:
                self.stats.kernels += 1
                return _FusedStep(node, steps)
        # no CUDA form (a reduction op the generator lacks, a group it cannot lay out):
        # the group's body node by node, each node on the device
        self.stats.interpreted_phases += 1
        return _FusedStep(node, [_DeviceNodeStep(n, self._to_device)
                                 for n in node.attrs["body"].nodes])

    def _epilogue_steps(self, node: Node) -> list | None:
        """A ``matmul_epilogue`` group as two steps over its body's values: the product on
        its reference implementation (cuBLAS, with CuPy arrays), then the elementwise
        nodes after it as one kernel (:func:`_epilogue_group`); None when the epilogue
        has no CUDA form."""
        from codegen.cuda import plan_cuda
        body = node.attrs["body"]
        products = [n for n in body.nodes if n.op.kind is OpKind.MATMUL]
        if len(products) != 1:
            return None
        group = _epilogue_group(body, products[0])
        if group is None:
            return None
        fused, targets = group
        step = plan_cuda(fused, load=self._load, config=self.config, alloc=self._alloc)
        if step is None:
            return None
        return [_DeviceNodeStep(products[0], self._to_device), _KernelStep(step, targets)]

    def run(self, args: Sequence) -> tuple[list, list]:
        """``(outputs, mutation arrays)`` of the program on ``args`` (device arrays, or
        Python numbers for weak scalars; anything for constant inputs, whose values the
        program holds). Kernels are asynchronous: results are ready in stream order."""
        g = self.graph
        env: dict[Value, object] = dict(zip(g.inputs, args))
        env.update(self.constants)
        with self._streams():
            for step, dead in zip(self.steps, self.release):
                step.run(env, None)   # (no BLAS thread policy on a GPU)
                for v in dead:
                    del env[v]   # its memory returns to the pool for later kernels
        return ([env[v] for v in g.outputs],
                [None if m.value is None else env[m.value] for m in g.mutations])


def _epilogue_group(body: Graph, product: Node) -> tuple[Node, list[Value]] | None:
    """The nodes of a ``matmul_epilogue`` body other than ``product`` as an ``elementwise``
    fused node (its inputs are values of ``body``), and the values of ``body`` its outputs
    stand for; None when no node follows the product."""
    rest = [n for n in body.nodes if n is not product]
    inside = set(rest)
    targets = list(dict.fromkeys(v for v in body.outputs if v.node in inside))
    if not targets:
        return None
    group = Graph(f"{body.name}_epilogue")
    env: dict[Value, Value] = {}
    externals = list(dict.fromkeys(v for n in rest for v in n.input_values()
                                   if v.node not in inside))
    for i, v in enumerate(externals):
        env[v] = group.add_input(v.type, name=f"in{i}")
    for n in rest:
        new = group.add_node(n.op, [env[a] if isinstance(a, Value) else a for a in n.inputs],
                             n.attrs, [o.type for o in n.outputs], loc=n.loc)
        env.update(zip(n.outputs, new.outputs))
    group.outputs = [env[v] for v in targets]
    # a node outside any graph (the step only reads its inputs, attributes and types)
    fused = Node(FUSED, tuple(externals), {"kind": "elementwise", "body": group},
                 [v.type for v in targets])
    return fused, targets


class _KernelStep:
    """A fused group's :class:`~codegen.cuda.CudaStep`, its device inputs imported without
    a stream synchronisation (:func:`_kernel_view`); its outputs are stored under
    ``targets`` (default: the fused node's outputs)."""

    __slots__ = ("node", "step", "targets")

    def __init__(self, step, targets: Sequence[Value] | None = None):
        self.node = step.node
        self.step = step
        self.targets = tuple(targets) if targets is not None else self.node.outputs

    def reads(self) -> tuple:
        return self.node.inputs

    def writes(self) -> tuple:
        return self.targets

    def run(self, env: dict, blas=None) -> None:
        values = [_kernel_view(env[a]) if isinstance(a, Value) else a for a in self.node.inputs]
        try:
            outs = self.step(*values)
        except Exception as e:
            e.add_note(f"while running IR node: {describe_node(self.node)}")
            raise
        env.update(zip(self.targets, outs))


class _DeviceNodeStep:
    """A node on its reference implementation over device arrays (module docstring)."""

    __slots__ = ("node", "to_device")

    def __init__(self, node: Node, to_device: Callable):
        self.node = node
        self.to_device = to_device

    def reads(self) -> tuple:
        return self.node.inputs

    def writes(self) -> tuple:
        return self.node.outputs

    def run(self, env: dict, blas=None) -> None:
        node = self.node
        try:
            # (NumPy's floating-point warnings off, as the interpreter has them, for the
            # host arrays of the simulator; CuPy raises none)
            result = quiet_call(node.op.impl, *[env[a] if isinstance(a, Value) else a
                                                for a in node.inputs], **node.attrs)
            if len(node.outputs) == 1 and not isinstance(result, tuple):
                result = (result,)
            for out, r in zip(node.outputs, result):
                env[out] = _conform(r, out.type, self.to_device)
        except Exception as e:
            e.add_note(f"while running IR node: {describe_node(node)}")
            raise


def _conform(result, t: TensorType, to_device: Callable):
    """A reference result as a device array of ``t``'s dtype, checked against ``t``'s shape
    (``ir.dispatch.conform``, which keeps a device array on its device); a host result (a
    Python or NumPy scalar, a NumPy array) goes to the device through ``to_device`` first."""
    if isinstance(result, (np.ndarray, np.generic, int, float, bool, complex)):
        result = to_device(np.asarray(result))
    return conform(result, t)


def _kernel_view(x):
    """``x`` as a kernel argument: an object exporting ``__cuda_array_interface__`` (a CuPy
    array) as a Numba device array on the same memory, *without* synchronising the stream
    it names (every step of a run is on one stream: module docstring); anything else
    (a Numba or simulator array, a host array under the simulator, a number) as it is."""
    if hasattr(x, "__cuda_array_interface__") and not getattr(x, "__cuda_ndarray__", False):
        from numba import cuda
        return cuda.as_cuda_array(x, sync=False)
    return x


@contextlib.contextmanager
def one_stream() -> Iterator[None]:
    """CuPy's current stream set, inside the block, to the stream Numba launches kernels on
    without a stream argument (module docstring); the caller's stream, when it is another,
    is ordered before and after the block with events (no host synchronisation)."""
    import cupy
    from numba import config as numba_config
    per_thread = getattr(numba_config, "CUDA_PER_THREAD_DEFAULT_STREAM", 0)
    target = cupy.cuda.Stream.ptds if per_thread else cupy.cuda.Stream.null
    caller = cupy.cuda.get_current_stream()
    if caller.ptr == target.ptr:
        yield
        return
    target.wait_event(caller.record())
    with target:
        yield
    caller.wait_event(target.record())

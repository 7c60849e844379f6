"""Running a captured program that computes on a CUDA device.

:class:`DeviceRunner` runs it with the GPU program runtime
(:class:`codegen.cuda_runtime.CudaProgram`: fused groups as generated Numba-CUDA
kernels, cuBLAS products, CuPy's memory pool, one stream) where that can run: a real
GPU with CuPy and Numba-CUDA, every value on one device. Elsewhere, or when the
runtime fails (e.g. no NVVM to compile kernels, found at the first launch), the
program runs node by node as eager mode runs ops (:func:`run_graph_on_device`):
each node's reference implementation on CuPy arrays through
:func:`compgrad.device_arrays.run_on_device`. Either way the Numba CPU runtime never
sees a GPU array, and ``explain()`` says which way a program runs (``note``).
"""

from __future__ import annotations

from collections.abc import Sequence

from compgrad.device_arrays import place, run_on_device
from ir.dispatch import conform
from ir.fperr import quiet_call
from ir.graph import Graph, Role, Value
from ir.interpret import describe_node

__all__ = ["uses_cuda", "run_graph_on_device", "WHY", "DeviceRunner"]

WHY = "values on a CUDA device: nodes run one by one on CuPy arrays"


def uses_cuda(graph: Graph) -> bool:
    """Whether any input or node output of ``graph`` lives on a CUDA device."""
    values = list(graph.inputs) + [o for n in graph.nodes for o in n.outputs]
    return any(v.type.device.type == "cuda" for v in values)


def run_graph_on_device(graph: Graph, inputs: Sequence) -> tuple[list, list]:
    """``(outputs, mutation arrays)`` of ``graph`` on ``inputs``, each node run as eager
    mode runs it (module docstring)."""
    env: dict[Value, object] = {}
    for v, x in zip(graph.inputs, inputs):
        env[v] = graph.constants[v] if v.role is Role.CONSTANT else x
    for node in graph.nodes:
        args = [env[a] if isinstance(a, Value) else a for a in node.inputs]
        device = node.outputs[0].type.device
        try:
            if device.type == "cuda":
                result = quiet_call(run_on_device, node.op, args, node.attrs, device)
            else:
                result = quiet_call(node.op.impl, *args, **node.attrs)
            if len(node.outputs) == 1 and not isinstance(result, tuple):
                result = (result,)
            for out, r in zip(node.outputs, result):
                env[out] = conform(place(r, out.type.device), out.type)
        except Exception as e:
            e.add_note(f"while running IR node: {describe_node(node)}")
            raise
    return ([env[v] for v in graph.outputs],
            [None if m.value is None else env[m.value] for m in graph.mutations])


def _one_device(graph: Graph):
    """The one CUDA device every (non-weak) value of ``graph`` is on, else None."""
    values = list(graph.inputs) + [o for n in graph.nodes for o in n.outputs]
    devices = {v.type.device for v in values if not v.type.weak}
    if len(devices) == 1:
        (device,) = devices
        return device if device.type == "cuda" else None
    return None


class DeviceRunner:
    """Runs a program with CUDA values: the GPU runtime where it can, else node by node
    (module docstring); ``note`` says which, and why."""

    def __init__(self, graph: Graph, use_runtime: bool, dump_dir: str | None = None):
        self.graph = graph
        self.dump_dir = dump_dir
        self.device = None     # where the GPU runtime runs the program (None: it does not)
        self.program = None    # the runtime's program, built at the first run
        self.note = WHY
        if not use_runtime:
            self.note += " (backend='interpret')"
            return
        device = _one_device(graph)
        from codegen.cuda_runtime import cuda_program_available
        if device is None:
            self.note += " (values on more than one device)"
        elif not cuda_program_available():
            self.note += " (the GPU runtime needs a GPU with CuPy and Numba-CUDA)"
        else:
            self.device = device
            self.note = "generated CUDA kernels (codegen.cuda_runtime)"

    def kernel_count(self) -> int:
        """The GPU runtime's generated kernels (0 when it does not run the program)."""
        return self.program.stats.kernels if self.program is not None else 0

    def run(self, args: Sequence) -> tuple[list, list]:
        if self.device is not None:
            try:
                return self._run_runtime(args)
            except Exception as exc:   # noqa: BLE001 - any failure: the per-node path
                # safe to rerun: the runtime writes only fresh arrays, no mutation landed
                self.device = self.program = None
                self.note = f"{WHY} (the GPU runtime failed: {type(exc).__name__}: {exc})"
        return run_graph_on_device(self.graph, args)

    def _run_runtime(self, args: Sequence) -> tuple[list, list]:
        from compgrad.device_arrays import cupy
        with cupy().cuda.Device(self.device.index or 0):
            if self.program is None:
                from codegen.cuda_runtime import CudaProgram
                self.program = CudaProgram(self.graph, dump_dir=self.dump_dir)
            return self.program.run(args)

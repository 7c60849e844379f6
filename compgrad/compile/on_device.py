"""Running a captured program that computes on a CUDA device.

Until the GPU program runtime lands (issue 8: the fused groups as generated
Numba-CUDA kernels, cuBLAS products, CuPy's memory pool), a compiled program whose
values live on a GPU runs node by node as eager mode runs ops: each node's reference
implementation on CuPy arrays through :func:`compgrad.device_arrays.run_on_device`
(natively where CuPy can, through the host where it cannot). The Numba CPU runtime
never sees a GPU array, so a compiled GPU step gives eager's values.
"""

from __future__ import annotations

from collections.abc import Sequence

from compgrad.device_arrays import place, run_on_device
from ir.fperr import quiet_call
from ir.graph import Graph, Role, Value
from ir.interpret import describe_node

__all__ = ["uses_cuda", "run_graph_on_device", "WHY"]

WHY = ("values on a CUDA device: nodes run one by one on CuPy arrays (the GPU program "
       "runtime with generated CUDA kernels is not built yet)")


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
                arr = place(r, out.type.device)
                if arr.dtype != out.type.dtype.np_dtype:
                    arr = arr.astype(out.type.dtype.np_dtype)
                if arr.shape != out.type.shape:
                    raise AssertionError(f"reference produced shape {arr.shape}, type rule "
                                         f"says {out.type.shape}")
                env[out] = arr
        except Exception as e:
            e.add_note(f"while running IR node: {describe_node(node)}")
            raise
    return ([env[v] for v in graph.outputs],
            [None if m.value is None else env[m.value] for m in graph.mutations])

"""The reference interpreter: runs a Graph node by node with the OpDefs' NumPy
implementations.

It is the oracle every backend is checked against (``backend="interpret"``
runs captured programs with it). Values are NumPy arrays for tensor inputs
and Python scalars for weak (scalar) inputs; results are cast and
shape-checked against the type rule, as the eager interpreter does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ir.dispatch import conform
from ir.fperr import quiet_call
from ir.graph import Graph, Mutation, Node, Role, Value

__all__ = ["interpret", "run_node", "run_in_env", "Result", "describe_node"]


@dataclass
class Result:
    """What running a graph produced: one array per output, and for each mutation
    record the array to write (None for ``grad(w) <- None``)."""

    outputs: list
    mutations: list[tuple[Mutation, np.ndarray | None]]


def describe_node(node: Node) -> str:
    """The node as one line of IR text, with where the user created it."""
    from ir.printer import format_node
    text = format_node(node)
    return text if node.loc is None or "#" in text else f"{text}  # {node.loc}"


def run_node(node: Node, args: Sequence) -> tuple:
    """``node``'s outputs from its op's reference implementation on ``args`` (arrays and
    scalars), cast and shape-checked against the node's output types."""
    result = quiet_call(node.op.impl, *args, **node.attrs)
    if len(node.outputs) == 1 and not isinstance(result, tuple):
        result = (result,)
    return tuple(conform(r, out.type) for out, r in zip(node.outputs, result))


def run_in_env(node: Node, env: dict) -> None:
    """Run ``node`` on its inputs' values in ``env`` and store its outputs there; an error
    carries a note naming the IR node."""
    args = [env[a] if isinstance(a, Value) else a for a in node.inputs]
    try:
        env.update(zip(node.outputs, run_node(node, args)))
    except Exception as e:
        e.add_note(f"while running IR node: {describe_node(node)}")
        raise


def interpret(graph: Graph, inputs: Sequence) -> Result:
    """Run ``graph`` on ``inputs`` (one per graph input; None for CONSTANT inputs,
    whose data the graph holds).

    An exception raised by a node keeps its type and gains a note naming the
    IR node and the user's line that created it.
    """
    if len(inputs) != len(graph.inputs):
        raise TypeError(f"graph {graph.name!r} takes {len(graph.inputs)} inputs, "
                        f"{len(inputs)} were given")
    env: dict[Value, object] = {}
    for v, x in zip(graph.inputs, inputs):
        if v.role is Role.CONSTANT:
            x = graph.constants[v]
        env[v] = _check_input(v, x)
    for node in graph.nodes:
        run_in_env(node, env)
    return Result([env[v] for v in graph.outputs],
                  [(m, None if m.value is None else env[m.value]) for m in graph.mutations])


def _check_input(v: Value, x):
    if v.type.weak:
        if isinstance(x, np.generic):
            x = x.item()
        if isinstance(x, np.ndarray) or x is None:
            raise TypeError(f"input %{v.name} is a scalar input ({v.type}), got "
                            f"{type(x).__name__}")
        return x
    if not isinstance(x, np.ndarray):
        x = np.asarray(x)
    if x.shape != v.type.shape or x.dtype != v.type.dtype.np_dtype:
        raise TypeError(f"input %{v.name} expects {v.type}, got an array of shape "
                        f"{list(x.shape)} and dtype {x.dtype}")
    return x

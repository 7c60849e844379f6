"""Runs of small steps inside a large program, each run as ONE Numba function.

A program too large to run as one function (:mod:`codegen.whole`: W1's training step,
with its 1.6 MB weight gradients) still has stretches of small steps between its large
products and phases: W1's cross-entropy tail, the bias gradients, the small layer's
products -- eleven steps on arrays of at most [32, 512] at batch 32. On the step runner
each costs its Python (argument lists, pool buffers, a Numba dispatch), and run right
after a 400 us BLAS call that evicted the interpreter's caches it costs 5-100 us: W1's
eleven-step run took ~330 us of its ~2.3 ms program. Written as one function (the
lowering of :mod:`codegen.whole_lower`, applied to the run as a program of its own:
its inputs are the values it reads from before it, its results the values read after
it) the same work is one call.

A step joins a run when every value it touches (inputs, outputs, the values of a fused
body) has at most :data:`SMALL_VALUE_ELEMENTS` elements and each product of it is small
enough for OpenBLAS to run on one thread (:data:`codegen.whole.OPENBLAS_SERIAL_MNK`: a
larger one inside the function would wake scipy's BLAS threads, outside the runtime's
thread policy). Views at the end of a run are left to the step runner (a view is free
there, and a result that is a view of the run's input cannot be a fresh array); views
at its start stay in it, so that the function reads their C-contiguous inputs (it is
written for C-contiguous arrays; W1's transposed weight would send every call back to
the steps).

Correctness is :mod:`codegen.whole`'s: each run's function is checked against the step
runner on sample inputs before it is used, refused when it differs or cannot be lowered
exactly (a refused run's halves are tried in its place, down to two steps), and at run
time a call with inputs of another layout (or one that raises) runs the run's own steps,
as before.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from codegen.runtime import (
    _FusedStep,
    _InterpretedGroupStep,
    _NodeStep,
    _PhaseStep,
    _release_plan,
    run_steps,
)
from codegen.threads import matmul_flops
from codegen.whole import OPENBLAS_SERIAL_MNK, build_one_function
from ir.graph import Graph, Node, Value, input_type
from ir.opdef import OpKind

__all__ = ["MIN_RUN_STEPS", "SMALL_VALUE_ELEMENTS", "RunStep", "RunsPlan", "SubProgram",
           "find_runs", "install_small_runs", "small_step", "sub_program"]

# a step whose every value has at most this many elements may join a run
SMALL_VALUE_ELEMENTS = 1 << 15
# shorter runs stay on the step runner (one step saves nothing by becoming a function)
MIN_RUN_STEPS = 2


@dataclass
class SubProgram:
    """Steps ``start:stop`` of a scheduled program seen as a program of their own: what
    :func:`codegen.whole.build_one_function` reads of a Graph (inputs, outputs,
    constants, mutations -- none: the enclosing program lands its mutations) and the
    steps that run it."""

    inputs: list[Value]
    outputs: list[Value]
    constants: dict
    nodes: list[Node]
    steps: list
    mutations: tuple = field(default=())


def _elements(v: Value) -> int:
    return math.prod(v.type.shape)


def _values(node: Node):
    """Every value ``node`` touches: its inputs and outputs, and its fused body's."""
    yield from (a for a in node.inputs if isinstance(a, Value))
    yield from node.outputs
    body = node.attrs.get("body") if node.op.name == "fused" else None
    if isinstance(body, Graph):
        for inner in body.nodes:
            yield from _values(inner)


def _products_small(node: Node) -> bool:
    """Whether each product ``node`` computes (itself, or in its body) is one OpenBLAS runs
    on one thread."""
    body = node.attrs.get("body") if node.op.name == "fused" else None
    if isinstance(body, Graph):
        return all(_products_small(inner) for inner in body.nodes)
    if node.op.kind is not OpKind.MATMUL:
        return True
    flops = matmul_flops(node.op.name, [input_type(a).shape for a in node.inputs],
                         node.outputs[0].type.shape)
    return flops / 2 <= OPENBLAS_SERIAL_MNK   # (multiply-adds: m * n * k)


def small_step(step, node: Node) -> bool:
    """Whether ``step`` (running ``node``) may join a run: a step kind the whole-program
    lowering writes, on small values only, with small products."""
    if not isinstance(step, (_FusedStep, _InterpretedGroupStep, _NodeStep, _PhaseStep)):
        return False
    return all(_elements(v) <= SMALL_VALUE_ELEMENTS for v in _values(node)) \
        and _products_small(node)


def find_runs(graph: Graph, steps: Sequence) -> list[tuple[int, int]]:
    """``(start, stop)`` of each maximal run of at least :data:`MIN_RUN_STEPS` small steps
    of the scheduled ``graph`` (``steps[i]`` runs ``graph.nodes[i]``), views at its end
    left out."""
    runs = []
    i, n = 0, len(steps)
    while i < n:
        if not small_step(steps[i], graph.nodes[i]):
            i += 1
            continue
        j = i
        while j < n and small_step(steps[j], graph.nodes[j]):
            j += 1
        run = _trimmed(graph, i, j)
        if run is not None:
            runs.append(run)
        i = j
    return runs


def _trimmed(graph: Graph, start: int, stop: int) -> tuple[int, int] | None:
    """``(start, stop)`` without views at its end, or None when fewer than
    :data:`MIN_RUN_STEPS` steps are left."""
    while stop > start and graph.nodes[stop - 1].op.is_view:
        stop -= 1
    return (start, stop) if stop - start >= MIN_RUN_STEPS else None


def _halves(graph: Graph, start: int, stop: int) -> list[tuple[int, int]]:
    """The two halves of a refused run that are still runs (none when it is too short
    to split)."""
    if stop - start < 2 * MIN_RUN_STEPS:
        return []
    mid = (start + stop) // 2
    return [r for r in (_trimmed(graph, start, mid), _trimmed(graph, mid, stop)) if r]


def sub_program(graph: Graph, steps: Sequence, start: int, stop: int) -> SubProgram:
    """Steps ``start:stop`` of ``graph`` as a :class:`SubProgram`: its inputs the values
    the run reads that it does not make (in order of first read), its outputs the values
    it makes that are read after it or leave the program."""
    nodes = graph.nodes[start:stop]
    made: set[Value] = set()
    inputs: dict[Value, None] = {}
    for node in nodes:
        for a in node.inputs:
            if isinstance(a, Value) and a not in made:
                inputs.setdefault(a)
        made.update(node.outputs)
    later: set[Value] = set(graph.outputs) | {m.value for m in graph.mutations}
    for node in graph.nodes[stop:]:
        later.update(a for a in node.inputs if isinstance(a, Value))
    outputs = [v for node in nodes for v in node.outputs if v in later]
    constants = {v: graph.constants[v] for v in inputs if v in graph.constants}
    return SubProgram(list(inputs), outputs, constants, list(nodes), list(steps[start:stop]))


class RunStep:
    """A run of small steps as one step of the step runner: its one function, or (for a
    call it was not written for) the run's own steps."""

    __slots__ = ("sub", "one", "release")

    def __init__(self, sub: SubProgram, one: Callable):
        self.sub = sub
        self.one = one
        self.release = _release_plan([n.inputs for n in sub.nodes],
                                     [n.outputs for n in sub.nodes], set(sub.outputs))

    def reads(self) -> tuple:
        return tuple(self.sub.inputs)

    def writes(self) -> tuple:
        return tuple(self.sub.outputs)

    def run(self, env: dict, blas) -> None:
        outs, _ = self.one([env[v] for v in self.sub.inputs])
        env.update(zip(self.sub.outputs, outs))

    def run_steps(self, args: Sequence) -> tuple[list, list]:
        """The run on the step runner: its outputs for ``args`` (one per input)."""
        env = dict(zip(self.sub.inputs, args))
        run_steps(self.sub.steps, self.release, env)
        return [env[v] for v in self.sub.outputs], []


@dataclass
class RunsPlan:
    """The runs of one program and what became of them: ``built`` the installed
    ``(start, stop)`` ranges, ``refused`` the runs (or halves of runs) too short to split
    further that could not be built, with the reason."""

    built: list = field(default_factory=list)
    refused: list = field(default_factory=list)

    def summary(self) -> str:
        steps = sum(stop - start for start, stop in self.built)
        text = f"{len(self.built)} run(s) of small steps ({steps} steps) as one function each"
        if self.refused:
            text += f"; {len(self.refused)} refused (first: {self.refused[0][1]})"
        return text


def install_small_runs(compiled) -> RunsPlan:
    """Build each run of small steps of ``compiled`` (a
    :class:`codegen.runtime.CompiledProgram`) as one function and put a :class:`RunStep`
    in its place in ``compiled.steps`` (the release plan made again to match)."""
    graph, steps = compiled.graph, compiled.steps
    plan = RunsPlan()
    replaced: dict[int, tuple[int, RunStep]] = {}
    pending = find_runs(graph, steps)
    while pending:
        start, stop = pending.pop(0)
        sub = sub_program(graph, steps, start, stop)
        if not sub.outputs:
            continue
        holder: list = []
        one, reason = build_one_function(sub, sub.steps, compiled._load,
                                         lambda args, h=holder: h[0].run_steps(args),
                                         max_elements=math.inf)
        if one is None:
            # a step the lowering cannot write (an indexing op, say) refuses the whole
            # run: its halves are tried, down to runs too short to split
            halves = _halves(graph, start, stop)
            if not halves:
                plan.refused.append(((start, stop), reason))
            pending[:0] = halves
            continue
        run = RunStep(sub, one)
        holder.append(run)
        replaced[start] = (stop, run)
        plan.built.append((start, stop))
    if replaced:
        new_steps, reads, writes = [], [], []
        i = 0
        while i < len(steps):
            if i in replaced:
                stop, run = replaced[i]
                new_steps.append(run)
                reads.append(run.reads())
                writes.append(run.writes())
                i = stop
            else:
                node = graph.nodes[i]
                new_steps.append(steps[i])
                reads.append(node.inputs)
                writes.append(node.outputs)
                i += 1
        keep = set(graph.outputs) | {m.value for m in graph.mutations}
        compiled.release = _release_plan(reads, writes, keep)
        compiled.steps = new_steps
    return plan

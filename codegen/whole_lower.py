"""A compiled program's steps written as the source of one ``@njit`` function.

:func:`lower_program` walks the steps a :class:`~codegen.runtime.CompiledProgram`
planned, in their order, and writes each into one function:

* a phase (:class:`~codegen.runtime._PhaseStep`) calls the kernel the step runner
  calls (imported from its cached module, so that its compiled code is reused) with
  the arguments the runner would pass: the flat variant where the runner would take
  it (every array C-contiguous), else the n-d one with broadcast views; its outputs
  and float64 accumulators are allocated in the function and finished as the runner
  finishes them (mean's scale, the cast);
* a fused group's steps are walked in place (its body values are bound to the
  group's inputs); a small group the runner interprets node by node
  (:class:`~codegen.runtime._InterpretedGroupStep`) is lowered node by node;
* a product or a plain node is written by :mod:`codegen.whole_ops`.

The function is ``program(<inputs>, <buffers>, <constants>) -> tuple of arrays``: the
distinct values of the program's outputs and mutations, each once, except those written
into a buffer. A phase that :func:`codegen.inplace.plan_inplace_writes` lets write a
mutated input's new value into that input's array writes it into a buffer parameter
instead, which the caller fills with the input's own array where the call allows the
write in place, else with a new array: either way the value is not returned, so the
call boxes one array fewer (~0.35 us each) and a write in place is not landed again.

The walk also runs every step of the step runner on sample inputs: what the function
must decide as the runner decides it at run time (the flat variant, NumPy's summation
order, the swapped product) depends on the runner's array layouts, which the caller
then guarantees by calling the function only with C-contiguous inputs (the signature it
was compiled for, with compiling further signatures disabled: Numba's call checks each
array's dtype, rank and layout); the function itself first checks their shapes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from codegen.runtime import (
    _body_env,
    _FusedStep,
    _InterpretedGroupStep,
    _NodeStep,
    _PhaseStep,
    _ProductStep,
)
from codegen.scalar import NJIT_OPTIONS, literal
from codegen.source import njit_kernel
from codegen.threads import blas_threads
from codegen.whole_emit import (
    CONST,
    INPUT,
    Emitter,
    NotLowerable,
    Sym,
    dtype_name,
    shape_arg,
)
from codegen.whole_ops import broadcast, lower_node, lower_product
from ir.graph import Graph, Node, Value, input_type
from ir.interpret import run_node

__all__ = ["Lowered", "lower_program"]

# how a weak scalar input reaches the function: the Python type Numba makes it
_SCALAR_TYPES = {"f": float, "i": int, "u": int, "b": bool}


@dataclass(frozen=True)
class Lowered:
    """A program as one function: the module ``source`` defining function ``name``.

    ``slots`` has one entry per parameter taken from the program's arguments:
    ``(argument index, shape, dtype, convert)``, ``convert`` None for an array (which
    must have that shape and dtype and be C-contiguous) or the Python type a weak
    scalar is converted to. ``buffers`` follow them: ``(argument index, shape, dtype)``
    per C-contiguous array the function writes the new value of that (mutated)
    argument into (see the module docstring). ``constants`` come last. The function
    returns a tuple of distinct arrays; ``output_index``/``mutation_index`` say which
    one each output and mutation value is in that tuple followed by the buffers.
    ``outputs`` and ``mutations`` are the step runner's results on the sample inputs;
    ``largest_product`` is the largest ``m * n * k`` of the function's products."""

    source: str
    name: str
    slots: tuple
    buffers: tuple
    constants: tuple
    output_index: tuple
    mutation_index: tuple
    outputs: list
    mutations: list
    largest_product: int


def lower_program(graph: Graph, steps: Sequence, sample_args: Sequence, load: Callable) -> Lowered:
    """``graph`` (scheduled, with the runner's ``steps``) as one function; raises
    :class:`~codegen.whole_emit.NotLowerable` with the reason where that cannot be done
    exactly. ``sample_args`` are inputs to run the step runner on (see the module
    docstring); ``load`` loads a generated kernel (:func:`codegen.cache.load_kernel`)."""
    walker = _Walker(graph, sample_args, load)
    with blas_threads() as blas:
        walker.blas = blas
        for step in steps:
            walker.step(step)
    em = walker.em
    # each distinct value returned once (boxing an array costs ~0.35 us), so that a value
    # that is an output and a mutation is one array, as in the step runner; a value
    # written into a buffer is the caller's already
    results: dict[Value, str] = {}
    buffered: dict[Value, int] = {}
    for v in list(graph.outputs) + [m.value for m in graph.mutations]:
        k = walker.buffer_of(v)
        if k is not None:
            buffered[v] = k
        elif v not in results:
            results[v] = walker.result(v)
    position = {v: i for i, v in enumerate(results)}
    position.update((v, len(results) + k) for v, k in buffered.items())
    em.line(f"return {_tuple(list(results.values()))}")
    params = walker.params + [name for name, _ in walker.buffers] \
        + [f"k{i}" for i in range(len(em.constants))]
    source, name = njit_kernel("program", params, em.body(), dict(NJIT_OPTIONS, cache=True),
                               helpers=em.helpers())
    sample = walker.sample
    return Lowered(source, name, tuple(walker.slots),
                   tuple(buffer for _, buffer in walker.buffers), tuple(em.constants),
                   tuple(position[v] for v in graph.outputs),
                   tuple(position[m.value] for m in graph.mutations),
                   [sample[v] for v in graph.outputs],
                   [sample[m.value] for m in graph.mutations], walker.largest_product)


class _Walker:
    """The state of one lowering: each value's symbol and its sample value (the step
    runner's). Body values of fused groups are distinct Values, so one dict of each
    serves every scope."""

    def __init__(self, graph: Graph, args: Sequence, load: Callable):
        self.em = Emitter(load)
        self.sym: dict[Value, Sym] = {}
        self.sample: dict = {}
        self.params: list[str] = []
        self.slots: list[tuple] = []
        # the buffer parameters: (name, (argument index, shape, dtype)), in order
        self.buffers: list[tuple[str, tuple]] = []
        self.input_index: dict[str, int] = {}   # an array input's parameter -> its index
        self.largest_product = 0
        self.blas = None
        for i, v in enumerate(graph.inputs):
            t = v.type
            dtype = t.dtype.np_dtype
            if v in graph.constants:
                data = np.asarray(graph.constants[v])
                self.sym[v] = self.em.constant(data, dtype)
                self.sample[v] = graph.constants[v]
                continue
            name = f"a{i}"
            self.params.append(name)
            self.sample[v] = args[i]
            if t.weak:
                convert = _SCALAR_TYPES.get(dtype.kind)
                if convert is None:
                    raise NotLowerable(f"a weak {t.dtype.name} input")
                self.slots.append((i, (), dtype, convert))
                self.sym[v] = Sym(name, None, dtype)
            else:
                self.slots.append((i, tuple(t.shape), dtype, None))
                self.sym[v] = Sym(name, tuple(t.shape), dtype, "C", INPUT)
                self.input_index[name] = i
        self.check_shapes()

    def check_shapes(self) -> None:
        """The function's first lines: an array of another shape raises (Numba's call
        checks dtype, rank and layout; the loops below take the shapes as written)."""
        dims = [f"{self.params[k]}.shape[{d}] != {n}"
                for k, (_, shape, _, convert) in enumerate(self.slots) if convert is None
                for d, n in enumerate(shape)]
        if dims:
            with self.em.block(f"if {' or '.join(dims)}:"):
                self.em.line('raise ValueError("an input of another shape")')

    # --- steps ----------------------------------------------------------------------------

    def step(self, step) -> None:
        if isinstance(step, _FusedStep):
            self.bind_body(step.node)
            for inner in step.steps:
                self.step(inner)
            self.bind_outputs(step.node)
        elif isinstance(step, _InterpretedGroupStep):
            self.bind_body(step.node)
            for node in step.node.attrs["body"].nodes:
                samples = self.samples(node)
                outs = run_node(node, samples)
                self.sample.update(zip(node.outputs, outs))
                self.bind(node, lower_node(self.em, node, self.args(node), samples, list(outs)))
            self.bind_outputs(step.node)
        elif isinstance(step, _PhaseStep):
            self.phase(step)
        elif isinstance(step, _ProductStep):
            node = step.node
            samples = self.samples(node)
            step.run(self.sample, self.blas)
            self.bind(node, lower_product(self.em, node, step.kernel, self.args(node), samples))
            m, n = step.kernel.shape if len(step.kernel.shape) == 2 else (0, 0)
            self.largest_product = max(self.largest_product,
                                       m * n * input_type(node.inputs[-1]).shape[0])
        elif type(step) is _NodeStep:
            node = step.node
            samples = self.samples(node)
            step.run(self.sample, self.blas)
            outs = [self.sample[o] for o in node.outputs]
            self.bind(node, lower_node(self.em, node, self.args(node), samples, outs))
        else:
            raise NotLowerable(f"a {type(step).__name__} step has no whole-program lowering")

    def phase(self, step: _PhaseStep) -> None:
        """One phase kernel call, with the arguments :meth:`_PhaseStep.run` passes."""
        first = step.source
        values = [self.sample[v] for v in first.inputs]
        flat = True in step.variants and (False not in step.variants or all(
            x.flags.c_contiguous for v, x in zip(first.inputs, values)
            if v not in first.scalar_inputs))
        src, dispatcher = step.variants[flat]
        step.run(self.sample, self.blas)
        em = self.em
        kernel = em.kernel(dispatcher)
        shape = step.shape
        args = []
        for v in src.inputs:
            s = self.sym[v]
            if v in src.scalar_inputs:
                args.append(s.scalar())
            elif flat:
                args.append(s.expr if len(s.shape) == 1 else f"{s.contiguous()}.reshape(-1)")
            else:
                args.append(broadcast(s, shape))
        into = self.buffer_outputs(step)
        outs = []
        for j, dtype in enumerate(step.dtypes):
            if j in into:
                outs.append(into[j])
                continue
            outs.append(em.name("o"))
            em.line(f"{outs[-1]} = np.empty({shape_arg(shape)}, {dtype_name(dtype)})")
        accs = []
        for _, dims in src.reductions:
            acc_shape = (1,) if flat else tuple(1 if d in dims else n for d, n in enumerate(shape))
            accs.append(em.name("red"))
            em.line(f"{accs[-1]} = np.zeros({shape_arg(acc_shape)}, np.float64)")
        kernel_outs = [f"{o}.reshape(-1)" if flat and len(shape) > 1 else o for o in outs]
        in_shape = (math.prod(shape),) if flat else shape
        em.line(f"{kernel}({', '.join(args + kernel_outs + accs)}, {shape_arg(in_shape)})")
        for v, var, dtype in zip(src.outputs, outs, step.dtypes):
            self.sym[v] = self.reshaped(var, shape, v.type.shape, dtype)
        for node, acc, scale in zip(step.sums, accs, step.scale):
            out = node.outputs[0]
            if scale is not None:
                em.line(f"{acc} *= {literal(scale)}")   # mean: as the runner scales it
            var = em.name("s")
            dtype = out.type.dtype.np_dtype
            em.line(f"{var} = {acc}.astype({dtype_name(dtype)}).reshape({out.type.shape!r})")
            self.sym[out] = Sym(var, tuple(out.type.shape), dtype)

    def buffer_outputs(self, step: _PhaseStep) -> dict[int, str]:
        """The phase's outputs written into a buffer parameter, by output index: those
        the step runner may write into a program input's own array (``step.inplace``,
        :func:`codegen.inplace.plan_inplace_writes`), that input taken as it is (not a
        view of it), of the phase's shape and the output's dtype."""
        into = {}
        for j, q in step.inplace:
            s = self.sym[step.source.inputs[q]]
            i = self.input_index.get(s.expr)
            name = f"w{i}"
            if i is None or s.origin != INPUT or s.shape != tuple(step.shape) \
                    or s.dtype != step.dtypes[j] or any(n == name for n, _ in self.buffers):
                continue
            self.buffers.append((name, (i, s.shape, s.dtype)))
            into[j] = name
        return into

    def buffer_of(self, v: Value) -> int | None:
        """The index of the buffer parameter holding ``v``, or None."""
        s = self.sym.get(v)
        return next((k for k, (name, _) in enumerate(self.buffers)
                     if s is not None and s.expr == name), None)

    # --- values -----------------------------------------------------------------------------

    def arg(self, a) -> Sym:
        """A node input's symbol: a value's, or a Python scalar written as a literal."""
        if isinstance(a, Value):
            return self.sym[a]
        return Sym(literal(a), None, input_type(a).dtype.np_dtype)

    def args(self, node: Node) -> list[Sym]:
        return [self.arg(a) for a in node.inputs]

    def samples(self, node: Node) -> list:
        return [self.sample[a] if isinstance(a, Value) else a for a in node.inputs]

    def bind(self, node: Node, syms: list[Sym]) -> None:
        self.sym.update(zip(node.outputs, syms))

    def bind_body(self, node: Node) -> None:
        """A fused node's body inputs bound to the node's inputs (symbols and samples)."""
        body = node.attrs["body"]
        for v, a in zip(body.inputs, node.inputs):
            self.sym[v] = self.arg(a)
        self.sample.update(_body_env(node, self.sample))

    def bind_outputs(self, node: Node) -> None:
        for o, v in zip(node.outputs, node.attrs["body"].outputs):
            self.sym[o] = self.sym[v]
            self.sample[o] = self.sample[v]

    def reshaped(self, var: str, shape: tuple, target: tuple, dtype: np.dtype) -> Sym:
        target = tuple(target)
        if tuple(shape) != target:
            new = self.em.name("r")
            self.em.line(f"{new} = {var}.reshape({target!r})")
            var = new
        return Sym(var, target, np.dtype(dtype))

    def result(self, v: Value | None) -> str:
        """A returned value's source text: a fresh array each call (a constant is copied,
        so that nothing the caller may keep or write is shared between calls)."""
        if v is None or v not in self.sym:
            raise NotLowerable("a result without a value")
        s = self.sym[v]
        if not s.is_array:
            raise NotLowerable(f"the result %{v.name} is a Python scalar")
        if s.origin == INPUT:
            raise NotLowerable(f"the result %{v.name} is an input or a view of one (the step "
                               "runner returns it as it is)")
        if s.origin == CONST:
            var = self.em.name("out")
            self.em.line(f"{var} = {s.expr}.copy()")
            return var
        return s.expr


def _tuple(items: list[str]) -> str:
    return f"({', '.join(items)},)" if items else "()"

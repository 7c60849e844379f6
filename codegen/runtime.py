"""Runs a compiled program: the captured Graph after the pass pipeline, with fused
groups executed as generated Numba kernels.

:class:`CompiledProgram` is built once per program (``compgrad.compile``'s cache
holds it): it runs the passes (simplify, fuse), then plans every node. A plain
node runs its reference implementation (views are NumPy views); a matrix product,
Linear's ``addmm`` included, is one BLAS call into a pooled buffer
(:mod:`codegen.products`). A fused group's body is cut into *phases*: maximal runs of
elementwise nodes over one iteration shape become one kernel each
(:mod:`codegen.cpu`); reductions, matmuls and views inside the body run as plain
nodes between them. A phase whose ops have no scalar expression runs node by
node on the reference implementation, so a program always runs.

Memory: a value is released at its last use (liveness), and kernels write into
buffers from a :class:`~codegen.buffers.BufferPool`, which hands a buffer out
again only once nothing references it: later kernels of the call reuse what
earlier ones no longer need, later calls reuse what the user let go, and a
result the user still holds is never overwritten.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field

import numpy as np

from codegen.buffers import BufferPool
from codegen.cache import load_kernel
from codegen.cpu import PARALLEL_MIN_ELEMENTS, phase_source
from codegen.inplace import INPLACE, plan_inplace_writes, writable_alone
from codegen.products import ProductKernel, product_kernel
from codegen.threads import (
    SERIAL_BLAS_MAX_FLOPS,
    BlasThreads,
    ThreadChoice,
    matmul_flops,
)
from ir.dispatch import conform
from ir.dtypes import CATEGORY_FLOAT
from ir.fperr import ERRSTATE, IGNORE_ALL
from ir.graph import Graph, Node, Value, input_type
from ir.interpret import describe_node, run_node
from ir.opdef import OpKind
from ir.types import normalize_dims

__all__ = ["CompiledProgram", "KernelStats", "ROWS_KERNEL_MIN_ELEMENTS", "default_passes",
           "run_passes"]

# rows groups smaller than this run without a kernel (see CompiledProgram._plan)
ROWS_KERNEL_MIN_ELEMENTS = 1 << 16


@dataclass
class KernelStats:
    """What building a program did: kernels generated, phases left to the interpreter,
    time per stage."""

    kernels: int = 0
    interpreted_phases: int = 0
    times: dict = field(default_factory=dict)


def default_passes() -> list[Callable]:
    """The pass pipeline a compiled program runs unless told otherwise (on the CPU and on
    a GPU alike): decompose, simplify, fuse, schedule."""
    from passes.decompose import decompose
    from passes.fusion import fuse
    from passes.schedule import schedule
    from passes.simplify import simplify
    return [decompose, simplify, fuse, schedule]


def run_passes(graph: Graph, passes: Sequence[Callable] | None = None, *,
               dump_dir: str | None = None, stats: KernelStats | None = None) -> Graph:
    """``graph`` after ``passes`` (default: :func:`default_passes`) through
    :func:`passes.pipeline.run_pipeline`, each stage's IR dumped into ``dump_dir`` and
    each pass's time recorded in ``stats.times`` under its name."""
    from passes.pipeline import run_pipeline
    times = stats.times if stats is not None else {}
    return run_pipeline(graph, list(passes) if passes is not None else default_passes(),
                        dump_dir=dump_dir, on_timing=times.__setitem__)


class CompiledProgram:
    """A Graph ready to run: ``run(args) -> (outputs, mutation arrays)``.

    ``passes`` is the pass list given to :func:`passes.pipeline.run_pipeline`
    (``dump_dir`` receives each stage's IR).
    """

    def __init__(self, graph: Graph, *, passes: Sequence[Callable] | None = None,
                 dump_dir: str | None = None, load: Callable | None = None):
        self.stats = KernelStats()
        times = self.stats.times
        self.graph = run_passes(graph, passes, dump_dir=dump_dir, stats=self.stats)
        self._load = load or load_kernel
        self.pool = BufferPool()
        start = time.perf_counter()
        self.steps = [self._plan(node) for node in self.graph.nodes]
        g = self.graph
        self.release = _release_plan([n.inputs for n in g.nodes], [n.outputs for n in g.nodes],
                                     set(g.outputs) | {m.value for m in g.mutations})
        # the inputs an optimizer-like update may write in place (codegen.inplace)
        self.inplace_targets = plan_inplace_writes(g, self.steps)
        times["codegen"] = time.perf_counter() - start
        # the program as one Numba function (as_one_function), built at the first request
        self._one_function: Callable | None = None
        self.one_function_reason: str | None = None
        self._one_function_built = False

    # --- planning -------------------------------------------------------------------------

    def _plan(self, node: Node):
        if node.op.name == "fused":
            body = node.attrs["body"]
            if node.attrs["kind"] == "rows":
                if _work(body) < ROWS_KERNEL_MIN_ELEMENTS:
                    # a rows kernel costs ~1 s to compile (several loops a row): a small
                    # group runs on the reference implementation, as fast at that size
                    self.stats.interpreted_phases += 1
                    if _InterpretedGroupStep.takes(body):
                        return _InterpretedGroupStep(node)
                    return _FusedStep(node, [self._node_step(n) for n in body.nodes])
                from codegen.rows import plan_rows
                step = plan_rows(node, self._load, self.pool)
                if step is not None:   # else the generic phases below run the group
                    self.stats.kernels += 1
                    return step
            return _FusedStep(node, self._plan_body(body))
        return self._node_step(node)

    def _node_step(self, node: Node):
        """A node run on its reference implementation; a matrix product (with or
        without a scaled input added: addmm, Linear's forward) writes into a pooled
        buffer instead (:mod:`codegen.products`)."""
        kernel = product_kernel(node)
        if kernel is not None:
            return _ProductStep(node, kernel, self.pool)
        return _NodeStep(node)

    def _plan_body(self, body: Graph) -> list:
        steps = []
        members: list[Node] = []       # the current phase, in body order
        last_uses = _LastUses(body)

        def close():
            if members:
                steps.append(self._phase(list(members), body, last_uses))
                members.clear()

        for node in body.nodes:
            if members and _joins(node, members):
                members.append(node)
                continue
            close()
            if _phase_op(node) or (node.op.is_view and len(node.outputs) == 1):
                members.append(node)   # a view may start a phase (alone it runs as is)
            else:
                steps.append(self._node_step(node))
        close()
        return steps

    def _phase(self, members: list[Node], body: Graph, last_uses: _LastUses) -> object:
        nodes = [n for n in members if _phase_op(n)]
        sums = [n for n in members if _is_sum(n)]
        views = [_NodeStep(n) for n in members if n.op.is_view]
        if not nodes:
            return views
        produced = {o for n in nodes for o in n.outputs}
        inputs: list[Value] = []
        for n in nodes:
            for a in n.inputs:
                if isinstance(a, Value) and a not in produced and a not in inputs:
                    inputs.append(a)
        end = last_uses.position[members[-1]]
        outputs = [o for n in nodes for o in n.outputs
                   if last_uses.last.get(o, -1) > end or o in body.outputs]
        shape = _shape(nodes[0])
        scalars = frozenset(v for v in inputs if v.type.weak or v.type.ndim == 0)
        numel = math.prod(shape)
        full = all(set(_sum_dims(n)) == set(range(len(shape))) for n in sums)
        # a flat loop (vectorised) when every array is C-contiguous with the iteration
        # shape at run time; strides are not in the types, so the n-d loop is kept too
        flat_ok = full and all(v.type.shape == shape for v in inputs if v not in scalars)
        variants = {}
        for flat in ((True, False) if flat_ok and len(shape) > 1 else (flat_ok,)):
            ndim = 1 if flat or not shape else len(shape)
            reductions = [(n.inputs[0], (0,) if flat or not shape else _sum_dims(n))
                          for n in sums]
            source = phase_source(nodes, inputs, outputs, ndim, scalar_inputs=scalars,
                                  parallel=numel >= PARALLEL_MIN_ELEMENTS,
                                  reductions=reductions)
            if source is None or not (outputs or sums):
                self.stats.interpreted_phases += 1
                return [_NodeStep(n) for n in members]
            variants[flat] = (source, self._load(source.source, source.name))
        self.stats.kernels += 1
        return views + [_PhaseStep(variants, shape, sums, self.pool, nodes)]

    # --- running ----------------------------------------------------------------------------

    def as_one_function(self) -> Callable | None:
        """The whole program as one Numba function (:mod:`codegen.whole`): a callable with
        :meth:`run`'s contract, built at the first request and kept; None when the program
        is too large or has a step it cannot lower (``one_function_reason`` says which)."""
        if not self._one_function_built:
            from codegen.whole import build_one_function
            start = time.perf_counter()
            self._one_function, self.one_function_reason = build_one_function(
                self.graph, self.steps, self._load, self.run)
            self._one_function_built = True
            self.stats.times["one_function"] = time.perf_counter() - start
        return self._one_function

    @property
    def has_one_function(self) -> bool:
        """Whether :meth:`as_one_function` built the one function (no build is started)."""
        return self._one_function is not None

    def run(self, args: Sequence, inplace: Collection[int] = ()) -> tuple[list, list]:
        """The program's outputs and mutation values for ``args`` (one per graph input).

        ``inplace``: positions of inputs the caller reads again only through the tensor
        their mutation lands in, so that their update may be written into their own
        array (:mod:`codegen.inplace`); the mutation's value is then that array."""
        g = self.graph
        env: dict = dict(zip(g.inputs, args))
        if inplace and self.inplace_targets:
            writable = writable_alone(args, [p for p in self.inplace_targets if p in inplace])
            if writable:
                env[INPLACE] = writable
        if g.constants:
            env.update(g.constants)
        run_steps(self.steps, self.release, env)
        return ([env[v] for v in g.outputs],
                [None if m.value is None else env[m.value] for m in g.mutations])


def run_steps(steps: Sequence, release: Sequence[tuple], env: dict) -> None:
    """Run ``steps`` in order on ``env`` under one BLAS thread policy, dropping after each
    the values ``release`` names there (a program's steps, or a run of them)."""
    # (blas_threads() without its generator-based context manager: this runs per call)
    blas = BlasThreads()
    try:
        for step, dead in zip(steps, release):
            step.run(env, blas)
            for v in dead:
                del env[v]   # its buffer may serve a later kernel
    finally:
        blas.restore()


class _NodeStep:
    __slots__ = ("node", "serial_blas", "threads")

    def __init__(self, node: Node):
        self.node = node
        # the thread policy (codegen.threads): a small product may run on one BLAS thread
        # (its ThreadChoice decides), a large one on all (None: not a product)
        self.serial_blas = matmul_flops(
            node.op.name, [input_type(a).shape for a in node.inputs],
            node.outputs[0].type.shape) < SERIAL_BLAS_MAX_FLOPS \
            if node.op.kind is OpKind.MATMUL else None
        self.threads = ThreadChoice() if self.serial_blas else None

    def reads(self) -> tuple:
        return self.node.inputs

    def writes(self) -> tuple:
        return self.node.outputs

    def run(self, env: dict, blas: BlasThreads) -> None:
        try:
            threads = self.threads
            if threads is not None and threads.calls == 0 and not self._same_bits(env, blas):
                threads = self.threads = None   # one thread for good: reproducible bits
            if threads is not None:
                serial = threads.serial()
                blas.use(serial)
                start = time.perf_counter()
                results = self.compute(env)
                threads.record(serial, time.perf_counter() - start)
            else:
                if self.serial_blas is not None:
                    blas.use(self.serial_blas)
                results = self.compute(env)
        except Exception as e:
            e.add_note(f"while running IR node: {describe_node(self.node)}")
            raise
        env.update(zip(self.node.outputs, results))

    def _same_bits(self, env: dict, blas: BlasThreads) -> bool:
        """Whether this product gives the same bits on one BLAS thread as on all, tried on
        random operands laid out as this call's. OpenBLAS blocks some sums differently
        per thread count (W1's [32,784] @ [784,512] differs in the last bits, its
        [32,512] @ [512,512] does not); a product that does keeps one thread, so that a
        program's results never depend on which count the timing chose."""
        rng = np.random.default_rng(0)
        probe = {}
        for a in self.node.inputs:
            if isinstance(a, Value):
                x = env[a]
                if not isinstance(x, np.ndarray) or x.dtype.kind != "f":
                    return True    # not a BLAS product
                probe[a] = np.empty_like(x)     # (the same layout: a transposed view stays so)
                probe[a][...] = rng.standard_normal(x.shape)
        blas.use(True)
        one = self.compute_apart(probe)
        blas.use(False)
        return all(np.array_equal(x, y) for x, y in zip(one, self.compute_apart(probe)))

    def compute_apart(self, env: dict) -> tuple:
        """:meth:`compute` in arrays of its own (none from the program's buffer pool)."""
        return self.compute(env)

    def compute(self, env: dict) -> tuple:
        """The node's results (its reference implementation)."""
        return run_node(self.node, [env[a] if isinstance(a, Value) else a
                                    for a in self.node.inputs])


class _ProductStep(_NodeStep):
    """A product node (``mm``, ``matmul``, ``bmm``, ``addmm``, ``addmv``, ``baddbmm``) run
    by its :class:`~codegen.products.ProductKernel`: NumPy's BLAS call writing into a
    buffer from the program's pool, under the thread policy of :class:`_NodeStep`."""

    __slots__ = ("pool", "kernel")

    def __init__(self, node: Node, kernel: ProductKernel, pool: BufferPool):
        super().__init__(node)
        self.pool = pool
        self.kernel = kernel

    def compute(self, env: dict) -> tuple:
        return (self.kernel([env[a] for a in self.node.inputs], self.pool),)

    def compute_apart(self, env: dict) -> tuple:
        return (self.kernel([env[a] for a in self.node.inputs], BufferPool()),)


class _InterpretedGroupStep:
    """A small fused group (below ``ROWS_KERNEL_MIN_ELEMENTS``) run node by node on the
    reference implementations in one loop: what :func:`ir.interpret.run_node` does per
    node (call, conform the result to the node's type), with NumPy's floating-point
    errors ignored once for the whole group rather than per node. On W1's cross-entropy
    groups (25 nodes on [32,10]) that halves the time: 127 us against 68 us a step,
    the per-node error-state switch and step dispatch costing as much as the NumPy
    calls at this size."""

    __slots__ = ("node", "plan", "binder")

    def __init__(self, node: Node):
        self.node = node
        self.plan = [(n, n.op.impl, n.attrs, n.inputs, n.outputs)
                     for n in node.attrs["body"].nodes]
        self.binder = _BodyBinder(node)

    @staticmethod
    def takes(body: Graph) -> bool:
        """Whether this step can run ``body``: no product (those follow the BLAS thread
        policy), and NumPy's error state is one this module can set directly."""
        return ERRSTATE is not None and not any(n.op.kind is OpKind.MATMUL
                                                for n in body.nodes)

    def run(self, env: dict, blas: BlasThreads) -> None:
        binder = self.binder
        inner = binder.inner(env)
        entry = (self.node,)
        token = ERRSTATE.set(IGNORE_ALL)
        try:
            for entry in self.plan:
                _, impl, attrs, ins, outs = entry
                result = impl(*[inner[a] if isinstance(a, Value) else a for a in ins], **attrs)
                if len(outs) == 1 and not isinstance(result, tuple):
                    inner[outs[0]] = conform(result, outs[0].type)
                else:
                    for o, r in zip(outs, result):
                        inner[o] = conform(r, o.type)
        except Exception as e:
            e.add_note(f"while running IR node: {describe_node(entry[0])}")
            raise
        finally:
            ERRSTATE.reset(token)
        binder.results(inner, env)


def _body_env(node: Node, env: dict) -> dict:
    """A fused node's body inputs bound to the values of the node's inputs."""
    return {v: env[a] if isinstance(a, Value) else a
            for v, a in zip(node.attrs["body"].inputs, node.inputs)}


class _BodyBinder:
    """How a fused node's body meets the program's environment, worked out once (its
    steps run per call): the body inputs bound to the node's input values (a Python
    scalar input is the same every call), and the node's outputs taken from the body's."""

    __slots__ = ("values", "constants", "outputs")

    def __init__(self, node: Node):
        pairs = list(zip(node.attrs["body"].inputs, node.inputs))
        self.values = tuple((v, a) for v, a in pairs if isinstance(a, Value))
        self.constants = {v: a for v, a in pairs if not isinstance(a, Value)}
        self.outputs = tuple(zip(node.outputs, node.attrs["body"].outputs))

    def inner(self, env: dict) -> dict:
        """The body's environment: its inputs bound to this call's values."""
        inner = {v: env[a] for v, a in self.values}
        if self.constants:
            inner.update(self.constants)
        return inner

    def results(self, inner: dict, env: dict) -> None:
        """The node's outputs into ``env``, from the body's ``inner`` environment."""
        for out, v in self.outputs:
            env[out] = inner[v]


class _FusedStep:
    __slots__ = ("node", "steps", "release", "binder")

    def __init__(self, node: Node, steps: list):
        self.node = node
        self.steps = [s for step in steps for s in (step if isinstance(step, list) else [step])]
        body = node.attrs["body"]
        self.release = _release_plan([s.reads() for s in self.steps],
                                     [s.writes() for s in self.steps], set(body.outputs))
        self.binder = _BodyBinder(node)

    def run(self, env: dict, blas: BlasThreads) -> None:
        binder = self.binder
        inner = binder.inner(env)
        writable = env.get(INPLACE)
        if writable is not None:
            inner[INPLACE] = writable
        for step, dead in zip(self.steps, self.release):
            step.run(inner, blas)
            for v in dead:
                del inner[v]
        binder.results(inner, env)


class _PhaseStep:
    """One phase kernel; ``variants`` maps flat (True: every array raveled, one loop) or
    not to (source, kernel). The flat variant runs when the arrays allow it."""

    __slots__ = ("variants", "source", "shape", "dtypes", "sums", "scale", "pool", "nodes",
                 "inplace", "_scalar", "_flat_always", "_allocs", "_calls")

    def __init__(self, variants: dict, shape: tuple, sums: list, pool: BufferPool,
                 nodes: Sequence[Node] = ()):
        self.pool = pool
        self.nodes = tuple(nodes)     # the elementwise nodes the kernel computes
        # (output, input) index pairs: the output may go into the input's array when the
        # run allows it (codegen.inplace.plan_inplace_writes)
        self.inplace: tuple = ()
        self.variants = variants
        self.source = next(iter(variants.values()))[0]
        self.shape = shape if shape else (1,)
        self.dtypes = [v.type.dtype.np_dtype for v in self.source.outputs]
        self.sums = sums
        # mean divides the sum by the number of summed elements (none: 0/0, nan)
        self.scale = [_mean_scale(n) if n.op.name == "mean" else None for n in sums]
        # what run() would otherwise work out on every call (it runs per program call):
        # which inputs are scalars, whether the flat variant always runs, per output
        # whether it comes from the pool (a small one is a plain np.empty, as the pool
        # itself gives), and per variant its call's fixed parts
        scalar_inputs = self.source.scalar_inputs
        self._scalar = tuple(v in scalar_inputs for v in self.source.inputs)
        self._flat_always = True in variants and False not in variants
        self._allocs = tuple((dt, pool.pooled(self.shape, dt)) for dt in self.dtypes)
        self._calls = {flat: self._call_plan(flat, src) for flat, (src, _) in variants.items()}

    def _call_plan(self, flat: bool, src) -> tuple:
        """For the variant ``flat`` (with source ``src``): its kernel's iteration-shape
        argument, the shapes of its reduction accumulators, and per output its value and
        whether the (iteration-shaped) output array must be reshaped to its type."""
        shape = self.shape
        ndim = 1 if flat else len(shape)
        accs = tuple((1,) if flat else tuple(1 if d in dims else shape[d] for d in range(ndim))
                     for _, dims in src.reductions)
        outputs = tuple((v, tuple(v.type.shape) != shape) for v in src.outputs)
        return (math.prod(shape),) if flat else shape, accs, outputs

    def reads(self) -> tuple:
        return self.source.inputs

    def writes(self) -> tuple:
        return tuple(self.source.outputs) + tuple(n.outputs[0] for n in self.sums)

    def run(self, env: dict, blas: BlasThreads) -> None:
        shape = self.shape
        values = [env[v] for v in self.source.inputs]
        scalar = self._scalar
        flat = self._flat_always or (True in self.variants and all(
            x.flags.c_contiguous for s, x in zip(scalar, values) if not s))
        src, kernel = self.variants[flat]
        args = []
        for s, x in zip(scalar, values):
            if s:
                args.append(x[()] if isinstance(x, np.ndarray) else x)
            elif flat:
                # a 1-d view (a broadcast) is read as it is: no copy
                args.append(x if x.ndim == 1 else np.ascontiguousarray(x).reshape(-1))
            else:
                args.append(np.broadcast_to(x, shape))
        outs = [self.pool.empty(shape, dt) if pooled else np.empty(shape, dt)
                for dt, pooled in self._allocs] if not self.inplace \
            else self._outputs(values, env.get(INPLACE))
        kernel_outs = [o.reshape(-1) for o in outs] if flat else outs
        extent, acc_shapes, outputs = self._calls[flat]
        accs = [np.zeros(a, dtype=np.float64) for a in acc_shapes] if acc_shapes else []
        kernel(*args, *kernel_outs, *accs, extent)
        for (v, reshape), o in zip(outputs, outs):
            # the pool's buffer itself where the shapes agree (a write lands by taking it)
            env[v] = o.reshape(v.type.shape) if reshape else o
        for node, acc, scale in zip(self.sums, accs, self.scale):
            out = node.outputs[0]
            if scale is not None:
                acc *= scale
            env[out] = acc.astype(out.type.dtype.np_dtype).reshape(out.type.shape)

    def _outputs(self, values: list, writable: frozenset | None) -> list:
        """The kernel's output arrays: pooled buffers, except an output the run lets
        this phase write into its (mutated) input's own array."""
        shape = self.shape
        outs = [None] * len(self.dtypes)
        if writable:
            for j, q in self.inplace:
                x = values[q]
                if id(x) in writable and x.shape == shape and x.dtype == self.dtypes[j]:
                    outs[j] = x
        return [o if o is not None else self.pool.empty(shape, dt)
                for o, dt in zip(outs, self.dtypes)]


# --- helpers ---------------------------------------------------------------------------------

def _work(body: Graph) -> int:
    """Elements of a group body's largest value (its iteration space)."""
    return max((math.prod(o.type.shape) for n in body.nodes for o in n.outputs), default=0)


def _mean_scale(node: Node) -> float:
    """1 / (elements summed per result) of a mean node; nan when that is zero."""
    summed = math.prod(node.inputs[0].type.shape)
    return math.prod(node.outputs[0].type.shape) / summed if summed else math.nan


def _phase_op(node: Node) -> bool:
    return node.op.kind is OpKind.ELEMENTWISE and len(node.outputs) == 1


def _joins(node: Node, members: list[Node]) -> bool:
    """Whether ``node`` extends the phase ``members``: an elementwise node over the same
    iteration shape that reads no sum the phase computes (it is complete only after
    the loop), or a float sum/mean of a value the phase computes."""
    shape = _phase_shape(members)
    sums = {n.outputs[0] for n in members if _is_sum(n)}
    if any(isinstance(a, Value) and a in sums for a in node.inputs):
        return False
    if _phase_op(node):
        return _shape(node) == shape
    produced = {o for n in members for o in n.outputs}
    if node.op.is_view:
        # a view of a value from before the phase (a broadcast seed): a NumPy view made
        # before the loop, read by the kernel as one more input
        return _shape(node) == shape and not any(
            isinstance(a, Value) and a in produced for a in node.inputs)
    if node.op.name not in ("sum", "mean") or not isinstance(node.inputs[0], Value):
        return False
    source, out = node.inputs[0], node.outputs[0]
    computed = {o for n in members if _phase_op(n) for o in n.outputs}
    return (source in computed and tuple(source.type.shape) == shape
            and source.type.dtype.category == CATEGORY_FLOAT
            and out.type.dtype == source.type.dtype)


def _is_sum(node: Node) -> bool:
    return node.op.kind is OpKind.REDUCTION


def _phase_shape(members: list[Node]) -> tuple:
    return next(_shape(n) for n in members if _phase_op(n) or n.op.is_view)


def _sum_dims(node: Node) -> tuple[int, ...]:
    return normalize_dims(node.attrs.get("dim"), node.inputs[0].type.ndim)


def _shape(node: Node) -> tuple:
    return tuple(node.outputs[0].type.shape)


def _release_plan(reads: Sequence[tuple], writes: Sequence[tuple], keep: set) -> list[tuple]:
    """Per step (given the values each reads and writes), the values to drop from the
    environment after it: those read or written there for the last time, except
    ``keep`` (results and written-back values)."""
    last = _last_reads(reads, writes)
    plan: list[list] = [[] for _ in reads]
    for v, i in last.items():
        if v not in keep:
            plan[i].append(v)
    return [tuple(p) for p in plan]


class _LastUses:
    """Where each value of a body is read for the last time: a value is read after node
    ``n`` iff ``last[value] > position[n]`` (linear in the body, unlike a set per node)."""

    __slots__ = ("position", "last")

    def __init__(self, body: Graph):
        self.position = {n: i for i, n in enumerate(body.nodes)}
        self.last = _last_reads([n.inputs for n in body.nodes])


def _last_reads(reads: Sequence[tuple], writes: Sequence[tuple] = ()) -> dict[Value, int]:
    """The index of the last step reading (or, with ``writes``, writing) each value."""
    last: dict[Value, int] = {}
    for i, ins in enumerate(reads):
        if writes:
            last.update(dict.fromkeys(writes[i], i))
        for a in ins:
            if isinstance(a, Value):
                last[a] = i
    return last

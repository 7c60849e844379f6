"""Numba-CUDA kernels for fused groups: generated ``@cuda.jit`` source and the steps that
launch it on device arrays.

:func:`plan_cuda` takes a ``fused`` node (from :func:`passes.fusion.fuse`) and
returns a step that runs it on the GPU, or None when the group has no CUDA form
(the caller then runs it another way). By kind:

* ``elementwise``: one grid-stride loop over the flat iteration space ``S``
  (``i`` from ``cuda.grid(1)`` by ``cuda.gridsize(1)``); each input is read at
  the coordinates of ``i`` broadcast to its own shape, through any views, by
  index arithmetic (:mod:`codegen.cuda_exprs`); outputs are C-contiguous and
  written at ``i``. When every array input has the shape ``S`` and is
  C-contiguous at run time, a second variant reads them at ``i`` too (no
  coordinates).
* ``reduction`` (sum, mean, amax, amin over any dims, with prologue and
  epilogue): the ``M`` results each reduce a *segment* of ``L`` elements. A
  segment is split into ``B`` chunks (``L`` over ``chunk_elements`` per lane,
  at most ``max_chunks``); a worker (:class:`codegen.cuda_source.Worker`)
  reduces one chunk of one segment: a thread when ``L <= 32`` or when the
  innermost dim is kept (consecutive threads then read consecutive addresses),
  else a warp (``L <= warp_row_max``) or a block. Its lanes take the chunk's
  elements in turn (element ``l`` of chunk ``b``: ``l = b*P + lane + k*B*P``),
  compute the prologue, store the prologue's outputs and accumulate; the worker
  combines its lanes (warp shuffles, shared memory). With ``B == 1`` lane 0
  then finishes the result (mean's division, the epilogue) and stores it;
  otherwise it stores a partial ``[M, B]`` and a second kernel, a warp per
  result, combines the ``B`` partials in chunk order and finishes. float32 adds
  up in float32 (as PyTorch's CUDA kernels), float64 in float64, integers in
  their type; max/min propagate NaN. No atomics: the order of every addition is
  fixed by the shapes and the :class:`~codegen.cuda_launch.LaunchConfig`. The
  prologue is what the reduction reads, plus unrelated nodes of its input's shape;
  the epilogue is what reads the reduction, plus unrelated nodes with one element
  per result (an SGD momentum update beside a bias gradient's sum), which the
  finishing step computes from the group's inputs (:func:`_loops`, fusion's split).
* ``rows``: :mod:`codegen.cuda_rows`.

Shapes are constants of the generated source (a fused node's types are static):
index arithmetic divides by constants, views fold into reads, and a new shape is a
new kernel module. Kernel modules are loaded through
:func:`codegen.cache.load_kernel` (real files named by hash, Numba's disk cache
verified): they define their kernels with ``@cuda.jit(cache=True)``, without
signatures (compiled at the first launch).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from codegen.cache import load_kernel
from codegen.cuda_exprs import Evaluator, Inputs, Scope, Unsupported, is_view, ravel
from codegen.cuda_launch import (
    DEFAULT_CONFIG,
    PARTIALS,
    Alloc,
    KernelSource,
    Launch,
    LaunchConfig,
    default_alloc,
    device_view,
    flat_view,
    is_c_contiguous,
    launch,
    scalar_arg,
)
from codegen.cuda_rows import rows_source
from codegen.cuda_source import (
    BLOCK,
    THREAD,
    WARP,
    WARP_SIZE,
    Worker,
    acc_dtype,
    combine,
    cuda_module,
    identity,
    indent,
)
from codegen.scalar import cast, const
from ir.graph import Graph, Node, Value
from ir.opdef import OpKind
from ir.types import normalize_dims

__all__ = ["plan_cuda", "kernel_source", "KernelSource", "CudaStep", "Unsupported",
           "REDUCTIONS"]

# reduction ops with a CUDA form: op -> (combining op, whether it reduces every dim)
REDUCTIONS = {"sum": ("sum", False), "mean": ("mean", False), "amax": ("amax", False),
              "amin": ("amin", False), "max_all": ("amax", True), "min_all": ("amin", True)}

# --- elementwise ----------------------------------------------------------------------------

class _FlatInputs(Inputs):
    """Reads of a flat variant: inputs of the iteration shape at ``i`` (passed raveled);
    anything else must be a scalar or loop invariant."""

    def __init__(self, shape: tuple):
        super().__init__()
        self.shape = shape
        self.flat: set[Value] = set()

    def read(self, v: Value, coords: Callable) -> str:
        if v.node is None and not v.type.weak and v.type.ndim and tuple(v.shape) == self.shape:
            self.flat.add(v)
            return f"{self.param(v)}[i]"
        text = super().read(v, coords)
        if not (v.node is None and v.type.weak) and not text.startswith("h"):
            raise Unsupported("an input is not read at the flat index")
        return text


def _group_values(ev: Evaluator, nodes: list[Node], coords_of, scope: Scope):
    """Evaluate ``nodes`` (elementwise, or views: aliases of group values, or folded into
    the reads of outside values) in body order."""
    for node in nodes:
        if is_view(node):
            local = ev.source_local(node.outputs[0])
            if local is not None:
                ev.known[node.outputs[0]] = local
        else:
            ev.node(node, coords_of, scope)


def _stored(ev: Evaluator, values) -> list[tuple[Value, str]]:
    out = []
    for v in values:
        local = ev.source_local(v)
        if local is None:
            raise Unsupported("an output is a view of an input (no kernel writes it)")
        out.append((v, local))
    return out


def _elementwise_kernel(body: Graph, shape: tuple, flat: bool) -> tuple[list, list, Launch]:
    n = math.prod(shape)
    inputs = _FlatInputs(shape) if flat else Inputs()
    ev = Evaluator(inputs)
    scope = Scope()
    _group_values(ev, list(body.nodes), lambda s: scope.coords("i", s), scope)
    outputs = list(dict.fromkeys(body.outputs))
    stores = [f"o{j}[i] = {local}" for j, (_, local) in enumerate(_stored(ev, outputs))]
    lines = inputs.hoisted + ["for i in range(cuda.grid(1), n, cuda.gridsize(1)):"]
    lines += indent(scope.lines + stores)
    params = list(inputs.params.values()) + [f"o{j}" for j in range(len(outputs))] + ["n"]
    launch_ = Launch("flat" if flat else "nd", tuple(inputs.params), tuple(outputs), n,
                     extra=(n,), flat=frozenset(getattr(inputs, "flat", ())))
    return params, indent(lines), launch_


def elementwise_source(body: Graph) -> KernelSource:
    """The kernels of an ``elementwise`` group (see the module docstring)."""
    compute = [n for n in body.nodes if not is_view(n)]
    if not compute or any(n.op.kind is not OpKind.ELEMENTWISE for n in compute):
        raise Unsupported("an elementwise group holds other ops")
    shape = tuple(compute[0].outputs[0].shape)
    if any(tuple(n.outputs[0].shape) != shape for n in compute):
        raise Unsupported("elementwise nodes of different shapes")
    kernels, variants = {}, []
    for flat in (True, False) if len(shape) > 1 else (False,):
        try:
            params, lines, launch_ = _elementwise_kernel(body, shape, flat)
        except Unsupported:
            if not flat:
                raise
            continue
        kernels[launch_.role] = (params, lines)
        variants.append([launch_])
    source, names = cuda_module("ew", kernels)
    return KernelSource(source, names, variants, tuple(dict.fromkeys(body.outputs)))


# --- reductions -----------------------------------------------------------------------------

@dataclass(frozen=True)
class _Segments:
    """How a reduction of shape ``shape`` over ``dims`` splits into work."""

    shape: tuple
    dims: tuple
    kept: tuple
    results: int      # M
    length: int       # L
    chunks: int       # B
    worker: Worker

    @classmethod
    def plan(cls, shape: tuple, dims: tuple, config: LaunchConfig) -> _Segments:
        kept = tuple(d for d in range(len(shape)) if d not in dims)
        m = math.prod(shape[d] for d in kept)
        length = math.prod(shape[d] for d in dims)
        inner = not shape or (len(shape) - 1) in dims
        if length <= WARP_SIZE or not inner:
            worker, lanes = THREAD, 1
        elif length <= config.warp_row_max:
            worker, lanes = WARP, WARP_SIZE
        else:
            worker, lanes = BLOCK, config.threads
        chunks = max(1, min(config.max_chunks, length // (lanes * config.chunk_elements)))
        return cls(shape, dims, kept, m, length, chunks, worker)

    def lanes(self, config: LaunchConfig) -> int:
        return {"thread": 1, "warp": WARP_SIZE}.get(self.worker.kind, config.threads)

    def item(self) -> list[str]:
        """Lines splitting work item ``w`` into its result ``m`` and chunk ``b``."""
        if self.worker is THREAD:   # consecutive threads take consecutive results
            return [f"m = w % {self.results}", f"b = w // {self.results}"]
        return [f"m = w // {self.chunks}", f"b = w % {self.chunks}"]


def _reduction_node(body: Graph) -> tuple[Node, str, tuple]:
    reds = [n for n in body.nodes if n.op.kind is OpKind.REDUCTION]
    if len(reds) != 1 or reds[0].op.name not in REDUCTIONS or len(reds[0].inputs) != 1:
        raise Unsupported(f"reductions {[n.op.name for n in reds]} (one of {sorted(REDUCTIONS)})")
    red = reds[0]
    op, every = REDUCTIONS[red.op.name]
    src = red.inputs[0]
    dims = tuple(range(src.type.ndim)) if every else normalize_dims(red.attrs.get("dim"),
                                                                     src.type.ndim)
    return red, op, tuple(sorted(dims))


def _depends_on(nodes: list[Node], root: Node) -> set[Node]:
    """The nodes that read ``root``'s output, directly or through each other."""
    found: set[Node] = set()
    produced = {root.outputs[0]}
    for n in nodes:
        if any(v in produced for v in n.input_values()):
            found.add(n)
            produced.update(n.outputs)
    return found


def _feeds(nodes: list[Node], root: Node) -> set[Node]:
    """The nodes ``root`` reads, directly or through each other."""
    found: set[Node] = set()
    wanted = set(root.input_values())
    for n in reversed(nodes):
        if any(v in wanted for v in n.outputs):
            found.add(n)
            wanted.update(n.input_values())
    return found


def _loops(body: Graph, red: Node, shape: tuple) -> tuple[list[Node], list[Node]]:
    """The group's nodes other than ``red`` split, in body order, into the prologue (the
    loop over the reduction's input ``shape``) and the epilogue (the finishing step, once
    per result), as :mod:`passes.fusion` groups them: the nodes ``red`` depends on are
    prologue, those depending on ``red`` epilogue; a node related to neither (a momentum
    buffer's ``buf * momentum`` beside a bias gradient's sum) is prologue when it has
    ``shape``, else epilogue, where it reads the group's inputs at the result's
    coordinates; a view goes with the member it views (a view of an input, folded into
    the reads wherever it is, stays in the prologue)."""
    members = set(body.nodes)
    others = [n for n in body.nodes if n is not red]
    after, before = _depends_on(others, red), _feeds(others, red)
    late: set[Node] = set()
    for n in others:
        if n in after:
            late.add(n)
        elif n in before:
            continue
        elif is_view(n):
            if _root(n.outputs[0], members) in late:
                late.add(n)
        elif tuple(n.outputs[0].shape) != shape:
            late.add(n)
    return [n for n in others if n not in late], [n for n in others if n in late]


def _root(v: Value, members: set[Node]) -> Node | None:
    """The member computing ``v`` under the member views it goes through (None: ``v``
    comes from outside the group)."""
    node = v.node
    while node is not None and node in members and is_view(node):
        node = next(node.input_values()).node
    return node if node in members else None


def reduction_source(body: Graph, config: LaunchConfig) -> KernelSource:
    """The kernels of a ``reduction`` group (see the module docstring)."""
    red, op, dims = _reduction_node(body)
    src = red.inputs[0]
    shape, out_t = tuple(src.shape), red.outputs[0].type
    acc = acc_dtype(op, out_t.dtype)
    if acc is None:
        raise Unsupported(f"{red.op.name} into {out_t.dtype.name} has no CUDA form")
    seg = _Segments.plan(shape, dims, config)
    prologue, epilogue = _loops(body, red, shape)
    for n in prologue:
        if not is_view(n) and tuple(n.outputs[0].shape) != shape:
            raise Unsupported("a prologue node of another shape")
    for n in epilogue:   # (each computes and stores its element m of M)
        if not is_view(n) and math.prod(n.outputs[0].shape) != seg.results:
            raise Unsupported("an epilogue node of another size")
    outputs = list(dict.fromkeys(body.outputs))
    members = set(body.nodes)
    roots = {v: _root(v, members) for v in outputs}
    if any(r is None for r in roots.values()):
        raise Unsupported("an output is a view of an input (no kernel writes it)")
    in_prologue = set(prologue)
    pro_values = [v for v in outputs if roots[v] in in_prologue]
    final_values = [v for v in outputs if roots[v] not in in_prologue]

    # the partial kernel: work items (m, b); the chunk's elements; the worker's reduction
    inputs = Inputs()
    ev = Evaluator(inputs)
    item = Scope()
    inner = item.child()
    kept_shape = tuple(shape[d] for d in seg.kept)
    red_shape = tuple(shape[d] for d in dims)

    def coords_of(s: tuple) -> list[str]:
        kept = iter(item.coords("m", kept_shape))
        reduced = iter(inner.coords("l", red_shape))
        return [next(reduced) if d in dims else next(kept) for d in range(len(shape))]

    _group_values(ev, prologue, coords_of, inner)
    value = cast(ev.arg(src, shape, coords_of, inner), src.type.dtype, acc)
    inner.lines.append(f"acc = {combine(op, 'acc', value)}")
    if pro_values:
        flat = inner.let(ravel(coords_of(shape), shape), "f")
        inner.lines += [f"q{j}[{flat}] = {local}"
                        for j, (_, local) in enumerate(_stored(ev, pro_values))]
    lanes = seg.worker.size()
    lines = seg.worker.setup() + seg.worker.shared(["sh"], [acc])
    lines.append(f"for w in range(worker, {seg.results * seg.chunks}, workers):")
    work = seg.item() + item.lines + [f"acc = {identity(op, acc)}",
                                      f"for l in range(b * {lanes} + lane, {seg.length}, "
                                      f"{seg.chunks} * {lanes}):"]
    work += indent(inner.lines) + seg.worker.reduce([op], ["acc"], ["sh"])
    params = [f"q{j}" for j in range(len(pro_values))]   # (after the inputs: below)
    kernels: dict = {}
    threads = seg.results * seg.chunks * seg.lanes(config)
    if seg.chunks == 1:
        finish = _finish(red, op, acc, seg, epilogue, final_values, Evaluator(inputs),
                         Scope(item.names))
        work += ["if lane == 0:"] + indent(finish)
        partial = Launch("partial", (), tuple(pro_values) + tuple(final_values), threads)
        params += [f"o{j}" for j in range(len(final_values))]
        launches = [partial]
    else:
        work += ["if lane == 0:", f"    part[m * {seg.chunks} + b] = acc"]
        partial = Launch("partial", (), tuple(pro_values), threads, extra=(PARTIALS,))
        params.append("part")
        kernels["finish"], finish = _finish_kernel(red, op, acc, seg, epilogue, final_values)
        launches = [partial, finish]
    lines += indent(work)
    # the inputs are complete only now: a finishing step in this kernel may read some
    partial.inputs = tuple(inputs.params)
    params = list(inputs.params.values()) + params
    kernels = {"partial": (params, indent(inputs.hoisted + lines)), **kernels}
    source, names = cuda_module("red", kernels)
    partials = (seg.results * seg.chunks, acc.np_dtype) if seg.chunks > 1 else None
    return KernelSource(source, names, [launches], tuple(outputs), partials,
                        {"segments": seg})


def _finish_kernel(red: Node, op: str, acc, seg: _Segments, epilogue: list[Node],
                   values: list[Value]) -> tuple[tuple[list, list], Launch]:
    """The kernel combining a chunked reduction's partials ``part[m, b]`` in chunk order,
    a warp per result, and finishing each result (:func:`_finish`); its launch."""
    inputs = Inputs()
    finish = _finish(red, op, acc, seg, epilogue, values, Evaluator(inputs), Scope())
    lines = WARP.setup() + [f"for m in range(worker, {seg.results}, workers):"]
    lines += indent([f"acc = {identity(op, acc)}",
                     f"for b in range(lane, {seg.chunks}, {WARP_SIZE}):",
                     f"    acc = {combine(op, 'acc', f'part[m * {seg.chunks} + b]')}"]
                    + WARP.reduce([op], ["acc"], []) + ["if lane == 0:"] + indent(finish))
    params = list(inputs.params.values()) + [f"o{j}" for j in range(len(values))] + ["part"]
    launch_ = Launch("finish", tuple(inputs.params), tuple(values), seg.results * WARP_SIZE,
                     extra=(PARTIALS,))
    return (params, indent(inputs.hoisted + lines)), launch_


def _finish(red: Node, op: str, acc, seg: _Segments, epilogue: list[Node],
            values: list[Value], ev: Evaluator, scope: Scope) -> list[str]:
    """Lines turning ``acc`` (of result ``m``) into the reduction's value and the
    epilogue's, and storing ``values`` (``o<j>[m]``)."""
    total = f"acc / {const(seg.length, acc)}" if op == "mean" else "acc"
    ev.known[red.outputs[0]] = scope.let(cast(total, acc, red.outputs[0].type.dtype), "r")
    _group_values(ev, epilogue, lambda s: scope.coords("m", s), scope)
    stores = [f"o{j}[m] = {local}" for j, (_, local) in enumerate(_stored(ev, values))]
    return scope.lines + stores


# --- planning and running ---------------------------------------------------------------------

def kernel_source(node: Node, config: LaunchConfig = DEFAULT_CONFIG) -> KernelSource:
    """The kernels of the ``fused`` node ``node``; :class:`Unsupported` (with the reason)
    when its group has no CUDA form."""
    body, kind = node.attrs["body"], node.attrs["kind"]
    if kind == "elementwise":
        return elementwise_source(body)
    if kind == "reduction":
        return reduction_source(body, config)
    if kind == "rows":
        return rows_source(body, config)
    raise Unsupported(f"{kind} groups have no CUDA kernel here")


class CudaStep:
    """Runs one ``fused`` node's kernels: ``step(*inputs)`` (device arrays for tensors,
    Python numbers for weak scalars, in the node's input order) returns the node's
    outputs as new device arrays from ``alloc``; ``run(env)`` does the same on an
    environment of values, like the CPU runtime's steps. Launches are asynchronous on a
    GPU (one stream: Numba's default)."""

    __slots__ = ("node", "source", "kernels", "config", "alloc")

    def __init__(self, node: Node, source: KernelSource, kernels: dict, config: LaunchConfig,
                 alloc: Alloc):
        self.node = node
        self.source = source
        self.kernels = kernels
        self.config = config
        self.alloc = alloc

    def run(self, env: dict, blas=None) -> None:
        """Run on ``env`` (values by IR Value), as the CPU runtime's steps do (``blas``, the
        CPU's BLAS thread policy, does not concern GPU kernels)."""
        values = [env[a] if isinstance(a, Value) else a for a in self.node.inputs]
        env.update(zip(self.node.outputs, self(*values)))

    def __call__(self, *values) -> tuple:
        outs, launches = self.prepare(values)
        for ln, args in launches:
            launch(self.kernels[ln.role], self.config.blocks(ln.threads_needed),
                   self.config.threads, tuple(args))
        return outs

    def prepare(self, values, variant: int | None = None
                ) -> tuple[tuple, list[tuple[Launch, list]]]:
        """The node's outputs (allocated) and the launches with their arguments, for the
        node's input ``values``: what ``step(*values)`` launches (``variant``: that
        variant's launches instead of the first whose flat inputs are C-contiguous)."""
        body = self.node.attrs["body"]
        by_value = dict(zip(body.inputs, values))
        src = self.source
        outs = {v: self.alloc(tuple(v.shape), v.type.dtype.np_dtype) for v in src.outputs}
        part = self.alloc((src.partials[0],), src.partials[1]) if src.partials else None
        chosen = src.variants[variant] if variant is not None else next(
            (launches for launches in src.variants
             if all(is_c_contiguous(by_value[v]) for ln in launches for v in ln.flat)),
            src.variants[-1])
        launches = []
        for ln in chosen:
            if ln.threads_needed == 0:
                continue
            args = [_argument(v, by_value[v], v in ln.flat) for v in ln.inputs]
            args += [flat_view(outs[v], math.prod(v.shape)) for v in ln.outputs]
            args += [part if e == PARTIALS else e for e in ln.extra]
            launches.append((ln, args))
        return tuple(outs[v] for v in body.outputs), launches


def _argument(v: Value, x, flat: bool):
    """Input ``v``'s value ``x`` as the kernel takes it."""
    if v.type.weak:
        return scalar_arg(x, v.type.dtype.np_dtype)
    x = device_view(x)
    if v.type.ndim == 0:
        return x.reshape(1)
    return flat_view(x, math.prod(v.shape)) if flat else x


def plan_cuda(node: Node, *, load: Callable = load_kernel,
              config: LaunchConfig = DEFAULT_CONFIG,
              alloc: Alloc = default_alloc) -> CudaStep | None:
    """The step running the ``fused`` node ``node`` on the GPU (kernels loaded with
    ``load(source, name)``, outputs from ``alloc(shape, dtype)``), or None when its group
    has no CUDA form (:func:`kernel_source` says why)."""
    try:
        source = kernel_source(node, config)
    except Unsupported:
        return None
    kernels = {role: load(source.source, name) for role, name in source.names.items()}
    return CudaStep(node, source, kernels, config, alloc)

"""Numba CPU kernels for ``rows`` groups: row reductions with their prologues and
epilogues in one kernel (softmax, log_softmax, layer_norm and their gradients).

A rows group (``passes.fusion.rows_layout``) works over an iteration space
``[R, C]``. Its kernel splits the rows into ``min(R, CHUNKS)`` chunks of
consecutive rows (a ``prange`` over the chunks when the work pays for the thread
fork) and, for each row, makes one *pass* over its ``C`` elements per stage of
reductions:

* every value gets a stage: inputs 0; an elementwise node the largest stage of
  its inputs; a reduction one more than its input (it is complete only after the
  pass that reads its input);
* pass ``p`` computes the full (per element) values that the reductions of stage
  ``p + 1`` read and the full outputs of stage ``p``, from the inputs and the row
  values ready by then; full values a later pass needs again are recomputed from
  the inputs (registers, not memory);
* between passes the row values (``rsqrt(var + eps)``) are computed once per row,
  as scalars;
* a column reduction (sum or mean over the rows: a LayerNorm's weight and bias
  gradients) adds its input, in the pass computing it, to its chunk's own ``[C]``
  float64 partial sums (no two threads write one); after the loop over the chunks
  the partials are added up in chunk order. The chunk count does not depend on the
  thread count, so the result does not either.

A pass writes the values a reduction reads into a row buffer in their dtype (a
loop that vectorises), or, when the reduction reads an input as it is, reads the
input's row itself; a helper then reduces the row: sums and means add up in
float64, amax/amin compare the float bits as ordered integers (a loop that
vectorises, where a float max does not without fast-math) and propagate NaN as
NumPy does. A value that calls a transcendental (``exp``) and that a later pass
needs again is kept in a row buffer by the pass computing it, not recomputed
(softmax's ``exp(x - max)``: summed in one pass, scaled in the next). Elementwise
expressions come from :func:`codegen.scalar.scalar_expr`;
when one has none, or the group is not a rows group, :func:`plan_rows` returns
None and the runtime falls back to the generic phase plan.

Inputs are passed as ``[R, C]`` arrays (a value of the iteration shape, or any
other broadcast to it), ``[C]`` arrays (one value per column: a LayerNorm
weight), ``[R]`` arrays (one value per row) or scalars (weak Python numbers, 0-d
tensors). Outputs are ``[R, C]``, ``[R]`` or ``[C]`` arrays from the program's
:class:`~codegen.buffers.BufferPool` (large ones are reused once released, so a
call does not page-fault fresh memory in), reshaped to their types.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from codegen.buffers import BufferPool
from codegen.cache import load_kernel
from codegen.cpu import PARALLEL_MIN_ELEMENTS
from codegen.mathfns import MODULE_ALIAS
from codegen.scalar import NJIT_OPTIONS, literal, np_type, scalar_expr
from codegen.source import njit_kernel
from ir.graph import Graph, Node, Value, input_type
from ir.interpret import run_in_env
from ir.opdef import OpKind
from passes.fusion import COLUMN, FULL, OUTSIDE, ROW, RowsLayout, rows_layout

__all__ = ["RowsSource", "RowsStep", "rows_source", "plan_rows", "stages", "CHUNKS"]

# row chunks (parallel work items): each allocates its reduction buffers once and keeps
# its own column partial sums ([C] float64 each); enough for any thread count here
CHUNKS = 32

# amax / amin of a float row: IEEE floats ordered as sign-magnitude integers become
# ordered two's complement integers by flipping the magnitude bits of the negative ones,
# and an integer max loop vectorises (a float one does not: its select is not a
# reduction LLVM recognises without no-NaN fast-math). NaN (any exponent-all-ones bit
# pattern with a non-zero mantissa) wins, as in NumPy; ``scratch`` turns the key back
# into a float without an allocation per row.
_EXTREME_SOURCE = """\
@numba.njit(error_model="numpy", cache=True)
def {name}(buf, n, scratch):
    bits = buf.view(np.{ity})
    best = np.{ity}({init})
    nan = np.{ity}(0)
    for c in range(n):
        i = bits[c]
        key = np.{ity}(i ^ ((i >> np.{ity}({shift})) & np.{ity}({mask})))
        best = key if key {cmp} best else best
        nan |= np.{ity}((i & np.{ity}({mask})) > np.{ity}({inf}))
    if nan:
        return np.{fty}(np.nan)
    scratch[0] = best ^ ((best >> np.{ity}({shift})) & np.{ity}({mask}))
    return scratch.view(np.{fty})[0]
"""
_FLOAT_BITS = {"float32": ("int32", 32, 0x7F800000), "float64": ("int64", 64, 0x7FF0000000000000)}


def _extreme_helper(op: str, fty: str) -> tuple[str, str]:
    """(name, source) of the amax or amin helper of float dtype ``fty``."""
    ity, n, inf = _FLOAT_BITS[fty]
    name = f"row_{op}_{fty}"
    lo, hi = -(1 << (n - 1)), (1 << (n - 1)) - 1
    return name, _EXTREME_SOURCE.format(
        name=name, ity=ity, fty=fty, shift=n - 1, mask=hex(hi), inf=hex(inf),
        init=lo if op == "amax" else hi, cmp=">" if op == "amax" else "<")


# how an input is passed: its shape at run time, the kernel's index
SCALAR, FULL_ARRAY, BROADCAST, PER_COLUMN, PER_ROW = ("scalar", "full", "broadcast", "column",
                                                     "row")


@dataclass(frozen=True)
class Param:
    """One kernel input: ``value`` passed as ``access`` (``target``: the shape a
    ``PER_ROW`` value is broadcast to before it is flattened)."""

    value: Value
    access: str
    target: tuple[int, ...] = ()


@dataclass(frozen=True)
class RowsSource:
    """A generated rows kernel: its module source, the function's name, the calling
    convention (``params``, then one array per ``outputs`` entry, ``(value, level)``,
    then ``R`` and ``C``) and the nodes run before it (views of the group's inputs)."""

    source: str
    name: str
    layout: RowsLayout
    params: tuple[Param, ...]
    outputs: tuple[tuple[Value, str], ...]
    pre: tuple[Node, ...]


class _Emitter:
    """Builds the source of one rows kernel (see the module docstring)."""

    def __init__(self, body: Graph, layout: RowsLayout):
        self.body = body
        self.layout = layout
        self.params: dict[tuple, tuple[Param, str]] = {}   # key -> (param, its name)
        self.row_loads: list[str] = []                      # loads of PER_ROW inputs
        self.row_expr: dict[Value, str] = {}                # row values -> local names

    # --- inputs -----------------------------------------------------------------------

    def param(self, v: Value, reader: str, target: tuple[int, ...] = ()) -> str:
        """The expression reading input ``v`` (for a ``FULL`` or ``ROW`` reader; ``target``
        the row reader's shape)."""
        layout = self.layout
        if v.type.weak or v.type.ndim == 0:
            access, target = SCALAR, ()
        elif reader == ROW:
            access = PER_ROW
        else:
            s, lead = layout.shape, layout.lead
            padded = (1,) * (len(s) - v.type.ndim) + tuple(v.shape)
            if padded == s:
                access, target = FULL_ARRAY, ()
            elif layout.row_shaped(v.shape):
                access, target = PER_ROW, s[:lead] + (1,) * (len(s) - lead)
            elif all(n == 1 for n in padded[:lead]) and padded[lead:] == s[lead:]:
                access, target = PER_COLUMN, ()
            else:
                access, target = BROADCAST, ()
        key = (v, access, target)
        if key not in self.params:
            index = len(self.params)
            self.params[key] = (Param(v, access, target), f"p{index}")
            if access == PER_ROW:   # one value per row: loaded at the row's start
                self.row_loads.append(f"y{index} = p{index}[r]")
            elif access in (FULL_ARRAY, BROADCAST):
                # the row as a 1-d view: loops over it vectorise (2-d indexing does not)
                self.row_loads.append(f"q{index} = p{index}[r]")
        name = self.params[key][1]
        return {SCALAR: name, FULL_ARRAY: f"q{name[1:]}[c]", BROADCAST: f"q{name[1:]}[c]",
                PER_COLUMN: f"{name}[c]", PER_ROW: f"y{name[1:]}"}[access]

    # --- expressions -------------------------------------------------------------------

    def node_expr(self, node: Node, arg_of: Callable[[object], str]) -> str | None:
        args = [arg_of(a) if isinstance(a, Value) else literal(a) for a in node.inputs]
        out = node.outputs[0]
        return scalar_expr(node.op.name, args, [input_type(a) for a in node.inputs],
                           out.type.dtype, node.attrs)


def stages(nodes: list[Node]) -> dict[Value, int]:
    """The stage of every value the nodes compute (see the module docstring)."""
    stage: dict[Value, int] = {}
    for node in nodes:
        s = max((stage.get(v, 0) for v in node.input_values()), default=0)
        for o in node.outputs:
            stage[o] = s + 1 if node.op.kind is OpKind.REDUCTION else s
    return stage


def _reduce_line(red: Node, buf: str, total: str, helpers: dict[str, str]) -> str:
    """Source reducing ``buf[:n_cols]`` into ``total`` (recording the helper it calls)."""
    name = red.op.name
    if name in ("sum", "mean"):
        # the float64 sum with reassociation only (vectorised), a call, not inlined
        return f"{total} = {MODULE_ALIAS}.chunk_sum({buf}, n_cols)"
    fty = red.inputs[0].type.dtype.np_dtype.name
    helper, source = _extreme_helper(name, fty)
    helpers[helper] = source
    return f"{total} = {helper}({buf}, n_cols, scratch_{_FLOAT_BITS[fty][0]})"


def rows_source(body: Graph) -> RowsSource | None:
    """The kernel of the rows group ``body`` (a ``fused`` node's body), or None when it is
    not a rows group or an op has no scalar expression."""
    nodes = list(body.nodes)
    layout = rows_layout(nodes)
    if not isinstance(layout, RowsLayout):
        return None
    level = layout.level
    pre = [n for n in nodes if level.get(n.outputs[0]) == OUTSIDE]
    computed = [n for n in nodes if level.get(n.outputs[0]) != OUTSIDE]
    stage = stages(computed)
    reductions = [n for n in computed if level[n.outputs[0]] == ROW
                  and n.op.kind is OpKind.REDUCTION]
    columns = [n for n in computed if level[n.outputs[0]] == COLUMN]
    outputs = [(v, level.get(v, OUTSIDE)) for v in dict.fromkeys(body.outputs)]
    stored = [(v, lv) for v, lv in outputs if lv != OUTSIDE]
    # a column reduction adds up its input in the pass computing that input
    passes = 1 + max([stage[n.outputs[0]] - 1 for n in reductions]
                     + [stage[v] for v, lv in stored if lv == FULL]
                     + [stage[n.outputs[0]] - 1 for n in columns])
    em = _Emitter(body, layout)
    out_index = {v: j for j, (v, _) in enumerate(stored)}

    # row values: locals computed once per row, in body order, before the first pass
    # that needs them (reductions: right after their pass)
    row_lines: dict[int, list[str]] = {p: [] for p in range(passes + 1)}
    for k, node in enumerate(computed):
        if node in reductions:
            em.row_expr[node.outputs[0]] = f"w{k}"   # set after the pass that reads its input
    for k, node in enumerate(computed):
        out = node.outputs[0]
        if level[out] != ROW or node.op.kind is OpKind.REDUCTION:
            continue
        if node.op.is_view:
            em.row_expr[out] = em.row_expr[node.inputs[0]] if node.inputs[0] in em.row_expr \
                else em.param(node.inputs[0], ROW, out.shape)
            continue
        expr = em.node_expr(node, lambda v, out=out: em.row_expr[v] if v in em.row_expr
                            else em.param(v, ROW, out.shape))
        if expr is None:
            return None
        em.row_expr[out] = f"w{k}"
        row_lines[min(stage[out], passes)].append(f"w{k} = {expr}")

    plan = _PassPlan(em, computed, level)
    for p in range(passes):
        reds = [n for n in reductions if stage[n.outputs[0]] - 1 == p]
        cols = [n for n in columns if stage[n.outputs[0]] - 1 == p]
        outs = [v for v, lv in stored if lv == FULL and stage[v] == p]
        plan.add_pass(reds, cols, outs)
    if not plan.keep_expensive():
        return None
    body_lines: list[str] = []
    helpers: dict[str, str] = {}
    for p in range(passes):
        body_lines += row_lines[p]
        loop, sources = plan.loop(p, out_index)
        body_lines += loop
        for red in plan.passes[p][0]:
            k = computed.index(red)
            body_lines.append(_reduce_line(red, sources[red], f"t{k}", helpers))
            dtype = red.outputs[0].type.dtype
            value = f"t{k} / n_cols" if red.op.name == "mean" else f"t{k}"
            body_lines.append(f"w{k} = {np_type(dtype)}({value})")
    body_lines += row_lines[passes]
    for v, lv in stored:
        if lv == ROW:
            body_lines.append(f"o{out_index[v]}[r] = {em.row_expr[v]}")

    params = [name for _, name in em.params.values()]
    params += [f"o{j}" for j in range(len(stored))] + ["n_rows", "n_cols"]
    parallel = layout.rows > 1 and layout.rows * layout.cols >= PARALLEL_MIN_ELEMENTS
    lines = [f"n_chunks = min(n_rows, {CHUNKS})"]
    lines += [f"part{computed.index(n)} = np.zeros((n_chunks, n_cols), dtype=np.float64)"
              for n in columns]
    lines.append(f"for ch in {'numba.prange' if parallel else 'range'}(n_chunks):")
    lines += [f"    {name} = np.empty(n_cols, dtype=np.{dt})" for name, dt in plan.buffers]
    lines += [f"    scratch_{ity} = np.empty(1, dtype=np.{ity})"
              for ity in sorted({name.rsplit("_", 1)[1] for name in helpers})
              for ity in [_FLOAT_BITS[ity][0]]]
    lines += [f"    acc{computed.index(n)} = part{computed.index(n)}[ch]" for n in columns]
    lines.append("    for r in range(ch * n_rows // n_chunks, (ch + 1) * n_rows // n_chunks):")
    out_rows = [f"oq{j} = o{j}[r]" for j, (_, lv) in enumerate(stored) if lv == FULL]
    lines += ["        " + line for line in em.row_loads + out_rows + body_lines]
    lines += _column_lines(columns, computed, out_index)
    source, name = njit_kernel("rows", params, ["    " + line for line in lines],
                               dict(NJIT_OPTIONS, cache=True, parallel=parallel),
                               [helpers[h] for h in sorted(helpers)])
    return RowsSource(source, name, layout, tuple(p for p, _ in em.params.values()),
                      tuple(stored), tuple(pre))


def _column_lines(columns: list[Node], computed: list[Node], out_index: dict) -> list[str]:
    """Source adding up the chunks' partial sums of each column reduction, in chunk order,
    into its output (after the loop over the chunks)."""
    lines = []
    for red in columns:
        k, out = computed.index(red), red.outputs[0]
        scale = " / n_rows" if red.op.name == "mean" else ""
        lines += [f"tot{k} = part{k}[0].copy()",
                  "for ch in range(1, n_chunks):",
                  "    for c in range(n_cols):",
                  f"        tot{k}[c] += part{k}[ch, c]",
                  "for c in range(n_cols):",
                  f"    o{out_index[out]}[c] = {np_type(out.type.dtype)}(tot{k}[c]{scale})"]
    return lines


class _PassPlan:
    """What each pass over a row computes: per pass the row reductions, column reductions
    and full outputs it serves, and the full values its loop computes (recomputed from the
    inputs, or loaded from the row buffer an earlier pass kept them in)."""

    def __init__(self, em: _Emitter, computed: list[Node], level: dict):
        self.em = em
        self.computed = computed
        self.index = {n: k for k, n in enumerate(computed)}
        self.level = level
        self.passes: list[tuple[list[Node], list[Node], list[Value]]] = []
        self.kept: dict[Node, int] = {}           # node -> the pass storing its row buffer
        self.buffers: list[tuple[str, str]] = []  # (name, NumPy dtype), allocated per chunk

    def add_pass(self, reds: list[Node], cols: list[Node], outs: list[Value]) -> None:
        self.passes.append((reds, cols, outs))

    def direct(self, red: Node) -> str | None:
        """The row view a reduction reads as it is (its input is a full input array), or
        None when a pass computes what it reads."""
        v = red.inputs[0]
        if self.level.get(v) == FULL or v in self.em.row_expr:
            return None
        self.em.param(v, FULL)
        for (value, access, _), (_, name) in self.em.params.items():
            if value is v and access == FULL_ARRAY:   # (a broadcast row is not contiguous)
                return f"q{name[1:]}"
        return None

    def targets(self, p: int) -> list[Value]:
        reds, cols, outs = self.passes[p]
        return ([r.inputs[0] for r in reds if self.direct(r) is None]
                + [r.inputs[0] for r in cols] + outs)

    def needed(self, p: int, kept_before: set[Node]) -> set[Node]:
        """The nodes pass ``p``'s loop computes (``kept_before``: loaded, not recomputed)."""
        found: set[Node] = set()
        stack = [v.node for v in self.targets(p)
                 if v.node is not None and self.level.get(v) == FULL]
        while stack:
            n = stack.pop()
            if n in found:
                continue
            found.add(n)
            if n not in kept_before:
                stack += [v.node for v in n.input_values() if self.level.get(v) == FULL]
        return found

    def keep_expensive(self) -> bool:
        """Choose the values kept in row buffers: those calling a transcendental helper
        that more than one pass needs (kept by the first). False when a node has no
        scalar expression."""
        uses: dict[Node, list[int]] = {}
        for p in range(len(self.passes)):
            for n in self.needed(p, set()):
                uses.setdefault(n, []).append(p)
        for n, ps in uses.items():
            if n.op.is_view:
                continue
            text = self.em.node_expr(n, _placeholder)
            if text is None:
                return False
            if len(ps) > 1 and MODULE_ALIAS + "." in text:
                self.kept[n] = min(ps)
                dtype = n.outputs[0].type.dtype.np_dtype.name
                self.buffers.append((f"keep{self.index[n]}", dtype))
        return True

    def loop(self, p: int, out_index: dict) -> tuple[list[str], dict[Node, str]]:
        """The loop over one row's elements for pass ``p`` and, per row reduction of the
        pass, the row it reduces (a buffer the loop fills, or an input's row)."""
        em, level = self.em, self.level
        reds, cols, outs = self.passes[p]
        kept_before = {n for n, q in self.kept.items() if q < p}
        needed = self.needed(p, kept_before)
        expr: dict[Value, str] = {}
        loads: dict[str, str] = {}    # param read -> local name

        def arg(v: Value) -> str:
            if level.get(v) == FULL:
                return expr[v]
            if v in em.row_expr:
                return em.row_expr[v]
            read = em.param(v, FULL)
            if read.endswith("]"):   # an array element: loaded once per iteration
                loads.setdefault(read, f"x{len(loads)}")
                return loads[read]
            return read

        lines, stores = [], []
        for node in self.computed:
            if node not in needed:
                continue
            k, out = self.index[node], node.outputs[0]
            if node in kept_before:
                lines.append(f"v{k} = keep{k}[c]")
            elif node.op.is_view:
                expr[out] = arg(node.inputs[0])
                continue
            else:
                lines.append(f"v{k} = {em.node_expr(node, arg)}")
                if self.kept.get(node) == p:
                    stores.append(f"keep{k}[c] = v{k}")
            expr[out] = f"v{k}"
        sources: dict[Node, str] = {}
        for red in reds:
            direct = self.direct(red)
            if direct is not None:
                sources[red] = direct
                continue
            made_by = red.inputs[0].node
            if made_by is not None and self.kept.get(made_by) == p \
                    and red.inputs[0] is made_by.outputs[0]:
                # the row buffer keeping the value for later passes is the row it reduces
                # (softmax's exp(x - max)): one store per element, not two
                sources[red] = f"keep{self.index[made_by]}"
                continue
            k = self.index[red]
            sources[red] = f"buf{k}"
            self.buffers.append((f"buf{k}", red.inputs[0].type.dtype.np_dtype.name))
            stores.append(f"buf{k}[c] = {arg(red.inputs[0])}")
        for red in cols:
            stores.append(f"acc{self.index[red]}[c] += np.float64({arg(red.inputs[0])})")
        for v in outs:
            stores.append(f"oq{out_index[v]}[c] = {arg(v)}")
        body = [f"{name} = {read}" for read, name in loads.items()] + lines + stores
        if not body:
            return [], sources
        return ["for c in range(n_cols):"] + ["    " + line for line in body], sources


def _placeholder(v: Value) -> str:
    return "a"


def _prepare(param: Param, x, layout: RowsLayout):
    """The array (or scalar) the kernel reads for ``param`` from the value ``x``."""
    if param.access == SCALAR:
        return x[()] if isinstance(x, np.ndarray) else x
    if param.access == FULL_ARRAY:
        # contiguous rows: a reduction may read an input's row through an integer view
        return np.ascontiguousarray(x.reshape(layout.rows, layout.cols))
    if param.access == BROADCAST:
        return np.broadcast_to(x, layout.shape).reshape(layout.rows, layout.cols)
    if param.access == PER_COLUMN:
        return x.reshape(layout.cols)
    return np.broadcast_to(x, param.target).reshape(layout.rows)


class RowsStep:
    """Runs one rows group: the views of its inputs, then its kernel (``run(env)`` like
    the runtime's other steps), writing into buffers from ``pool``."""

    __slots__ = ("node", "source", "kernel", "pool", "shapes")

    def __init__(self, node: Node, source: RowsSource, kernel, pool: BufferPool):
        self.node = node
        self.source = source
        self.kernel = kernel
        self.pool = pool
        lay = source.layout
        extent = {FULL: (lay.rows, lay.cols), ROW: (lay.rows,), COLUMN: (lay.cols,)}
        self.shapes = [(extent[lv], v.type.dtype.np_dtype) for v, lv in source.outputs]

    def run(self, env: dict, blas=None) -> None:
        node, src = self.node, self.source
        body = node.attrs["body"]
        inner = {b: env[a] if isinstance(a, Value) else a for b, a in zip(body.inputs,
                                                                          node.inputs)}
        for n in src.pre:
            run_in_env(n, inner)
        layout = src.layout
        args = [_prepare(p, inner[p.value], layout) for p in src.params]
        outs = [self.pool.empty(shape, dtype) for shape, dtype in self.shapes]
        self.kernel(*args, *outs, layout.rows, layout.cols)
        for (v, _), o in zip(src.outputs, outs):
            inner[v] = o.reshape(v.type.shape)
        del outs   # the pool hands a buffer out again only once nothing else holds it
        env.update(zip(node.outputs, (inner[v] for v in body.outputs)))


def plan_rows(node: Node, load: Callable = load_kernel,
              pool: BufferPool | None = None) -> RowsStep | None:
    """The step running the ``fused`` node ``node`` of kind ``rows`` as one kernel (loaded
    with ``load(source, name)``; outputs from ``pool``, the program's, or a pool of the
    step's own), or None when :func:`rows_source` has no kernel for it."""
    source = rows_source(node.attrs["body"])
    if source is None:
        return None
    return RowsStep(node, source, load(source.source, source.name),
                    pool if pool is not None else BufferPool())

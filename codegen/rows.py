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
NumPy does. (Adding up in the loop itself would put float64 lanes in it, and LLVM
sizes a loop's vectors by its widest type: half the float32 lanes.) Each row
buffer is reduced right after its pass, so the passes share them: fewer buffers
beside the rows and the column partials in the L1 cache. A value that calls a
transcendental (``exp``) and that a later pass needs again is kept in a row buffer
by the pass computing it, not recomputed (softmax's ``exp(x - max)``: summed in
one pass, scaled in the next). Elementwise expressions come from
:func:`codegen.scalar.scalar_expr`; when one has none, or the group is not a rows
group, :func:`plan_rows` returns None and the runtime falls back to the generic
phase plan.

nll_loss's one-hot (``eq(arange(C), target)``, see ``passes.decompose``) gets two
shortcuts. An input fed by an integer ``arange(0, C, 1)`` is the column index
``c`` itself: it is not read, and its compare with an integer row value ``t``
becomes ``int32(c) == h`` with ``h`` the row's ``t`` (or -1 when ``t`` is not a
column), on int32 lanes where two int64 operands halve the loop's vector width.
And a row sum of ``where(that compare, x, 0)`` has one non-zero term at most, at
column ``h``, so its float64 sum is exactly ``0.0 + x[h]``: it is computed once
per row at ``c = h`` instead of written over the row and added up (the picked
log-probability, and the gradient's ``sum(one-hot * g)``). Measured on one thread,
old and new kernel in the same run: W4's log_softmax + nll_loss kernel
(``[4096, 1000]``) went from 5.2 to 4.1 ms (-22%; 2.7 to 2.1 ms on two); sharing the
row buffers took W4's LayerNorm forward + VJP kernel (``[8192, 1024]``) down about 9%
(6.8 to 6.2 ms on two threads).

Inputs are passed as ``[R, C]`` arrays (a value of the iteration shape, or any
other broadcast to it), ``[C]`` arrays (one value per column: a LayerNorm
weight), ``[R]`` arrays (one value per row) or scalars (weak Python numbers, 0-d
tensors). Outputs are ``[R, C]``, ``[R]`` or ``[C]`` arrays from the program's
:class:`~codegen.buffers.BufferPool` (large ones are reused once released, so a
call does not page-fault fresh memory in), reshaped to their types.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from codegen.buffers import BufferPool
from codegen.cache import load_kernel
from codegen.cpu import PARALLEL_MIN_ELEMENTS
from codegen.mathfns import MODULE_ALIAS
from codegen.scalar import NJIT_OPTIONS, literal, np_type, scalar_expr
from codegen.source import njit_kernel
from ir.dtypes import CATEGORY_INT
from ir.graph import Graph, Node, Value, input_type
from ir.interpret import run_in_env
from ir.opdef import OpKind
from passes.fusion import COLUMN, FULL, OUTSIDE, ROW, RowsLayout, rows_layout

__all__ = ["RowsSource", "RowsStep", "rows_source", "plan_rows", "stages", "CHUNKS",
           "column_index_inputs", "full_nodes"]

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

    def __init__(self, body: Graph, layout: RowsLayout,
                 index_inputs: frozenset[Value] = frozenset()):
        self.body = body
        self.layout = layout
        # inputs that are the column index c itself (int32(c) must hold every column)
        self.index_inputs = index_inputs if layout.cols < 2 ** 31 else frozenset()
        self.params: dict[tuple, tuple[Param, str]] = {}   # key -> (param, its name)
        self.row_loads: list[str] = []                      # loads of PER_ROW inputs
        self.row_expr: dict[Value, str] = {}                # row values -> local names
        self.hot_locals: dict[str, str] = {}                # PER_ROW param -> its hot local

    # --- inputs -----------------------------------------------------------------------

    def access(self, v: Value, reader: str,
               target: tuple[int, ...] = ()) -> tuple[str, tuple[int, ...]]:
        """How input ``v`` is passed to a ``FULL`` or ``ROW`` reader: ``(access, target)``."""
        layout = self.layout
        if v.type.weak or v.type.ndim == 0:
            return SCALAR, ()
        if reader == ROW:
            return PER_ROW, target
        s, lead = layout.shape, layout.lead
        padded = (1,) * (len(s) - v.type.ndim) + tuple(v.shape)
        if padded == s:
            return FULL_ARRAY, ()
        if layout.row_shaped(v.shape):
            return PER_ROW, s[:lead] + (1,) * (len(s) - lead)
        if all(n == 1 for n in padded[:lead]) and padded[lead:] == s[lead:]:
            return PER_COLUMN, ()
        return BROADCAST, ()

    def param(self, v: Value, reader: str, target: tuple[int, ...] = ()) -> str:
        """The expression reading input ``v`` (for a ``FULL`` or ``ROW`` reader; ``target``
        the row reader's shape)."""
        access, target = self.access(v, reader, target)
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

    def is_column_index(self, v: Value) -> bool:
        """Whether input ``v`` reads, at column ``c``, the value ``c`` itself."""
        return (v in self.index_inputs and v.type.shape == (self.layout.cols,)
                and self.access(v, FULL)[0] == PER_COLUMN)

    def hot(self, node: Node) -> str | None:
        """For a full ``eq``/``ne`` of the column index and an integer input read once per
        row, ``y``: the row's local ``h`` (int32) with ``c == y`` exactly where
        ``int32(c) == h`` (``h = y`` when ``0 <= y < C``, else -1, which no column is).
        The compare then runs on int32 lanes, as many as float32's, where two int64
        operands halve the loop's vector width. None for any other node."""
        if node.op.name not in ("eq", "ne") or len(node.inputs) != 2 \
                or self.layout.level.get(node.outputs[0]) != FULL:
            return None
        a, b = node.inputs
        if not (isinstance(a, Value) and isinstance(b, Value)):
            return None
        if self.is_column_index(b):
            a, b = b, a
        if (not self.is_column_index(a) or self.is_column_index(b) or b.type.weak
                or b.type.dtype.category != CATEGORY_INT
                or self.layout.level.get(b, OUTSIDE) != OUTSIDE
                or self.access(b, FULL)[0] != PER_ROW):
            return None
        y = self.param(b, FULL)
        if y not in self.hot_locals:
            h = self.hot_locals[y] = f"h{y[1:]}"
            self.row_loads.append(f"{h} = np.int32({y}) if {y} >= 0 and {y} < n_cols "
                                  "else np.int32(-1)")
        return self.hot_locals[y]

    def node_expr(self, node: Node, arg_of: Callable[[object], str]) -> str | None:
        h = self.hot(node)
        if h is not None:
            return f"(np.int32(c) {'==' if node.op.name == 'eq' else '!='} {h})"
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


def rows_source(body: Graph, index_inputs: frozenset[Value] = frozenset()
                ) -> RowsSource | None:
    """The kernel of the rows group ``body`` (a ``fused`` node's body), or None when it is
    not a rows group or an op has no scalar expression. ``index_inputs``: inputs of
    ``body`` known to be the column index itself (:func:`column_index_inputs`)."""
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
    em = _Emitter(body, layout, index_inputs)
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
            if red in plan.points:
                body_lines += plan.point(red, p, f"t{k}")
            else:
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
    inputs, or loaded from the row buffer an earlier pass kept them in).

    A row reduction summing ``where(hot, x, 0)`` (``hot`` a column index compare, see
    :meth:`_Emitter.hot`: nll_loss's picked log-probability and its gradient's one-hot) has
    at most one non-zero term per row, at column ``h``: its float64 sum is exactly
    ``0.0 + term`` (``0.0 +`` turns -0.0 into the sum's +0.0), so the term is computed once
    per row at ``c = h`` (:meth:`point`) instead of stored over the row and added up."""

    def __init__(self, em: _Emitter, computed: list[Node], level: dict):
        self.em = em
        self.computed = computed
        self.index = {n: k for k, n in enumerate(computed)}
        self.level = level
        self.passes: list[tuple[list[Node], list[Node], list[Value]]] = []
        self.kept: dict[Node, int] = {}           # node -> the pass storing its row buffer
        self.points: dict[Node, str] = {}         # one-term row sums -> their hot local
        self.buffers: list[tuple[str, str]] = []  # (name, NumPy dtype), allocated per chunk
        # row buffers the reductions of one pass fill, by (dtype, position in the pass):
        # each is summed right after its pass's loop, so later passes reuse it (fewer
        # buffers beside the rows and column partials in the L1 cache)
        self.slots: dict[tuple[str, int], str] = {}

    def add_pass(self, reds: list[Node], cols: list[Node], outs: list[Value]) -> None:
        for red in reds:
            h = self.hot_sum(red)
            if h is not None:
                self.points[red] = h
        self.passes.append((reds, cols, outs))

    def hot_sum(self, red: Node) -> str | None:
        """The hot local of a sum or mean of ``where(hot, x, 0)`` (see the class
        docstring), else None."""
        src = red.inputs[0]
        made = src.node
        if red.op.name not in ("sum", "mean") or made is None or made.op.name != "where" \
                or self.level.get(src) != FULL:
            return None
        cond, _, zero = made.inputs
        if not isinstance(zero, (int, float)) or isinstance(zero, bool) or zero != 0 \
                or math.copysign(1.0, zero) < 0:
            return None
        if not isinstance(cond, Value) or cond.node is None or cond.node.op.name != "eq":
            return None
        return self.em.hot(cond.node)

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
        return ([r.inputs[0] for r in reds if r not in self.points and self.direct(r) is None]
                + [r.inputs[0] for r in cols] + outs)

    def needed(self, targets: list[Value], kept: set[Node]) -> set[Node]:
        """The nodes computing ``targets`` at a column (``kept``: loaded, not recomputed)."""
        return full_nodes(targets, self.level, kept)

    def keep_expensive(self) -> bool:
        """Choose the values kept in row buffers: those calling a transcendental helper
        that more than one pass needs (kept by the first). False when a node has no
        scalar expression."""
        uses: dict[Node, list[int]] = {}
        for p in range(len(self.passes)):
            for n in self.needed(self.targets(p), set()):
                uses.setdefault(n, []).append(p)
        for red in self.points:
            for n in self.needed([red.inputs[0]], set()):
                uses.setdefault(n, [])
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

    def _row_buffer(self, dtype: str, position: int) -> str:
        key = (dtype, position)
        if key not in self.slots:
            self.slots[key] = f"buf{len(self.slots)}"
            self.buffers.append((self.slots[key], dtype))
        return self.slots[key]

    def compute(self, targets: list[Value], kept: set[Node], store: int | None
                ) -> tuple[list[str], list[str], Callable[[Value], str], dict[str, str]]:
        """Source computing ``targets`` at column ``c``: ``(lines, keep stores, arg,
        loads)``; ``arg(v)`` is the expression of a value (loading an input element once,
        into ``loads``: read -> local), ``kept`` the nodes loaded from their row buffer,
        ``store`` the pass whose kept values are stored (None: none)."""
        em, level = self.em, self.level
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

        needed = self.needed(targets, kept)
        lines, stores = [], []
        for node in self.computed:
            if node not in needed:
                continue
            k, out = self.index[node], node.outputs[0]
            if node in kept:
                lines.append(f"v{k} = keep{k}[c]")
            elif node.op.is_view:
                expr[out] = arg(node.inputs[0])
                continue
            else:
                lines.append(f"v{k} = {em.node_expr(node, arg)}")
                if store is not None and self.kept.get(node) == store:
                    stores.append(f"keep{k}[c] = v{k}")
            expr[out] = f"v{k}"
        return lines, stores, arg, loads

    def loop(self, p: int, out_index: dict) -> tuple[list[str], dict[Node, str]]:
        """The loop over one row's elements for pass ``p`` and, per row reduction of the
        pass (one-term sums aside), the row it reduces (a buffer the loop fills, or an
        input's row)."""
        reds, cols, outs = self.passes[p]
        kept_before = {n for n, q in self.kept.items() if q < p}
        lines, stores, arg, loads = self.compute(self.targets(p), kept_before, p)
        sources: dict[Node, str] = {}
        filled: dict[str, int] = {}
        for red in reds:
            if red in self.points:
                continue
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
            dtype = red.inputs[0].type.dtype.np_dtype.name
            filled[dtype] = filled.get(dtype, -1) + 1
            sources[red] = self._row_buffer(dtype, filled[dtype])
            stores.append(f"{sources[red]}[c] = {arg(red.inputs[0])}")
        for red in cols:
            stores.append(f"acc{self.index[red]}[c] += np.float64({arg(red.inputs[0])})")
        for v in outs:
            stores.append(f"oq{out_index[v]}[c] = {arg(v)}")
        body = [f"{name} = {read}" for read, name in loads.items()] + lines + stores
        if not body:
            return [], sources
        return ["for c in range(n_cols):"] + ["    " + line for line in body], sources

    def point(self, red: Node, p: int, total: str) -> list[str]:
        """Source setting ``total`` to the float64 sum of one-term row sum ``red`` of pass
        ``p``: its input at column ``h`` (values kept by this pass or earlier ones are
        read from their row buffers, which hold the whole row by then)."""
        h, src = self.points[red], red.inputs[0]
        kept = {n for n, q in self.kept.items() if q <= p}
        lines, _, arg, loads = self.compute([src], kept, None)
        term = arg(src)
        body = [f"c = np.int64({h})"] + [f"{name} = {read}" for read, name in loads.items()]
        return ([f"{total} = 0.0", f"if {h} >= 0:"]
                + ["    " + line for line in body + lines]
                + [f"    {total} = 0.0 + np.float64({term})"])


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
    if x.size == layout.rows:   # one value per row already (the usual case): no broadcast
        return x.reshape(layout.rows)
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


def full_nodes(targets: list[Value], level: dict, kept=frozenset()) -> set[Node]:
    """The full-level nodes computing ``targets`` from inputs and row values (a node in
    ``kept`` is read from its row buffer: what it reads is not needed for it)."""
    found: set[Node] = set()
    stack = [v.node for v in targets if v.node is not None and level.get(v) == FULL]
    while stack:
        n = stack.pop()
        if n in found:
            continue
        found.add(n)
        if n not in kept:
            stack += [v.node for v in n.input_values() if level.get(v) == FULL]
    return found


def column_index_inputs(node: Node) -> frozenset[Value]:
    """The inputs of the ``fused`` node's body that an integer ``arange(0, n, 1)`` computed
    outside feeds (nll_loss's classes): read at column ``c`` of a row of ``n`` elements,
    such an input is ``c`` itself, and the kernel does not read it."""
    found = set()
    for inner, outer in zip(node.attrs["body"].inputs, node.inputs):
        made = outer.node if isinstance(outer, Value) else None
        if (made is not None and made.op.name == "arange" and made.attrs.get("start") == 0
                and made.attrs.get("step") == 1 and outer.type.ndim == 1
                and outer.type.dtype.category == CATEGORY_INT):
            found.add(inner)
    return frozenset(found)


def plan_rows(node: Node, load: Callable = load_kernel,
              pool: BufferPool | None = None) -> RowsStep | None:
    """The step running the ``fused`` node ``node`` of kind ``rows`` as one kernel (loaded
    with ``load(source, name)``; outputs from ``pool``, the program's, or a pool of the
    step's own), or None when :func:`rows_source` has no kernel for it."""
    source = rows_source(node.attrs["body"], column_index_inputs(node))
    if source is None:
        return None
    return RowsStep(node, source, load(source.source, source.name),
                    pool if pool is not None else BufferPool())

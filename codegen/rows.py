"""Numba CPU kernels for ``rows`` groups: row reductions with their prologues and
epilogues in one kernel (softmax, log_softmax, layer_norm and their gradients).

A rows group (``passes.fusion.rows_layout``) works over an iteration space
``[R, C]``. Its kernel loops over the rows (``prange`` over blocks of rows when
the work pays for the thread fork) and, for each row, makes one *pass* over its
``C`` elements per stage of reductions:

* every value gets a stage: inputs 0; an elementwise node the largest stage of
  its inputs; a reduction one more than its input (it is complete only after the
  pass that reads its input);
* pass ``p`` computes the full (per element) values that the reductions of stage
  ``p + 1`` read and the full outputs of stage ``p``, from the inputs and the row
  values ready by then; full values a later pass needs again are recomputed from
  the inputs (registers, not memory);
* between passes the row values (``rsqrt(var + eps)``) are computed once per row,
  as scalars.

A pass writes the values a reduction reads into a row buffer (a loop that
vectorises), then adds them up in float64 with eight independent accumulators
(sums and means; amax/amin keep the input dtype and propagate NaN as NumPy
does). Elementwise expressions come from :func:`codegen.scalar.scalar_expr`;
when one has none, or the group is not a rows group, :func:`plan_rows` returns
None and the runtime falls back to the generic phase plan.

Inputs are passed as ``[R, C]`` arrays (a value of the iteration shape, or any
other broadcast to it), ``[C]`` arrays (one value per column: a LayerNorm
weight), ``[R]`` arrays (one value per row) or scalars (weak Python numbers, 0-d
tensors). Outputs are new ``[R, C]`` or ``[R]`` arrays, reshaped to their types.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from codegen.cache import load_kernel
from codegen.cpu import PARALLEL_MIN_ELEMENTS
from codegen.scalar import NJIT_OPTIONS, PRELUDE, literal, np_type, scalar_expr
from ir.graph import Graph, Node, Value, input_type
from ir.interpret import describe_node, run_node
from ir.opdef import OpKind
from passes.fusion import FULL, OUTSIDE, ROW, RowsLayout, rows_layout

__all__ = ["RowsSource", "RowsStep", "rows_source", "plan_rows", "ROW_BLOCK", "LANES"]

ROW_BLOCK = 16   # rows per parallel work item (each allocates its reduction buffers once)
LANES = 8        # independent accumulators of a row reduction (they hide the add latency)

# the float64 sum of a row buffer. Its own function, because fastmath flags are per
# function: reassociation (only) lets LLVM vectorise the loop (~10x), changing only the
# order of the additions; NaN and inf propagate as in any order. Inlined at the Numba
# IR level it would lose the flag, so it stays a call (once per row).
SUM_HELPER = "row_sum"
_SUM_SOURCE = f"""\
@numba.njit(error_model="numpy", cache=True, fastmath={{"reassoc"}})
def {SUM_HELPER}(buf, n):
    total = 0.0
    for c in range(n):
        total += buf[c]
    return total
"""

# how an input is passed: its shape at run time, the kernel's index
SCALAR, FULL_ARRAY, BROADCAST, COLUMN, PER_ROW = "scalar", "full", "broadcast", "column", "row"


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
                access, target = COLUMN, ()
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
                COLUMN: f"{name}[c]", PER_ROW: f"y{name[1:]}"}[access]

    # --- expressions -------------------------------------------------------------------

    def node_expr(self, node: Node, arg_of: Callable[[object], str]) -> str | None:
        args = [arg_of(a) if isinstance(a, Value) else literal(a) for a in node.inputs]
        out = node.outputs[0]
        return scalar_expr(node.op.name, args, [input_type(a) for a in node.inputs],
                           out.type.dtype, node.attrs)


def _stages(nodes: list[Node]) -> dict[Value, int]:
    """The stage of every value the nodes compute (see the module docstring)."""
    stage: dict[Value, int] = {}
    for node in nodes:
        s = max((stage.get(v, 0) for v in node.input_values()), default=0)
        for o in node.outputs:
            stage[o] = s + 1 if node.op.kind is OpKind.REDUCTION else s
    return stage


def _reduce_lines(red: Node, buf: str, total: str) -> list[str]:
    """Source adding up (or taking the extreme of) ``buf[:n_cols]`` into ``total``."""
    name = red.op.name
    if name in ("sum", "mean"):
        return [f"{total} = {SUM_HELPER}({buf}, n_cols)"]
    lanes = [f"{total}_{k}" for k in range(LANES)]
    start = "-np.inf" if name == "amax" else "np.inf"
    dtype = red.outputs[0].type.dtype
    init = f"{np_type(dtype)}({start})"
    cmp = ">" if name == "amax" else "<"
    # NaN wins, as in NumPy: a lane holding NaN keeps it, a NaN element replaces it
    step = f"u = {{buf}}[c + {{k}}]\n{{a}} = u if (u {cmp} {{a}} or u != u) else {{a}}"
    combine = f"({{b}} if ({{b}} {cmp} {{a}} or {{b}} != {{b}}) else {{a}})"
    lines = [f"{a} = {init}" for a in lanes]
    lines.append(f"for c in range(0, n_cols - n_cols % {LANES}, {LANES}):")
    for k, a in enumerate(lanes):
        lines += ["    " + line for line in step.format(a=a, buf=buf, k=k).split("\n")]
    lines.append(f"for c in range(n_cols - n_cols % {LANES}, n_cols):")
    lines += ["    " + line for line in step.format(a=lanes[0], buf=buf, k=0).split("\n")]
    while len(lanes) > 1:   # pairwise: ((a0 + a1) + (a2 + a3)) + ...
        lanes = [combine.format(a=lanes[i], b=lanes[i + 1]) for i in range(0, len(lanes), 2)]
    lines.append(f"{total} = {lanes[0]}")
    return lines


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
    stage = _stages(computed)
    reductions = [n for n in computed if n.op.kind is OpKind.REDUCTION]
    outputs = [(v, level.get(v, OUTSIDE)) for v in dict.fromkeys(body.outputs)]
    stored = [(v, lv) for v, lv in outputs if lv != OUTSIDE]
    passes = 1 + max([stage[n.outputs[0]] - 1 for n in reductions]
                     + [stage[v] for v, lv in stored if lv == FULL])
    em = _Emitter(body, layout)
    out_index = {v: j for j, (v, _) in enumerate(stored)}

    # row values: locals computed once per row, in body order, before the first pass
    # that needs them (reductions: right after their pass)
    row_lines: dict[int, list[str]] = {p: [] for p in range(passes + 1)}
    for k, node in enumerate(computed):
        if node.op.kind is OpKind.REDUCTION:
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
    body_lines: list[str] = []
    buffers: list[tuple[str, str]] = []   # (name, NumPy dtype)
    for p in range(passes):
        body_lines += row_lines[p]
        reds = [n for n in reductions if stage[n.outputs[0]] - 1 == p]
        outs = [(v, lv) for v, lv in stored if lv == FULL and stage[v] == p]
        loop = _pass_loop(em, computed, reds, outs, out_index, buffers, level)
        if loop is None:
            return None
        body_lines += loop
        for red in reds:
            k = computed.index(red)
            total = f"t{k}"
            body_lines += _reduce_lines(red, f"buf{k}", total)
            dtype = red.outputs[0].type.dtype
            value = f"{total} / n_cols" if red.op.name == "mean" else total
            body_lines.append(f"w{k} = {np_type(dtype)}({value})")
    body_lines += row_lines[passes]
    for v, lv in stored:
        if lv == ROW:
            body_lines.append(f"o{out_index[v]}[r] = {em.row_expr[v]}")

    params = [name for _, name in em.params.values()]
    params += [f"o{j}" for j in range(len(stored))] + ["n_rows", "n_cols"]
    parallel = layout.rows > 1 and layout.rows * layout.cols >= PARALLEL_MIN_ELEMENTS
    lines = [f"n_blocks = (n_rows + {ROW_BLOCK - 1}) // {ROW_BLOCK}",
             f"for b in {'numba.prange' if parallel else 'range'}(n_blocks):"]
    lines += [f"    {name} = np.empty(n_cols, dtype=np.{dt})" for name, dt in buffers]
    lines.append(f"    for r in range(b * {ROW_BLOCK}, min(n_rows, (b + 1) * {ROW_BLOCK})):")
    out_rows = [f"oq{j} = o{j}[r]" for j, (_, lv) in enumerate(stored) if lv == FULL]
    lines += ["        " + line for line in em.row_loads + out_rows + body_lines]
    options = dict(NJIT_OPTIONS, cache=True, parallel=parallel)
    text = "\n".join(lines + params + [repr(sorted(options.items()))])
    name = f"rows_{hashlib.sha256(text.encode()).hexdigest()[:16]}"
    header = f"@numba.njit({', '.join(f'{k}={v!r}' for k, v in options.items())})"
    source = (PRELUDE + "import numba\n\n\n" + _SUM_SOURCE + "\n\n" + header + "\n"
              + f"def {name}({', '.join(params)}):\n"
              + "\n".join("    " + line for line in lines) + "\n")
    return RowsSource(source, name, layout, tuple(p for p, _ in em.params.values()),
                      tuple(stored), tuple(pre))


def _pass_loop(em: _Emitter, computed: list[Node], reds: list[Node], outs: list,
               out_index: dict, buffers: list, level: dict) -> list[str] | None:
    """The loop over one row's elements for one pass: the full values that ``reds`` read
    and ``outs`` store (recomputed from the inputs), written to the reduction buffers
    and output arrays."""
    targets = [r.inputs[0] for r in reds] + [v for v, _ in outs]
    needed: set[Node] = set()
    stack = [v.node for v in targets if v.node is not None and level.get(v) == FULL]
    while stack:
        n = stack.pop()
        if n in needed:
            continue
        needed.add(n)
        stack += [v.node for v in n.input_values() if level.get(v) == FULL]
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

    lines = []
    for k, node in enumerate(computed):
        if node not in needed:
            continue
        out = node.outputs[0]
        if node.op.is_view:
            expr[out] = arg(node.inputs[0])
            continue
        text = em.node_expr(node, arg)
        if text is None:
            return None
        lines.append(f"v{k} = {text}")
        expr[out] = f"v{k}"
    stores = []
    for red in reds:
        k = computed.index(red)
        dtype = red.inputs[0].type.dtype
        value = arg(red.inputs[0])
        if red.op.name in ("sum", "mean"):
            buffers.append((f"buf{k}", "float64"))
            stores.append(f"buf{k}[c] = np.float64({value})")
        else:
            buffers.append((f"buf{k}", dtype.np_dtype.name))
            stores.append(f"buf{k}[c] = {value}")
    for v, _ in outs:
        stores.append(f"oq{out_index[v]}[c] = {arg(v)}")
    body = [f"{name} = {read}" for read, name in loads.items()] + lines + stores
    return ["for c in range(n_cols):"] + ["    " + line for line in body]


def _prepare(param: Param, x, layout: RowsLayout):
    """The array (or scalar) the kernel reads for ``param`` from the value ``x``."""
    if param.access == SCALAR:
        return x[()] if isinstance(x, np.ndarray) else x
    if param.access == FULL_ARRAY:
        return x.reshape(layout.rows, layout.cols)
    if param.access == BROADCAST:
        return np.broadcast_to(x, layout.shape).reshape(layout.rows, layout.cols)
    if param.access == COLUMN:
        return x.reshape(layout.cols)
    return np.broadcast_to(x, param.target).reshape(layout.rows)


class RowsStep:
    """Runs one rows group: the views of its inputs, then its kernel (``run(env)`` like
    the runtime's other steps)."""

    __slots__ = ("node", "source", "kernel")

    def __init__(self, node: Node, source: RowsSource, kernel):
        self.node = node
        self.source = source
        self.kernel = kernel

    def run(self, env: dict) -> None:
        node, src = self.node, self.source
        body = node.attrs["body"]
        inner = {b: env[a] if isinstance(a, Value) else a for b, a in zip(body.inputs,
                                                                          node.inputs)}
        for n in src.pre:
            args = [inner[a] if isinstance(a, Value) else a for a in n.inputs]
            try:
                inner.update(zip(n.outputs, run_node(n, args)))
            except Exception as e:
                e.add_note(f"while running IR node: {describe_node(n)}")
                raise
        layout = src.layout
        args = [_prepare(p, inner[p.value], layout) for p in src.params]
        outs = [np.empty((layout.rows, layout.cols) if lv == FULL else (layout.rows,),
                         dtype=v.type.dtype.np_dtype) for v, lv in src.outputs]
        self.kernel(*args, *outs, layout.rows, layout.cols)
        for (v, _), o in zip(src.outputs, outs):
            inner[v] = o.reshape(v.type.shape)
        env.update(zip(node.outputs, (inner[v] for v in body.outputs)))


def plan_rows(node: Node, load: Callable = load_kernel) -> RowsStep | None:
    """The step running the ``fused`` node ``node`` of kind ``rows`` as one kernel (loaded
    with ``load(source, name)``), or None when :func:`rows_source` has no kernel for it."""
    source = rows_source(node.attrs["body"])
    if source is None:
        return None
    return RowsStep(node, source, load(source.source, source.name))


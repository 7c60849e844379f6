"""CUDA kernels for ``rows`` groups: softmax, log_softmax, layer_norm and their gradients.

A rows group (:func:`passes.fusion.rows_layout`) works over ``[R, C]``. As on
the CPU (:mod:`codegen.rows`), each value gets a *stage* (a reduction is one
more than its input) and each row is swept once per stage of reductions: pass
``p`` computes, per element, the full values that the reductions of stage
``p + 1`` read, the full outputs of stage ``p`` and the inputs of column
reductions; row values (``rsqrt(var + eps)``) are computed between passes, once
per row, by every lane (the same expression, so the same value). Full values a
later pass needs again are recomputed from the inputs (registers, not memory).

On the GPU a row belongs to a worker (:class:`codegen.cuda_source.Worker`): a
warp when ``C <= warp_row_max`` (shuffles only, no barrier), else a block. Its
lanes take the row's elements in turn (``c = lane, lane + P, ...``, coalesced),
accumulate per lane, and combine across the worker at the end of the pass
(every lane gets the row's result, in a fixed order).

Column reductions (sum, mean over the rows: a LayerNorm's weight and bias
gradients) split the rows into ``K = min(R, row_chunks)`` chunks of consecutive
rows, one work item each; a lane adds each value into its chunk's partial
``part[k, c]`` in global memory (only that lane ever touches that element: no
atomics), and a second kernel, a thread per column, adds the ``K`` partials in
chunk order. Without column reductions every row is a work item.

Accumulation is in the values' dtype (float32 in float32, as PyTorch's CUDA
kernels); max/min propagate NaN.
"""

from __future__ import annotations

from codegen.cuda_exprs import Evaluator, Inputs, Scope, Unsupported, is_view
from codegen.cuda_launch import PARTIALS, KernelSource, Launch, LaunchConfig
from codegen.cuda_source import (
    BLOCK,
    WARP,
    WARP_SIZE,
    acc_dtype,
    combine,
    cuda_module,
    identity,
    indent,
)
from codegen.rows import full_nodes, stages
from codegen.scalar import cast, const
from ir.graph import Graph, Node, Value
from ir.opdef import OpKind
from passes.fusion import COLUMN, FULL, OUTSIDE, ROW, RowsLayout, rows_layout

__all__ = ["rows_source"]

class _Plan:
    """The group's nodes sorted by what computes them."""

    def __init__(self, body: Graph, layout: RowsLayout):
        self.layout = layout
        level = self.level = layout.level
        self.computed = [n for n in body.nodes if level.get(n.outputs[0]) != OUTSIDE]
        self.stage = stages(self.computed)
        self.reductions = [n for n in self.computed if level[n.outputs[0]] == ROW
                           and n.op.kind is OpKind.REDUCTION]
        self.columns = [n for n in self.computed if level[n.outputs[0]] == COLUMN]
        self.outputs = list(dict.fromkeys(body.outputs))
        for v in self.outputs:
            if level.get(v, OUTSIDE) == OUTSIDE:
                raise Unsupported("an output is a view of an input (no kernel writes it)")
        self.full_outputs = [v for v in self.outputs if level[v] == FULL]
        self.row_outputs = [v for v in self.outputs if level[v] == ROW]
        self.column_outputs = [v for v in self.outputs if level[v] == COLUMN]
        stage = self.stage
        self.passes = 1 + max([stage[n.outputs[0]] - 1 for n in self.reductions]
                              + [stage[v] for v in self.full_outputs]
                              + [stage[n.outputs[0]] - 1 for n in self.columns])

    def in_pass(self, p: int):
        """(row reductions, column reductions, full outputs) that pass ``p`` serves."""
        stage = self.stage
        return ([n for n in self.reductions if stage[n.outputs[0]] - 1 == p],
                [n for n in self.columns if stage[n.outputs[0]] - 1 == p],
                [v for v in self.full_outputs if stage[v] == p])

    def needed(self, targets: list[Value]) -> set[Node]:
        """The full-level nodes computing ``targets`` from inputs and row values."""
        return full_nodes(targets, self.level)


def rows_source(body: Graph, config: LaunchConfig) -> KernelSource:
    """The kernels of the rows group ``body`` (see the module docstring); raises
    :class:`Unsupported` when it has none."""
    layout = rows_layout(list(body.nodes))
    if not isinstance(layout, RowsLayout):
        raise Unsupported(f"not a rows group: {layout}")
    plan = _Plan(body, layout)
    rows, cols = layout.rows, layout.cols
    worker = WARP if cols <= config.warp_row_max else BLOCK
    chunks = min(rows, config.row_chunks) if plan.columns else rows
    col_acc = {n: acc_dtype("sum", n.outputs[0].type.dtype) for n in plan.columns}
    if len(set(col_acc.values())) > 1:
        raise Unsupported("column reductions of different dtypes")

    inputs = Inputs()
    row_scope = Scope()
    # reduction results are named up front: row values read them
    row_ev = Evaluator(inputs, {n.outputs[0]: f"w{k}" for k, n in enumerate(plan.reductions)})
    row_lines = {p: row_scope.child() for p in range(plan.passes + 1)}
    for node in plan.computed:
        out = node.outputs[0]
        if plan.level[out] != ROW or node.op.kind is OpKind.REDUCTION:
            continue
        if is_view(node):
            row_ev.known[out] = row_ev.source_local(out)
        else:
            row_ev.node(node, lambda s: row_scope.coords("r", s),
                        row_lines[min(plan.stage[out], plan.passes)])

    row_body: list[str] = []
    for p in range(plan.passes):
        row_body += row_lines[p].lines
        row_body += _pass(plan, p, worker, inputs, row_ev, row_scope, col_acc, chunks)
    row_body += row_lines[plan.passes].lines
    n_full = len(plan.full_outputs)
    row_out = [f"o{n_full + j}[r] = {row_ev.source_local(v)}"
               for j, v in enumerate(plan.row_outputs)]
    if row_out:
        row_body += ["if lane == 0:"] + indent(row_out)

    lines = worker.setup() + worker.shared([f"sh{k}" for k in range(len(plan.reductions))],
                                           [r.outputs[0].type.dtype for r in plan.reductions])
    lines.append(f"for w in range(worker, {chunks}, workers):")
    if plan.columns:
        work = [f"for c in range(lane, {cols}, {worker.size()}):"]
        work += [f"    part[{_part(j, chunks, cols)}] = {const(0, col_acc[n])}"
                 for j, n in enumerate(plan.columns)]
        work.append(f"for r in range(w * {rows} // {chunks}, (w + 1) * {rows} // {chunks}):")
        work += indent(row_scope.lines + row_body)
    else:
        work = ["r = w"] + row_scope.lines + row_body
    lines += indent(work)
    n_out = n_full + len(plan.row_outputs)
    params = list(inputs.params.values()) + [f"o{j}" for j in range(n_out)]
    params += ["part"] if plan.columns else []
    kernels = {"rows": (params, indent(inputs.hoisted + lines))}
    lanes = WARP_SIZE if worker is WARP else config.threads
    launches = [Launch("rows", tuple(inputs.params), tuple(plan.full_outputs + plan.row_outputs),
                       chunks * lanes, extra=(PARTIALS,) if plan.columns else ())]
    partials = None
    if plan.columns:
        kernels["columns"] = _column_kernel(plan, chunks, col_acc)
        launches.append(Launch("columns", (), tuple(r.outputs[0] for r in plan.columns), cols,
                               extra=(PARTIALS,)))
        partials = (len(plan.columns) * chunks * cols, next(iter(col_acc.values())).np_dtype)
    outputs = tuple(plan.full_outputs + plan.row_outputs + [r.outputs[0] for r in plan.columns])
    if set(outputs) != set(plan.outputs):
        raise Unsupported("an output of the group is not stored by its kernels")
    source, names = cuda_module("rows", kernels)
    return KernelSource(source, names, [launches], outputs, partials,
                        {"worker": worker.kind, "chunks": chunks, "passes": plan.passes})


def _part(j: int, chunks: int, cols: int, chunk: str = "w") -> str:
    """The index of column reduction ``j``'s partial of chunk ``chunk``, column ``c``."""
    return f"({j * chunks} + {chunk}) * {cols} + c"


def _pass(plan: _Plan, p: int, worker, inputs: Inputs, row_ev: Evaluator, row_scope: Scope,
          col_acc: dict, chunks: int) -> list[str]:
    """Lines of pass ``p`` over a row: the loop over its elements, then the worker's
    reduction of the pass's row reductions and their results (``w<k>``)."""
    layout = plan.layout
    lead, cols = layout.lead, layout.cols
    reds, cols_p, outs = plan.in_pass(p)
    inner = row_scope.child()
    ev = Evaluator(inputs, row_ev.known)

    def full_coords(shape: tuple) -> list[str]:
        return (row_scope.coords("r", layout.shape[:lead])
                + inner.coords("c", layout.shape[lead:]))

    needed = plan.needed([n.inputs[0] for n in reds + cols_p] + outs)
    for node in plan.computed:
        if node not in needed:
            continue
        if is_view(node):
            ev.known[node.outputs[0]] = ev.source_local(node.outputs[0])
        else:
            ev.node(node, full_coords, inner)
    lines = []
    ops = [_op(n) for n in reds]
    accs = [f"t{plan.reductions.index(n)}" for n in reds]
    for t, red, op in zip(accs, reds, ops):
        lines.append(f"{t} = {identity(op, red.outputs[0].type.dtype)}")
        value = ev.arg(red.inputs[0], layout.shape, full_coords, inner)
        inner.lines.append(f"{t} = {combine(op, t, value)}")
    for red in cols_p:
        j = plan.columns.index(red)
        value = cast(ev.arg(red.inputs[0], layout.shape, full_coords, inner),
                     red.inputs[0].type.dtype, col_acc[red])
        inner.lines.append(f"part[{_part(j, chunks, cols)}] += {value}")
    for v in outs:
        local = ev.arg(v, layout.shape, full_coords, inner)
        inner.lines.append(f"o{plan.full_outputs.index(v)}[r * {cols} + c] = {local}")
    if inner.lines:
        lines += [f"for c in range(lane, {cols}, {worker.size()}):"] + indent(inner.lines)
    lines += worker.reduce(ops, accs, [f"sh{plan.reductions.index(n)}" for n in reds])
    for t, red in zip(accs, reds):
        dt = red.outputs[0].type.dtype
        total = f"{t} / {const(cols, dt)}" if red.op.name == "mean" else t
        lines.append(f"{row_ev.known[red.outputs[0]]} = {total}")
    return lines


def _op(red: Node) -> str:
    return red.op.name if red.op.name in ("amax", "amin") else "sum"


def _column_kernel(plan: _Plan, chunks: int, col_acc: dict) -> tuple[list[str], list[str]]:
    """The kernel adding up the column partials in chunk order: a thread per column."""
    cols, rows = plan.layout.cols, plan.layout.rows
    lines = [f"for c in range(cuda.grid(1), {cols}, cuda.gridsize(1)):"]
    for j, red in enumerate(plan.columns):
        acc, out = col_acc[red], red.outputs[0].type.dtype
        total = f"tot{j} / {const(rows, acc)}" if red.op.name == "mean" else f"tot{j}"
        lines += [f"    tot{j} = part[{_part(j, chunks, cols, '0')}]",
                  f"    for k in range(1, {chunks}):",
                  f"        tot{j} = tot{j} + part[{_part(j, chunks, cols, 'k')}]",
                  f"    o{j}[c] = {cast(total, acc, out)}"]
    params = [f"o{j}" for j in range(len(plan.columns))] + ["part"]
    return params, indent(lines)

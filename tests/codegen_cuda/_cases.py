"""The cases the CUDA kernel checks run: each is a fused graph and its inputs.

A case is built by name in the checking process (the simulator's, or the PTX
one): :data:`CASES` maps a name to a builder returning a :class:`Case`. The
hand-written cases are IR text run through the pass pipeline (decompose,
simplify, fuse), as compiled programs are; the ``ops-<layout>`` cases are the
registry's elementwise calls (tests/codegen/test_every_op.py's selection,
re-laid out) in hand-made elementwise groups, many ops to a kernel; the
``chains-*`` cases are tests/codegen's small programs around each reduction op
(and a sample of elementwise ops) through the real pipeline.

Shapes are small: the simulator runs Python per thread. :data:`CONFIG` keeps
blocks at 64 threads (two warps, so block reductions combine warps) and makes
segments split into chunks at small sizes, so every path runs.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from codegen.cuda_launch import LaunchConfig
from ir.graph import Graph
from ir.parser import parse
from passes.decompose import decompose
from passes.fusion import fuse
from passes.pipeline import run_pipeline
from passes.simplify import simplify

CONFIG = LaunchConfig(threads=64, max_blocks=64, chunk_elements=2, max_chunks=8, row_chunks=4,
                      warp_row_max=64)

ULPS = 4          # an elementwise op against its reference (libdevice: within 2 ulp)
CHAIN_ULPS = 8
CLOSE = {"float32": 3e-5, "float64": 1e-11}   # reductions: relative to the largest value


@dataclass
class Case:
    """A fused graph, its inputs, and how results are compared: ``ulps`` (elementwise,
    tests/codegen/_every_op_cases.compare) or None (reductions: :data:`CLOSE`).
    ``must_plan``: whether every fused group must have a CUDA form (else the groups
    without one are only reported)."""

    graph: Graph
    feeds: list
    ulps: float | None = None
    must_plan: bool = True
    owners: list = field(default_factory=list)   # the call behind each graph output
    config: LaunchConfig = CONFIG


def _pipeline(graph: Graph) -> Graph:
    return run_pipeline(graph, [decompose, simplify, fuse])


def random_feeds(graph: Graph, seed: int = 0) -> list:
    """Inputs for ``graph``: floats ~ 2 N(0, 1), integers in [-20, 20), bools, and 0.75 for
    weak floats (3 for weak ints)."""
    rng = np.random.default_rng(seed)
    feeds: list = []
    for v in graph.inputs:
        dt = v.type.dtype.np_dtype
        if v.type.weak:
            feeds.append(0.75 if dt.kind == "f" else True if dt.kind == "b" else 3)
        elif dt.kind == "f":
            feeds.append((2 * rng.standard_normal(v.type.shape)).astype(dt))
        elif dt.kind == "b":
            feeds.append(rng.random(v.type.shape) < 0.5)
        else:
            feeds.append(rng.integers(-20, 20, v.type.shape).astype(dt))
    return feeds


def relaid(x: np.ndarray, layout: str) -> np.ndarray:
    """``x``'s values in another memory layout: ``"transposed"`` (F-contiguous) or
    ``"strided"`` (every other element of a buffer twice as wide)."""
    if layout == "transposed":
        return np.asfortranarray(x)
    wide = np.zeros(x.shape[:-1] + (2 * x.shape[-1],), x.dtype)
    wide[..., ::2] = x
    return wide[..., ::2]


def _ir(text: str, seed: int = 0, feeds: Callable | None = None,
        config: LaunchConfig = CONFIG, **layouts) -> Callable:
    """A case of IR text; ``layouts`` (``s<input index>="strided"``) re-lay out inputs."""
    def build() -> Case:
        graph = parse(text)
        xs = feeds(graph) if feeds else random_feeds(graph, seed)
        for key, layout in layouts.items():
            xs[int(key[1:])] = relaid(xs[int(key[1:])], layout)
        return Case(_pipeline(graph), xs, config=config)
    return build


# --- reductions --------------------------------------------------------------------------------

def _reduce(op: str, dt: str, shape: tuple, dims: tuple | None, keepdim: bool = False,
            extra: str = "") -> str:
    s = ",".join(map(str, shape))
    nd = len(shape)
    rdims = tuple(range(nd)) if dims is None else dims
    out = [1 if d in rdims else n for d, n in enumerate(shape)] if keepdim else \
        [n for d, n in enumerate(shape) if d not in rdims]
    o = ",".join(map(str, out))
    attrs = f"[dim={rdims!r}, keepdim={keepdim}, dtype=None]" if op in ("sum", "mean") else \
        f"[dim={rdims!r}, keepdim={keepdim}]"
    return f"""graph f(%x: {dt}[{s}], %y: {dt}[{s}]) {{
  %0 = mul(%x, %y) : {dt}[{s}]
  %1 = add(%0, 0.5) : {dt}[{s}]
  %2 = {op}(%1){attrs} : {dt}[{o}]
  %3 = mul(%2, 3.0) : {dt}[{o}]
  %4 = neg(%0) : {dt}[{s}]
  {extra}return %3, %4
}}"""


REDUCE_TEXT = {
    # all dims of 600 elements: block workers, 4 chunks, a finishing kernel
    "sum-all-block-chunks": _reduce("sum", "f32", (20, 30), None),
    "mean-all-f64": _reduce("mean", "f64", (20, 30), None),
    # the innermost dim: a warp per result (one chunk each)
    "sum-last-warp": _reduce("sum", "f32", (6, 50), (1,), keepdim=True),
    "amax-last-warp": _reduce("amax", "f32", (5, 40), (1,)),
    # the innermost dim kept: a thread per result, chunks over the reduced dim
    "mean-first-thread-chunks": _reduce("mean", "f32", (40, 5), (0,)),
    "amin-middle-dim": _reduce("amin", "f64", (3, 9, 4), (1,), keepdim=True),
    "sum-outer-dims-keepdim": _reduce("sum", "f32", (3, 4, 5), (0, 2), keepdim=True),
    "sum-0d": _reduce("sum", "f32", (), None),
    "sum-no-dims": _reduce("sum", "f32", (3, 4), ()),
}


def _int_reductions() -> str:
    return """graph f(%a: i32[7,5], %b: i8[7,5], %m: bool[7,5]) {
  %0 = add(%a, 3) : i32[7,5]
  %1 = sum(%0)[dim=(1,), keepdim=False, dtype=None] : i64[7]
  %2 = amax(%b)[dim=(0,), keepdim=False] : i8[5]
  %3 = amin(%a)[dim=(0, 1), keepdim=False] : i32[]
  %4 = sum(%m)[dim=(0, 1), keepdim=False, dtype=None] : i64[]
  %5 = sum(%a)[dim=(0,), keepdim=False, dtype=float64] : f64[5]
  return %1, %2, %3, %4, %5
}"""


def _views_and_epilogue() -> str:
    # inputs read through a transpose and a broadcast, an epilogue reading an input, and a
    # prologue value stored as an output
    return """graph f(%x: f32[6,4], %b: f32[4], %c: f32[4,1], %e: f32[4]) {
  %0 = permute(%x)[dims=(1, 0)] : f32[4,6]
  %1 = mul(%0, %c) : f32[4,6]
  %2 = exp(%1) : f32[4,6]
  %3 = sum(%2)[dim=(1,), keepdim=False, dtype=None] : f32[4]
  %4 = add(%3, %e) : f32[4]
  %5 = log(%4) : f32[4]
  %6 = mul(%b, 2.0) : f32[4]
  return %5, %2, %6
}"""


def _empty_reductions() -> str:
    return """graph f(%x: f32[0,3], %y: f32[3,0]) {
  %0 = mean(%x)[dim=(0,), keepdim=False, dtype=None] : f32[3]
  %1 = sum(%y)[dim=(0,), keepdim=False, dtype=None] : f32[0]
  %2 = sum(%x)[dim=(0, 1), keepdim=False, dtype=None] : f32[]
  return %0, %1, %2
}"""


def _max_all() -> str:
    return """graph f(%x: f32[5,7], %y: i64[9]) {
  %0 = exp(%x) : f32[5,7]
  %1 = max_all(%0) : f32[]
  %2 = min_all(%y) : i64[]
  return %1, %2
}"""


def _nan_feeds(graph: Graph) -> list:
    xs = random_feeds(graph, 3)
    xs[0][1, 3] = np.nan
    xs[0][2, :] = -np.inf
    xs[0][3, 7] = np.inf
    return xs


# --- reductions with independent epilogue nodes --------------------------------------------------
# Nodes that neither feed the reduction nor read it, with one element per result, belong to
# the finishing step (codegen.cuda._loops): an SGD momentum update beside a bias gradient's
# sum, a mean or amax combined with values of other inputs.

def _momentum(n: int, m: int) -> str:
    # an MLP step's bias: its gradient (a sum over the batch), momentum buffer and update;
    # an independent chain (buf * momentum, tanh) that is also an output
    return f"""graph f(%g: f32[{n},{m}], %buf: f32[{m}], %mom: f64[] weak, %lr: f64[] weak,
             %b: f32[{m}]) {{
  %0 = sum(%g)[dim=(0,), keepdim=False, dtype=None] : f32[{m}]
  %1 = mul(%buf, %mom) : f32[{m}]
  %2 = tanh(%1) : f32[{m}]
  %3 = add(%2, %0) : f32[{m}]
  %4 = mul(%3, %lr) : f32[{m}]
  %5 = sub(%b, %4) : f32[{m}]
  return %0, %2, %3, %5
}}"""


def _mean_independent(shape: tuple, keepdim: bool) -> str:
    # a mean over the last dim, an epilogue reading another input (of the output's shape)
    # and a broadcast one, through an independent chain that is also an output
    s = ",".join(map(str, shape))
    o = f"{shape[0]},1" if keepdim else f"{shape[0]}"
    return f"""graph f(%x: f32[{s}], %e: f32[{o}], %c: f32[1]) {{
  %0 = mul(%x, %x) : f32[{s}]
  %1 = mean(%0)[dim=(1,), keepdim={keepdim}, dtype=None] : f32[{o}]
  %2 = exp(%e) : f32[{o}]
  %3 = mul(%2, %c) : f32[{o}]
  %4 = add(%1, %3) : f32[{o}]
  %5 = sqrt(%4) : f32[{o}]
  return %5, %3
}}"""


# amax over every dim (block workers, chunks, a 0-d result) beside a 0-d input, and amax
# over the first dim beside an input read through a view and an independent node's view
_AMAX_ALL_INDEPENDENT = """graph f(%x: f64[20,30], %t: f64[]) {
  %0 = amax(%x)[dim=(0, 1), keepdim=False] : f64[]
  %1 = exp(%t) : f64[]
  %2 = sub(%0, %1) : f64[]
  return %2, %1
}"""

_AMAX_DIM0_INDEPENDENT = """graph f(%x: f32[9,5], %e: f32[1,5], %d: f32[5]) {
  %0 = neg(%x) : f32[9,5]
  %1 = amax(%0)[dim=(0,), keepdim=False] : f32[5]
  %2 = reshape(%e)[shape=(5,)] : f32[5]
  %3 = mul(%2, %d) : f32[5]
  %4 = reshape(%3)[shape=(5,)] : f32[5]
  %5 = maximum(%1, %4) : f32[5]
  return %5
}"""


# a group fusion does not make (simplify drops identity views): views of an independent
# epilogue node, one of them an output, and a view of an input
_HAND_FUSED_VIEWS = """graph f(%g: f32[6,5], %buf: f32[1,5], %d: f32[5]) {
  %0, %1 = fused(%g, %buf, %d)[kind="reduction", body=graph reduction_0(%g: f32[6,5],
      %buf: f32[1,5], %d: f32[5]) {
    %0 = reshape(%buf)[shape=(5,)] : f32[5]
    %1 = sum(%g)[dim=(0,), keepdim=False, dtype=None] : f32[5]
    %2 = mul(%0, 0.5) : f32[5]
    %3 = reshape(%2)[shape=(1, 5)] : f32[1,5]
    %4 = reshape(%3)[shape=(5,)] : f32[5]
    %5 = add(%4, %1) : f32[5]
    %6 = mul(%5, %d) : f32[5]
    return %3, %6
  }] : f32[1,5], f32[5]
  return %0, %1
}"""


def _hand_fused(text: str) -> Callable:
    """A case of an already fused graph (no passes)."""
    def build() -> Case:
        graph = parse(text)
        return Case(graph, random_feeds(graph))
    return build


def _independent_cases() -> dict[str, Callable]:
    default = LaunchConfig()
    return {
        # [40, 5]: a thread per result, 8 chunks, the epilogue in the finishing kernel
        "reduce-momentum-sum-dim0": _ir(_momentum(40, 5)),
        # the MLP's [4, 8] at the default configuration: one chunk, so the partial kernel
        # finishes the result and reads the epilogue's inputs itself
        "reduce-momentum-default-config": _ir(_momentum(4, 8), config=default),
        "reduce-mean-independent-warp": _ir(_mean_independent((6, 50), False)),
        "reduce-mean-independent-block-keepdim": _ir(_mean_independent((3, 200), True)),
        "reduce-amax-all-independent": _ir(_AMAX_ALL_INDEPENDENT),
        "reduce-amax-dim0-independent": _ir(_AMAX_DIM0_INDEPENDENT),
        "reduce-independent-views-hand-fused": _hand_fused(_HAND_FUSED_VIEWS),
    }


# --- rows ---------------------------------------------------------------------------------------

def _rows_text() -> dict[str, str]:
    from tests.codegen.test_rows import W4_LSM, _amin_rows, _column_sums, _layer_norm, _softmax
    return {
        "softmax-f32-1x37": _softmax("f32", (1, 37)),
        "softmax-f64-9x1": _softmax("f64", (9, 1)),
        "softmax-f32-7x13": _softmax("f32", (7, 13)),
        "softmax-f64-3x4x5": _softmax("f64", (3, 4, 5)),
        "softmax-f32-block-3x100": _softmax("f32", (3, 100)),
        "layer-norm-f32-7x13": _layer_norm("f32", (7, 13)),
        "layer-norm-f64-6x9": _layer_norm("f64", (6, 9)),
        "layer-norm-f32-two-dims": _layer_norm("f32", (5, 3, 8), k=2),
        "layer-norm-f32-block-3x70": _layer_norm("f32", (3, 70)),
        "amin-every-access": _amin_rows("f32", (11, 17)),
        "column-sums-keepdim": _column_sums("f32", (7, 13), True),
        "column-means-3d": _column_sums("f32", (3, 4, 6), False, "mean"),
        # W4's log_softmax + nll_loss program at [12, 20]
        "w4-log-softmax-nll": re.sub(r"(?<![-\w])100\b", "20",
                                     re.sub(r"(?<=[\[(])64\b", "12", W4_LSM)),
    }


def _w4_feeds(graph: Graph) -> list:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((12, 20)).astype(np.float32)
    t = rng.integers(0, 20, 12)
    t[5] = -100
    return [x, t]


def _special_extremes(graph: Graph) -> list:
    x = np.array([[1, 2, 3, 4, 5], [np.nan, 0, 1, 2, 3], [-np.inf] * 5,
                  [np.inf, -np.inf, 0, 1, 2], [-0.0, 0.0, -0.0, -1e-30, 1e-30],
                  [3, 2, 1, np.nan, -np.inf]], dtype=graph.inputs[0].type.dtype.np_dtype)
    return [x]


_EXTREMES = """graph f(%x: f32[6,5]) {
  %0 = amax(%x)[dim=(1,), keepdim=True] : f32[6,1]
  %1 = amin(%x)[dim=(1,), keepdim=True] : f32[6,1]
  %2 = sub(%x, %0) : f32[6,5]
  %3 = sub(%2, %1) : f32[6,5]
  return %3, %0, %1
}"""

_CHAIN = """graph f(%x: f32[4,9], %y: f32[9], %z: f32[], %lr: f64[] weak) {
  %0 = mul(%x, %y) : f32[4,9]
  %1 = tanh(%0) : f32[4,9]
  %2 = mul(%1, %lr) : f32[4,9]
  %3 = sub(%2, %z) : f32[4,9]
  %4 = sigmoid(%3) : f32[4,9]
  %5 = gt(%4, 0.5) : bool[4,9]
  %6 = where(%5, %4, %1) : f32[4,9]
  %7 = to_dtype(%6)[dtype=float64] : f64[4,9]
  %8 = div(%7, 3)[rounding_mode="floor"] : f64[4,9]
  return %6, %2, %8
}"""

# inputs read through views: a transpose, a broadcast, a reshape, narrow, select, getitem
_INPUT_VIEWS = """graph f(%x: f32[9,4], %b: f32[4,1], %c: f32[2,3,6], %d: f32[5,12]) {
  %0 = permute(%x)[dims=(1, 0)] : f32[4,9]
  %1 = expand(%b)[shape=(4, 9)] : f32[4,9]
  %2 = reshape(%c)[shape=(4, 9)] : f32[4,9]
  %3 = narrow(%d)[dim=1, start=2, length=9] : f32[5,9]
  %4 = select(%3)[dim=0, index=3] : f32[9]
  %5 = getitem(%d)[spec=(("s", 1, 5, 1), ("s", 0, 12, 4), None)] : f32[4,3,1]
  %6 = reshape(%5)[shape=(4, 3)] : f32[4,3]
  %7 = sum(%6)[dim=(1,), keepdim=True, dtype=None] : f32[4,1]
  %8 = add(%0, %1) : f32[4,9]
  %9 = mul(%8, %2) : f32[4,9]
  %10 = sub(%9, %4) : f32[4,9]
  %11 = add(%10, %7) : f32[4,9]
  return %11
}"""


# --- the registry's elementwise calls ----------------------------------------------------------

@functools.cache
def _selection() -> dict:
    from tests.codegen.test_every_op import _selection as cpu_selection
    return cpu_selection()


BATCH = 20   # calls per kernel (a failure names its call all the same)


def _ops(variant: str) -> Callable:
    """The selected calls of ``variant`` that have scalar expressions, in elementwise
    groups (one per shape) of graphs of BATCH calls, side by side in one graph."""
    def build() -> Case:
        from tests.codegen._every_op_cases import Batch, expressible, group_by_shape
        calls = [c for c in _selection()[variant] if expressible(c)]
        graph = Graph(f"ops_{variant}")
        feeds, owners = [], []
        for i in range(0, len(calls), BATCH):
            batch = Batch.of(calls[i:i + BATCH], lift_scalars=variant == "lifted")
            _append(graph, group_by_shape(batch.graph))
            feeds += batch.feeds
            owners += batch.owners
        return Case(graph, feeds, ulps=ULPS, owners=owners)
    return build


def _append(graph: Graph, part: Graph) -> None:
    """Put ``part``'s inputs, nodes and outputs at the end of ``graph``'s."""
    env = {}
    for v in part.inputs:
        env[v] = graph.add_input(v.type, v.role)
    for node in part.nodes:
        args = [env[a] if a in env else a for a in node.inputs]
        new = graph.add_node(node.op, args, dict(node.attrs), [o.type for o in node.outputs])
        env.update(zip(node.outputs, new.outputs))
    graph.outputs += [env[v] for v in part.outputs]


def _chains(kind: str) -> Callable:
    def build() -> Case:
        from ir.opdef import OpKind
        from tests.codegen._every_op_cases import chains
        from tests.codegen.test_every_op import _chain_calls
        wanted = OpKind.REDUCTION if kind == "reductions" else OpKind.ELEMENTWISE
        calls = [c for c in _chain_calls() if c.op.kind is wanted]
        if kind != "reductions":
            calls = calls[::6]   # the ops themselves run in the ops-* cases
        batch = chains(calls)
        # reductions without a CUDA form are reported, not required
        return Case(_pipeline(batch.graph), batch.feeds, ulps=CHAIN_ULPS,
                    must_plan=kind != "reductions", owners=batch.owners)
    return build


# the elementwise layouts of tests/codegen (without "parallel": a CPU threading size)
OP_VARIANTS = ("flat", "broadcast", "lifted", "zerodim", "empty", "transposed", "strided")


def _all_cases() -> dict[str, Callable[[], Case]]:
    cases: dict[str, Callable[[], Case]] = {}
    for name, text in REDUCE_TEXT.items():
        cases[f"reduce-{name}"] = _ir(text)
    cases["reduce-int-and-bool"] = _ir(_int_reductions())
    cases["reduce-views-and-epilogue"] = _ir(_views_and_epilogue())
    cases["reduce-empty"] = _ir(_empty_reductions())
    cases["reduce-max-all-min-all"] = _ir(_max_all())
    cases["reduce-nan-propagates"] = _ir(_reduce("amax", "f32", (5, 9), (1,)), feeds=_nan_feeds)
    cases.update(_independent_cases())
    cases["reduce-non-contiguous"] = _ir(_reduce("sum", "f32", (6, 8), (0,)), s0="strided",
                                         s1="transposed")
    for name, text in _rows_text().items():
        cases[f"rows-{name}"] = _ir(text, feeds=_w4_feeds if name.startswith("w4") else None)
    cases["rows-extremes-special-values"] = _ir(_EXTREMES, feeds=_special_extremes)
    cases["rows-softmax-nan-inf"] = _ir(_rows_text()["softmax-f32-7x13"].replace("7,", "5,")
                                        .replace("[7", "[5").replace("13", "10"),
                                        feeds=_softmax_specials)
    cases["rows-layer-norm-non-contiguous"] = _ir(_rows_text()["layer-norm-f32-7x13"],
                                                  s0="transposed", s1="strided", s3="strided")
    cases["elementwise-chain"] = _ir(_CHAIN)
    cases["elementwise-chain-non-contiguous"] = _ir(_CHAIN, s0="transposed")
    cases["elementwise-input-views"] = _ir(_INPUT_VIEWS)
    # the default launch configuration (256 threads a block): a warp per segment, and a
    # block per row of a row longer than warp_row_max
    default = LaunchConfig()
    cases["reduce-default-config"] = _ir(REDUCE_TEXT["sum-all-block-chunks"], config=default)
    # one chunk per result: the partial kernel finishes, and its epilogue reads an input
    cases["reduce-views-and-epilogue-default-config"] = _ir(_views_and_epilogue(),
                                                           config=default)
    cases["rows-softmax-default-config"] = _ir(
        _rows_text()["softmax-f32-block-3x100"].replace("3,100", "2,1100"), config=default)
    for variant in OP_VARIANTS:
        cases[f"ops-{variant}"] = _ops(variant)
    cases["chains-reductions"] = _chains("reductions")
    cases["chains-elementwise"] = _chains("elementwise")
    return cases


def _softmax_specials(graph: Graph) -> list:
    x = np.random.default_rng(0).standard_normal((5, 10)).astype(np.float32)
    x[1, 3] = np.nan
    x[2, :] = -np.inf
    x[3, 7] = np.inf
    return [x]


CASES = _all_cases()

"""Codegen against the reference interpreter on every registered op (issue 7).

Every op application the registry's samples make (``_every_op_cases.recorded_calls``)
runs as a graph node on ``codegen.runtime.CompiledProgram`` and on
``ir.interpret.interpret``; the results must agree: floats within a few ulp, other
dtypes exactly, and where the interpreter raises, the same exception type.

* Elementwise calls are deduplicated by signature, re-laid out (flat, broadcast against
  a transposed input, 0-d, empty, transposed, strided, large enough for a parallel loop,
  and flat with Python scalars lifted to weak graph inputs) and wrapped in hand-made
  ``fused`` groups, one per iteration shape, so many ops share one generated kernel. A
  batch that fails to compile or run is bisected down to the failing call. Numba's
  compile time is about 0.1 s per op (and grows faster than linearly in a kernel's size),
  so by default a selection runs (see FULL_SWEEP); ``tests/codegen/test_scalar.py``
  already checks every signature's scalar expression.
* Each elementwise, reduction and matmul op also runs in a chain (op -> ``mul(y, 2)`` ->
  ``sum``; a reduction gets a ``maximum(x, x)`` prologue) through the real pass pipeline
  (simplify, fuse): fused groups of several ops.
* Every other op runs through the full pipeline; most run on the reference
  implementation inside the runtime, but the pipeline (simplify, fusion) and the
  runtime's planning still touch them.
* Error samples whose error comes from the data (an index out of range) must raise the
  same exception type compiled.
* A few hand-written cases the samples do not make (non-finite inline scalars, a fused
  mean over no elements, an integer power with a negative exponent): bugs this sweep
  found, kept as regression tests.

Caches live in the session's temporary directory (tests/conftest.py).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence

import numpy as np
import pytest

from codegen.runtime import CompiledProgram
from ir.interpret import interpret
from ir.opdef import REGISTRY, OpKind
from tests.codegen._every_op_cases import (
    LAYOUTS,
    Batch,
    Call,
    chains,
    compare,
    error_calls,
    expressible,
    group_by_shape,
    recorded_calls,
    relayout,
    signature,
)

ULPS = 4          # one generated op against its reference (inline transcendentals: <= 2e-7)
CHAIN_ULPS = 8    # a chain rounds once per op
BATCH = 20        # calls per graph (Numba's compile time grows faster than the kernel)

# COMPGRAD_TEST_FULL_SWEEP=1: every distinct elementwise signature in every layout (about
# 4,800 compiled ops, ~10 minutes). By default: every op once per input pattern (tensor,
# 0-d tensor or Python scalar per input) flat, multi-input ops broadcast, every op with a
# Python scalar input lifted, and every op in one of the other layouts (round robin).
FULL_SWEEP = os.environ.get("COMPGRAD_TEST_FULL_SWEEP") == "1"
ROUND_ROBIN = ("zerodim", "empty", "transposed", "strided", "parallel")

# Registered ops this file does not run compiled, with the reason. Empty: every
# registered op declares samples and is applied by at least one of them.
NOT_COVERED: dict[str, str] = {}

# Elementwise ops with no scalar expression for any sampled call: codegen runs them on the
# reference interpreter inside fused groups (codegen/scalar.py's docstring says why). They
# are compared all the same; this list is checked against codegen.scalar.
NO_KERNEL: dict[str, str] = {
    "erfinv": "no Numba implementation of erfinv",
    "binary_cross_entropy": "validates its input range (raises), which a kernel cannot",
}

# Known codegen bugs: (op, variant) -> reason; the case is a strict xfail. A variant is a
# layout name, "lifted", "chain", "plain" (non-elementwise ops) or "errors".
KNOWN_BUGS: dict[tuple[str, str], str] = {}

ELEMENTWISE = sorted(name for name, op in REGISTRY.items() if op.kind is OpKind.ELEMENTWISE)
OTHERS = sorted(name for name, op in REGISTRY.items() if op.kind is not OpKind.ELEMENTWISE)
VARIANTS = (*LAYOUTS, "lifted")


def _param(op: str, variant: str, *values, id: str | None = None):  # noqa: A002
    """A test parameter, a strict xfail when (op, variant) is a known bug."""
    reason = KNOWN_BUGS.get((op, variant))
    marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
    return pytest.param(*values, marks=marks, id=id or f"{op}-{variant}")


# --- running and comparing --------------------------------------------------------------------

def _copies(feeds: Sequence) -> list:
    return [np.copy(f, order="K") if isinstance(f, np.ndarray) else f for f in feeds]


def _outcome(fn: Callable):
    try:
        with np.errstate(all="ignore"):
            return fn(), None
    except Exception as e:  # compared by type with the other side's
        return None, e


def check(calls: Sequence[Call], make: Callable[[Sequence[Call]], Batch], *,
          grouped: bool, ulps: float, stats: list | None = None) -> list[tuple[Call, str]]:
    """Run ``make(calls)`` compiled (``grouped``: wrapped in fused groups per shape, no
    passes; else the default pipeline) and interpreted; the calls that disagree, with
    why. A batch that raises is bisected so the failure names one call."""
    batch = make(calls)
    graph = group_by_shape(batch.graph) if grouped else batch.graph

    def compiled():
        program = CompiledProgram(graph, passes=[] if grouped else None)
        if stats is not None:
            stats.append((calls, program.stats))
        return program.run(_copies(batch.feeds))[0]

    ref, ref_error = _outcome(lambda: interpret(batch.graph, _copies(batch.feeds)).outputs)
    got, got_error = _outcome(compiled)
    if (ref_error or got_error) and len(calls) > 1:
        half = len(calls) // 2
        return (check(calls[:half], make, grouped=grouped, ulps=ulps, stats=stats)
                + check(calls[half:], make, grouped=grouped, ulps=ulps, stats=stats))
    if ref_error or got_error:
        if ref_error and got_error and type(ref_error) is type(got_error):
            return []
        return [(calls[0], f"interpreter: {ref_error!r}; compiled: {got_error!r}")]
    failures = []
    for owner, r, g in zip(batch.owners, ref, got):
        why = compare(r, g, ulps)
        if why:
            failures.append((owner, why))
    return failures


def _chunks(calls: list, size: int = BATCH) -> list[list]:
    return [calls[i:i + size] for i in range(0, len(calls), size)]


def _pattern(call: Call) -> tuple:
    return call.op.name, tuple("w" if not isinstance(x, np.ndarray) else "t" if x.ndim else "z"
                               for x in call.inputs)


def _has_scalar(call: Call) -> bool:
    return any(not isinstance(x, np.ndarray) for x in call.inputs)


def _tensors(call: Call) -> int:
    return sum(isinstance(x, np.ndarray) and x.ndim > 0 for x in call.inputs)


def _first_per(calls, key) -> list[Call]:
    seen: dict = {}
    for call in calls:
        seen.setdefault(key(call), call)
    return list(seen.values())


@functools.cache
def _selection() -> dict[str, tuple[Call, ...]]:
    """The elementwise calls each variant runs (see FULL_SWEEP)."""
    distinct = _first_per((c for c in recorded_calls() if c.op.kind is OpKind.ELEMENTWISE),
                          signature)
    by_variant: dict[str, list[Call]] = {}
    if FULL_SWEEP:
        for variant in VARIANTS:
            chosen = [c for c in distinct if _has_scalar(c)] if variant == "lifted" else distinct
            by_variant[variant] = chosen
    else:
        by_variant["flat"] = _first_per(distinct, _pattern)
        by_variant["broadcast"] = _first_per((c for c in distinct if _tensors(c) > 1),
                                             lambda c: c.op.name)
        by_variant["lifted"] = _first_per(filter(_has_scalar, distinct), lambda c: c.op.name)
        for i, op in enumerate(ELEMENTWISE):
            first = next((c for c in distinct if c.op.name == op and _tensors(c)), None)
            if first is not None:
                by_variant.setdefault(ROUND_ROBIN[i % len(ROUND_ROBIN)], []).append(first)
    out = {}
    for variant, calls in by_variant.items():
        layout = "flat" if variant == "lifted" else variant
        moved = (relayout(c, layout) for c in calls)
        out[variant] = tuple(c for c in moved if c is not None)
    return out


def _elementwise_params() -> list:
    pairs = sorted({(c.op.name, v) for v, calls in _selection().items() for c in calls})
    return [_param(op, v, op, v) for op, v in pairs]


@pytest.fixture(scope="session")
def elementwise_report():
    """The selected elementwise calls run in batched kernels: the failures by (op,
    variant), the ops that ran in generated kernels, and batches that fell back to the
    interpreter."""
    failures: dict[tuple[str, str], list[str]] = {}
    in_kernels: set[str] = set()
    interpreted: list[str] = []
    for variant, calls in _selection().items():
        lifted = variant == "lifted"

        def make(cs, lifted=lifted):
            return Batch.of(cs, lift_scalars=lifted, name="elementwise")

        with_kernel = [c for c in calls if expressible(c)]
        without = [c for c in calls if not expressible(c)]
        stats: list = []
        found = []
        for chunk in _chunks(with_kernel):
            found += check(chunk, make, grouped=True, ulps=ULPS, stats=stats)
        found += check(without, make, grouped=True, ulps=ULPS) if without else []
        for cs, s in stats:
            if s.interpreted_phases:
                interpreted.append(f"{variant}: {sorted({c.op.name for c in cs})}")
        for call, why in found:
            failures.setdefault((call.op.name, variant), []).append(f"{call.source}: {why}")
        in_kernels.update(c.op.name for c in with_kernel)
    return failures, in_kernels, interpreted


@functools.cache
def _chain_calls() -> tuple[Call, ...]:
    """One call per elementwise op (with a kernel, inputs transposed), reduction and
    matmul op: the programs of :func:`chains`."""
    calls = [c for c in _first_per(recorded_calls(), signature)
             if c.op.kind is not OpKind.ELEMENTWISE or expressible(c)]
    picked = []
    for call in _first_per(calls, lambda c: c.op.name):
        if call.op.kind is OpKind.ELEMENTWISE:
            call = relayout(call, "transposed") or call
        elif call.op.kind not in (OpKind.REDUCTION, OpKind.MATMUL):
            continue
        picked.append(call)
    return tuple(picked)


@pytest.fixture(scope="session")
def chain_report():
    """The chains through the real pipeline: failures by op, and each batch's stats."""
    stats: list = []
    found = []
    for chunk in _chunks(list(_chain_calls()), 30):
        found += check(chunk, chains, grouped=False, ulps=CHAIN_ULPS, stats=stats)
    failures: dict[str, list[str]] = {}
    for call, why in found:
        failures.setdefault(call.op.name, []).append(f"{call.source}: {why}")
    return failures, stats


# --- the tests --------------------------------------------------------------------------------

def test_every_registered_op_is_covered_or_listed():
    applied = {c.op.name for c in recorded_calls()}
    assert set(REGISTRY) - applied == set(NOT_COVERED), "ops the samples never apply"


def test_no_kernel_list_matches_codegen():
    by_op: dict[str, list[bool]] = {}
    for call in recorded_calls():
        if call.op.kind is OpKind.ELEMENTWISE:
            by_op.setdefault(call.op.name, []).append(expressible(call))
    never = {op for op, flags in by_op.items() if not any(flags)}
    assert never == set(NO_KERNEL)


def test_every_elementwise_op_is_selected():
    selected = {c.op.name for calls in _selection().values() for c in calls}
    assert selected == set(ELEMENTWISE)
    assert {c.op.name for c in _chain_calls() if c.op.kind is OpKind.ELEMENTWISE} == \
        set(ELEMENTWISE) - set(NO_KERNEL)


@pytest.mark.parametrize("op,variant", _elementwise_params())
def test_elementwise_op_matches_interpreter(elementwise_report, op, variant):
    failures, _, _ = elementwise_report
    problems = failures.get((op, variant), [])
    assert not problems, "\n".join(problems)


def test_elementwise_ops_run_in_generated_kernels(elementwise_report):
    _, in_kernels, interpreted = elementwise_report
    assert set(ELEMENTWISE) - in_kernels == set(NO_KERNEL)
    # a batch of calls that all have scalar expressions never falls back to the interpreter
    assert not interpreted, interpreted


@pytest.mark.parametrize("op", [_param(c.op.name, "chain", c.op.name, id=c.op.name)
                                for c in _chain_calls()])
def test_op_in_a_fused_chain(chain_report, op):
    failures, _ = chain_report
    assert not failures.get(op), "\n".join(failures.get(op, []))


def test_chains_are_fused_into_kernels(chain_report):
    _, stats = chain_report
    assert sum(s.interpreted_phases for _, s in stats) == 0
    elementwise = sum(c.op.kind is OpKind.ELEMENTWISE for calls, _ in stats for c in calls)
    # at least one kernel per elementwise chain (its op, the mul and the sum in one loop)
    assert sum(s.kernels for _, s in stats) >= elementwise


@pytest.mark.parametrize("op", [_param(op, "plain", op, id=op) for op in OTHERS])
def test_op_matches_interpreter(op):
    calls = [c for c in recorded_calls() if c.op.name == op]
    assert calls, f"no sample applies {op}"
    failures = check(calls, Batch.of, grouped=False, ulps=ULPS)
    assert not failures, "\n".join(f"{c.source}: {why}" for c, why in failures)


@pytest.mark.parametrize("call", [_param(c.op.name, "errors", c, id=c.source)
                                  for c in error_calls()])
def test_data_errors_raise_the_same_type(call):
    batch = Batch.of([call])
    _, ref_error = _outcome(lambda: interpret(batch.graph, _copies(batch.feeds)))
    assert ref_error is not None, "the interpreter did not raise"
    with pytest.raises(type(ref_error)):
        with np.errstate(all="ignore"):
            CompiledProgram(batch.graph).run(_copies(batch.feeds))


# --- cases the samples do not make ------------------------------------------------------------

def _run_text(text: str, feeds: list) -> None:
    """``text`` compiled and interpreted agree (or raise the same exception type)."""
    from ir.parser import parse
    graph = parse(text)
    ref, ref_error = _outcome(lambda: interpret(graph, _copies(feeds)).outputs)
    got, got_error = _outcome(lambda: CompiledProgram(graph).run(_copies(feeds))[0])
    if ref_error or got_error:
        assert type(got_error) is type(ref_error), (ref_error, got_error)
        return
    for r, g in zip(ref, got):
        why = compare(r, g, ULPS)
        assert why is None, why


@pytest.mark.parametrize("value", ["inf", "-inf", "nan"])
def test_inline_non_finite_scalars(value):
    _run_text(f"""
graph f(%x: f32[3,4]) {{
  %0 = add(%x, {value}) : f32[3,4]
  %1 = mul(%0, 2.0) : f32[3,4]
  return %1
}}
""", [np.arange(12, dtype=np.float32).reshape(3, 4)])


@pytest.mark.parametrize("shape,dims,out", [("0,3", "(0,)", "f32[3]"), ("0", "(0,)", "f32[]")])
def test_fused_mean_over_no_elements(shape, dims, out):
    _run_text(f"""
graph f(%x: f32[{shape}]) {{
  %0 = mul(%x, 2.0) : f32[{shape}]
  %1 = mean(%0)[dim={dims}, keepdim=False, dtype=None] : {out}
  return %1
}}
""", [np.zeros(tuple(int(s) for s in shape.split(",")), np.float32)])


def test_integer_pow_with_a_negative_scalar_exponent_raises():
    _run_text("""
graph f(%x: i64[4]) {
  %0 = pow(%x, -1) : i64[4]
  %1 = mul(%0, 2) : i64[4]
  return %1
}
""", [np.array([1, 2, -3, 0], np.int64)])

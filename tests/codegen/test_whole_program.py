"""codegen.whole: a small compiled program run as one Numba function gives the step
runner's results (bit for bit where the runner runs the same kernels and NumPy's sums;
to a product's or a transcendental's rounding elsewhere), refuses with a reason what it
cannot lower, falls back to the step runner where a call does not fit, and makes a
replayed training step (``compile(mode="reduce-overhead")``) match eager."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from benchmarks.compiled import programs
from codegen import runtime, whole
from codegen.runtime import CompiledProgram
from codegen.whole_ops import numpy_add_order
from ir.parser import parse

BROADCAST = """
graph f(%x: f32[8,16], %b: f32[16], %s: f64[] weak, %z: f32[]) {
  %0 = add(%x, %b) : f32[8,16]
  %1 = mul(%0, %s) : f32[8,16]
  %2 = sub(%1, %z) : f32[8,16]
  %3 = relu(%2) : f32[8,16]
  %4 = div(%3, %3)[rounding_mode=None] : f32[8,16]
  return %3, %4
}
"""

# a permute, a mean over a transposed view, sums over either axis, a product and a mean
# fused after an elementwise chain
REDUCTIONS = """
graph g(%x: f32[6,40], %w: f32[40,3], %s: f64[] weak) {
  %0 = permute(%x)[dims=(1, 0)] : f32[40,6]
  %1 = mean(%0)[dim=(1,), keepdim=False, dtype=None] : f32[40]
  %2 = sum(%x)[dim=(0,), keepdim=True, dtype=None] : f32[1,40]
  %3 = sum(%0)[dim=(0, 1), keepdim=False, dtype=None] : f32[]
  %4 = mm(%x, %w) : f32[6,3]
  %5 = mul(%4, %s) : f32[6,3]
  %6 = exp(%5) : f32[6,3]
  %7 = mean(%6)[dim=(0, 1), keepdim=False, dtype=None] : f32[]
  return %1, %2, %3, %5, %7
}
"""


def _feeds(graph, seed: int = 0) -> list:
    return whole.sample_inputs(graph, seed=seed)


def _program(text: str) -> tuple[CompiledProgram, object]:
    program = CompiledProgram(parse(text))
    one = program.as_one_function()
    assert one is not None, program.one_function_reason
    return program, one


def _assert_same(expected: list, got: list, exact: bool = True) -> None:
    assert len(expected) == len(got)
    for a, b in zip(expected, got):
        a, b = np.asarray(a), np.asarray(b)
        assert a.shape == b.shape and a.dtype == b.dtype
        if exact:
            np.testing.assert_array_equal(b, a)
        else:
            np.testing.assert_allclose(b, a, rtol=1e-6, atol=1e-7)


def _run_both(program, one, feeds):
    outs, muts = program.run(feeds)
    got_outs, got_muts = one(feeds)
    return outs + muts, got_outs + got_muts


@pytest.fixture(scope="module")
def broadcast_program():
    return _program(BROADCAST)


@pytest.fixture(scope="module")
def reductions_program():
    return _program(REDUCTIONS)


# --- values ----------------------------------------------------------------------------------

def test_broadcasting_weak_scalars_and_0_over_0(broadcast_program):
    program, one = broadcast_program
    for seed in range(3):
        expected, got = _run_both(program, one, _feeds(program.graph, seed))
        _assert_same(expected, got)
        assert np.isnan(got[1]).any()   # relu gave zeros: 0/0 is nan, as in the step runner
    assert one.calls == 3 and one.fallbacks == 0


def test_reductions_permutes_and_products(reductions_program):
    program, one = reductions_program
    for seed in range(3):
        feeds = _feeds(program.graph, seed)
        expected, got = _run_both(program, one, feeds)
        # sums and means are NumPy's own (its summation order), so they match exactly;
        # the product may differ in rounding between BLAS builds
        _assert_same(expected[:3], got[:3])
        _assert_same(expected[3:], got[3:], exact=False)
        np.testing.assert_array_equal(got[0], np.mean(feeds[0].T, axis=1))


def test_outputs_are_fresh_arrays_each_call(broadcast_program):
    program, one = broadcast_program
    first = one(_feeds(program.graph, 1))[0]
    kept = [a.copy() for a in first]
    second = one(_feeds(program.graph, 2))[0]
    for a, b, k in zip(first, second, kept):
        assert not np.shares_memory(a, b)
        np.testing.assert_array_equal(a, k)


def test_a_strided_input_runs_on_the_step_runner(broadcast_program):
    program, one = broadcast_program
    feeds = _feeds(program.graph, 4)
    feeds[0] = np.asfortranarray(feeds[0])   # the function was written for C arrays
    before = one.fallbacks
    expected, got = _run_both(program, one, feeds)
    _assert_same(expected, got)
    assert one.fallbacks == before + 1


@pytest.mark.parametrize("seed", range(40))
def test_numpy_add_order_is_numpys(seed):
    """The loop structure numpy_add_order gives, run with NumPy's pairwise summation in
    the array's dtype, is np.add.reduce bit for bit (random shapes, axes, layouts)."""
    rng = np.random.default_rng(seed)
    for _ in range(10):
        nd = int(rng.integers(1, 5))
        shape = tuple(int(s) for s in rng.choice([1, 2, 3, 5, 8, 9, 17, 130], nd))
        if np.prod(shape) > 3000:
            continue
        dtype = np.float32 if rng.random() < 0.7 else np.float64
        base = (rng.standard_normal(shape) * 10.0 ** rng.uniform(-2, 3, shape)).astype(dtype)
        x = np.transpose(base, rng.permutation(nd)) if rng.random() < 0.5 else base
        dims = tuple(sorted(int(d) for d in rng.choice(nd, int(rng.integers(1, nd + 1)),
                                                       replace=False)))
        expected = np.add.reduce(x, axis=dims)
        got = _emulated_sum(x, dims)
        assert np.asarray(expected).tobytes() == got.tobytes(), (x.shape, x.strides, dims)


def _pairwise(values: list, dtype) -> object:
    n = len(values)
    if n < 8:
        res = dtype(-0.0)
        for v in values:
            res = dtype(res + v)
        return res
    if n <= 128:
        r = list(values[:8])
        i = 8
        while i < n - n % 8:
            r = [dtype(r[k] + values[i + k]) for k in range(8)]
            i += 8
        res = dtype(dtype(dtype(r[0] + r[1]) + dtype(r[2] + r[3]))
                    + dtype(dtype(r[4] + r[5]) + dtype(r[6] + r[7])))
        for v in values[i:]:
            res = dtype(res + v)
        return res
    half = n // 2 - (n // 2) % 8
    return dtype(_pairwise(values[:half], dtype) + _pairwise(values[half:], dtype))


def _emulated_sum(x: np.ndarray, dims: tuple) -> np.ndarray:
    """np.add.reduce as codegen.whole_ops writes it (pure Python, in x's dtype)."""
    dtype = x.dtype.type
    groups = numpy_add_order(x.shape, [s // x.itemsize for s in x.strides], set(dims))
    acc = np.zeros(tuple(1 if d in dims else n for d, n in enumerate(x.shape)), x.dtype)
    if not groups:
        acc.reshape(-1)[0] = dtype(0) + x.reshape(-1)[0]
    else:
        inner, outer = groups[0], groups[1:]
        outer_axes = [a for g in reversed(outer) for a in reversed(g)]
        inner_axes = list(reversed(inner))
        for o in np.ndindex(*[x.shape[a] for a in outer_axes]):
            base = [0] * x.ndim
            for a, i in zip(outer_axes, o):
                base[a] = i
            run = []
            for r in np.ndindex(*[x.shape[a] for a in inner_axes]):
                at = list(base)
                for a, i in zip(inner_axes, r):
                    at[a] = i
                run.append(tuple(at))
            if inner[0] in dims:
                at = tuple(0 if d in dims else base[d] for d in range(x.ndim))
                acc[at] = dtype(acc[at] + _pairwise([x[i] for i in run], dtype))
            else:
                for i in run:
                    at = tuple(0 if d in dims else i[d] for d in range(x.ndim))
                    acc[at] = dtype(acc[at] + x[i])
    return acc.reshape(tuple(n for d, n in enumerate(x.shape) if d not in dims))


def test_a_constant_result_is_a_new_array_each_call():
    program, one = _program("""
graph c(%x: f32[3]) {
  %0 = full(2.0)[shape=(3,), dtype=float32, device=device("cpu")] : f32[3]
  %1 = add(%x, %0) : f32[3]
  return %0, %1
}
""")
    x = np.arange(3, dtype=np.float32)
    first = one([x])[0]
    first[0][:] = -1.0   # the caller owns what it got
    _assert_same(program.run([x])[0], one([x])[0])


def test_a_product_large_enough_for_blas_threads_runs_on_one():
    from threadpoolctl import ThreadpoolController

    program, one = _program("""
graph m(%x: f32[64,128], %w: f32[128,64]) {
  %0 = mm(%x, %w) : f32[64,64]
  %1 = relu(%0) : f32[64,64]
  return %1
}
""")
    assert one.serial is not None   # 64 * 64 * 128 multiply-adds: OpenBLAS would thread
    threads = [c.get_num_threads() for c in ThreadpoolController().lib_controllers]
    expected, got = _run_both(program, one, _feeds(program.graph))
    _assert_same(expected, got, exact=False)
    assert [c.get_num_threads() for c in ThreadpoolController().lib_controllers] == threads


# --- what is not lowered ---------------------------------------------------------------------

def test_a_node_without_a_lowering_gives_none_and_the_reason():
    program = CompiledProgram(parse("""
graph h(%x: f32[4,5]) {
  %0 = flip(%x)[dims=(0,)] : f32[4,5]
  %1 = mul(%0, 2.0) : f32[4,5]
  return %1
}
"""))
    assert program.as_one_function() is None
    assert "flip" in program.one_function_reason
    assert program.as_one_function() is None   # decided once


def test_a_large_program_keeps_the_step_runner(monkeypatch):
    monkeypatch.setattr(whole, "MAX_ELEMENTS", 100)
    program = CompiledProgram(parse(BROADCAST))
    assert program.as_one_function() is None
    assert "elements" in program.one_function_reason


def test_an_output_that_is_a_view_of_an_input_is_not_lowered():
    program = CompiledProgram(parse("""
graph v(%x: f32[4,5]) {
  %0 = permute(%x)[dims=(1, 0)] : f32[5,4]
  %1 = exp(%x) : f32[4,5]
  return %0, %1
}
"""))
    assert program.as_one_function() is None
    assert "view of one" in program.one_function_reason


def test_an_invalid_target_raises_the_reference_error():
    program, one = _program("""
graph t(%x: f32[3,4], %y: i64[3]) {
  %0 = nll_target(%y)[num_classes=4, ignore_index=-100] : i64[3]
  %1 = to_dtype(%0)[dtype=float32] : f32[3]
  %2 = sum(%x)[dim=(1,), keepdim=False, dtype=None] : f32[3]
  %3 = mul(%1, %2) : f32[3]
  return %3
}
""")
    x = np.ones((3, 4), np.float32)
    _assert_same(program.run([x, np.array([1, -100, 3])])[0],
                 one([x, np.array([1, -100, 3])])[0])
    with pytest.raises(IndexError, match="Target 7 is out of bounds"):
        one([x, np.array([1, 7, 0])])
    assert one.fallbacks == 1


# --- training steps ----------------------------------------------------------------------------

def _twin_steps(params: dict, steps: int) -> tuple:
    """Eager and replayed instances of a benchmark MLP step, compared after every step."""
    eager = programs.mlp_instance("compgrad", params)
    replay = programs.mlp_instance("compgrad.replay", params)
    exact = params["loss"] == "mse"
    for _ in range(steps):
        a, b = eager.step(), replay.step()
        got = [programs.to_numpy(b)] + list(replay.state().values())
        want = [programs.to_numpy(a)] + list(eager.state().values())
        for w, g in zip(want, got):
            if exact:
                np.testing.assert_array_equal(g, w)
            else:
                np.testing.assert_allclose(g, w, rtol=2e-5, atol=1e-6)
    plan = replay.fn._plan
    return replay.fn, plan.program.compiled


def test_w2_replayed_step_is_one_function_and_matches_eager_bit_for_bit():
    case = next(c for c in programs.cases() if c.id == "W2")
    fn, compiled = _twin_steps(case.params, 10)
    one = compiled.as_one_function()
    assert one is not None, compiled.one_function_reason
    replays = fn.explain().replays
    # (traced calls may run it too: codegen.tiering, when the disk cache holds it)
    assert replays >= 6 and one.calls >= replays and one.fallbacks == 0
    # and the function itself against the step runner on other inputs
    for seed in range(3):
        expected, got = _run_both(compiled, one, _feeds(compiled.graph, seed))
        _assert_same(expected, got, exact=False)


CE = {"sizes": (6, 8, 4), "loss": "ce", "lr": 0.1, "momentum": 0.9, "batch": 5}


def test_cross_entropy_with_a_rows_kernel_keeps_the_step_runner():
    # this package's conftest gives every rows group a kernel (RowsStep): not lowered
    fn, compiled = _twin_steps(CE, 6)
    assert compiled.as_one_function() is None
    assert "RowsStep" in compiled.one_function_reason
    assert fn.explain().replays >= 2


def test_cross_entropy_lowered_node_by_node_matches_eager(monkeypatch):
    # at the runtime's own threshold a small rows group is interpreted node by node,
    # which the function lowers node by node (exp/log: the kernels' own, a few ulp)
    monkeypatch.setattr(runtime, "ROWS_KERNEL_MIN_ELEMENTS", 1 << 16)
    fn, compiled = _twin_steps(CE, 7)
    one = compiled.as_one_function()
    assert one is not None, compiled.one_function_reason
    assert one.calls >= fn.explain().replays >= 3 and one.fallbacks == 0


# --- the disk cache -----------------------------------------------------------------------------

_CHILD = textwrap.dedent("""
    import json, sys
    import numpy as np
    from codegen.cache import compile_counts
    from codegen.runtime import CompiledProgram
    from ir.parser import parse
    program = CompiledProgram(parse(sys.argv[1]))
    one = program.as_one_function()
    assert one is not None, program.one_function_reason
    print(json.dumps(dict(zip(("loaded", "compiled"), compile_counts(one.fn)))))
""")


def test_the_function_is_loaded_from_the_disk_cache_in_another_process(tmp_path):
    env = dict(os.environ, COMPGRAD_CACHE_DIR=str(tmp_path / "compgrad"),
               NUMBA_CACHE_DIR=str(tmp_path / "numba"))
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    counts = []
    for _ in range(2):
        out = subprocess.run([sys.executable, "-c", _CHILD, BROADCAST], env=env, cwd=root,
                             capture_output=True, text=True, timeout=300, check=True)
        counts.append(json.loads(out.stdout.strip().splitlines()[-1]))
    assert counts[0] == {"loaded": 0, "compiled": 1}
    assert counts[1] == {"loaded": 1, "compiled": 0}

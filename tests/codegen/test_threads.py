"""codegen.threads: the process's BLAS policy. Small products run on one BLAS thread or all,
as their measured times say (ThreadChoice), and the user's thread count comes back after
them; large ones keep every thread."""

from __future__ import annotations

import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

from codegen import runtime
from codegen.threads import SERIAL_BLAS_MAX_FLOPS, matmul_flops, serial_blas
from ir.parser import parse


def _blas_threads() -> list[int]:
    return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]


@pytest.fixture
def two_blas_threads():
    if not _blas_threads():
        pytest.skip("numpy has no BLAS library threadpoolctl can control")
    with threadpool_limits(2, user_api="blas"):
        yield


def test_serial_blas_runs_on_one_thread_and_restores_the_count(two_blas_threads):
    before = _blas_threads()
    with serial_blas():
        assert set(_blas_threads()) == {1}
    assert _blas_threads() == before


def test_the_count_is_restored_when_the_product_raises(two_blas_threads):
    before = _blas_threads()
    with pytest.raises(ValueError), serial_blas():
        raise ValueError("a failing product")
    assert _blas_threads() == before


def test_flops_of_the_matmul_ops():
    assert matmul_flops("mm", [(32, 784), (784, 512)], (32, 512)) == 2 * 32 * 784 * 512
    assert matmul_flops("addmm", [(512,), (32, 784), (784, 512)], (32, 512)) == \
        2 * 32 * 784 * 512
    assert matmul_flops("einsum", [(4, 4)], (4,)) == float("inf")


def test_small_products_are_serial_and_large_ones_are_not(two_blas_threads):
    graph = parse("""
graph f(%a: f32[32,784], %b: f32[784,512], %c: f32[1024,1024]) {
  %0 = mm(%a, %b) : f32[32,512]
  %1 = mm(%c, %c) : f32[1024,1024]
  return %0, %1
}
""")
    steps = [runtime._NodeStep(n) for n in graph.nodes]
    assert [s.serial_blas for s in steps] == [True, False]
    assert 2 * 1024 ** 3 >= SERIAL_BLAS_MAX_FLOPS > 2 * 32 * 784 * 512
    rng = np.random.default_rng(0)
    feeds = [rng.standard_normal(v.type.shape).astype(np.float32) for v in graph.inputs]
    before = _blas_threads()
    outs, _ = runtime.CompiledProgram(graph).run(feeds)
    np.testing.assert_allclose(outs[0], feeds[0] @ feeds[1], rtol=1e-4, atol=1e-4)
    assert _blas_threads() == before


def test_a_run_changes_the_count_only_when_a_product_needs_another(two_blas_threads, monkeypatch):
    from codegen import threads
    graph = parse("""
graph f(%a: f32[32,784], %b: f32[784,512], %c: f32[1024,1024]) {
  %0 = mm(%a, %b) : f32[32,512]
  %1 = mm(%a, %b) : f32[32,512]
  %2 = mm(%c, %c) : f32[1024,1024]
  %3 = mm(%a, %b) : f32[32,512]
  return %0, %1, %2, %3
}
""")
    rng = np.random.default_rng(0)
    feeds = [rng.standard_normal(v.type.shape).astype(np.float32) for v in graph.inputs]
    program = runtime.CompiledProgram(graph)
    program.run(feeds)   # the first run also checks each small product's bits per count
    calls = []
    controllers = threads._controllers()
    for c in controllers:
        original = c.set_num_threads

        def record(n, c=c, original=original):
            calls.append((id(c), n))
            return original(n)

        monkeypatch.setattr(c, "set_num_threads", record)
    before = _blas_threads()
    program.run(feeds)
    per_library = [[n for key, n in calls if key == id(c)] for c in controllers]
    # one thread for the two small products, all for the large one, one again, all at the end
    assert all(seen == [1, 2, 1, 2] for seen in per_library)
    assert _blas_threads() == before


def _drive(choice, times_of, calls):
    """Run ``calls`` calls of ``choice`` taking ``times_of(serial)`` seconds; the counts
    it chose, True for one thread."""
    seen = []
    for _ in range(calls):
        serial = choice.serial()
        seen.append(serial)
        choice.record(serial, times_of(serial))
    return seen


def test_a_thread_choice_measures_both_counts_then_keeps_the_faster():
    from codegen.threads import WARMUP_CALLS, ThreadChoice
    fast_parallel = ThreadChoice()
    seen = _drive(fast_parallel, lambda serial: 3e-4 if serial else 2e-4, 2 * WARMUP_CALLS + 10)
    assert seen[:2 * WARMUP_CALLS] == [True] * WARMUP_CALLS + [False] * WARMUP_CALLS
    assert seen[2 * WARMUP_CALLS:] == [False] * 10
    fast_serial = ThreadChoice()
    seen = _drive(fast_serial, lambda serial: 2e-4 if serial else 3e-4, 2 * WARMUP_CALLS + 10)
    assert seen[2 * WARMUP_CALLS:] == [True] * 10


def test_the_other_count_is_tried_at_doubling_intervals_while_it_loses():
    from codegen.threads import PROBE_MAX_CALLS, PROBE_MIN_CALLS, WARMUP_CALLS, ThreadChoice
    choice = ThreadChoice()
    seen = _drive(choice, lambda serial: 3e-4 if serial else 2e-4, 20000)
    tries = [i for i, serial in enumerate(seen) if serial and i >= WARMUP_CALLS]
    gaps = [b - a for a, b in zip(tries, tries[1:])]
    assert tries[0] == 2 * WARMUP_CALLS + PROBE_MIN_CALLS - 1
    assert gaps[:3] == [2 * PROBE_MIN_CALLS, 4 * PROBE_MIN_CALLS, 8 * PROBE_MIN_CALLS]
    assert max(gaps) == PROBE_MAX_CALLS and gaps[-1] == PROBE_MAX_CALLS


def test_a_count_that_slows_down_under_load_is_given_up_and_taken_back_later():
    from codegen.threads import PROBE_MAX_CALLS, PROBE_MIN_CALLS, ThreadChoice
    choice = ThreadChoice()
    load = {"busy": False}

    def times_of(serial):
        if serial:
            return 3e-4
        return 2e-2 if load["busy"] else 2e-4    # two threads wait for a busy core

    assert _drive(choice, times_of, 50)[-1] is False
    load["busy"] = True
    seen = _drive(choice, times_of, 50)
    assert seen[1:PROBE_MIN_CALLS] == [True] * (PROBE_MIN_CALLS - 1)   # after one slow call
    assert seen.count(False) <= 3            # and tries at growing intervals
    load["busy"] = False
    seen = _drive(choice, times_of, 2 * PROBE_MAX_CALLS)
    assert seen[-PROBE_MIN_CALLS + 1:] == [False] * (PROBE_MIN_CALLS - 1)   # found fast again


def test_a_product_whose_bits_depend_on_the_thread_count_keeps_one_thread(two_blas_threads,
                                                                          monkeypatch):
    graph = parse("""
graph f(%a: f32[32,64], %b: f32[64,48]) {
  %0 = mm(%a, %b) : f32[32,48]
  return %0
}
""")
    rng = np.random.default_rng(0)
    feeds = [rng.standard_normal(v.type.shape).astype(np.float32) for v in graph.inputs]
    for differs in (False, True):
        program = runtime.CompiledProgram(graph)
        step = program.steps[0]

        def compute(self, env, differs=differs):
            a, b = (env[v] for v in self.node.inputs)
            out = (a[:, :, None] * b[None]).sum(1)   # without BLAS: the same bits always
            if differs and threads_now() > 1:        # as OpenBLAS does for some shapes
                out = np.nextafter(out, np.inf)
            return (out,)

        monkeypatch.setattr(type(step), "compute", compute)
        monkeypatch.setattr(type(step), "compute_apart", compute)
        outs = [program.run(feeds)[0][0].copy() for _ in range(12)]
        assert (step.threads is None) is differs
        if differs:
            assert all(np.array_equal(o, outs[0]) for o in outs)   # every call the same
        monkeypatch.undo()


def threads_now() -> int:
    return max(_blas_threads())

"""codegen.threads: the process's BLAS policy. Small products run on one BLAS thread and
the user's thread count comes back after them; large ones keep every thread."""

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
    calls = []
    controllers = threads._controllers()
    for c in controllers:
        original = c.set_num_threads

        def record(n, c=c, original=original):
            calls.append((id(c), n))
            return original(n)

        monkeypatch.setattr(c, "set_num_threads", record)
    rng = np.random.default_rng(0)
    feeds = [rng.standard_normal(v.type.shape).astype(np.float32) for v in graph.inputs]
    before = _blas_threads()
    runtime.CompiledProgram(graph).run(feeds)
    per_library = [[n for key, n in calls if key == id(c)] for c in controllers]
    # one thread for the two small products, all for the large one, one again, all at the end
    assert all(seen == [1, 2, 1, 2] for seen in per_library)
    assert _blas_threads() == before

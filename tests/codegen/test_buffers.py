"""codegen.buffers and the runtime's memory rules: large kernel outputs come from a pool
that hands a buffer out again only when nothing references it; values are released at
their last use so later kernels of a call reuse them; a result the user holds is never
overwritten."""

from __future__ import annotations

import numpy as np

from codegen.buffers import POOL_MIN_BYTES, BufferPool
from codegen.runtime import CompiledProgram
from ir.interpret import interpret
from ir.parser import parse

N = POOL_MIN_BYTES // 4 * 2   # float32 elements: a pooled size

# two big elementwise phases cut by a reduction: the first phase's output dies in the
# second phase, whose output can take its buffer
CHAIN = f"""
graph f(%x: f32[{N}]) {{
  %0 = exp(%x) : f32[{N}]
  %1 = sum(%0)[dim=(0,), keepdim=False, dtype=None] : f32[]
  %2 = amax(%0)[dim=(0,), keepdim=False] : f32[]
  %3 = div(%0, %2) : f32[{N}]
  %4 = mul(%3, %1) : f32[{N}]
  %5 = cumsum(%4)[dim=0, dtype=None] : f32[{N}]
  %6 = neg(%5) : f32[{N}]
  return %6
}}
"""


def _x(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(N).astype(np.float32)


def test_a_free_buffer_is_handed_out_again():
    pool = BufferPool()
    a = pool.empty((N,), np.float32)
    address = a.ctypes.data
    del a
    b = pool.empty((N,), np.float32)
    assert b.ctypes.data == address and pool.reused == 1


def test_a_held_buffer_or_a_view_of_it_is_never_handed_out():
    pool = BufferPool()
    a = pool.empty((N,), np.float32)
    b = pool.empty((N,), np.float32)
    assert not np.shares_memory(a, b)
    view = b[::2]
    del b
    c = pool.empty((N,), np.float32)
    assert not np.shares_memory(c, view) and not np.shares_memory(c, a)


def test_small_arrays_are_not_pooled():
    pool = BufferPool()
    pool.empty((4,), np.float32)
    assert pool.allocated == 0 and pool.nbytes() == 0


def test_results_the_user_holds_survive_later_calls():
    graph = parse(CHAIN)
    program = CompiledProgram(graph)
    held = [program.run([_x(seed)])[0][0] for seed in range(3)]
    for seed, out in enumerate(held):
        np.testing.assert_allclose(out, interpret(graph, [_x(seed)]).outputs[0], rtol=1e-5)


def test_released_results_and_dead_values_are_reused():
    graph = parse(CHAIN)
    program = CompiledProgram(graph)
    for seed in range(4):
        out = program.run([_x(seed)])[0][0]
        np.testing.assert_allclose(out, interpret(graph, [_x(seed)]).outputs[0], rtol=1e-5)
        del out
    # the first call needs at most two live big buffers at once; later calls reuse them
    assert program.pool.allocated <= 2
    assert program.pool.reused >= 3


def test_large_products_write_into_pooled_buffers():
    graph = parse("""
graph f(%a: f32[256,128], %b: f32[128,512]) {
  %0 = mm(%a, %b) : f32[256,512]
  return %0
}
""")
    program = CompiledProgram(graph)
    rng = np.random.default_rng(0)
    feeds = [[rng.standard_normal(v.type.shape).astype(np.float32) for v in graph.inputs]
             for _ in range(3)]
    held = program.run(feeds[0])[0][0]            # kept: never written again
    for f in feeds[1:]:
        out = program.run(f)[0][0]
        np.testing.assert_allclose(out, f[0] @ f[1], rtol=1e-5, atol=1e-5)
        del out                                    # dropped: its buffer is reused
    np.testing.assert_allclose(held, feeds[0][0] @ feeds[0][1], rtol=1e-5, atol=1e-5)
    assert program.pool.allocated == 2 and program.pool.reused == 1

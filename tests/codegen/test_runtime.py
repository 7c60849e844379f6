"""codegen.runtime: captured graphs run through the pass pipeline and generated kernels
give the interpreter's results; structure (kernel counts) and buffer rules."""

from __future__ import annotations

import numpy as np
import pytest

from codegen import runtime
from codegen.runtime import CompiledProgram
from ir.interpret import interpret
from ir.parser import parse

GELU = """
graph gelu(%x: f32[4096]) {
  %0 = mul(%x, %x) : f32[4096]
  %1 = mul(%0, %x) : f32[4096]
  %2 = mul(%1, 0.044715) : f32[4096]
  %3 = add(%x, %2) : f32[4096]
  %4 = mul(%3, 0.7978845608) : f32[4096]
  %5 = tanh(%4) : f32[4096]
  %6 = add(%5, 1.0) : f32[4096]
  %7 = mul(%x, 0.5) : f32[4096]
  %8 = mul(%7, %6) : f32[4096]
  %9 = sum(%8)[dim=(0,), keepdim=False, dtype=None] : f32[]
  return %9, %8
}
"""


def _feeds(graph, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for v in graph.inputs:
        if v.type.weak:
            out.append(0.5)
        else:
            out.append(rng.standard_normal(v.type.shape).astype(v.type.dtype.np_dtype))
    return out


def _same(graph, program, feeds):
    ref = interpret(graph, [np.copy(f) if isinstance(f, np.ndarray) else f for f in feeds])
    outs, muts = program.run(feeds)
    for a, b in zip(ref.outputs + [m for _, m in ref.mutations], outs + muts):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=2e-6, atol=1e-6)
    return outs


def test_an_elementwise_chain_is_one_kernel():
    graph = parse(GELU)
    program = CompiledProgram(graph)
    assert program.stats.kernels == 1 and program.stats.interpreted_phases == 0
    _same(graph, program, _feeds(graph))


def test_outputs_are_fresh_arrays_each_call():
    graph = parse(GELU)
    program = CompiledProgram(graph)
    first = program.run(_feeds(graph, 1))[0]
    kept = [np.copy(a) for a in first]
    second = program.run(_feeds(graph, 2))[0]
    for a, b, k in zip(first, second, kept):
        assert not np.shares_memory(a, b)
        np.testing.assert_array_equal(a, k)   # a later call did not overwrite it


def test_broadcast_inputs_and_scalars():
    graph = parse("""
graph f(%x: f32[8,16], %b: f32[16], %s: f64[] weak, %z: f32[]) {
  %0 = add(%x, %b) : f32[8,16]
  %1 = mul(%0, %s) : f32[8,16]
  %2 = sub(%1, %z) : f32[8,16]
  %3 = relu(%2) : f32[8,16]
  return %3
}
""")
    program = CompiledProgram(graph)
    assert program.stats.kernels == 1
    _same(graph, program, _feeds(graph))


def test_mutations_are_returned_in_order():
    graph = parse("""
graph step(%p: f32[64] param, %g: f32[64] grad, %lr: f64[] weak) {
  %0 = mul(%g, %lr) : f32[64]
  %1 = sub(%p, %0) : f32[64]
  return
  mutate %p <- %1
}
""")
    program = CompiledProgram(graph)
    feeds = _feeds(graph)
    outs, muts = program.run(feeds)
    assert outs == [] and len(muts) == 1
    np.testing.assert_allclose(muts[0], feeds[0] - feeds[1] * np.float32(0.5), rtol=1e-6)


def test_a_grad_set_to_none_is_a_none_mutation():
    # ``mutate grad(%p) <- None`` (``p.grad = None``) returns None, as the interpreter does
    graph = parse("""
graph step(%p: f32[4] param) {
  %0 = mul(%p, 2) : f32[4]
  return %0
  mutate grad(%p) <- None
}
""")
    feeds = _feeds(graph)
    outs, muts = CompiledProgram(graph).run(feeds)
    assert muts == [None] == [arr for _, arr in interpret(graph, feeds).mutations]
    np.testing.assert_array_equal(outs[0], feeds[0] * 2)


def test_an_op_without_a_scalar_expression_runs_on_the_interpreter():
    graph = parse("""
graph f(%x: f32[32]) {
  %0 = mul(%x, 0.5) : f32[32]
  %1 = erfinv(%0) : f32[32]
  %2 = add(%1, 1.0) : f32[32]
  return %2
}
""")
    program = CompiledProgram(graph)
    assert program.stats.interpreted_phases == 1
    feeds = [np.linspace(-0.9, 0.9, 32, dtype=np.float32)]
    _same(graph, program, feeds)


def test_errors_name_the_ir_node():
    graph = parse("""
graph f(%x: f32[4], %i: i64[1]) {
  %0 = index_select(%x, %i)[dim=0] : f32[1]  # user.py:7
  %1 = mul(%0, 2.0) : f32[1]
  return %1
}
""")
    program = CompiledProgram(graph)
    with pytest.raises(IndexError) as e:
        program.run([np.ones(4, np.float32), np.array([9])])
    assert any("index_select" in n and "user.py:7" in n for n in e.value.__notes__)


def test_dumps_each_pass(tmp_path):
    graph = parse(GELU)
    CompiledProgram(graph, dump_dir=str(tmp_path))
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["gelu.01-decompose.ir", "gelu.02-simplify.ir", "gelu.03-fuse.ir",
                     "gelu.04-schedule.ir"]


@pytest.mark.parametrize("dims, keepdim, op", [
    ((1,), False, "sum"), ((0,), True, "sum"), ((0, 1), False, "mean"), ((1,), True, "mean")])
def test_reductions_fused_into_the_loop(dims, keepdim, op):
    out_shape = [s for d, s in enumerate((64, 48)) if d not in dims or keepdim]
    out_shape = [1 if d in dims else s for d, s in enumerate((64, 48))] if keepdim else out_shape
    out_type = f"f32[{','.join(map(str, out_shape))}]"
    graph = parse(f"""
graph f(%x: f32[64,48], %y: f32[64,48]) {{
  %0 = mul(%x, %y) : f32[64,48]
  %1 = exp(%0) : f32[64,48]
  %2 = {op}(%1)[dim={dims!r}, keepdim={keepdim}, dtype=None] : {out_type}
  %3 = mul(%x, %x) : f32[64,48]
  %4 = {op}(%3)[dim={dims!r}, keepdim={keepdim}, dtype=None] : {out_type}
  %5 = add(%2, %4) : {out_type}
  return %5
}}
""")
    program = CompiledProgram(graph)
    # over trailing dims both reductions, their prologues and the add are one rows
    # kernel; otherwise fusion makes one group per reduction (with its prologue): each
    # is one loop, and the add after them another
    kernels = 1 if dims[-1] == 1 else 3
    assert program.stats.kernels == kernels and program.stats.interpreted_phases == 0
    _same(graph, program, _feeds(graph))


def test_a_small_rows_group_runs_without_a_kernel(monkeypatch):
    # log_softmax over 10 classes: a rows group; below the size where its kernel's
    # compile time pays, the body runs on the reference implementation
    monkeypatch.setattr(runtime, "ROWS_KERNEL_MIN_ELEMENTS", 1 << 16)
    graph = parse("""
graph f(%x: f32[32,10]) {
  %0 = log_softmax(%x)[dim=1, dtype=None] : f32[32,10]
  return %0
}
""")
    program = CompiledProgram(graph)
    assert [n.attrs["kind"] for n in program.graph.nodes if n.op.name == "fused"] == ["rows"]
    assert program.stats.kernels == 0 and program.stats.interpreted_phases == 1
    _same(graph, program, _feeds(graph))
    monkeypatch.setattr(runtime, "ROWS_KERNEL_MIN_ELEMENTS", 0)
    assert CompiledProgram(graph).stats.kernels == 1

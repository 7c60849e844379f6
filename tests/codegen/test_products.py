"""codegen.products: matrix products (mm, matmul, bmm and the scaled addmm, addmv,
baddbmm -- Linear's forward) run as one BLAS call into a pooled buffer, with the
interpreter's results bit for bit (a few-row product with a transposed right factor is
computed as its transpose by both: ``ir.ops.linalg.blas_matmul``'s rule). Also the
small groups a W1 step runs on the interpreter, now in one loop each."""

from __future__ import annotations

import numpy as np
import pytest

import compgrad
from benchmarks import mlp_step
from benchmarks.compiled.programs import build_mlp
from codegen import products, runtime
from codegen.runtime import CompiledProgram
from ir.interpret import interpret
from ir.opdef import OpKind
from ir.ops import linalg
from ir.parser import parse


def _leaves(steps):
    """Every step of a plan, fused groups opened."""
    for s in steps:
        if isinstance(s, runtime._FusedStep):
            yield from _leaves(s.steps)
        else:
            yield s


def _feeds(graph, seed=0, nan_input=False):
    rng = np.random.default_rng(seed)
    feeds = [rng.standard_normal(v.type.shape).astype(v.type.dtype.np_dtype)
             for v in graph.inputs]
    if nan_input:
        feeds[0][...] = np.nan
    return feeds


def _check(text: str, op: str, *, exact: bool, nan_input=False):
    """Compile ``text`` without passes (the nodes stay as written), check that ``op``
    runs as a product step, and compare each output with the interpreter's."""
    graph = parse(text)
    program = CompiledProgram(graph, passes=[])
    steps = [s for s in _leaves(program.steps) if s.node.op.name == op]
    assert steps and all(isinstance(s, runtime._ProductStep) for s in steps)
    for seed in range(2):
        feeds = _feeds(graph, seed, nan_input)
        ref = interpret(graph, [np.copy(f) for f in feeds]).outputs
        outs, _ = program.run(feeds)
        for got, want in zip(outs, ref):
            assert got.shape == want.shape and got.dtype == want.dtype
            if exact:
                np.testing.assert_array_equal(got, want)
            else:
                np.testing.assert_allclose(got, want, rtol=2e-6, atol=2e-6)
    return program


def _permuted(name: str, shape: tuple, dtype: str = "f32") -> tuple[str, str]:
    """(an input declaration, a line making ``%name``) for an operand of ``shape``
    given as the transpose of a row-major ``[shape[1], shape[0]]`` input."""
    rows, cols = shape
    return (f"%{name}_t: {dtype}[{cols},{rows}]",
            f"  %{name} = permute(%{name}_t)[dims=(1, 0)] : {dtype}[{rows},{cols}]")


@pytest.mark.parametrize("bias", ["512", "32,512", "32,1", "1,512"])
@pytest.mark.parametrize("beta, alpha", [(1, 1), (0.5, 2.0), (1, -1.5), (2, 1)])
def test_addmm_matches_the_interpreter_bit_for_bit(bias, beta, alpha):
    _check(f"""
graph f(%c: f32[{bias}], %a: f32[32,64], %b: f32[64,512]) {{
  %0 = addmm(%c, %a, %b)[beta={beta}, alpha={alpha}] : f32[32,512]
  return %0
}}""", "addmm", exact=True)


def test_addmm_with_a_scalar_input_and_float64():
    _check("""
graph f(%c: f64[], %a: f64[8,16], %b: f64[16,4]) {
  %0 = addmm(%c, %a, %b)[beta=0.25, alpha=3] : f64[8,4]
  return %0
}""", "addmm", exact=True)


def test_addmm_with_beta_zero_ignores_the_input_nans_included():
    program = _check("""
graph f(%c: f32[8,4], %a: f32[8,16], %b: f32[16,4]) {
  %0 = addmm(%c, %a, %b)[beta=0, alpha=1] : f32[8,4]
  return %0
}""", "addmm", exact=True, nan_input=True)
    feeds = _feeds(program.graph, nan_input=True)
    assert np.isfinite(program.run(feeds)[0][0]).all()


@pytest.mark.parametrize("left_t", [False, True])
@pytest.mark.parametrize("right_t", [False, True])
def test_addmm_transposed_operands(left_t, right_t):
    # Linear's forward is addmm(bias, x, weight.T): the weight's permute is passed to
    # BLAS as a view; a product of few rows with a transposed right factor is computed
    # as its transpose (the layout swap) by the kernel and the reference alike
    decls, lines = [], []
    for name, shape, transposed in (("a", (32, 128), left_t), ("b", (128, 256), right_t)):
        if transposed:
            decl, line = _permuted(name, shape)
            decls.append(decl)
            lines.append(line)
        else:
            decls.append(f"%{name}: f32[{shape[0]},{shape[1]}]")
    body = "\n".join(lines)
    program = _check(f"""
graph f(%c: f32[256], {", ".join(decls)}) {{
{body}
  %0 = addmm(%c, %a, %b)[beta=1, alpha=1] : f32[32,256]
  return %0
}}""", "addmm", exact=True)
    step = next(s for s in _leaves(program.steps) if s.node.op.name == "addmm")
    assert step.kernel.swappable     # 32 rows < 256 columns: decided per call by layout
    out = program.run(_feeds(program.graph))[0][0]
    assert out.flags.c_contiguous    # the swapped product is copied back to row-major


def test_no_swap_for_many_rows_or_narrow_results():
    graph = parse(f"""
graph f(%a: f32[{linalg.SWAP_MAX_ROWS + 1},64], %b: f32[64,512], %c: f32[32,64],
        %d: f32[64,16], %e: f32[4,64], %f: f32[4,8], %g: f32[8,512]) {{
  %0 = mm(%a, %b) : f32[{linalg.SWAP_MAX_ROWS + 1},512]
  %1 = mm(%c, %d) : f32[32,16]
  %2 = mm(%e, %b) : f32[4,512]
  %3 = mm(%f, %g) : f32[4,512]
  return %0, %1, %2, %3
}}""")
    # too many rows, too few columns, swapped, a right factor too small to pay
    assert [products.product_kernel(n).swappable for n in graph.nodes] == [
        False, False, True, False]


def test_addmv_matches_the_interpreter():
    _check("""
graph f(%c: f32[16], %a: f32[16,32], %v: f32[32]) {
  %0 = addmv(%c, %a, %v)[beta=0.5, alpha=2] : f32[16]
  return %0
}""", "addmv", exact=True)


@pytest.mark.parametrize("bias", ["3,5,7", "7", "5,1"])
def test_baddbmm_matches_the_interpreter(bias):
    _check(f"""
graph f(%c: f32[{bias}], %a: f32[3,5,6], %b: f32[3,6,7]) {{
  %0 = baddbmm(%c, %a, %b)[beta=0.5, alpha=-1.5] : f32[3,5,7]
  return %0
}}""", "baddbmm", exact=True)


def test_baddbmm_with_a_transposed_batch_operand():
    _check("""
graph f(%c: f32[7], %a: f32[3,5,6], %b_t: f32[3,7,6]) {
  %b = permute(%b_t)[dims=(0, 2, 1)] : f32[3,6,7]
  %0 = baddbmm(%c, %a, %b)[beta=1, alpha=1] : f32[3,5,7]
  return %0
}""", "baddbmm", exact=True)


@pytest.mark.parametrize("op, a, b, out", [
    ("mm", "16,8", "8,64", "16,64"),
    ("matmul", "2,16,8", "8,64", "2,16,64"),
    ("matmul", "8", "8,64", "64"),
    ("bmm", "2,16,8", "2,8,4", "2,16,4")])
def test_plain_products_match_the_interpreter(op, a, b, out):
    _check(f"""
graph f(%a: f32[{a}], %b: f32[{b}]) {{
  %0 = {op}(%a, %b) : f32[{out}]
  return %0
}}""", op, exact=True)


def test_float16_and_integer_products_stay_on_the_reference():
    graph = parse("""
graph f(%a: f16[4,8], %b: f16[8,4], %c: i64[4], %i: i64[4,8], %j: i64[8,4]) {
  %0 = mm(%a, %b) : f16[4,4]
  %1 = addmm(%c, %i, %j)[beta=1, alpha=2] : i64[4,4]
  return %0, %1
}""")
    assert [products.product_kernel(n) for n in graph.nodes] == [None, None]
    program = CompiledProgram(graph, passes=[])
    assert not any(isinstance(s, runtime._ProductStep) for s in _leaves(program.steps))


def test_products_write_into_pooled_buffers():
    graph = parse("""
graph f(%c: f32[512], %a: f32[256,128], %b_t: f32[512,128]) {
  %b = permute(%b_t)[dims=(1, 0)] : f32[128,512]
  %0 = addmm(%c, %a, %b)[beta=1, alpha=1] : f32[256,512]
  return %0
}""")
    program = CompiledProgram(graph, passes=[])
    feeds = [_feeds(graph, seed) for seed in range(3)]
    held = program.run(feeds[0])[0][0]            # kept: never written again
    for f in feeds[1:]:
        out = program.run(f)[0][0]
        np.testing.assert_array_equal(out, interpret(graph, f).outputs[0])
        del out                                    # dropped: its buffer is reused
    np.testing.assert_array_equal(held, interpret(graph, feeds[0]).outputs[0])
    assert program.pool.allocated == 2 and program.pool.reused == 1


# --- a W1-like graph -------------------------------------------------------------------------

MLP_FORWARD = """
graph mlp(%x: f32[32,64], %y: i64[32], %w1: f32[48,64] param, %b1: f32[48] param,
          %w2: f32[10,48] param, %b2: f32[10] param) {
  %0 = permute(%w1)[dims=(1, 0)] : f32[64,48]
  %1 = addmm(%b1, %x, %0)[beta=1, alpha=1] : f32[32,48]
  %2 = relu(%1) : f32[32,48]
  %3 = permute(%w2)[dims=(1, 0)] : f32[48,10]
  %4 = addmm(%b2, %2, %3)[beta=1, alpha=1] : f32[32,10]
  %5 = log_softmax(%4)[dim=1, dtype=None] : f32[32,10]
  return %5
}
"""


def test_a_linear_stack_has_no_interpreted_product():
    graph = parse(MLP_FORWARD)
    program = CompiledProgram(graph)
    leaves = list(_leaves(program.steps))
    assert sum(isinstance(s, runtime._ProductStep) and s.node.op.name == "addmm"
               for s in leaves) == 2
    assert not [s.node.op.name for s in leaves if type(s) is runtime._NodeStep
                and s.node.op.kind is OpKind.MATMUL]
    feeds = _feeds(graph)
    feeds[1] = np.arange(32) % 10
    np.testing.assert_allclose(program.run(feeds)[0][0], interpret(graph, feeds).outputs[0],
                               rtol=2e-6, atol=2e-6)


SIZES = (64, 48, 48, 10)
BATCH = 16


def _mlp(seed: int = 0):
    compgrad.manual_seed(seed)
    model = build_mlp(compgrad, SIZES)   # Linear layers with ReLU between, as W1
    optimizer = compgrad.optim.SGD(model.parameters(), lr=mlp_step.LR, momentum=mlp_step.MOMENTUM)
    return model, compgrad.nn.CrossEntropyLoss(), optimizer


def test_w1_step_runs_no_product_and_no_small_node_on_the_per_node_interpreter(monkeypatch):
    # the runtime's own size rule (the package fixture gives every rows group a kernel):
    # W1's cross-entropy groups run on the interpreter, in one loop each
    monkeypatch.setattr(runtime, "ROWS_KERNEL_MIN_ELEMENTS", 1 << 16)
    rng = np.random.default_rng(1)
    batches = [(compgrad.from_numpy(rng.standard_normal((BATCH, SIZES[0])).astype(np.float32)),
                compgrad.from_numpy(rng.integers(0, SIZES[-1], BATCH, dtype=np.int64)))
               for _ in range(3)]
    compiled, eager = _mlp(), _mlp()
    step = compgrad.compile(mlp_step.train_step)
    losses = [step(*compiled, x, y).item() for x, y in batches]
    eager_losses = [mlp_step.train_step(*eager, x, y).item() for x, y in batches]
    np.testing.assert_allclose(losses, eager_losses, rtol=1e-5)
    for (name, p), (_, q) in zip(compiled[0].named_parameters(), eager[0].named_parameters()):
        np.testing.assert_allclose(p.detach().numpy(), q.detach().numpy(), rtol=1e-5,
                                   atol=1e-6, err_msg=name)
    programs = [p.compiled for p in step.programs.values()]
    assert programs
    for program in programs:
        leaves = list(_leaves(program.steps))
        ops = {type(s).__name__: [] for s in leaves}
        for s in leaves:
            ops[type(s).__name__].append(getattr(s, "node", None) and s.node.op.name)
        assert ops.get("_ProductStep", []).count("addmm") == 3
        interpreted = ops.get("_NodeStep", [])
        assert "addmm" not in interpreted and "mm" not in interpreted
        assert ops.get("_InterpretedGroupStep")   # the cross-entropy rows groups


# --- the steps around products -------------------------------------------------------------

def test_a_small_group_runs_in_one_loop_with_fp_errors_ignored(monkeypatch):
    monkeypatch.setattr(runtime, "ROWS_KERNEL_MIN_ELEMENTS", 1 << 16)
    graph = parse("""
graph f(%x: f32[8,10]) {
  %0 = log_softmax(%x)[dim=1, dtype=None] : f32[8,10]
  %1 = log(%0) : f32[8,10]
  return %1
}
""")
    program = CompiledProgram(graph)
    assert any(isinstance(s, runtime._InterpretedGroupStep) for s in program.steps)
    feeds = _feeds(graph)
    with np.errstate(all="raise"):        # log of negative numbers: nan, never an error
        out = program.run([np.copy(f) for f in feeds])[0][0]
    ref = interpret(graph, feeds).outputs[0]
    np.testing.assert_array_equal(np.isnan(out), np.isnan(ref))
    np.testing.assert_allclose(out, ref, rtol=1e-6)


def test_an_error_in_a_small_group_names_the_ir_node(monkeypatch):
    monkeypatch.setattr(runtime, "ROWS_KERNEL_MIN_ELEMENTS", 1 << 16)
    graph = parse("""
graph f(%i: i64[8,10], %j: i64[8,10]) {
  %0 = div(%i, %j)[rounding_mode="floor"] : i64[8,10]  # user.py:3
  %1 = to_dtype(%0)[dtype=float32] : f32[8,10]
  %2 = log_softmax(%1)[dim=1, dtype=None] : f32[8,10]
  return %2
}
""")
    program = CompiledProgram(graph)
    assert [type(s) for s in program.steps] == [runtime._InterpretedGroupStep]
    ones = np.ones((8, 10), np.int64)
    np.testing.assert_allclose(program.run([ones, ones])[0][0],
                               interpret(graph, [ones, ones]).outputs[0], rtol=1e-6)
    with pytest.raises(RuntimeError, match="ZeroDivisionError") as e:
        program.run([ones, np.zeros_like(ones)])
    assert any("div" in n and "user.py:3" in n for n in e.value.__notes__)


def test_products_never_warn_on_inf_or_nan():
    graph = parse("""
graph f(%c: f32[4], %a: f32[4,8], %b: f32[8,4]) {
  %0 = addmm(%c, %a, %b)[beta=1, alpha=2] : f32[4,4]
  %1 = mm(%a, %b) : f32[4,4]
  return %0, %1
}""")
    program = CompiledProgram(graph, passes=[])
    feeds = _feeds(graph)
    feeds[1][0, 0] = np.inf
    feeds[2][0, :] = 0.0                  # inf * 0: nan, which NumPy would warn about
    feeds[1][1, :] = 3e38                 # overflows (and its double, alpha=2)
    with np.errstate(all="raise"):
        outs, _ = program.run(feeds)
    for got, want in zip(outs, interpret(graph, feeds).outputs):
        np.testing.assert_array_equal(got, want)

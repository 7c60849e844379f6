"""The CUDA generator's pure parts, in the test process (no kernel runs here): index
arithmetic against NumPy, view folding against each view op's reference, the CUDA forms
of every helper and NumPy function a scalar expression can call, what has no CUDA form,
and the shape of the generated modules."""

from __future__ import annotations

import itertools
import math
import re

import numpy as np
import pytest

from codegen import cuda_math, cuda_numpy
from codegen.cuda import Unsupported, kernel_source, plan_cuda
from codegen.cuda_exprs import missing_forms, ravel, unravel, view_source
from codegen.cuda_launch import DEFAULT_CONFIG, LaunchConfig
from codegen.mathfns import FUNCTIONS, MODULE_ALIAS
from ir.interpret import run_node
from ir.parser import parse
from passes.fusion import fuse


def _eval(text: str, **names) -> int:
    return eval(text, {}, names)   # noqa: S307 - generated index arithmetic


@pytest.mark.parametrize("shape", [(), (5,), (3, 1, 4), (2, 3, 4, 5), (1, 1), (7, 1)])
def test_unravel_and_ravel_agree_with_numpy(shape):
    coords = unravel("i", shape)
    for i in range(math.prod(shape)):
        got = tuple(_eval(c, i=i) for c in coords)
        assert got == np.unravel_index(i, shape)
        assert _eval(ravel(list(map(str, got)), shape)) == i


VIEWS = """graph f(%a: f32[2,3,6], %b: f32[4,1], %d: f32[5,12], %e: f32[6,1,2]) {
  %0 = reshape(%a)[shape=(4, 9)] : f32[4,9]
  %1 = reshape(%e)[shape=(6, 2, 1)] : f32[6,2,1]
  %2 = expand(%b)[shape=(3, 4, 9)] : f32[3,4,9]
  %3 = permute(%a)[dims=(2, 0, 1)] : f32[6,2,3]
  %4 = narrow(%d)[dim=1, start=2, length=9] : f32[5,9]
  %5 = select(%d)[dim=0, index=3] : f32[12]
  %6 = getitem(%d)[spec=(("s", 1, 5, 2), None, ("s", 0, 12, 5))] : f32[2,1,3]
  %7 = getitem(%a)[spec=(1, None, ("s", 1, 3, 1))] : f32[1,2,6]
  %8 = view(%a)[shape=(6, 6)] : f32[6,6]
  return %0, %1, %2, %3, %4, %5, %6, %7, %8
}"""


@pytest.mark.parametrize("index", range(9))
def test_view_coordinates_read_the_element_the_view_shows(index):
    graph = parse(VIEWS)
    node = graph.nodes[index]
    src = node.inputs[0]
    base = np.arange(math.prod(src.shape), dtype=np.float32).reshape(src.shape)
    (view,) = run_node(node, [base])
    names = [f"c{d}" for d in range(view.ndim)]
    coords = view_source(node, names)
    for out in itertools.product(*map(range, view.shape)):
        at = tuple(_eval(c, **dict(zip(names, out))) for c in coords)
        assert base[at] == view[out]


def _expressions() -> list[str]:
    from codegen.scalar import scalar_expr
    from tests.codegen._cases import recorded_cases
    texts = []
    for case in recorded_cases():
        names = [f"a{i}" for i in range(len(case.types))]
        text = scalar_expr(case.op, names, case.types, case.out, dict(case.attrs))
        if text is not None:
            texts.append(text)
    return texts


def test_every_helper_and_numpy_name_an_expression_uses_has_a_cuda_form():
    texts = _expressions()
    assert texts
    for text in texts:
        assert not missing_forms(text), text
        for name in re.findall(r"\bnp\.(\w+)", text):
            assert hasattr(cuda_numpy, name), f"np.{name} in {text}"
    names = {f"{fn}_{s}" for fn in FUNCTIONS for s in ("f32", "f64")}
    names |= {"floor_divide_f32", "floor_divide_f64", "remainder_f32", "remainder_f64", "ipow"}
    assert names <= cuda_math.HELPERS
    assert missing_forms(f"{MODULE_ALIAS}.cbrt_f32(np.cbrt(x))") == {"_mf.cbrt_f32", "np.cbrt"}


def _fused(text: str) -> list:
    from passes.decompose import decompose
    from passes.pipeline import run_pipeline
    from passes.simplify import simplify
    graph = run_pipeline(parse(text), [decompose, simplify, fuse])
    return [n for n in graph.nodes if n.op.name == "fused"]


@pytest.mark.parametrize(("text", "reason"), [
    ("""graph f(%x: f32[4,5], %w: f32[5,3], %b: f32[3]) {
  %0 = matmul(%x, %w) : f32[4,3]
  %1 = add(%0, %b) : f32[4,3]
  return %1
}""", "matmul_epilogue groups"),
    ("""graph f(%x: f32[4,5]) {
  %0 = mul(%x, 0.5) : f32[4,5]
  %1 = erfinv(%0) : f32[4,5]
  return %1
}""", "erfinv has no scalar expression"),
    ("""graph f(%x: f32[4,5]) {
  %0 = exp(%x) : f32[4,5]
  %1 = prod(%0)[dim=(1,), keepdim=False, dtype=None] : f32[4]
  return %1
}""", "reductions ['prod']"),
    ("""graph f(%x: bool[4,5]) {
  %0 = amax(%x)[dim=(1,), keepdim=False] : bool[4]
  return %0
}""", "amax into bool"),
], ids=["matmul", "erfinv", "prod", "bool-amax"])
def test_groups_without_a_cuda_form_say_why(text, reason):
    (node,) = _fused(text)
    with pytest.raises(Unsupported, match=re.escape(reason)):
        kernel_source(node)
    assert plan_cuda(node, load=_no_load) is None


def _no_load(source, name):
    raise AssertionError("nothing to load")


def test_kernel_modules_are_lazily_compiled_cached_and_named_apart_from_the_cpu():
    (node,) = _fused("""graph f(%x: f32[8,6], %y: f32[6]) {
  %0 = mul(%x, %y) : f32[8,6]
  %1 = softmax(%0)[dim=1, dtype=None] : f32[8,6]
  return %1
}""")
    source = kernel_source(node)
    assert source.source == kernel_source(node).source   # deterministic: one cache entry
    assert re.search(r"# CUDA helpers: codegen.cuda_math [0-9a-f]{16}, codegen.cuda_numpy",
                     source.source)
    defs = re.findall(r"@cuda\.jit\((.*)\)\ndef (\w+)\(", source.source)
    assert defs and all(options == "cache=True" for options, _ in defs)
    assert {name for _, name in defs} == set(source.names.values())
    assert all(name.startswith("cuda_rows_") for name in source.names.values())
    # the launch configuration is part of the kernels' source (it fixes the work split)
    other = kernel_source(node, LaunchConfig(threads=128, warp_row_max=4))
    assert other.source != source.source


def test_launch_configuration():
    assert DEFAULT_CONFIG.threads == 256
    assert DEFAULT_CONFIG.blocks(1) == 1 and DEFAULT_CONFIG.blocks(0) == 1
    assert DEFAULT_CONFIG.blocks(257) == 2
    assert DEFAULT_CONFIG.blocks(10**12) == DEFAULT_CONFIG.max_blocks
    with pytest.raises(ValueError, match="multiple of 32"):
        LaunchConfig(threads=100)


def test_an_expression_calling_a_helper_without_a_cuda_form_falls_back(monkeypatch):
    (node,) = _fused("""graph f(%x: f32[4,5]) {
  %0 = tanh(%x) : f32[4,5]
  return %0
}""")
    assert kernel_source(node)
    monkeypatch.setattr(cuda_math, "HELPERS", cuda_math.HELPERS - {"tanh_f32"})
    with pytest.raises(Unsupported, match=re.escape("no CUDA form of ['_mf.tanh_f32']")):
        kernel_source(node)


def _light_cases() -> list[str]:
    from tests.codegen_cuda._cases import CASES
    return sorted(n for n in CASES if not n.startswith(("ops-", "chains-")))


@pytest.mark.parametrize("name", _light_cases())
def test_every_kernel_takes_the_inputs_and_outputs_it_names(name):
    # a finishing step inside the partial kernel (one chunk per result) reads inputs the
    # chunk loop does not: they must still be parameters
    from tests.codegen_cuda._cases import CASES
    case = CASES[name]()
    for node in case.graph.nodes:
        if node.op.name != "fused":
            continue
        try:
            source = kernel_source(node, case.config)
        except Unsupported:
            continue
        functions = re.findall(r"def \w+\((.*)\):\n((?:    .*\n?)*)", source.source)
        assert functions
        for params, body in functions:
            assert set(re.findall(r"\b([pqo]\d+)\b", body)) <= set(params.split(", "))


def test_a_reduction_groups_loops_follow_fusion():
    from codegen.cuda import _loops
    from tests.codegen_cuda._cases import _HAND_FUSED_VIEWS
    (node,) = parse(_HAND_FUSED_VIEWS).nodes
    body = node.attrs["body"]
    nodes = list(body.nodes)
    prologue, epilogue = _loops(body, nodes[1], (6, 5))
    # the view of an input stays with the prologue (folded into reads anywhere); the
    # independent mul and the views of it go with the finishing step
    assert prologue == nodes[:1]
    assert epilogue == nodes[2:]
    (mlp,) = _fused("""graph f(%g: f32[4,8], %buf: f32[8], %m: f64[] weak, %b: f32[8]) {
  %0 = sum(%g)[dim=(0,), keepdim=False, dtype=None] : f32[8]
  %1 = mul(%buf, %m) : f32[8]
  %2 = add(%1, %0) : f32[8]
  %3 = sub(%b, %2) : f32[8]
  return %2, %3
}""")
    source = kernel_source(mlp)
    assert set(source.names) == {"partial"}   # one chunk: finished in the same kernel
    assert source.outputs == tuple(mlp.attrs["body"].outputs)

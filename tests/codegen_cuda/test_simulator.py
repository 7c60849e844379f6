"""codegen.cuda's kernels on Numba's CUDA simulator, against the reference interpreter.

Every case of tests/codegen_cuda/_cases.py (elementwise groups of every registered op in
every layout, reductions of every kind and worker, rows groups: softmax, log_softmax,
layer_norm forward and backward, column sums) runs in a separate process with
``NUMBA_ENABLE_CUDASIM=1`` (conftest.py); each fused group's kernels must give the
interpreter's values. The structure tests check that the cases reach every path of the
generator: each worker kind, chunked segments with their finishing kernel, column
partials, and that exactly the reductions without a CUDA form fall back.
"""

from __future__ import annotations

import pytest

from codegen.cuda import REDUCTIONS
from tests.codegen_cuda._cases import CASES


@pytest.fixture(scope="module")
def results(cuda_checks) -> dict[str, dict]:
    return cuda_checks["simulator"]


@pytest.mark.parametrize("name", sorted(CASES))
def test_kernels_match_the_interpreter(results, name):
    result = results[name]
    assert not result["failures"], "\n".join(result["failures"])


def _groups(results) -> list[dict]:
    return [g for r in results.values() for g in r["groups"] if g.get("planned")]


def test_every_group_kind_and_worker_runs(results):
    paths = {(g["kind"], g["meta"].get("worker"), g["meta"].get("chunks", 1) > 1)
             for g in _groups(results)}
    for path in [("elementwise", None, False),
                 ("reduction", "thread", False), ("reduction", "thread", True),
                 ("reduction", "warp", False), ("reduction", "block", True),
                 ("rows", "warp", False), ("rows", "warp", True), ("rows", "block", True)]:
        assert path in paths, f"no case runs {path}"
    roles = {tuple(g["roles"]) for g in _groups(results)}
    assert ("finish", "partial") in roles and ("columns", "rows") in roles


INDEPENDENT = {   # case -> the ops of nodes neither feeding nor reading the reduction
    "reduce-momentum-sum-dim0": {"mul", "tanh"},
    "reduce-momentum-default-config": {"mul", "tanh"},
    "reduce-mean-independent-warp": {"exp", "mul"},
    "reduce-mean-independent-block-keepdim": {"exp", "mul"},
    "reduce-amax-all-independent": {"exp"},
    "reduce-amax-dim0-independent": {"mul", "reshape"},
    "reduce-independent-views-hand-fused": {"mul", "reshape"},
}


def test_independent_nodes_join_the_reductions_finishing_step(results):
    # each case is one reduction group (fusion put the independent nodes in it), run as
    # kernels; both ways of finishing run: in the partial kernel and in its own kernel
    finishing = set()
    for name, ops in INDEPENDENT.items():
        (group,) = results[name]["groups"]
        assert group["kind"] == "reduction" and group["planned"], group
        assert ops <= set(group["ops"]), name
        finishing.add(tuple(group["roles"]))
    assert finishing == {("partial",), ("finish", "partial")}
    workers = {results[name]["groups"][0]["meta"]["worker"] for name in INDEPENDENT}
    assert workers == {"thread", "warp", "block"}


def test_exactly_the_reductions_without_a_cuda_form_fall_back(results):
    groups = results["chains-reductions"]["groups"]
    planned = {op for g in groups if g.get("planned") for op in g["ops"]}
    refused = {op for g in groups if g.get("planned") is False for op in g["ops"]}
    assert set(REDUCTIONS) <= planned
    # the others (argmax, prod, var, logsumexp, ...) each name the reason
    assert not refused & set(REDUCTIONS)
    assert all("one of" in g["reason"] for g in groups if g.get("planned") is False)


def test_every_elementwise_op_with_an_expression_runs(results):
    from ir.opdef import REGISTRY, OpKind
    from tests.codegen.test_every_op import NO_KERNEL
    ran = {op for name in results if name.startswith("ops-")
           for g in results[name]["groups"] if g.get("planned") for op in g["ops"]}
    elementwise = {n for n, op in REGISTRY.items() if op.kind is OpKind.ELEMENTWISE}
    assert elementwise - ran == set(NO_KERNEL)

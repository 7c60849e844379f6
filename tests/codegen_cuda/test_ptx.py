"""codegen.cuda's kernels compiled to PTX by Numba's CUDA compiler (libNVVM, no GPU).

The simulator runs kernels as Python and cannot see typing errors; compiling every
kernel of every case (tests/codegen_cuda/_cases.py) for compute capability 8.0 does.
The PTX also shows how the reductions are built: warp shuffles, barriers only where a
block combines its warps, and no atomics anywhere. Skipped, with the reason, where
Numba cannot generate PTX (no libNVVM).
"""

from __future__ import annotations

import pytest

from tests.codegen_cuda._cases import CASES


@pytest.fixture(scope="module")
def results(cuda_checks) -> dict[str, dict]:
    ptx = cuda_checks["ptx"]
    if "unavailable" in ptx:
        pytest.skip(f"Numba cannot generate PTX here: {ptx['unavailable']}")
    return ptx


@pytest.mark.parametrize("name", sorted(CASES))
def test_kernels_compile_to_ptx(results, name):
    result = results[name]
    assert not result["failures"], "\n".join(result["failures"])
    if name != "ops-empty":   # (nothing to launch over an empty iteration space)
        assert result["kernels"] > 0


def test_reductions_use_shuffles_and_no_atomics(results):
    for name, result in results.items():
        if name.startswith("rows-") or (name.startswith("reduce-")
                                        and ("warp" in name or "block" in name)):
            assert "shfl.down" in result["ptx"], name
        assert not {"atom", "red"} & set(result["ptx"]), name


def test_block_workers_synchronise_their_warps(results):
    for name in ("reduce-sum-all-block-chunks", "rows-softmax-f32-block-3x100",
                 "rows-layer-norm-f32-block-3x70"):
        assert "bar.sync" in results[name]["ptx"]
    assert "bar.sync" not in results["rows-softmax-f32-7x13"]["ptx"]   # a warp per row

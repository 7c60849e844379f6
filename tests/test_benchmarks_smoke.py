"""Smoke test for benchmarks/eager_overhead.py: it runs and gives finite numbers.

Timings are never asserted (they depend on the machine); only that every case runs.
"""

import math

import pytest

pytest.importorskip("torch")

from benchmarks import eager_overhead as eo  # noqa: E402 - after the torch skip


def _finite(x: float) -> bool:
    return isinstance(x, float) and math.isfinite(x)


def test_run_benchmark_quick_tiny() -> None:
    result = eo.run_benchmark(rounds=2, n_ops=3, n_steps=2, progress=False)
    cases = result["cases"]
    assert {c["name"] for c in cases} >= {"add", "matmul (rg)", "mlp 2-4-1 step"}
    for case in cases:
        assert set(case["median_us"]) >= {"compgrad", "torch"}
        for contestant, samples in case["rounds_us"].items():
            assert len(samples) == 2, (case["name"], contestant)
            assert all(_finite(s) and s >= 0 for s in samples)
        assert all(_finite(v) for v in case["median_us"].values())
        assert "compgrad/torch" in case["ratios"]
        assert all(_finite(v) for v in case["ratios"].values())
    table = eo.format_table(result)
    assert "mlp 2-4-1 step" in table


@pytest.mark.parametrize("lib_name", ["compgrad", "torch", "numpy"])
def test_mlp_losses_finite(lib_name: str) -> None:
    import numpy as np
    import torch

    import compgrad

    lib = {"compgrad": compgrad, "torch": torch, "numpy": np}[lib_name]
    losses = eo.mlp_losses(lib, 3)
    assert len(losses) == 3 and all(_finite(v) for v in losses)


def test_main_quick_writes_outputs(tmp_path) -> None:
    pytest.importorskip("matplotlib")
    rc = eo.main(["--quick", "--rounds", "1", "--n-ops", "2", "--n-steps", "1",
                  "--out-dir", str(tmp_path)])
    assert rc == 0
    assert (tmp_path / "eager_overhead.json").stat().st_size > 0
    assert (tmp_path / "eager_overhead.png").stat().st_size > 0


# ------------------------------------------------------------------- benchmarks/mlp_step.py

def test_mlp_step_quick_tiny() -> None:
    from benchmarks import mlp_step as ms

    result = ms.run_benchmark(rounds=2, n_steps=1, batches=(4,), progress=False)
    (case,) = result["cases"]
    assert case["batch"] == 4 and set(case["median_us"]) == {"compgrad", "torch", "numpy"}
    for samples in case["rounds_us"].values():
        assert len(samples) == 2 and all(_finite(s) and s >= 0 for s in samples)
    assert all(_finite(v) for v in case["ratios"].values())
    assert "batch 4" in ms.format_table(result)
    prof = ms.profile_compgrad(batch=4, steps=2)
    assert set(prof["fraction_by_category"]) == {"blas_matmul", "numpy_kernels", "copies",
                                                 "python"}
    assert math.isclose(sum(prof["fraction_by_category"].values()), 1.0, rel_tol=1e-9)
    assert prof["top_by_own_time"]


def test_mlp_step_same_losses_in_all_three() -> None:
    """The hand-written NumPy step and compgrad compute what torch computes."""
    from benchmarks import mlp_step as ms

    state = ms.initial_state()
    ref = ms.loss_trajectory("torch", state, 8, steps=3)
    for contestant in ("compgrad", "numpy"):
        losses = ms.loss_trajectory(contestant, state, 8, steps=3)
        assert all(math.isclose(a, b, rel_tol=1e-4, abs_tol=1e-5) for a, b in zip(losses, ref))


def test_mlp_step_main_quick_writes_outputs(tmp_path) -> None:
    pytest.importorskip("matplotlib")
    from benchmarks import mlp_step as ms

    rc = ms.main(["--quick", "--rounds", "1", "--n-steps", "1", "--profile-steps", "2",
                  "--out-dir", str(tmp_path)])
    assert rc == 0
    assert (tmp_path / "mlp_step.json").stat().st_size > 0
    assert (tmp_path / "mlp_step.png").stat().st_size > 0

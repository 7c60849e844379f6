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

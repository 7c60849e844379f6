"""Smoke tests for benchmarks/compiled.py (issue 7's W1-W5): the --quick path runs, every
contestant computes what torch eager computes, mismatches are reported, outputs are written.

Timings are never asserted (they depend on the machine); torch.compile is left out (its
compile alone takes longer than these tests may).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

pytest.importorskip("torch")

from benchmarks import compiled as cb  # noqa: E402 - after the torch skip
from benchmarks import harness  # noqa: E402

FAST = ["numpy", "torch", "compgrad", "compgrad.compile"]


@pytest.fixture(autouse=True)
def _private_caches(tmp_path, monkeypatch):
    """compgrad's and Numba's caches in a temporary directory (no warm cache needed)."""
    monkeypatch.setenv("COMPGRAD_CACHE_DIR", str(tmp_path / "compgrad-cache"))
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "numba-cache"))


def _finite(x: object) -> bool:
    return isinstance(x, float) and math.isfinite(x)


def test_quick_cases_run_and_agree_with_torch() -> None:
    selected = cb.select_cases(cb.cases(quick=True), "W2,W3")
    assert [c.id for c in selected] == ["W2", "W3"]
    result = cb.run_benchmark(selected, FAST, rounds=2, loop_s=1e-4, quick=True,
                              show_progress=False)
    for case in result["cases"]:
        assert set(case["median_us"]) == set(FAST), case["id"]
        for contestant, samples in case["rounds_us"].items():
            assert len(samples) == 2 and all(_finite(s) and s > 0 for s in samples)
            rec = case["contestants"][contestant]
            assert "error" not in rec and rec["first_call_s"] > 0
            if contestant != "torch":
                assert rec["check"]["ok"], (case["id"], contestant, rec["check"])
        ratios = case["round_ratios"]
        assert set(ratios) == {f"{c}/torch" for c in FAST if c != "torch"}
        assert all(len(r["rounds"]) == 2 and _finite(r["median"]) for r in ratios.values())
        assert case["target_ratio"] == ratios["compgrad.compile/torch"]["median"]
        assert isinstance(case["target_met"], bool)


@pytest.mark.parametrize("case_id", ["W1-b32", "W4-lsm", "W4-ln"])
def test_other_cases_agree_with_torch(case_id: str) -> None:
    """The hand-written NumPy and compgrad.compile agree with torch eager (outputs, grads,
    new weights) on the cases the timing test leaves out."""
    (case,) = cb.select_cases(cb.cases(quick=True), case_id)
    _, ref = cb._set_up(case, "torch", None, {})
    for contestant in ("numpy", "compgrad.compile"):
        rec: dict = {}
        cb._set_up(case, contestant, ref, rec)
        assert rec["check"]["ok"], (case_id, contestant, rec)
    if case_id == "W1-b32":  # three SGD-momentum steps: weights and grads compared too
        assert {"0.weight", "0.weight.grad", "4.bias.grad", "out[2]"} <= set(ref)


def test_compare_reports_mismatches() -> None:
    ref = {"a": np.ones((3, 4), np.float32), "b": np.arange(3, dtype=np.float32)}
    assert harness.compare_arrays(ref, {k: v.copy() for k, v in ref.items()}, cb.RTOL)["ok"]
    off = {"a": ref["a"] * np.float32(1.01), "b": ref["b"]}
    bad = harness.compare_arrays(ref, off, cb.RTOL)
    assert not bad["ok"] and bad["worst"] == "a" and bad["max_rel_err"] == pytest.approx(0.01)
    assert not harness.compare_arrays(ref, {"a": ref["a"][:2], "b": ref["b"]}, cb.RTOL)["ok"]
    assert harness.compare_arrays(ref, {"a": ref["a"]}, cb.RTOL)["problems"] == ["b missing"]
    nan = {"a": np.full((3, 4), np.nan, np.float32), "b": ref["b"]}
    assert not harness.compare_arrays(ref, nan, cb.RTOL)["ok"]


def test_wrong_contestant_is_flagged_loudly(monkeypatch) -> None:
    real = cb.gelu_sum_grad_numpy

    def wrong_gelu(x: np.ndarray) -> tuple:
        s, grad = real(x)
        return s, 2 * grad

    monkeypatch.setattr(cb, "gelu_sum_grad_numpy", wrong_gelu)
    (case,) = cb.select_cases(cb.cases(quick=True), "W3")
    rec = cb.time_case(case, ["numpy", "torch"], rounds=1, loop_s=1e-4, quick=True,
                       show_progress=False)
    check = rec["contestants"]["numpy"]["check"]
    assert not check["ok"] and check["worst"] == "x.grad"
    result = {"cases": [rec], "config": {"rounds": 1, "quick": True,
                                         "contestants": ["numpy", "torch"]}}
    text = cb.format_markdown(result)
    assert "**MISMATCH**" in text and "RESULT MISMATCHES" in text


def test_failing_contestant_is_reported_and_the_rest_timed(monkeypatch) -> None:
    def broken(x: np.ndarray) -> tuple:
        raise RuntimeError("kernel exploded")

    monkeypatch.setattr(cb, "gelu_sum_grad_numpy", broken)
    (case,) = cb.select_cases(cb.cases(quick=True), "W3")
    rec = cb.time_case(case, ["numpy", "torch", "compgrad"], rounds=1, loop_s=1e-4,
                       quick=True, show_progress=False)
    assert rec["contestants"]["numpy"]["error"] == "RuntimeError: kernel exploded"
    assert set(rec["median_us"]) == {"torch", "compgrad"}
    result = {"cases": [rec], "config": {"rounds": 1, "quick": True,
                                         "contestants": ["numpy", "torch", "compgrad"]}}
    assert "**ERROR**" in cb.format_markdown(result)


def test_fresh_process_cold_start() -> None:
    cold = cb.cold_start(["torch", "compgrad.compile"], quick=True, timeout_s=120)
    assert set(cold) == {"compgrad.compile"}  # torch.compile not asked for
    for cache in ("empty", "warm"):
        rec = cold["compgrad.compile"][cache]
        assert "error" not in rec, rec
        assert rec["first_step_s"] > 0 and rec["wall_s"] > rec["first_step_s"]
        assert rec["torch_loaded"] is False  # compgrad's process runs without torch
        assert _finite(rec["first_loss"])


def test_memory_measurement() -> None:
    """What the memory child measures, here in-process on the quick W3."""
    assert harness.tracemalloc_sees_numpy()
    case = cb.select_cases(cb.cases(quick=True), "W3")[0]
    rec = cb._measure_memory(case.build("compgrad.compile", case.params), case.params["n"])
    assert rec["budget_mib"] == pytest.approx(rec["inputs_mib"] + rec["outputs_mib"] + 64)
    assert rec["tracemalloc_peak_mib"] >= 0
    if "rss_peak_above_start_mib" in rec:  # Linux: the peak-RSS mark could be reset
        assert rec["peak_total_mib"] >= rec["inputs_mib"] and isinstance(rec["met"], bool)


def test_main_quick_writes_json_markdown_and_plot(tmp_path) -> None:
    pytest.importorskip("matplotlib")
    rc = cb.main(["--quick", "--rounds", "1", "--workloads", "W5-1024",
                  "--contestants", ",".join(FAST), "--no-cold-start", "--no-memory",
                  "--out-dir", str(tmp_path)])
    assert rc == 0  # 0: every contestant's product agreed with torch eager's
    data = json.loads((tmp_path / "compiled.json").read_text(encoding="utf-8"))
    assert [c["id"] for c in data["cases"]] == ["W5-1024"]
    assert data["config"]["contestants"] == FAST
    md = (tmp_path / "compiled.md").read_text(encoding="utf-8")
    assert "| W5-1024: matmul 128^3" in md and "compgrad.compile" in md and "<= 1.0" in md
    assert (tmp_path / "compiled.png").stat().st_size > 0


def test_unknown_workload_is_an_error() -> None:
    with pytest.raises(ValueError, match="W9"):
        cb.select_cases(cb.cases(quick=True), "W1,W9")


def test_harness_round_ratios_and_tables() -> None:
    samples = {"torch": [10.0, 20.0, 40.0], "x": [5.0, 30.0, 20.0]}
    rr = harness.round_ratios(samples, "torch")
    assert rr == {"x/torch": {"median": 0.5, "rounds": [0.5, 1.5, 0.5]}}
    assert harness.round_ratios({"x": [1.0]}, "torch") == {}
    md = harness.markdown_table(["case", "t"], [["a|b", "1"]])
    assert md.splitlines() == ["| case | t |", "|:---|---:|", "| a\\|b | 1 |"]
    assert harness.fmt_duration(12.345) == "12.3 µs"
    assert harness.fmt_duration(2500.0) == "2.5 ms"
    assert harness.fmt_duration(3.2e6) == "3.2 s"

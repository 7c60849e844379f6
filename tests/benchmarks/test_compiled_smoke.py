"""Smoke tests for benchmarks/compiled/ (issue 7's W1-W5): the --quick path runs with every
contestant in its own worker process, every contestant computes what torch eager computes,
mismatches and failing or hanging workers are reported, outputs are written.

Timings are never asserted (they depend on the machine); torch.compile is left out (its
compile alone takes longer than these tests may). Worker processes get their caches in a
temporary directory (no warm cache needed).
"""

from __future__ import annotations

import json
import math
import os
import time

import numpy as np
import pytest

pytest.importorskip("torch")

from benchmarks import harness  # noqa: E402 - after the torch skip
from benchmarks.compiled import cli, coldstart, memory, programs, report, runner  # noqa: E402
from benchmarks.compiled.pool import Timeouts, WorkerPool  # noqa: E402
from benchmarks.compiled.settings import RTOL  # noqa: E402

FAST = ["numpy", "torch", "compgrad", "compgrad.compile"]
LOOP_S = 1e-3


@pytest.fixture(autouse=True)
def _private_caches(tmp_path, monkeypatch):
    """compgrad's and Numba's caches in a temporary directory (no warm cache needed)."""
    monkeypatch.setenv("COMPGRAD_CACHE_DIR", str(tmp_path / "compgrad-cache"))
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "numba-cache"))


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    """Workers shared by this module's tests (starting torch's and compgrad's takes s)."""
    with WorkerPool(cache_dir=tmp_path_factory.mktemp("worker-caches")) as shared:
        yield shared


@pytest.fixture(scope="module")
def quick_result(pool):
    """W2 and W3 at quick sizes, one round, every fast contestant."""
    selected = programs.select_cases(programs.cases(quick=True), "W2,W3")
    assert [c.id for c in selected] == ["W2", "W3"]
    return runner.run_benchmark(selected, FAST, rounds=1, loop_s=LOOP_S, quick=True,
                                show_progress=False, pool=pool)


def _w3() -> programs.Case:
    return programs.select_cases(programs.cases(quick=True), "W3")[0]


def _finite(x: object) -> bool:
    return isinstance(x, float) and math.isfinite(x)


def test_quick_cases_run_and_agree_with_torch(quick_result) -> None:
    for case in quick_result["cases"]:
        assert set(case["median_us"]) == set(FAST), case["id"]
        for contestant, samples in case["rounds_us"].items():
            assert len(samples) == 1 and all(_finite(s) and s > 0 for s in samples)
            assert case["n_per_round"][contestant][0] >= 1
            rec = case["contestants"][contestant]
            assert "error" not in rec and rec["first_call_s"] > 0
            if contestant != "torch":
                assert rec["check"]["ok"], (case["id"], contestant, rec["check"])
        ratios = case["round_ratios"]
        assert set(ratios) == {f"{c}/torch" for c in FAST if c != "torch"}
        assert all(len(r["rounds"]) == 1 and _finite(r["median"]) for r in ratios.values())
        assert case["target_ratio"] == ratios["compgrad.compile/torch"]["median"]
        assert isinstance(case["target_met"], bool)


def test_each_contestant_runs_in_its_own_long_lived_process(quick_result) -> None:
    w2, w3 = quick_result["cases"]
    pids = {c: rec["pid"] for c, rec in w2["contestants"].items()}
    assert len(set(pids.values())) == len(FAST) and os.getpid() not in pids.values()
    assert {c: rec["pid"] for c, rec in w3["contestants"].items()} == pids  # kept across cases
    workers = quick_result["workers"]
    assert {c: w["pid"] for c, w in workers.items()} == pids
    for c, w in workers.items():
        pol = w["policy"]
        assert pol["pid"] == pids[c] and w["processes_started"] == 1
        assert all(pol["env"][v] is not None for v in ("OMP_NUM_THREADS", "NUMBA_NUM_THREADS"))
        # one library per process: torch's never loads Numba, the others never load torch
        assert ("torch_threads" in pol) == (c == "torch"), c
    assert "numba_threading_layer" not in workers["torch"]["policy"]
    assert workers["torch"]["policy"]["torch_threads"] == 2
    compiled = workers["compgrad.compile"]["policy"]
    assert compiled["env"]["OMP_WAIT_POLICY"] is not None  # compgrad's codegen sets one
    assert compiled["numba_threads"] == 2


@pytest.mark.parametrize("case_id", ["W1-b32", "W4-lsm", "W4-ln"])
def test_other_cases_agree_with_torch(pool, case_id: str) -> None:
    """The hand-written NumPy and compgrad.compile agree with torch eager (outputs, grads,
    new weights) on the cases the timing test leaves out."""
    (case,) = programs.select_cases(programs.cases(quick=True), case_id)
    rec = runner.time_case(case, ["numpy", "torch", "compgrad.compile"], rounds=1,
                           loop_s=LOOP_S, quick=True, show_progress=False, pool=pool)
    for contestant in ("numpy", "compgrad.compile"):
        check = rec["contestants"][contestant]["check"]
        assert check["ok"], (case_id, contestant, check)
        if case_id == "W1-b32":  # three SGD-momentum steps: weights and grads compared too
            assert {"0.weight", "0.weight.grad", "4.bias.grad", "out[2]"} <= set(
                check["rel_err"])


def test_compare_reports_mismatches() -> None:
    ref = {"a": np.ones((3, 4), np.float32), "b": np.arange(3, dtype=np.float32)}
    assert harness.compare_arrays(ref, {k: v.copy() for k, v in ref.items()}, RTOL)["ok"]
    off = {"a": ref["a"] * np.float32(1.01), "b": ref["b"]}
    bad = harness.compare_arrays(ref, off, RTOL)
    assert not bad["ok"] and bad["worst"] == "a" and bad["max_rel_err"] == pytest.approx(0.01)
    assert not harness.compare_arrays(ref, {"a": ref["a"][:2], "b": ref["b"]}, RTOL)["ok"]
    assert harness.compare_arrays(ref, {"a": ref["a"]}, RTOL)["problems"] == ["b missing"]
    nan = {"a": np.full((3, 4), np.nan, np.float32), "b": ref["b"]}
    assert not harness.compare_arrays(ref, nan, RTOL)["ok"]


@pytest.fixture(scope="module")
def faulty(tmp_path_factory) -> dict:
    """Cases run with ``tests/benchmarks/_faults.py``'s faults in the NumPy worker (W3 wrong,
    W4-lsm raising, W4-ln crashing, W2 hanging, W5 healthy), numpy and torch only, with a
    5 s limit on a case's set-up; the case records, and how the workers fared."""
    timeouts = Timeouts(start_s=120, setup_s=5, call_s=60)
    out: dict = {"records": {}, "seconds": {}}
    with WorkerPool(preload=("tests.benchmarks._faults:plant",), timeouts=timeouts,
                    cache_dir=tmp_path_factory.mktemp("fault-caches")) as pool:
        for case in programs.select_cases(programs.cases(quick=True), "W3,W4,W2,W5-1024"):
            t0 = time.monotonic()
            out["records"][case.id] = runner.time_case(
                case, ["numpy", "torch"], rounds=1, loop_s=LOOP_S, quick=True,
                show_progress=False, pool=pool)
            out["seconds"][case.id] = time.monotonic() - t0
            out.setdefault("numpy_alive_after", {})[case.id] = (
                "numpy" in pool.workers and pool.workers["numpy"].alive)
        out["numpy_started"] = pool.started["numpy"]
    return out


def _markdown(rec: dict) -> str:
    return report.format_markdown({"cases": [rec], "config": {
        "rounds": 1, "quick": True, "contestants": ["numpy", "torch"]}})


def test_wrong_contestant_is_flagged_loudly(faulty) -> None:
    rec = faulty["records"]["W3"]
    check = rec["contestants"]["numpy"]["check"]
    assert not check["ok"] and check["worst"] == "x.grad"
    text = _markdown(rec)
    assert "**MISMATCH**" in text and "RESULT MISMATCHES" in text


def test_failing_contestant_is_reported_and_the_rest_timed(faulty) -> None:
    rec = faulty["records"]["W4-lsm"]
    assert rec["contestants"]["numpy"]["error"] == "RuntimeError: kernel exploded"
    assert faulty["numpy_alive_after"]["W4-lsm"]  # the program raised; its worker lives on
    assert set(rec["median_us"]) == {"torch"}
    assert "**ERROR**" in _markdown(rec)


def test_crashing_worker_is_reported_with_its_output(faulty) -> None:
    rec = faulty["records"]["W4-ln"]
    error = rec["contestants"]["numpy"]["error"]
    assert "worker for 'numpy'" in error and "exited with status 7 during 'setup'" in error
    assert "the numpy worker is about to crash" in error  # the tail of its stderr
    assert set(rec["median_us"]) == {"torch"}


def test_hanging_worker_times_out_with_a_clear_error(faulty) -> None:
    rec = faulty["records"]["W2"]
    error = rec["contestants"]["numpy"]["error"]
    assert "worker for 'numpy'" in error and "gave no answer to 'setup' within 5 s" in error
    assert not faulty["numpy_alive_after"]["W2"]  # killed
    assert faulty["seconds"]["W2"] < 60
    assert set(rec["median_us"]) == {"torch"}


def test_a_new_worker_replaces_a_dead_one(faulty) -> None:
    rec = faulty["records"]["W5-1024"]
    assert faulty["numpy_started"] == 3  # the first, after the crash, after the hang
    assert set(rec["median_us"]) == {"numpy", "torch"}
    assert rec["contestants"]["numpy"]["check"]["ok"]


def test_fresh_process_cold_start() -> None:
    cold = coldstart.cold_start(["torch", "compgrad.compile"], quick=True, timeout_s=120)
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
    case = _w3()
    rec = memory.measure_memory(case.build("compgrad.compile", case.params), case.params["n"])
    assert rec["budget_mib"] == pytest.approx(rec["inputs_mib"] + rec["outputs_mib"] + 64)
    assert rec["tracemalloc_peak_mib"] >= 0
    if "rss_peak_above_start_mib" in rec:  # Linux: the peak-RSS mark could be reset
        assert rec["peak_total_mib"] >= rec["inputs_mib"] and isinstance(rec["met"], bool)


def test_main_quick_writes_json_markdown_plot_and_profile(tmp_path) -> None:
    pytest.importorskip("matplotlib")
    rc = cli.main(["--quick", "--rounds", "1", "--workloads", "W5-1024",
                   "--contestants", "numpy,torch,compgrad.compile", "--no-cold-start",
                   "--no-memory", "--profile", "--profile-steps", "2",
                   "--out-dir", str(tmp_path)])
    assert rc == 0  # 0: every contestant's product agreed with torch eager's
    data = json.loads((tmp_path / "compiled.json").read_text(encoding="utf-8"))
    assert [c["id"] for c in data["cases"]] == ["W5-1024"]
    assert data["config"]["contestants"] == ["numpy", "torch", "compgrad.compile"]
    assert set(data["workers"]) == {"numpy", "torch", "compgrad.compile"}
    md = (tmp_path / "compiled.md").read_text(encoding="utf-8")
    assert "| W5-1024: matmul 128^3" in md and "compgrad.compile" in md and "<= 1.0" in md
    assert "Worker processes" in md and f"(pid {data['workers']['torch']['pid']})" in md
    assert (tmp_path / "compiled.png").stat().st_size > 0
    prof = data["cases"][0]["profile"]
    assert prof["steps"] == 2 and prof["file"] == "compiled-profile-W5-1024.txt"
    text = (tmp_path / prof["file"]).read_text(encoding="utf-8")
    assert "tottime" in text and "compiled-profile-W5-1024.txt" in md


def test_unknown_workload_is_an_error() -> None:
    with pytest.raises(ValueError, match="W9"):
        programs.select_cases(programs.cases(quick=True), "W1,W9")


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

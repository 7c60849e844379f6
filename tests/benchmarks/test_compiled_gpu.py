"""Smoke tests for the GPU suite of benchmarks/compiled/ (issue 8, ``gpu``): without a GPU
it exits with status 2 and says why; ``--device cpu --quick`` runs its code paths (cases
on a device, synchronised loops, the time budget, the memory and program probes, the
report) on the CPU; the full sizes are the issue's.

``plant_fake_gpu`` (a worker preload) gives compgrad's and the by-hand contestant's workers
the fake GPU of ``tests/support/fake_gpu.py``, so that ``device="cuda"`` runs here too:
compgrad's eager and compiled paths on (fake) CuPy arrays, node by node, against CuPy by
hand. This module imports no torch (the preload runs in processes that must not).

Timings are never asserted. Worker caches live in temporary directories.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from benchmarks.compiled import cli, gpu, programs, runner, worker
from benchmarks.compiled.pool import WorkerPool
from benchmarks.compiled.settings import GPU_DEFAULT_CONTESTANTS

needs_torch = pytest.mark.skipif(importlib.util.find_spec("torch") is None,
                                 reason="torch is the reference")


def plant_fake_gpu(contestant: str) -> None:
    """Worker preload: a fake one-GPU machine in compgrad.cuda, and its fake CuPy as
    ``cupy`` (for the by-hand contestant and compgrad's runtime check)."""
    import importlib.machinery

    from tests.support.fake_gpu import install_fake_gpu

    machine = install_fake_gpu(pytest.MonkeyPatch())  # for the worker's whole life
    # importlib.util.find_spec("cupy") needs a spec on what sys.modules holds
    machine.cupy.__spec__ = importlib.machinery.ModuleSpec("cupy", None)
    sys.modules["cupy"] = machine.cupy


@pytest.fixture(autouse=True)
def _private_caches(tmp_path, monkeypatch):
    """compgrad's and Numba's caches in a temporary directory (no warm cache needed)."""
    monkeypatch.setenv("COMPGRAD_CACHE_DIR", str(tmp_path / "compgrad-cache"))
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "numba-cache"))


def test_full_sizes_are_the_issues() -> None:
    by_id = {c.id: c for c in programs.gpu_cases(quick=False)}
    assert list(by_id) == ["W1-b4096", "W3", "W4-lsm", "W4-ln"]
    assert by_id["W1-b4096"].params["batch"] == 4096
    assert by_id["W1-b4096"].params["sizes"] == (784, 512, 512, 10)
    assert by_id["W3"].params["n"] == 1 << 28
    assert (by_id["W4-lsm"].params["rows"], by_id["W4-lsm"].params["classes"]) == (65536, 1000)
    assert (by_id["W4-ln"].params["rows"], by_id["W4-ln"].params["dim"]) == (65536, 1024)
    assert all(c.params["device"] == "cuda" for c in by_id.values())
    assert "torch.compile" not in GPU_DEFAULT_CONTESTANTS  # opt-in: its compile is minutes


def test_without_a_gpu_cuda_exits_2_with_the_reason(capsys) -> None:
    import compgrad

    if compgrad.cuda.is_available():
        pytest.skip("this machine has a GPU")
    assert cli.main(["--device", "cuda", "--quick"]) == 2
    err = capsys.readouterr().err
    assert "needs a CUDA device" in err and "compgrad found no CUDA device" in err
    assert "Traceback" not in err


@needs_torch
def test_cli_device_cuda_runs_the_gpu_suite(monkeypatch) -> None:
    seen = []
    monkeypatch.setattr(gpu, "main", seen.append)
    cli.main(["--quick", "--device=cuda", "--workloads", "W3"])
    assert seen == [["--quick", "--device=cuda", "--workloads", "W3"]]
    assert not cli.wants_gpu_suite(["--device", "cpu", "--quick"])


@pytest.fixture(scope="module")
def cpu_run(tmp_path_factory) -> tuple[int, dict, str]:
    """The GPU suite on the CPU: quick W3 and W4-lsm, three rounds asked for, a zero
    budget (so one round each), the by-hand, torch and compgrad.compile contestants."""
    out = tmp_path_factory.mktemp("gpu-out")
    rc = gpu.main(["--device", "cpu", "--quick", "--rounds", "3", "--budget-s", "0",
                   "--workloads", "W3,W4-lsm", "--contestants", "cupy,compgrad.compile",
                   "--no-plot", "--out-dir", str(out)])
    data = json.loads((out / "compiled-gpu.json").read_text(encoding="utf-8"))
    return rc, data, (out / "compiled-gpu.md").read_text(encoding="utf-8")


@needs_torch
def test_cpu_path_runs_checks_and_reports(cpu_run) -> None:
    rc, data, md = cpu_run
    assert rc == 0  # every contestant agreed with torch eager
    cfg = data["config"]
    assert cfg["suite"] == "gpu" and cfg["device"] == "cpu" and cfg["reference"] == "torch"
    assert cfg["contestants"] == ["cupy", "torch", "compgrad.compile"]
    assert [c["id"] for c in data["cases"]] == ["W3", "W4-lsm"]
    for case in data["cases"]:
        assert all(len(v) == 1 for v in case["rounds_us"].values())  # the budget: 1 round
        for c in ("cupy", "compgrad.compile"):
            assert case["contestants"][c]["check"]["ok"], (case["id"], c)
        for c, rec in case["contestants"].items():  # the probes ran for everyone
            assert rec["gpu_memory"] == {"peak_bytes": None, "how": "cpu"}, c
        desc = case["contestants"]["compgrad.compile"]["describe"]
        # (a note may say how a CPU program runs: never that it ran on a device)
        assert desc["program_count"] >= 1
        assert not any("CUDA" in note for note in desc["program_notes"].values())
        assert case["contestants"]["torch"]["describe"] is None
    assert "# Compiled workloads on the GPU (issue 8)" in md
    assert "How the compiled programs ran" in md and "CPU program(s)" in md
    assert "No compiled program ran on a CUDA device." in md
    assert "| W3: tanh-GELU sum + grad, 2^12 elements |" in md


def test_fake_gpu_path_runs_on_device_arrays(tmp_path) -> None:
    """``device="cuda"`` on the fake GPU, CuPy by hand as the reference: compgrad eager and
    compiled agree with it, synchronise, report memory, and say they ran node by node
    (no Numba-CUDA device for generated kernels)."""
    selected = programs.select_cases(programs.gpu_cases(quick=True), "W3,W4-lsm")
    opts = runner.CaseOptions(suite="gpu", device="cuda", reference="cupy",
                              probes=("gpu_memory", "describe"))
    with WorkerPool(preload=(f"{__name__}:plant_fake_gpu",), cache_dir=tmp_path) as pool:
        result = runner.run_benchmark(selected, ["cupy", "compgrad", "compgrad.compile"],
                                      rounds=1, loop_s=1e-3, quick=True,
                                      show_progress=False, pool=pool, opts=opts)
    for case in result["cases"]:
        assert case["reference"] == "cupy" and "error" not in case, case.get("error")
        recs = case["contestants"]
        for c in ("compgrad", "compgrad.compile"):
            assert recs[c]["check"]["ok"], (case["id"], c)
        for c, rec in recs.items():
            assert rec["gpu_memory"]["peak_bytes"] > 0, (case["id"], c)
        notes = recs["compgrad.compile"]["describe"]["program_notes"].values()
        assert notes and all(n.startswith(gpu.NODE_BY_NODE_NOTE) for n in notes)
    result["config"] = {"rounds": 1, "quick": True, "contestants": ["cupy", "compgrad",
                        "compgrad.compile"], "reference": "cupy", "budget_s": 1.0,
                        "loop_s": 1e-3, "device": "cuda", "wall_s": 1.0}
    md = gpu.format_markdown(result)
    assert "**2 of 2 compiled programs on the device ran node by node**" in md
    assert "CuPy (by hand) |" in md and "0/1 as generated CUDA kernels" in md


def test_program_cell_and_verdict_read_the_notes() -> None:
    from compgrad.compile.on_device import WHY

    fast = {"program_notes": {"0": "generated CUDA kernels (codegen.cuda_runtime)"},
            "program_count": 1, "kernel_count": 0,
            "cuda_programs": [{"kernels": 19, "node_by_node_groups": 0}]}
    slow = {"program_notes": {"0": f"{WHY} (the GPU runtime failed: X: y)"},
            "program_count": 1, "kernel_count": 0, "cuda_programs": []}
    assert gpu.program_cell(fast) == ("1/1 as generated CUDA kernels (19 kernels, "
                                      "0 node-by-node groups)")
    assert "**1 node by node**" in gpu.program_cell(slow) and "X: y" in gpu.program_cell(slow)
    case = {"contestants": {"compgrad.compile": {"describe": fast}}}
    assert gpu.runtime_verdict([case]).startswith("All 1 compiled programs")
    case["contestants"]["compgrad.replay"] = {"describe": slow}
    assert gpu.runtime_verdict([case]).startswith("**1 of 2 compiled programs")


def test_device_loop_synchronises_before_reading_the_clock() -> None:
    calls: list[str] = []
    server = worker.Server("numpy")
    server.instance = programs.Instance(functools.partial(calls.append, "step"), dict)
    server.device = "cuda"
    server.sync = lambda: calls.append("sync")
    out = server.timed_loop(loop_s=0.0, max_steps=5)
    assert out["n"] == 1 and out["median_us"] == out["mean_us"] and out["synchronized"]
    assert calls == ["sync", "step", "sync"]
    calls.clear()
    server.warm_up(min_s=0.0, min_calls=2, max_calls=2)
    assert calls == ["step", "sync", "step", "sync"]


def test_to_numpy_copies_device_arrays_to_the_host() -> None:
    class FakeDeviceArray:
        __cuda_array_interface__: dict = {}

        def get(self) -> np.ndarray:
            return np.arange(3)

    assert programs.to_numpy(FakeDeviceArray()).tolist() == [0, 1, 2]


# ------------------------------------------------------------------ examples/demo.py --device

DEMO = Path(__file__).resolve().parents[2] / "examples" / "demo.py"


def test_demo_device_cuda_without_a_gpu_exits_2_without_a_traceback() -> None:
    import compgrad

    pytest.importorskip("sklearn")
    pytest.importorskip("tqdm")
    if compgrad.cuda.is_available():
        pytest.skip("this machine has a GPU")
    env = {**os.environ, "PYTHONPATH": str(DEMO.parents[1])}
    proc = subprocess.run([sys.executable, str(DEMO), "--device", "cuda", "--epochs", "1"],
                          capture_output=True, text=True, env=env, timeout=120, check=False)
    assert proc.returncode == 2
    assert "--device cuda" in proc.stderr and "compgrad.cuda.is_available() is False" in \
        proc.stderr
    assert "Traceback" not in proc.stderr


def test_demo_runs_on_the_cpu_device(capsys) -> None:
    pytest.importorskip("sklearn")
    pytest.importorskip("tqdm")
    spec = importlib.util.spec_from_file_location("compgrad_demo", DEMO)
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    results = demo.main(["--epochs", "1", "--model", "mlp", "--device", "cpu"])
    assert set(results) == {"mlp"} and 0 < results["mlp"] <= 1
    assert "device: cpu" in capsys.readouterr().out

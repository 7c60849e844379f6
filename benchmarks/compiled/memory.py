"""W3's peak memory, each contestant in a fresh process (issue 7: compgrad.compile's peak
<= inputs + outputs + one 64 MiB buffer)."""

from __future__ import annotations

import gc
import json
import tempfile
import tracemalloc
from pathlib import Path
from typing import Any

from benchmarks.compiled import policy, programs
from benchmarks.compiled.coldstart import child_argv
from benchmarks.compiled.settings import MEMORY_SLACK_BYTES, REPLAY_CONTESTANT, REPO_ROOT

# not measured: torch.compile's compile takes minutes, and compgrad.replay's step runs the
# same program as compgrad.compile's (the target concerns compgrad.compile)
_LEFT_OUT = ("torch.compile", REPLAY_CONTESTANT)


def memory(contestants: list[str], quick: bool, timeout_s: float = 600) -> dict[str, Any]:
    """W3's peak memory per contestant, each in a fresh process (torch.compile and
    compgrad.replay left out: ``_LEFT_OUT``)."""
    from benchmarks import harness  # imports torch and compgrad: the parent's business only

    out: dict[str, Any] = {}
    for c in (c for c in contestants if c not in _LEFT_OUT):
        with tempfile.TemporaryDirectory(prefix="compgrad-bench-") as tmp:
            argv = child_argv(__name__, c, "quick" if quick else "full")
            out[c] = harness.run_json_child(argv, policy.worker_env(c, Path(tmp)), REPO_ROOT,
                                            timeout_s)
    return out


def measure_memory(inst: programs.Instance, n: int) -> dict[str, Any]:
    """Peak memory of one W3 step of ``inst`` (on ``n`` elements) after two warm-up steps:
    peak RSS above the resident set before the call (Linux), and tracemalloc's peak."""
    from benchmarks import harness

    mib = 1 << 20
    inst.step()  # compiles where there is anything to compile
    inst.step()
    rec: dict[str, Any] = {"n": n, "inputs_mib": n * 4 / mib, "outputs_mib": (n * 4 + 4) / mib}
    rec["budget_mib"] = rec["inputs_mib"] + rec["outputs_mib"] + MEMORY_SLACK_BYTES / mib
    # peak RSS above the resident set just before the call, which holds the input already
    inst.release()
    gc.collect()
    if harness.reset_peak_rss():
        base = harness.proc_status_mib("VmRSS")
        inst.step()
        peak = harness.proc_status_mib("VmHWM")
        if base is not None and peak is not None:
            rec["rss_peak_above_start_mib"] = peak - base
            rec["peak_total_mib"] = rec["inputs_mib"] + peak - base
            rec["met"] = rec["peak_total_mib"] <= rec["budget_mib"]
    # the same as tracemalloc sees it (NumPy's buffers yes; torch's and Numba's NRT no)
    inst.release()
    gc.collect()
    tracemalloc.start()
    try:
        inst.step()
        rec["tracemalloc_peak_mib"] = tracemalloc.get_traced_memory()[1] / mib
    finally:
        tracemalloc.stop()
    return rec


def child_main(argv: list[str], t0: float) -> None:
    """Entry point of the fresh process: ``CONTESTANT quick|full``; prints one JSON line."""
    contestant, size = argv
    policy.block_other_libraries(contestant)
    if contestant != "numpy":
        programs.library(contestant)
    policy.apply_in_process(contestant)
    from benchmarks import harness  # after the block: torch's absence is what it sees

    case = {c.id: c for c in programs.cases(size == "quick")}["W3"]
    rec = measure_memory(case.build(contestant, case.params), case.params["n"])
    rec["tracemalloc_sees_numpy"] = harness.tracemalloc_sees_numpy()
    print(json.dumps(rec))

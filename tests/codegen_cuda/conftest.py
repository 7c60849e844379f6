"""The CUDA kernel checks run in subprocesses: the simulator's (``NUMBA_ENABLE_CUDASIM=1``
holds for a whole process, and the rest of the suite must not see it) and the PTX
compiler's. ``cuda_checks`` starts all of them at once (the simulator's cases split in
two, plus the whole-program checks of tests/codegen_cuda/_program_checks.py), so they
share the machine's cores, and gives each test module its results."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT_S = 600


def _env(tmp: Path, simulator: bool) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["NUMBA_CACHE_DIR"] = str(tmp / "numba")
    env["COMPGRAD_CACHE_DIR"] = str(tmp / "compgrad")
    env.pop("NUMBA_ENABLE_CUDASIM", None)
    if simulator:
        env["NUMBA_ENABLE_CUDASIM"] = "1"
    return env


def _split(names: list[str], parts: int) -> list[list[str]]:
    """``names`` in ``parts`` lists of about equal work (the op sweeps weigh more)."""
    def weight(name: str) -> int:
        return 6 if name.startswith(("ops-flat", "chains-")) else 1
    bins: list[list[str]] = [[] for _ in range(parts)]
    loads = [0] * parts
    for name in sorted(names, key=weight, reverse=True):
        i = loads.index(min(loads))
        bins[i].append(name)
        loads[i] += weight(name)
    return bins


@pytest.fixture(scope="session")
def cuda_checks(tmp_path_factory) -> dict[str, dict]:
    """``{"simulator": {case: result}, "ptx": {case: result} or {"unavailable": why},
    "programs": {case: result}}`` (the last: whole programs on codegen.cuda_runtime)."""
    from tests.codegen_cuda._cases import CASES
    tmp = tmp_path_factory.mktemp("cuda-checks")
    jobs = []
    for i, names in enumerate(_split(sorted(CASES), 2)):
        out = tmp / f"sim{i}.json"
        jobs.append(("simulator", out, subprocess.Popen(
            [sys.executable, "-m", "tests.codegen_cuda._sim_checks", str(out), *names],
            cwd=ROOT, env=_env(tmp, True), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True)))
    out = tmp / "programs.json"
    jobs.append(("programs", out, subprocess.Popen(
        [sys.executable, "-m", "tests.codegen_cuda._program_checks", str(out)],
        cwd=ROOT, env=_env(tmp, True), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True)))
    out = tmp / "ptx.json"
    jobs.append(("ptx", out, subprocess.Popen(
        [sys.executable, "-m", "tests.codegen_cuda._ptx_checks", str(out)], cwd=ROOT,
        env=_env(tmp, False), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)))
    results: dict[str, dict] = {"simulator": {}, "ptx": {}, "programs": {}}
    for kind, out, proc in jobs:
        log, _ = proc.communicate(timeout=TIMEOUT_S)
        if proc.returncode != 0 or not out.exists():
            pytest.fail(f"the {kind} checks exited with {proc.returncode}:\n{log[-5000:]}")
        results[kind].update(json.loads(out.read_text()))
    return results

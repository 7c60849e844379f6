"""The first W1 batch-32 step in fresh processes: with an empty compile cache, then with
the cache the first process left (issue 7: <= 2 s and <= 0.5 s for compgrad.compile).

Each child starts with the same environment as that contestant's worker
(``policy.worker_env``) and imports only its own library.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import harness
from benchmarks.compiled import policy, programs
from benchmarks.compiled.settings import REPO_ROOT

COMPILERS = ("compgrad.compile", "torch.compile")


def child_argv(module: str, *args: str) -> list[str]:
    """A fresh interpreter running ``module.child_main(args, t0)``, ``t0`` taken as its
    first statement (so ``import_s`` covers every import after interpreter start-up)."""
    code = ("import sys, time; t0 = time.perf_counter(); "
            f"from {module} import child_main; child_main(sys.argv[1:], t0)")
    return [sys.executable, "-c", code, *args]


def cold_start(contestants: list[str], quick: bool, timeout_s: float = 600) -> dict[str, Any]:
    """The first W1 batch-32 step of each compiler among ``contestants`` in a fresh process
    with an empty cache directory (COMPGRAD_CACHE_DIR, NUMBA_CACHE_DIR,
    TORCHINDUCTOR_CACHE_DIR all new), then in a second process on the same, now warm,
    directory: ``{contestant: {"empty": rec, "warm": rec}}``."""
    out: dict[str, Any] = {}
    for c in (c for c in COMPILERS if c in contestants):
        with tempfile.TemporaryDirectory(prefix="compgrad-bench-") as tmp:
            env = policy.worker_env(c, Path(tmp))
            argv = child_argv(__name__, c, "quick" if quick else "full")
            out[c] = {cache: harness.run_json_child(argv, env, REPO_ROOT, timeout_s)
                      for cache in ("empty", "warm")}
    return out


def child_main(argv: list[str], t0: float) -> None:
    """Entry point of the fresh process: ``CONTESTANT quick|full``; prints one JSON line.
    ``t0``: ``perf_counter()`` when the child's code began."""
    contestant, size = argv
    policy.block_other_libraries(contestant)  # compgrad's process runs without torch
    programs.library(contestant)
    policy.apply_in_process(contestant)
    imported = time.perf_counter()
    case = {c.id: c for c in programs.cases(size == "quick")}["W1-b32"]
    inst = case.build(contestant, case.params)
    set_up = time.perf_counter()
    loss = float(programs.to_numpy(inst.step()))
    first = time.perf_counter()
    inst.step()
    second = time.perf_counter()
    print(json.dumps({"import_s": imported - t0, "setup_s": set_up - imported,
                      "first_step_s": first - set_up, "second_step_s": second - first,
                      "first_loss": loss, "torch_loaded": sys.modules.get("torch") is not None}))

"""One BLAS and one thread-pool policy per process: the environment each contestant's
process starts with, and what a worker reports about the policy it runs under.

torch's OpenMP (libgomp, spin-waiting) and compgrad's Numba OpenMP pool and scipy's
OpenBLAS starve each other when they share a process (issue 7; ../shared/NUMBA_NOTES.md),
so every contestant runs in its own process with its library's own policy: 2 threads
everywhere, and ``OMP_WAIT_POLICY`` as the user set it or, for compgrad, as compgrad sets it
(``codegen`` sets PASSIVE unless the user chose a policy).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from benchmarks.compiled.settings import REPO_ROOT, THREAD_ENV, THREADS

# the variables a worker's policy record shows
POLICY_ENV = (*THREAD_ENV, "OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "NUMBA_THREADING_LAYER",
              "OMP_PROC_BIND")



def _started_with(var: str) -> str | None:
    """``var`` as this process's environment had it when the process started (Linux:
    ``/proc/self/environ``, which later ``os.environ`` changes do not touch), else as now."""
    try:
        with open("/proc/self/environ", "rb") as f:
            entries = f.read().split(b"\0")
    except OSError:
        return os.environ.get(var)
    prefix = var.encode() + b"="
    found = [e[len(prefix):] for e in entries if e.startswith(prefix)]
    return os.fsdecode(found[-1]) if found else None


# The user's OMP_WAIT_POLICY: importing compgrad's codegen in this process sets it in
# os.environ, and that must not leak into the torch and NumPy workers.
_USER_WAIT_POLICY = _started_with("OMP_WAIT_POLICY")


def worker_env(contestant: str, cache_dir: Path | None = None) -> dict[str, str]:
    """The environment a contestant's process starts with.

    This process's environment, plus ``THREADS`` threads for every pool (where the user
    set no count), ``OMP_WAIT_POLICY`` as the user set it (or unset: compgrad's processes
    then get compgrad's default, the others their library's), ``PYTHONPATH`` reaching the
    repository and, where ``cache_dir`` is given, compgrad's, Numba's and Inductor's caches
    in fresh folders under it.
    """
    env = dict(os.environ)
    for var in THREAD_ENV:
        env.setdefault(var, str(THREADS))
    env.pop("OMP_WAIT_POLICY", None)
    if _USER_WAIT_POLICY is not None:
        env["OMP_WAIT_POLICY"] = _USER_WAIT_POLICY
    if cache_dir is not None:
        env["COMPGRAD_CACHE_DIR"] = str(cache_dir / "compgrad")
        env["NUMBA_CACHE_DIR"] = str(cache_dir / "numba")
        env["TORCHINDUCTOR_CACHE_DIR"] = str(cache_dir / "inductor")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"  # a dying worker's last words reach its log
    return env


def block_other_libraries(contestant: str) -> None:
    """Make ``import torch`` fail in a process that is not torch's (NumPy's, compgrad's),
    as in a program that never installed it; call before anything imports it."""
    if not contestant.startswith("torch"):
        sys.modules["torch"] = None  # type: ignore[assignment] - import raises ImportError


def apply_in_process(contestant: str) -> None:
    """What a worker sets in itself once its library is loaded: torch's intra-op threads."""
    if contestant.startswith("torch"):
        import torch

        torch.set_num_threads(THREADS)


def describe() -> dict[str, Any]:
    """This process's policy: the policy variables, Numba's threading layer (where Numba
    has run a parallel region), torch's thread counts (where torch is loaded) and the
    thread pools threadpoolctl finds (where it is installed)."""
    rec: dict[str, Any] = {"pid": os.getpid(),
                           "env": {k: os.environ.get(k) for k in POLICY_ENV}}
    numba = sys.modules.get("numba")
    if numba is not None:
        rec["numba_threads"] = numba.get_num_threads()
        try:
            rec["numba_threading_layer"] = numba.threading_layer()
        except ValueError:  # no parallel region has run: no layer is chosen yet
            rec["numba_threading_layer"] = None
    torch = sys.modules.get("torch")
    if torch is not None:
        rec["torch_threads"] = torch.get_num_threads()
        rec["torch_interop_threads"] = torch.get_num_interop_threads()
    try:
        import threadpoolctl
    except ImportError:  # optional: the record just has no pools
        rec["threadpools"] = None
    else:
        rec["threadpools"] = [{k: info.get(k) for k in ("user_api", "internal_api", "prefix",
                                                        "num_threads", "threading_layer",
                                                        "version")}
                              for info in threadpoolctl.threadpool_info()]
    return rec


def summary(rec: dict[str, Any]) -> str:
    """One line for the Markdown: the variables that are set, Numba's layer, torch's
    threads and the loaded pools (``prefix:threads``)."""
    parts = [f"{k}={v}" for k, v in rec.get("env", {}).items() if v is not None]
    if "numba_threading_layer" in rec:
        parts.append(f"numba {rec.get('numba_threads')} threads, layer "
                     f"{rec['numba_threading_layer'] or 'not started'}")
    if "torch_threads" in rec:
        parts.append(f"torch {rec['torch_threads']} threads "
                     f"(inter-op {rec.get('torch_interop_threads')})")
    pools = rec.get("threadpools")
    if pools:
        parts.append("pools " + ", ".join(f"{p['prefix']}:{p['num_threads']}" for p in pools))
    return "; ".join(parts)

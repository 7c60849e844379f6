"""The benchmark's constants: contestants, rounds, loop lengths, tolerances and issue 7's targets.

No imports beyond the standard library: worker processes read this before they load
their contestant's libraries.
"""

from __future__ import annotations

from pathlib import Path

CONTESTANTS = ("numpy", "torch", "torch.compile", "compgrad", "compgrad.compile",
               "compgrad.replay")
REFERENCE = "torch"
TARGET_CONTESTANT = "compgrad.compile"
# compgrad.compile(fn, mode="reduce-overhead"): a stable step replayed without its Python;
# its ratio gets its own column beside the target's (DESIGN.md gives W2's target to it)
REPLAY_CONTESTANT = "compgrad.replay"
QUICK_CONTESTANTS = ("numpy", "torch", "compgrad", "compgrad.compile",
                     "compgrad.replay")  # torch.compile: minutes
COMPILED_CONTESTANTS = ("torch.compile", "compgrad.compile", "compgrad.replay")  # long warm-up
LABELS = {"numpy": "numpy (by hand)", "torch": "torch eager", "torch.compile": "torch.compile",
          "compgrad": "compgrad eager", "compgrad.compile": "compgrad.compile",
          "compgrad.replay": "compgrad.replay", "cupy": "CuPy (by hand)"}

THREADS = 2
# thread-count variables every worker gets (unless the user set them): NumPy's and scipy's
# OpenBLAS, MKL, OpenMP (torch's and Numba's) and Numba read them once, when they load
THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")

DEFAULT_ROUNDS = 11
QUICK_ROUNDS = 3
WARMUP_S = (0.2, 1.0)  # least warm-up time (eager, compiled): compiled code settles slowly
QUICK_WARMUP_S = (0.05, 0.2)
LOOP_S = 0.1  # each timed loop repeats the step for about this long (at least once)
QUICK_LOOP_S = 0.01
MAX_STEPS = 20000  # at most this many steps in one timed loop
SETTLE_S = 0.3  # pause before each timed loop: the last contestant's spinning threads stop
RTOL = 1e-4  # results agree when max|x - ref| <= RTOL * max|ref| (float32, other orders)
SEED = 0

PROFILE_STEPS = 20  # --profile: cProfile this many compgrad.compile steps per case
QUICK_PROFILE_STEPS = 3
PROFILE_TOP = 25  # functions listed, by own time (tottime)

# issue 7's targets: compgrad.compile / torch eager, same run
COLD_TARGETS_S = {"empty": 2.0, "warm": 0.5}
MEMORY_SLACK_BYTES = 64 << 20  # W3: peak <= inputs + outputs + one 64 MiB buffer

REPO_ROOT = Path(__file__).resolve().parents[2]

# the GPU suite (issue 8, ``gpu``): every contestant on one CUDA device, the by-hand one on
# CuPy; torch.compile only when asked for (its compile would eat the time budget)
GPU_CONTESTANTS = ("cupy", "torch", "torch.compile", "compgrad", "compgrad.compile",
                   "compgrad.replay")
GPU_DEFAULT_CONTESTANTS = ("cupy", "torch", "compgrad", "compgrad.compile", "compgrad.replay")
GPU_FALLBACK_REFERENCE = "cupy"  # the reference where torch is not installed
ALL_CONTESTANTS = ("numpy", "cupy", "torch", "torch.compile", "compgrad", "compgrad.compile",
                   "compgrad.replay")  # the order of every table's columns
GPU_DEFAULT_ROUNDS = 5
GPU_QUICK_ROUNDS = 2
GPU_LOOP_S = 0.5  # W3 at 2^28 takes tens of ms per step: a loop of several steps
GPU_QUICK_LOOP_S = 0.01
GPU_SETTLE_S = 0.05  # no CPU thread pools to wait for between loops on a GPU
# rounds stop once this much of the run has passed; set-ups and probes come on top, so a
# default run on an H100 ends within ~8 minutes (one 10-minute device command)
GPU_BUDGET_S = 390.0
GPU_PROBES = ("gpu_memory", "describe")  # worker commands after each case's rounds

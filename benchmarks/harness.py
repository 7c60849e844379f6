"""The measurement harness shared by the benchmark scripts.

Each benchmark builds one ``run(n) -> elapsed_ns`` runner per case and contestant; this
module times them in interleaved rounds (every round visits every case and, within a
case, every contestant, with the contestant order rotating from round to round, and a
``gc.collect()`` before each timed loop), reduces the per-round samples to medians and
ratios of medians, records the environment, and writes the JSON, table and plot.
"""

from __future__ import annotations

import argparse
import functools
import gc
import importlib
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np


@functools.cache
def _torch() -> ModuleType | None:
    """PyTorch, the oracle and the reference (compgrad never needs it, the benchmarks do),
    imported at first use: a benchmark worker process that times one contestant imports
    this module without loading torch or compgrad beside it."""
    try:
        return importlib.import_module("torch")
    except ImportError:  # pragma: no cover - reported by require_torch()
        return None


def __getattr__(name: str) -> Any:
    """``harness.torch`` (and ``from benchmarks.harness import torch``): :func:`_torch`."""
    if name == "torch":
        return _torch()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

RESULTS_DIR = Path(__file__).resolve().parent / "results"
CONTESTANTS = ("compgrad", "torch", "numpy")
REFERENCE = "torch"
BASELINE = "numpy"

Runner = Callable[[int], int]  # run(n) -> elapsed ns of a loop of n repetitions


def libs() -> dict[str, ModuleType]:
    """The contestants' modules by name (torch only where it is installed)."""
    out: dict[str, ModuleType] = {"compgrad": importlib.import_module("compgrad"), "numpy": np}
    if _torch() is not None:
        out["torch"] = _torch()
    return out


def require_torch() -> bool:
    """True where PyTorch is installed; otherwise say so on stderr and return False."""
    if _torch() is None:
        print("PyTorch is not installed: this benchmark compares against torch eager "
              "(pip install torch==2.13.0)", file=sys.stderr)
        return False
    return True


def progress(iterable: Iterable[Any], total: int, enabled: bool, desc: str = "rounds",
             unit: str = "round", leave: bool = True) -> Iterable[Any]:
    """``iterable`` wrapped in a tqdm bar on stderr where enabled and tqdm is installed.

    ``desc``, ``unit`` and ``leave`` go to tqdm (``leave=False`` for an inner bar that
    disappears when done).
    """
    if not enabled:
        return iterable
    try:
        from tqdm import tqdm
    except ImportError:  # tqdm is in the `examples` extra; run without a bar otherwise
        return iterable
    return tqdm(iterable, total=total, desc=desc, unit=unit, leave=leave, file=sys.stderr)


def time_interleaved(runners: Sequence[dict[str, Runner]], loop_sizes: Sequence[int],
                     rounds: int, show_progress: bool = True, desc: str = "rounds",
                     leave: bool = True) -> list[dict[str, list[float]]]:
    """Time every case's runners over ``rounds`` interleaved rounds.

    ``runners[i]`` maps contestant -> runner for case i, whose timed loop has
    ``loop_sizes[i]`` repetitions. Each round visits every case and, within a case, every
    contestant, the contestant order rotating by one from round to round; a
    ``gc.collect()`` precedes each timed loop. Returns per case and contestant the
    per-round times in µs per repetition. ``desc`` and ``leave`` label the progress bar.
    """
    samples: list[dict[str, list[float]]] = [{c: [] for c in rs} for rs in runners]
    for rnd in progress(range(rounds), rounds, show_progress, desc=desc, leave=leave):
        for rs, n, smp in zip(runners, loop_sizes, samples):
            order = list(rs)
            k = rnd % len(order)
            for c in order[k:] + order[:k]:  # rotate who goes first
                gc.collect()
                smp[c].append(rs[c](n) / n / 1e3)  # ns per loop -> µs per repetition
    return samples


def warm_up(step: Callable[[], Any], min_s: float, min_calls: int = 3,
            max_calls: int = 200) -> list[float]:
    """Call ``step`` at least ``min_calls`` times and for at least ``min_s`` seconds (some
    compiled code keeps settling for a few calls after compiling), at most ``max_calls``
    times; the call times in s."""
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < max_calls and (len(times) < min_calls
                                      or time.perf_counter() - start < min_s):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return times


def loop_runner(step: Callable[[], Any]) -> Runner:
    """The ``Runner`` that calls ``step`` n times: ``run(n) -> elapsed ns``."""
    def run(n: int) -> int:
        t0 = time.perf_counter_ns()
        for _ in range(n):
            step()
        return time.perf_counter_ns() - t0
    return run


def summarize(samples: dict[str, list[float]]) -> dict[str, Any]:
    """Median, min, max and the per-round samples per contestant, and ratios of medians.

    The ratios are ``"num/den"`` for every contestant against ``REFERENCE`` and
    ``BASELINE`` (where present), in that order.
    """
    med = {c: statistics.median(v) for c, v in samples.items()}
    ratios: dict[str, float] = {}
    for num in med:
        for den in (REFERENCE, BASELINE):
            if num != den and den in med:
                ratios[f"{num}/{den}"] = med[num] / med[den]
    return {
        "median_us": med,
        "min_us": {c: min(v) for c, v in samples.items()},
        "max_us": {c: max(v) for c, v in samples.items()},
        "rounds_us": samples,
        "ratios": ratios,
    }


def round_ratios(samples: dict[str, list[float]],
                 reference: str = REFERENCE) -> dict[str, dict[str, Any]]:
    """Ratios to ``reference`` computed round by round, and their medians.

    ``samples`` maps contestant -> per-round times from ``time_interleaved``, where round
    i of every contestant ran in the same pass over the contestants. Pairing each round's
    time with the reference's time of the same round cancels drift that affects a whole
    round (load, clock speed), which a ratio of medians over all rounds would not.
    Returns ``{"num/ref": {"median": m, "rounds": [r0, r1, ...]}}`` for every contestant
    other than the reference; empty where the reference has no samples.
    """
    ref = samples.get(reference)
    if not ref:
        return {}
    out: dict[str, dict[str, Any]] = {}
    for name, times in samples.items():
        if name == reference:
            continue
        per_round = [t / r for t, r in zip(times, ref) if r > 0]
        out[f"{name}/{reference}"] = {
            "median": statistics.median(per_round) if per_round else None,
            "rounds": per_round,
        }
    return out


def compare_arrays(ref: dict[str, np.ndarray], got: dict[str, np.ndarray],
                   rtol: float) -> dict[str, Any]:
    """Compare named results with a reference: per array ``max|got - ref| / max|ref|``.

    ``ok`` where every name of ``ref`` is in ``got`` with the same shape and every error
    is <= ``rtol`` (NaN or inf counts as inf). Normalising by the array's largest value
    tolerates float32 rounding from another summation order and still catches any wrong
    element. Returns ``{"ok", "max_rel_err", "worst", "problems", "rel_err"}``.
    """
    errors: dict[str, float] = {}
    problems = []
    for name, r in ref.items():
        g = got.get(name)
        if g is None:
            problems.append(f"{name} missing")
            continue
        if g.shape != r.shape:
            problems.append(f"{name} shape {g.shape} != {r.shape}")
            continue
        if not r.size:
            errors[name] = 0.0
            continue
        r64, g64 = r.astype(np.float64), g.astype(np.float64)
        scale = float(np.max(np.abs(r64)))
        diff = float(np.max(np.abs(g64 - r64)))
        err = diff / scale if scale > 0 else diff
        errors[name] = err if math.isfinite(err) else math.inf
    worst = max(errors, key=errors.__getitem__) if errors else None
    max_err = errors[worst] if worst is not None else 0.0
    return {"ok": not problems and max_err <= rtol, "max_rel_err": max_err, "worst": worst,
            "problems": problems, "rel_err": errors}


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark of this process (``VmHWM``; Linux >= 4.0, through
    ``/proc/self/clear_refs``); False where that is impossible."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
            f.write("5")
        return True
    except OSError:
        return False


def proc_status_mib(key: str) -> float | None:
    """A memory field of ``/proc/self/status`` (``VmRSS``, ``VmHWM``) in MiB, or None."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024  # kB -> MiB
    except OSError:
        pass
    return None


def tracemalloc_sees_numpy() -> bool:
    """Whether NumPy's array buffers show up in tracemalloc (NumPy >= 1.13 reports them;
    allocations by torch or inside Numba kernels never do)."""
    tracemalloc.start()
    try:
        a = np.ones(1 << 20, dtype=np.float32)  # 4 MiB
        seen = tracemalloc.get_traced_memory()[0] >= a.nbytes
        del a
    finally:
        tracemalloc.stop()
    return seen


def environment() -> dict[str, Any]:
    """Versions and thread counts (left at their defaults, recorded here)."""
    env: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "numpy": np.__version__,
        "compgrad": getattr(importlib.import_module("compgrad"), "__version__", None),
        "threads": {},
        "thread_env": {
            k: os.environ.get(k)
            for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                      "NUMBA_NUM_THREADS")
        },
    }
    if hasattr(os, "getloadavg"):  # other processes on the machine skew the absolute times
        env["loadavg_1_5_15min"] = list(os.getloadavg())
    if hasattr(os, "sched_getaffinity"):
        env["cpus_available"] = len(os.sched_getaffinity(0))
    try:
        import numba

        env["numba"] = numba.__version__
        env["threads"]["numba"] = numba.get_num_threads()
    except ImportError:  # pragma: no cover
        pass
    torch = _torch()
    if torch is not None:
        env["torch"] = torch.__version__
        env["threads"]["torch_intra_op"] = torch.get_num_threads()
        env["threads"]["torch_inter_op"] = torch.get_num_interop_threads()
    return env


def loadavg() -> list[float] | None:
    """The 1/5/15-minute load averages, or None where the platform has none."""
    return list(os.getloadavg()) if hasattr(os, "getloadavg") else None


def fmt_duration(us: float | None) -> str:
    """A time in µs as a short human string with a unit: ``85.3 µs``, ``4.12 ms``, ``1.35 s``."""
    if us is None:
        return "-"
    if us < 1e3:
        return f"{us:.3g} µs" if us < 100 else f"{us:.0f} µs"
    if us < 1e6:
        return f"{us / 1e3:.3g} ms" if us < 1e5 else f"{us / 1e3:.0f} ms"
    return f"{us / 1e6:.3g} s"


def fmt(x: float | None, ratio: bool = False, digits: int = 2, wide_from: float = 100) -> str:
    """A table cell: ``-`` for None, ``1.23x`` for a ratio, else ``digits`` decimals
    (one fewer from ``wide_from`` on)."""
    if x is None:
        return "-"
    if ratio:
        return f"{x:.2f}x"
    return f"{x:.{digits}f}" if x < wide_from else f"{x:.{digits - 1}f}"


def format_table(result: dict[str, Any], label: Callable[[dict[str, Any]], str],
                 digits: int = 2, wide_from: float = 100) -> str:
    """Median µs per contestant and the ratios of medians, one row per case.

    ``label(case)`` is the row's first cell; ``digits`` and ``wide_from`` go to ``fmt``.
    """
    cols = ["case", "compgrad µs", "torch µs", "numpy µs", "cg/torch", "cg/numpy", "torch/numpy"]
    rows = []
    for case in result["cases"]:
        med, rat = case["median_us"], case["ratios"]
        rows.append([
            label(case),
            *(fmt(med.get(c), False, digits, wide_from) for c in ("compgrad", "torch", "numpy")),
            *(fmt(rat.get(k), True) for k in ("compgrad/torch", "compgrad/numpy", "torch/numpy")),
        ])
    return align_columns(cols, rows)


def align_columns(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain-text table: the first column left-aligned, the others right-aligned."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(r: Sequence[str]) -> str:
        return "  ".join(s.ljust(w) if i == 0 else s.rjust(w)
                         for i, (s, w) in enumerate(zip(r, widths)))

    return "\n".join([line(header), "  ".join("-" * w for w in widths),
                      *(line(r) for r in rows)])


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub-flavoured Markdown table: the first column left-aligned, the others right."""
    def line(r: Sequence[str]) -> str:
        return "| " + " | ".join(s.replace("|", "\\|") for s in r) + " |"

    rule = "|" + "|".join(":---" if i == 0 else "---:" for i in range(len(header))) + "|"
    return "\n".join([line(header), rule, *(line(r) for r in rows)])


def write_json(result: dict[str, Any], path: Path) -> None:
    """``result`` as indented UTF-8 JSON at ``path`` (parent folders created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def new_figure(figsize: tuple[float, float]) -> tuple[Any, Any]:
    """``(fig, ax)`` from matplotlib's non-interactive Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=figsize)


def cpus(result: dict[str, Any]) -> Any:
    """The CPU count for a plot title: CPUs available to the process, else all CPUs."""
    env = result.get("environment", {})
    return env.get("cpus_available", env.get("cpu_count"))


def save_figure(fig: Any, path: Path) -> None:
    """Tight layout, save as PNG at 120 dpi (parent folders created), close."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def new_parser(doc: str, default_rounds: int, quick_rounds: int) -> argparse.ArgumentParser:
    """A parser described by the first paragraph of ``doc``, with ``--rounds``."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=None,
                        help=f"interleaved rounds (default {default_rounds}, quick {quick_rounds})")
    return parser


def add_output_options(parser: argparse.ArgumentParser, stem: str, quick_help: str) -> None:
    """The options every benchmark ends with: ``--quick``, ``--out-dir``, ``--no-plot``."""
    parser.add_argument("--quick", action="store_true", help=quick_help)
    parser.add_argument("--out-dir", type=Path, default=RESULTS_DIR,
                        help=f"where {stem}.json / .png go (default benchmarks/results)")
    parser.add_argument("--no-plot", action="store_true", help="skip the PNG")


def parse_args(parser: argparse.ArgumentParser,
               argv: list[str] | None) -> argparse.Namespace | None:
    """Parse ``argv``; None (after saying so) where PyTorch, the reference, is missing."""
    args = parser.parse_args(argv)
    return args if require_torch() else None


def write_outputs(result: dict[str, Any], out_dir: Path, stem: str,
                  plot: Callable[[dict[str, Any], Path], None], no_plot: bool,
                  markdown: str | None = None) -> None:
    """Write ``<stem>.json``, ``markdown`` (where given) to ``<stem>.md`` and (unless
    ``no_plot``) ``plot`` to ``<stem>.png`` in ``out_dir``, saying where each went."""
    json_path = out_dir / f"{stem}.json"
    write_json(result, json_path)
    print(f"wrote {json_path}")
    if markdown is not None:
        md_path = out_dir / f"{stem}.md"
        md_path.write_text(markdown.rstrip("\n") + "\n", encoding="utf-8")
        print(f"wrote {md_path}")
    if not no_plot:
        png_path = out_dir / f"{stem}.png"
        plot(result, png_path)
        print(f"wrote {png_path}")


def run_json_child(argv: Sequence[str], env: dict[str, str], cwd: Path,
                   timeout_s: float) -> dict[str, Any]:
    """Run ``argv`` as a fresh process; its last stdout line is a JSON object, returned
    with ``wall_s`` (the child's whole life, interpreter start-up included) added.

    A child that fails, times out or prints no JSON gives ``{"error": ...}`` (with the
    tail of its stderr) instead of raising, so one broken measurement is reported in
    the results rather than ending the benchmark.
    """
    start = time.perf_counter()
    try:
        proc = subprocess.run(list(argv), env=env, cwd=cwd, capture_output=True, text=True,
                              timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout_s:.0f} s"}
    wall = time.perf_counter() - start
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        return {"error": f"exit status {proc.returncode}", "stderr_tail": proc.stderr[-2000:]}
    try:
        out = json.loads(lines[-1])
    except json.JSONDecodeError:
        return {"error": "no JSON on the last stdout line", "stdout_tail": proc.stdout[-2000:]}
    out["wall_s"] = wall
    return out

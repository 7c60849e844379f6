"""The measurement harness shared by the benchmark scripts.

Each benchmark builds one ``run(n) -> elapsed_ns`` runner per case and contestant; this
module times them in interleaved rounds (every round visits every case and, within a
case, every contestant, with the contestant order rotating from round to round, and a
``gc.collect()`` before each timed loop), reduces the per-round samples to medians and
ratios of medians, records the environment, and writes the JSON, table and plot.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

import compgrad

try:  # PyTorch is the oracle and the reference; compgrad never needs it, the benchmarks do
    import torch
except ImportError:  # pragma: no cover - reported by require_torch()
    torch = None

RESULTS_DIR = Path(__file__).resolve().parent / "results"
CONTESTANTS = ("compgrad", "torch", "numpy")
REFERENCE = "torch"
BASELINE = "numpy"

Runner = Callable[[int], int]  # run(n) -> elapsed ns of a loop of n repetitions


def libs() -> dict[str, ModuleType]:
    """The contestants' modules by name (torch only where it is installed)."""
    out: dict[str, ModuleType] = {"compgrad": compgrad, "numpy": np}
    if torch is not None:
        out["torch"] = torch
    return out


def require_torch() -> bool:
    """True where PyTorch is installed; otherwise say so on stderr and return False."""
    if torch is None:
        print("PyTorch is not installed: this benchmark compares against torch eager "
              "(pip install torch==2.13.0)", file=sys.stderr)
        return False
    return True


def progress(iterable: Iterable[int], total: int, enabled: bool) -> Iterable[int]:
    """``iterable`` wrapped in a tqdm bar on stderr where enabled and tqdm is installed."""
    if not enabled:
        return iterable
    try:
        from tqdm import tqdm
    except ImportError:  # tqdm is in the `examples` extra; run without a bar otherwise
        return iterable
    return tqdm(iterable, total=total, desc="rounds", unit="round", file=sys.stderr)


def time_interleaved(runners: Sequence[dict[str, Runner]], loop_sizes: Sequence[int],
                     rounds: int, show_progress: bool = True) -> list[dict[str, list[float]]]:
    """Time every case's runners over ``rounds`` interleaved rounds.

    ``runners[i]`` maps contestant -> runner for case i, whose timed loop has
    ``loop_sizes[i]`` repetitions. Each round visits every case and, within a case, every
    contestant, the contestant order rotating by one from round to round; a
    ``gc.collect()`` precedes each timed loop. Returns per case and contestant the
    per-round times in µs per repetition.
    """
    samples: list[dict[str, list[float]]] = [{c: [] for c in rs} for rs in runners]
    for rnd in progress(range(rounds), rounds, show_progress):
        for rs, n, smp in zip(runners, loop_sizes, samples):
            order = list(rs)
            k = rnd % len(order)
            for c in order[k:] + order[:k]:  # rotate who goes first
                gc.collect()
                smp[c].append(rs[c](n) / n / 1e3)  # ns per loop -> µs per repetition
    return samples


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


def environment() -> dict[str, Any]:
    """Versions and thread counts (left at their defaults, recorded here)."""
    env: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "numpy": np.__version__,
        "compgrad": getattr(compgrad, "__version__", None),
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
    if torch is not None:
        env["torch"] = torch.__version__
        env["threads"]["torch_intra_op"] = torch.get_num_threads()
        env["threads"]["torch_inter_op"] = torch.get_num_interop_threads()
    return env


def loadavg() -> list[float] | None:
    """The 1/5/15-minute load averages, or None where the platform has none."""
    return list(os.getloadavg()) if hasattr(os, "getloadavg") else None


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
    widths = [max(len(r[i]) for r in [cols, *rows]) for i in range(len(cols))]

    def line(r: list[str]) -> str:
        return "  ".join(s.ljust(w) if i == 0 else s.rjust(w)
                         for i, (s, w) in enumerate(zip(r, widths)))

    return "\n".join([line(cols), "  ".join("-" * w for w in widths), *(line(r) for r in rows)])


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
                  plot: Callable[[dict[str, Any], Path], None], no_plot: bool) -> None:
    """Write ``<stem>.json`` and (unless ``no_plot``) ``plot`` to ``<stem>.png`` in
    ``out_dir``, saying where each went."""
    json_path = out_dir / f"{stem}.json"
    write_json(result, json_path)
    print(f"wrote {json_path}")
    if not no_plot:
        png_path = out_dir / f"{stem}.png"
        plot(result, png_path)
        print(f"wrote {png_path}")

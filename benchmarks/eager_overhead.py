"""Eager-mode overhead: compgrad vs PyTorch eager vs plain NumPy, on tiny problems.

At these sizes (shape (8,) tensors, a 2-4-1 MLP on a batch of 8) the arithmetic is
negligible, so what is measured is the per-op cost of the framework: dispatch, type
promotion, result allocation and, with ``requires_grad=True`` inputs, recording the
autograd graph.

Run from the repository root::

    python -m benchmarks.eager_overhead [--rounds 15] [--quick]

All contestants run in one process, in interleaved rounds: each round visits every
case and, within a case, every contestant (the contestant order rotates from round to
round), so slow drift of the machine (frequency scaling, other load) hits all of them
alike. The report is the median over rounds, plus the ratios between medians.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from benchmarks import harness
from benchmarks.harness import CONTESTANTS, Runner, environment

DEFAULT_ROUNDS = 15
DEFAULT_N_OPS = 2000  # ops per timed loop (per-op cases)
DEFAULT_N_STEPS = 200  # training steps per timed loop (MLP case)
QUICK_ROUNDS = 3
QUICK_N_OPS = 100
QUICK_N_STEPS = 10

SIZE = 8  # per-op tensors are shape (SIZE,), W is (SIZE, SIZE)
BATCH = 8
LR = 0.05
DTYPE_NP = np.float32

# A timed case: a zero-argument-factory per contestant; the factory builds the inputs
# and returns ``run(n) -> elapsed_ns`` (a harness.Runner) for a loop of n repetitions.
Factory = Callable[[], Runner]


# --------------------------------------------------------------------------- per-op cases

# Each op is written once against (a, b, W); for numpy, `lib` is the numpy module.
OP_NAMES = ("add", "mul", "exp", "sum", "matmul", "relu")


def op_fn(lib: ModuleType, op: str) -> Callable[[Any, Any, Any], Any]:
    """The op as ``f(a, b, W)`` for one library (one Python call wraps every op alike)."""
    if op == "add":
        return lambda a, b, W: a + b
    if op == "mul":
        return lambda a, b, W: a * b
    if op == "exp":
        return (lambda a, b, W: np.exp(a)) if lib is np else (lambda a, b, W: a.exp())
    if op == "sum":
        return lambda a, b, W: a.sum()
    if op == "matmul":
        return lambda a, b, W: a @ W
    if op == "relu":
        if lib is np:
            return lambda a, b, W: np.maximum(a, 0)
        relu = lib.relu
        return lambda a, b, W: relu(a)
    raise ValueError(f"unknown op {op!r}")


def _op_inputs(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    a = rng.standard_normal(SIZE).astype(DTYPE_NP)
    b = rng.standard_normal(SIZE).astype(DTYPE_NP)
    w = rng.standard_normal((SIZE, SIZE)).astype(DTYPE_NP)
    return a, b, w


def _timed_loop(fn: Callable[..., Any], args: tuple) -> Runner:
    """``run(n)``: call ``fn(*args)`` n times, return the elapsed nanoseconds.

    The Python loop and the call of ``fn`` are included; they cost the same for every
    contestant (tens of nanoseconds) and are small next to what is measured.
    """

    def run(n: int) -> int:
        f, xs = fn, args
        t0 = time.perf_counter_ns()
        for _ in range(n):
            f(*xs)
        return time.perf_counter_ns() - t0

    return run


def op_factory(lib: ModuleType, op: str, requires_grad: bool) -> Factory:
    """Factory for one per-op case. ``requires_grad`` makes ``a`` and ``b`` leaves that
    require grad, so every op also records a graph node (``W`` stays a constant)."""

    def make() -> Runner:
        a, b, w = _op_inputs()
        if lib is np:
            if requires_grad:
                raise ValueError("numpy has no autograd")
            args = (a, b, w)
        else:
            args = (
                lib.tensor(a, requires_grad=requires_grad),
                lib.tensor(b, requires_grad=requires_grad),
                lib.tensor(w),
            )
        return _timed_loop(op_fn(lib, op), args)

    return make


# ---------------------------------------------------------------------- tiny MLP training

def mlp_init(seed: int = 0) -> dict[str, np.ndarray]:
    """Shared initial parameters and data for the 2-4-1 MLP (float32 NumPy arrays)."""
    rng = np.random.default_rng(seed)

    def uniform(shape: tuple[int, ...], fan_in: int) -> np.ndarray:
        bound = 1.0 / math.sqrt(fan_in)
        return rng.uniform(-bound, bound, shape).astype(DTYPE_NP)

    x = rng.standard_normal((BATCH, 2)).astype(DTYPE_NP)
    y = (np.sin(x[:, :1]) + 0.5 * x[:, 1:]).astype(DTYPE_NP)
    return {
        "w1": uniform((4, 2), 2),
        "b1": uniform((4,), 2),
        "w2": uniform((1, 4), 4),
        "b2": uniform((1,), 4),
        "x": x,
        "y": y,
    }


def mlp_train_step(lib: ModuleType, params: list, x: Any, y: Any, lr: float = LR) -> Any:
    """One SGD step of a 2-4-1 ReLU MLP with MSE loss, written once for compgrad and torch.

    ``params`` = [w1 (4,2), b1 (4,), w2 (1,4), b2 (1,)], leaves with requires_grad=True.
    Returns the loss tensor (computed before the update).
    """
    w1, b1, w2, b2 = params
    h = lib.relu(x @ w1.t() + b1)
    out = h @ w2.t() + b2
    loss = ((out - y) ** 2).mean()
    loss.backward()
    with lib.no_grad():
        for p in params:
            p -= lr * p.grad
            p.grad = None
    return loss


def mlp_make_tensors(lib: ModuleType, init: dict[str, np.ndarray]) -> tuple[list, Any, Any]:
    params = [lib.tensor(init[k].copy(), requires_grad=True) for k in ("w1", "b1", "w2", "b2")]
    return params, lib.tensor(init["x"]), lib.tensor(init["y"])


def mlp_train_step_numpy(params: list[np.ndarray], x: np.ndarray, y: np.ndarray,
                         lr: float = LR) -> float:
    """The same step in plain NumPy with hand-written gradients (the no-framework floor)."""
    w1, b1, w2, b2 = params
    z1 = x @ w1.T + b1
    h = np.maximum(z1, 0)
    out = h @ w2.T + b2
    diff = out - y
    loss = (diff * diff).mean()
    dout = diff * (2.0 / diff.size)
    dw2 = dout.T @ h
    db2 = dout.sum(0)
    dz1 = (dout @ w2) * (z1 > 0)
    dw1 = dz1.T @ x
    db1 = dz1.sum(0)
    w1 -= lr * dw1
    b1 -= lr * db1
    w2 -= lr * dw2
    b2 -= lr * db2
    return loss


def mlp_factory(lib: ModuleType) -> Factory:
    def make() -> Runner:
        init = mlp_init()
        if lib is np:
            params = [init[k].copy() for k in ("w1", "b1", "w2", "b2")]
            return _timed_loop(mlp_train_step_numpy, (params, init["x"], init["y"]))
        params, x, y = mlp_make_tensors(lib, init)
        return _timed_loop(mlp_train_step, (lib, params, x, y))

    return make


def mlp_losses(lib: ModuleType, steps: int) -> list[float]:
    """Loss trajectory of ``steps`` steps from the shared init (a correctness cross-check)."""
    init = mlp_init()
    if lib is np:
        params = [init[k].copy() for k in ("w1", "b1", "w2", "b2")]
        return [float(mlp_train_step_numpy(params, init["x"], init["y"])) for _ in range(steps)]
    params, x, y = mlp_make_tensors(lib, init)
    return [float(mlp_train_step(lib, params, x, y).item()) for _ in range(steps)]


# ----------------------------------------------------------------------------- the driver

def build_cases(contestants: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """The case list: name, unit count key ("ops" or "steps") and one factory per contestant."""
    libs = harness.libs()
    names = [c for c in (contestants or CONTESTANTS) if c in libs]
    cases: list[dict[str, Any]] = []
    for requires_grad in (False, True):
        for op in OP_NAMES:
            factories = {
                c: op_factory(libs[c], op, requires_grad)
                for c in names
                if not (requires_grad and c == "numpy")
            }
            suffix = " (rg)" if requires_grad else ""
            cases.append({
                "name": f"{op}{suffix}",
                "kind": "op",
                "requires_grad": requires_grad,
                "unit": "ops",
                "factories": factories,
            })
    cases.append({
        "name": "mlp 2-4-1 step",
        "kind": "mlp_step",
        "requires_grad": True,
        "unit": "steps",
        "factories": {c: mlp_factory(libs[c]) for c in names},
    })
    return cases


def run_benchmark(rounds: int = DEFAULT_ROUNDS, n_ops: int = DEFAULT_N_OPS,
                  n_steps: int = DEFAULT_N_STEPS, contestants: Iterable[str] | None = None,
                  progress: bool = True) -> dict[str, Any]:
    """Time every case for every contestant, interleaved over ``rounds`` rounds.

    Returns ``{"cases": [...]}`` where each case holds, per contestant, the per-round
    times in microseconds per op (or per step), their median, min and max, and the ratios
    of medians against torch and NumPy.
    """
    cases = build_cases(contestants)
    # Build inputs once and warm up (first calls compile Numba kernels, fill caches).
    runners: list[dict[str, Runner]] = []
    for case in cases:
        rs = {c: make() for c, make in case["factories"].items()}
        for r in rs.values():
            r(3)
        runners.append(rs)

    samples = harness.time_interleaved(
        runners, [n_ops if case["unit"] == "ops" else n_steps for case in cases], rounds,
        progress)
    out_cases = [{
        "name": case["name"],
        "kind": case["kind"],
        "requires_grad": case["requires_grad"],
        "unit": "us/" + case["unit"][:-1],
        "n_per_round": n_ops if case["unit"] == "ops" else n_steps,
        **harness.summarize(smp),
    } for case, smp in zip(cases, samples)]
    return {"cases": out_cases}


def format_table(result: dict[str, Any]) -> str:
    """The results as a text table, one row per case."""
    return harness.format_table(result, lambda case: case["name"])


def plot(result: dict[str, Any], path: Path) -> None:
    """Bar plot of time ratio vs torch eager per case (log scale, a line at 1.0)."""
    cases = result["cases"]
    names = [c["name"] for c in cases]
    series = [("compgrad/torch", "compgrad", "tab:blue"), ("numpy/torch", "numpy", "tab:green")]
    xs = np.arange(len(cases))
    width = 0.4
    fig, ax = harness.new_figure((max(8.0, 0.75 * len(cases)), 4.8))
    for i, (key, label, color) in enumerate(series):
        vals = [c["ratios"].get(key, np.nan) for c in cases]
        pos = xs + (i - 0.5) * width
        bars = ax.bar(pos, vals, width, label=f"{label} / torch eager", color=color)
        for bar, v in zip(bars, vals):
            if np.isfinite(v):
                ax.annotate(f"{v:.2g}", (bar.get_x() + bar.get_width() / 2, v),
                            ha="center", va="bottom", fontsize=7)
    ax.axhline(1.0, color="black", linewidth=1, linestyle="--", label="torch eager (1.0)")
    ax.set_yscale("log")
    ax.set_xticks(xs)
    ax.set_xticklabels(names, rotation=35, ha="right")
    ax.set_ylabel("median time ratio vs torch eager (<1: faster)")
    ax.set_title(f"Eager overhead, {result['config']['rounds']} rounds, "
                 f"{harness.cpus(result)} CPUs "
                 f"(rg = inputs require grad)", fontsize=10)
    finite = [v for c in cases for v in c["ratios"].values() if np.isfinite(v) and v > 0]
    if finite:  # head room above the tallest bar for the legend
        ax.set_ylim(min(0.5, min(finite)) / 1.5, max(2.0, max(finite)) * 4)
    ax.legend(fontsize=8, loc="upper left", ncol=3)
    ax.grid(axis="y", which="both", alpha=0.3)
    harness.save_figure(fig, path)


def main(argv: list[str] | None = None) -> int:
    parser = harness.new_parser(__doc__, DEFAULT_ROUNDS, QUICK_ROUNDS)
    parser.add_argument("--n-ops", type=int, default=None,
                        help=f"ops per timed loop (default {DEFAULT_N_OPS})")
    parser.add_argument("--n-steps", type=int, default=None,
                        help=f"MLP steps per timed loop (default {DEFAULT_N_STEPS})")
    harness.add_output_options(parser, "eager_overhead",
                               quick_help="smoke-test sizes: 3 rounds, small loops")
    args = harness.parse_args(parser, argv)
    if args is None:
        return 2

    rounds = args.rounds or (QUICK_ROUNDS if args.quick else DEFAULT_ROUNDS)
    n_ops = args.n_ops or (QUICK_N_OPS if args.quick else DEFAULT_N_OPS)
    n_steps = args.n_steps or (QUICK_N_STEPS if args.quick else DEFAULT_N_STEPS)

    check_steps = 20
    losses = {c: mlp_losses(lib, check_steps) for c, lib in harness.libs().items()}
    loss_diff = max(abs(a - b) for a, b in zip(losses["compgrad"], losses["torch"]))

    load_before = harness.loadavg()
    t0 = time.perf_counter()
    result = run_benchmark(rounds, n_ops, n_steps)
    wall = time.perf_counter() - t0
    result["config"] = {
        "rounds": rounds, "n_ops": n_ops, "n_steps": n_steps, "quick": args.quick,
        "op_shape": [SIZE], "matmul_W_shape": [SIZE, SIZE], "mlp": "2-4-1 ReLU, MSE, SGD",
        "mlp_batch": BATCH, "lr": LR, "dtype": "float32", "statistic": "median over rounds",
        "wall_s": wall,
    }
    result["environment"] = environment()
    result["environment"]["loadavg_before_run"] = load_before
    result["mlp_check"] = {
        "steps": check_steps,
        "final_loss": {c: v[-1] for c, v in losses.items()},
        "max_abs_loss_diff_compgrad_vs_torch": loss_diff,
    }

    print(format_table(result))
    print(f"\nmedian of {rounds} interleaved rounds; {n_ops} ops / {n_steps} MLP steps per "
          f"timed loop; rg = inputs require grad; ratios of medians (<1: numerator faster)")
    thr = result["environment"]["threads"]
    print(f"threads: {thr}; MLP loss check: max |compgrad - torch| over {check_steps} steps "
          f"= {loss_diff:.2e}; wall {wall:.1f} s")

    harness.write_outputs(result, args.out_dir, "eager_overhead", plot, args.no_plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())

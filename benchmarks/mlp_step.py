"""One training step of a 784-512-512-10 MLP: compgrad eager vs PyTorch eager vs NumPy.

The step is ordinary PyTorch training code, written once and run with ``lib = compgrad``
and ``lib = torch``::

    optimizer.zero_grad(); loss = loss_fn(model(x), y); loss.backward(); optimizer.step()

with ``model = nn.Sequential(Linear(784, 512), ReLU(), Linear(512, 512), ReLU(),
Linear(512, 10))``, ``nn.CrossEntropyLoss()`` and ``optim.SGD(lr=0.01, momentum=0.9)``,
float32, at batch 32 and batch 256. Both libraries start from the same weights (torch's
default initialisation, copied into compgrad through ``state_dict`` and NumPy). A NumPy
version with the forward pass, backward pass and SGD-momentum update written by hand is
the floor: what the arithmetic costs with no framework at all.

Run from the repository root::

    python -m benchmarks.mlp_step [--rounds 15] [--quick] [--threads N]

As in ``eager_overhead``, all contestants run in one process in interleaved rounds (the
contestant order rotates from round to round) and the report is the median over rounds
plus ratios of medians. A cProfile run of compgrad's batch-32 step then splits its time
into BLAS matmul, other NumPy kernels and Python overhead.
"""

from __future__ import annotations

import cProfile
import os
import pstats
import statistics
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from benchmarks import harness
from benchmarks.harness import CONTESTANTS, Runner, torch

GOAL_RATIO = 1.1  # issue 5: compgrad eager within 10% of torch eager on this step

SIZES = (784, 512, 512, 10)
BATCHES = (32, 256)
LR = 0.01
MOMENTUM = 0.9
N_BATCHES = 4  # distinct random batches cycled through, so the net does not just memorise one

DEFAULT_ROUNDS = 15
DEFAULT_N_STEPS = 20  # training steps per timed loop
DEFAULT_PROFILE_STEPS = 100
QUICK_ROUNDS = 3
QUICK_N_STEPS = 2
QUICK_PROFILE_STEPS = 5
CHECK_STEPS = 10


# ------------------------------------------------------------------------ shared set-up

def initial_state(seed: int = 0) -> dict[str, np.ndarray]:
    """torch's default initialisation of the MLP, as float32 NumPy arrays (state_dict keys)."""
    torch.manual_seed(seed)
    model = build_model(torch)
    return {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}


def make_data(batch: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """``N_BATCHES`` (x float32 [batch, 784], y int64 [batch]) pairs of random data."""
    rng = np.random.default_rng(seed + batch)
    return [(rng.standard_normal((batch, SIZES[0])).astype(np.float32),
             rng.integers(0, SIZES[-1], batch, dtype=np.int64)) for _ in range(N_BATCHES)]


def build_model(lib: ModuleType) -> Any:
    """The MLP as ``lib.nn.Sequential`` of Linear and ReLU layers."""
    nn = lib.nn
    layers: list[Any] = []
    for i, (n_in, n_out) in enumerate(zip(SIZES[:-1], SIZES[1:])):
        if i:
            layers.append(nn.ReLU())
        layers.append(nn.Linear(n_in, n_out))
    return nn.Sequential(*layers)


def make_training(lib: ModuleType, state: dict[str, np.ndarray]) -> tuple[Any, Any, Any]:
    """(model, loss_fn, optimizer) for ``lib``, with the weights in ``state``."""
    model = build_model(lib)
    model.load_state_dict({k: lib.from_numpy(v.copy()) for k, v in state.items()})
    optimizer = lib.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    return model, lib.nn.CrossEntropyLoss(), optimizer


def train_step(model: Any, loss_fn: Any, optimizer: Any, x: Any, y: Any) -> Any:
    """One training step, the same code for compgrad and torch; returns the loss."""
    optimizer.zero_grad()
    loss = loss_fn(model(x), y)
    loss.backward()
    optimizer.step()
    return loss


class NumpyMLP:
    """The same MLP, loss and SGD-momentum update in NumPy with hand-written gradients.

    Follows PyTorch's SGD exactly: the first step sets ``buf = g``, later steps
    ``buf = momentum * buf + g``; then ``p -= lr * buf``.
    """

    def __init__(self, state: dict[str, np.ndarray]) -> None:
        keys = [k for k in state if k.endswith(".weight")]
        self.weights = [state[k].copy() for k in keys]
        self.biases = [state[k.replace(".weight", ".bias")].copy() for k in keys]
        self.bufs: list[np.ndarray] | None = None

    def step(self, x: np.ndarray, y: np.ndarray) -> float:
        # forward: keep each layer's input for the weight gradients
        inputs, h = [], x
        n_layers = len(self.weights)
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            inputs.append(h)
            h = h @ w.T + b
            if i < n_layers - 1:
                h = np.maximum(h, 0)
        # cross-entropy (mean over the batch) via a stable log-softmax
        z = h - h.max(axis=1, keepdims=True)
        e = np.exp(z)
        s = e.sum(axis=1, keepdims=True)
        rows = np.arange(len(y))
        loss = float(np.log(s[:, 0]).mean() - z[rows, y].mean())
        g = e / s
        g[rows, y] -= 1
        g *= np.float32(1.0 / len(y))
        # backward
        grads: list[np.ndarray] = []
        for i in range(n_layers - 1, -1, -1):
            grads.append(g.T @ inputs[i])  # d weight
            grads.append(g.sum(axis=0))  # d bias
            if i:
                g = (g @ self.weights[i]) * (inputs[i] > 0)  # through the ReLU before layer i
        grads.reverse()  # [db0, dw0, db1, dw1, ...]: grads[2i + 1] is layer i's weight
        params = [p for wb in zip(self.biases, self.weights) for p in wb]
        # SGD with momentum, in place like torch's foreach-free path
        if self.bufs is None:
            self.bufs = [gr.copy() for gr in grads]
        else:
            for buf, gr in zip(self.bufs, grads):
                buf *= np.float32(MOMENTUM)
                buf += gr
        for p, buf in zip(params, self.bufs):
            p -= np.float32(LR) * buf
        return loss


def make_runner(contestant: str, state: dict[str, np.ndarray], batch: int) -> Runner:
    """``run(n)``: n training steps cycling through the batch's data; elapsed ns."""
    data = make_data(batch)
    if contestant == "numpy":
        net = NumpyMLP(state)
        step: Callable[..., Any] = net.step
        batches = [(x, y) for x, y in data]
        extra: tuple = ()
    else:
        lib = harness.libs()[contestant]
        model, loss_fn, optimizer = make_training(lib, state)
        step = train_step
        batches = [(lib.from_numpy(x.copy()), lib.from_numpy(y.copy())) for x, y in data]
        extra = (model, loss_fn, optimizer)

    def run(n: int) -> int:
        k = len(batches)
        t0 = time.perf_counter_ns()
        for i in range(n):
            step(*extra, *batches[i % k])
        return time.perf_counter_ns() - t0

    return run


def loss_trajectory(contestant: str, state: dict[str, np.ndarray], batch: int,
                    steps: int = CHECK_STEPS) -> list[float]:
    """Losses of ``steps`` steps from ``state`` (a check that all three compute the same)."""
    data = make_data(batch)
    if contestant == "numpy":
        net = NumpyMLP(state)
        return [net.step(*data[i % len(data)]) for i in range(steps)]
    lib = harness.libs()[contestant]
    model, loss_fn, optimizer = make_training(lib, state)
    out = []
    for i in range(steps):
        x, y = data[i % len(data)]
        loss = train_step(model, loss_fn, optimizer, lib.from_numpy(x.copy()),
                          lib.from_numpy(y.copy()))
        out.append(float(loss.item()))
    return out


# ----------------------------------------------------------------------------- timing

def run_benchmark(rounds: int = DEFAULT_ROUNDS, n_steps: int = DEFAULT_N_STEPS,
                  batches: Iterable[int] = BATCHES, contestants: Iterable[str] | None = None,
                  progress: bool = True) -> dict[str, Any]:
    """Time the step for every batch size and contestant, interleaved over ``rounds``.

    Returns ``{"cases": [...]}``; each case holds per contestant the per-round times in
    µs per step, their median, min and max, and the ratios of medians.
    """
    libs = harness.libs()
    names = [c for c in (contestants or CONTESTANTS) if c in libs]
    state = initial_state()
    batches = list(batches)
    runners = []
    for batch in batches:
        rs = {c: make_runner(c, state, batch) for c in names}
        for r in rs.values():  # warm-up: Numba kernels, BLAS buffers, momentum buffers
            r(2)
        runners.append(rs)

    samples = harness.time_interleaved(runners, [n_steps] * len(runners), rounds, progress)
    cases = [{
        "name": f"mlp {'-'.join(map(str, SIZES))} step, batch {batch}",
        "batch": batch,
        "unit": "us/step",
        "n_per_round": n_steps,
        **harness.summarize(smp),
    } for batch, smp in zip(batches, samples)]
    return {"cases": cases}


# ---------------------------------------------------------------------------- profile

def _category(func: tuple[str, int, str]) -> str:
    """Where one cProfile entry's own time goes: blas_matmul, numpy_kernels, copies, python."""
    filename, _, name = func
    # np.matmul is a ufunc, which cProfile does not list separately: its time is the
    # own time of compgrad's thin wrapper around it, ``blas_matmul`` (with the copy back
    # to row-major of a swapped product), and likewise for the elementwise ufuncs inside
    # ir/ops/_util.py's ``impl``
    if name in ("blas_matmul", "_np_matmul"):
        return "blas_matmul"
    # copies: np.array (autograd making a non-contiguous gradient contiguous before
    # storing it in .grad) and Tensor._write (in-place ops compute out of place, then copy
    # the result into the tensor's storage)
    if (filename == "~" and name in ("<built-in method numpy.array>",
                                     "<built-in method numpy.copyto>")) \
            or (filename.endswith("tensor.py") and name == "_write"):
        return "copies"
    if filename.endswith("_util.py") and name == "impl":
        return "numpy_kernels"
    if filename == "~" and ("numpy" in name or "ufunc" in name):
        return "numpy_kernels"
    return "python"


def _unprofiled_split(by_cat: dict[str, float], steps: int,
                      unprofiled_us: float) -> dict[str, float]:
    c_us = {k: v / steps * 1e6 for k, v in by_cat.items() if k != "python"}
    c_us["python"] = max(0.0, unprofiled_us - sum(c_us.values()))
    return c_us


def profile_compgrad(batch: int = 32, steps: int = DEFAULT_PROFILE_STEPS,
                     top: int = 12) -> dict[str, Any]:
    """cProfile ``steps`` compgrad training steps; split the own time by category.

    Categories: ``blas_matmul`` (np.matmul inside ``blas_matmul``), ``numpy_kernels`` (the
    other NumPy C calls: elementwise ufuncs, reductions, casts), ``copies`` (gradients made
    contiguous, in-place results copied into storage) and ``python`` (everything else:
    dispatch, type inference, autograd bookkeeping, the optimizer's loop).
    cProfile slows Python code much more than C code, so ``python`` is an upper bound;
    the unprofiled time per step is reported next to it.
    """
    state = initial_state()
    run = make_runner("compgrad", state, batch)
    run(3)
    unprofiled_us = statistics.median(run(steps) / steps / 1e3 for _ in range(3))
    prof = cProfile.Profile()
    prof.enable()
    run(steps)
    prof.disable()
    stats = pstats.Stats(prof)
    by_cat = {"blas_matmul": 0.0, "numpy_kernels": 0.0, "copies": 0.0, "python": 0.0}
    entries = []
    for func, (_, ncalls, tottime, cumtime, _) in stats.stats.items():  # type: ignore[attr-defined]
        by_cat[_category(func)] += tottime
        entries.append((tottime, ncalls, cumtime, func))
    total = sum(by_cat.values())
    entries.sort(reverse=True)
    root = str(Path(__file__).resolve().parent.parent) + os.sep

    def label(func: tuple[str, int, str]) -> str:
        filename, line, name = func
        if filename == "~":
            return name
        return f"{filename.replace(root, '')}:{line}({name})"

    return {
        "batch": batch,
        "steps": steps,
        "unprofiled_us_per_step": unprofiled_us,
        "profiled_us_per_step": total / steps * 1e6,
        "seconds_by_category": by_cat,
        "fraction_by_category": {k: v / total for k, v in by_cat.items()},
        # cProfile's own cost lands almost all on Python code, so a fairer split of the
        # unprofiled step: the C categories as measured, Python as the remainder
        "estimated_unprofiled_us_per_step": _unprofiled_split(by_cat, steps, unprofiled_us),
        "top_by_own_time": [
            {"function": label(func), "category": _category(func), "calls_per_step":
             ncalls / steps, "own_us_per_step": tt / steps * 1e6,
             "cum_us_per_step": ct / steps * 1e6, "fraction_of_total": tt / total}
            for tt, ncalls, ct, func in entries[:top]
        ],
    }


# ----------------------------------------------------------------------------- output

def environment() -> dict[str, Any]:
    """eager_overhead's environment record plus BLAS builds and thread pools.

    The thread counts are read first: asking Numba for its thread count starts its
    OpenMP threading layer, which can reset the OpenMP pool that torch shares.
    """
    torch_threads = torch.get_num_threads() if torch is not None else None
    try:  # the thread pools actually loaded in this process (OpenBLAS, OpenMP, MKL)
        import threadpoolctl

        pools = threadpoolctl.threadpool_info()
    except ImportError:  # pragma: no cover - threadpoolctl is optional
        pools = None
    env = harness.environment()
    env["threadpools"] = pools
    if torch_threads is not None:
        env["threads"]["torch_intra_op"] = torch_threads
    try:
        env["numpy_blas"] = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
    except Exception:  # noqa: BLE001 - older NumPy: the record is optional
        env["numpy_blas"] = None
    try:
        import scipy

        env["scipy"] = scipy.__version__
        env["scipy_blas"] = scipy.show_config(mode="dicts")["Build Dependencies"]["blas"]
    except Exception:  # noqa: BLE001 - optional record
        env["scipy_blas"] = None
    return env


def format_table(result: dict[str, Any]) -> str:
    """The results as a text table, one row per batch size."""
    return harness.format_table(result, lambda case: f"batch {case['batch']}",
                                digits=1, wide_from=1000)


def format_profile(prof: dict[str, Any], top: int = 8) -> str:
    frac = prof["fraction_by_category"]
    lines = [f"compgrad batch-{prof['batch']} profile ({prof['steps']} steps, "
             f"{prof['unprofiled_us_per_step']:.0f} µs/step unprofiled, "
             f"{prof['profiled_us_per_step']:.0f} µs/step under cProfile): "
             f"BLAS matmul {frac['blas_matmul']:.0%}, other NumPy kernels "
             f"{frac['numpy_kernels']:.0%}, copies {frac['copies']:.0%}, "
             f"Python {frac['python']:.0%}"]
    est = prof["estimated_unprofiled_us_per_step"]
    lines.append("  unprofiled estimate (C parts as measured, Python the rest): " + ", ".join(
        f"{k} {v:.0f} µs ({v / prof['unprofiled_us_per_step']:.0%})" for k, v in est.items()))
    for e in prof["top_by_own_time"][:top]:
        lines.append(f"  {e['own_us_per_step']:8.0f} µs/step {e['fraction_of_total']:6.1%}  "
                     f"{e['calls_per_step']:5.0f} calls  [{e['category']}] {e['function']}")
    return "\n".join(lines)


def plot(result: dict[str, Any], path: Path) -> None:
    """Grouped bars: median ms per step per contestant and batch, ratio to torch on top."""
    cases = result["cases"]
    colors = {"compgrad": "tab:blue", "torch": "tab:orange", "numpy": "tab:green"}
    names = [c for c in CONTESTANTS if any(c in case["median_us"] for case in cases)]
    xs = np.arange(len(cases))
    width = 0.8 / len(names)
    fig, ax = harness.new_figure((7.0, 4.6))
    for i, c in enumerate(names):
        vals = [case["median_us"].get(c, np.nan) / 1e3 for case in cases]
        bars = ax.bar(xs + (i - (len(names) - 1) / 2) * width, vals, width,
                      label=f"{c} eager" if c != "numpy" else "numpy (hand-written)",
                      color=colors[c])
        for bar, case in zip(bars, cases):
            r = case["ratios"].get(f"{c}/torch", 1.0 if c == "torch" else None)
            if r is not None:
                ax.annotate(f"{r:.2f}x", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                            ha="center", va="bottom", fontsize=8)
    ax.set_xticks(xs)
    ax.set_xticklabels([f"batch {c['batch']}" for c in cases])
    ax.set_ylabel("median ms per training step (labels: ratio to torch)")
    ax.set_title(f"MLP {'-'.join(map(str, SIZES))} SGD-momentum step, "
                 f"{result['config']['rounds']} rounds, threads: "
                 f"{result['config']['threads'] or 'default'}, "
                 f"{harness.cpus(result)} CPUs", fontsize=10)
    ax.legend(fontsize=8, loc="upper left")
    ax.grid(axis="y", alpha=0.3)
    harness.save_figure(fig, path)


def _limit_threads(n: int) -> Any:
    """Set torch's and the BLAS libraries' thread counts to ``n``; returns a keep-alive."""
    torch.set_num_threads(n)
    try:
        import threadpoolctl
    except ImportError:
        print("threadpoolctl is not installed: only torch's threads were limited; set "
              "OPENBLAS_NUM_THREADS for NumPy", file=sys.stderr)
        return None
    return threadpoolctl.threadpool_limits(limits=n)


def main(argv: list[str] | None = None) -> int:
    parser = harness.new_parser(__doc__, DEFAULT_ROUNDS, QUICK_ROUNDS)
    parser.add_argument("--n-steps", type=int, default=None,
                        help=f"training steps per timed loop (default {DEFAULT_N_STEPS})")
    parser.add_argument("--profile-steps", type=int, default=None,
                        help=f"steps under cProfile (default {DEFAULT_PROFILE_STEPS})")
    parser.add_argument("--threads", type=int, default=None,
                        help="limit torch and BLAS (NumPy/SciPy OpenBLAS) to N threads "
                             "(default: leave every library at its default)")
    harness.add_output_options(
        parser, "mlp_step",
        quick_help="smoke-test sizes: 3 rounds, 2 steps per loop, 5 profiled steps")
    args = harness.parse_args(parser, argv)
    if args is None:
        return 2

    rounds = args.rounds or (QUICK_ROUNDS if args.quick else DEFAULT_ROUNDS)
    n_steps = args.n_steps or (QUICK_N_STEPS if args.quick else DEFAULT_N_STEPS)
    profile_steps = args.profile_steps or (QUICK_PROFILE_STEPS if args.quick
                                           else DEFAULT_PROFILE_STEPS)
    # the limits hold for the rest of the process (the keep-alive is not restored)
    _limiter = _limit_threads(args.threads) if args.threads else None  # noqa: F841

    state = initial_state()
    check: dict[str, Any] = {"steps": CHECK_STEPS}
    for batch in BATCHES:
        losses = {c: loss_trajectory(c, state, batch) for c in CONTESTANTS}
        check[f"batch_{batch}"] = {
            "final_loss": {c: v[-1] for c, v in losses.items()},
            "max_abs_loss_diff_compgrad_vs_torch":
                max(abs(a - b) for a, b in zip(losses["compgrad"], losses["torch"])),
            "max_abs_loss_diff_numpy_vs_torch":
                max(abs(a - b) for a, b in zip(losses["numpy"], losses["torch"])),
        }

    load_before = harness.loadavg()
    t0 = time.perf_counter()
    result = run_benchmark(rounds, n_steps)
    wall = time.perf_counter() - t0
    prof = profile_compgrad(32, profile_steps)
    result["config"] = {
        "rounds": rounds, "n_steps": n_steps, "quick": args.quick, "threads": args.threads,
        "model": "Sequential(Linear(784,512), ReLU, Linear(512,512), ReLU, Linear(512,10))",
        "loss": "CrossEntropyLoss", "optimizer": f"SGD(lr={LR}, momentum={MOMENTUM})",
        "batches": list(BATCHES), "n_distinct_batches": N_BATCHES, "dtype": "float32",
        "statistic": "median over rounds", "goal_compgrad_over_torch": GOAL_RATIO,
        "wall_s": wall,
    }
    result["environment"] = environment()
    result["environment"]["loadavg_before_run"] = load_before
    result["loss_check"] = check
    result["profile_compgrad"] = prof

    print(format_table(result))
    print(f"\nmedian of {rounds} interleaved rounds, {n_steps} steps per timed loop; "
          f"ratios of medians (<1: numerator faster); goal cg/torch <= {GOAL_RATIO}")
    thr = result["environment"]["threads"]
    blas = [(p.get("internal_api"), p.get("num_threads"))
            for p in result["environment"].get("threadpools") or []]
    print(f"threads: {thr}, thread pools {blas}; loss check (max |compgrad - torch| over "
          f"{CHECK_STEPS} steps): " + ", ".join(
              f"batch {b}: {check[f'batch_{b}']['max_abs_loss_diff_compgrad_vs_torch']:.1e}"
              for b in BATCHES) + f"; wall {wall:.1f} s")
    print()
    print(format_profile(prof))

    print()
    harness.write_outputs(result, args.out_dir, "mlp_step", plot, args.no_plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Compiled workloads W1-W5 (issue 7): the same PyTorch-style programs run by NumPy by hand,
torch eager, torch.compile, compgrad eager and compgrad.compile, timed against torch eager.

Each workload is one function written once against the PyTorch API and run with
``lib = torch`` and ``lib = compgrad``, eagerly and compiled (``torch.compile(fn)``, default
mode; ``compgrad.compile(fn)``, default backend); the NumPy contestant is the same
arithmetic with the gradients written by hand. float32, fixed seeds, 2 threads:

- W1: MLP 784-512-512-10 (ReLU), cross-entropy, SGD(lr=0.01, momentum=0.9); one full step
  (zero_grad, forward, backward, step) at batch 32 and 256.
- W2: MLP 2-4-1 (ReLU), MSE, plain SGD, batch 8: per-step overhead.
- W3: tanh-GELU on 2^24 elements, ``y.sum()`` and its gradient.
- W4: log_softmax + nll_loss on logits [4096, 1000] (loss and grad); LayerNorm(1024)
  forward and VJP on [8192, 1024].
- W5: matmul 1024^3 and 4096^3.

Run from the repository root::

    python -m benchmarks.compiled [--rounds 11] [--quick] [--workloads W1,W3] ...

Method: one case at a time; every contestant first runs a few steps from the same initial
state and its results (outputs, gradients, updated weights) are compared with torch
eager's; then warm-up (torch.compile and compgrad.compile compile here, never in a timed
loop), then interleaved rounds (the contestant order rotates) with ratios to torch eager
taken per round and reduced to medians. Fresh processes measure the first W1 step with an
empty and with a warm compile cache, and W3's peak memory.
"""

from __future__ import annotations

import os

THREADS = 2
THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")

if __name__ == "__main__":
    # the CLI pins every thread pool to 2 threads; NumPy's OpenBLAS, Numba and OpenMP read
    # these once, when they load, so this must run before the imports below
    for _var in THREAD_ENV:
        os.environ.setdefault(_var, str(THREADS))

import gc  # noqa: E402
import itertools  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402
from types import ModuleType  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

import compgrad  # noqa: E402
from benchmarks import harness, mlp_step  # noqa: E402
from benchmarks.harness import torch  # noqa: E402

CONTESTANTS = ("numpy", "torch", "torch.compile", "compgrad", "compgrad.compile")
REFERENCE = "torch"
TARGET_CONTESTANT = "compgrad.compile"
QUICK_CONTESTANTS = ("numpy", "torch", "compgrad", "compgrad.compile")  # torch.compile: minutes
LABELS = {"numpy": "numpy (by hand)", "torch": "torch eager", "torch.compile": "torch.compile",
          "compgrad": "compgrad eager", "compgrad.compile": "compgrad.compile"}

DEFAULT_ROUNDS = 11
QUICK_ROUNDS = 3
WARMUP_S = (0.2, 1.0)  # least warm-up time (eager, compiled): compiled code settles slowly
QUICK_WARMUP_S = (0.05, 0.2)
LOOP_S = 0.1  # a timed loop repeats the step until torch eager would take about this long
QUICK_LOOP_S = 0.01
MAX_LOOP = 2000
RTOL = 1e-4  # results agree when max|x - ref| <= RTOL * max|ref| (float32, other orders)
SEED = 0

# issue 7's targets: compgrad.compile / torch eager, same run
COLD_TARGETS_S = {"empty": 2.0, "warm": 0.5}
MEMORY_SLACK_BYTES = 64 << 20  # W3: peak <= inputs + outputs + one 64 MiB buffer
REPO_ROOT = Path(__file__).resolve().parent.parent


# ------------------------------------------------------------------- the programs

# Each is ordinary PyTorch code; torch and compgrad run the very same function.
train_step = mlp_step.train_step  # W1, W2: zero_grad, forward, loss, backward, step


def gelu_sum_grad(x: Any) -> Any:
    """W3: the tanh-GELU of ``x``, summed, and its gradient into ``x.grad``."""
    x.grad = None
    y = 0.5 * x * (1 + (0.7978845608 * (x + 0.044715 * x ** 3)).tanh())
    s = y.sum()
    s.backward()
    return s


def make_log_softmax_nll(lib: ModuleType) -> Callable[[Any, Any], Any]:
    """W4: ``log_softmax_nll(logits, target)`` using ``lib.nn.functional``."""
    F = lib.nn.functional

    def log_softmax_nll(logits: Any, target: Any) -> Any:
        logits.grad = None
        loss = F.nll_loss(F.log_softmax(logits, dim=1), target)
        loss.backward()
        return loss

    return log_softmax_nll


def layer_norm_vjp(norm: Any, x: Any, grad_out: Any) -> Any:
    """W4: LayerNorm forward, and its VJP with ``grad_out`` into the .grad fields."""
    norm.zero_grad()
    x.grad = None
    y = norm(x)
    y.backward(grad_out)
    return y


def matmul(a: Any, b: Any) -> Any:
    """W5: one matrix product."""
    return a @ b


# ----------------------------------------------------------- NumPy by hand (the floor)

class NumpyMLP:
    """An MLP with ReLU, cross-entropy or MSE loss and torch's SGD, gradients by hand.

    Parameters are named as ``nn.Sequential``'s state_dict (``0.weight``, ``0.bias``,
    ``2.weight``, ...). SGD follows torch: with momentum, the first step sets ``buf = g``
    and later ones ``buf = momentum * buf + g``; then ``p -= lr * buf``.
    """

    def __init__(self, state: dict[str, np.ndarray], loss: str, lr: float,
                 momentum: float) -> None:
        self.names = list(state)
        self.params = {k: v.copy() for k, v in state.items()}
        self.grads: dict[str, np.ndarray] = {}
        self.bufs: dict[str, np.ndarray] = {}
        self.loss, self.lr, self.momentum = loss, np.float32(lr), np.float32(momentum)

    def step(self, x: np.ndarray, y: np.ndarray) -> np.float32:
        layers = [k[:-len(".weight")] for k in self.names if k.endswith(".weight")]
        inputs, h = [], x
        for i, name in enumerate(layers):
            inputs.append(h)
            h = h @ self.params[f"{name}.weight"].T + self.params[f"{name}.bias"]
            if i < len(layers) - 1:
                h = np.maximum(h, 0)
        n = len(y)
        if self.loss == "ce":  # mean cross-entropy via a stable log-softmax
            z = h - h.max(axis=1, keepdims=True)
            e = np.exp(z)
            s = e.sum(axis=1, keepdims=True)
            rows = np.arange(n)
            loss = np.log(s[:, 0]).mean() - z[rows, y].mean()
            g = e / s
            g[rows, y] -= 1
            g *= np.float32(1.0 / n)
        else:  # mean squared error
            d = h - y
            loss = (d * d).mean()
            g = d * np.float32(2.0 / d.size)
        for i in range(len(layers) - 1, -1, -1):
            self.grads[f"{layers[i]}.weight"] = g.T @ inputs[i]
            self.grads[f"{layers[i]}.bias"] = g.sum(axis=0)
            if i:  # through the ReLU that produced layer i's input
                g = (g @ self.params[f"{layers[i]}.weight"]) * (inputs[i] > 0)
        for k, p in self.params.items():
            upd = self.grads[k]
            if self.momentum:
                if k in self.bufs:
                    self.bufs[k] *= self.momentum
                    self.bufs[k] += upd
                else:
                    self.bufs[k] = upd.copy()
                upd = self.bufs[k]
            p -= self.lr * upd
        return loss

    def state(self) -> dict[str, np.ndarray]:
        """Parameters and their last gradients, keyed as ``named_parameters`` (+ ``.grad``)."""
        out = {}
        for k in self.names:
            out[k] = self.params[k].copy()
            out[k + ".grad"] = self.grads[k].copy()
        return out


def gelu_sum_grad_numpy(x: np.ndarray) -> tuple[np.float32, np.ndarray]:
    """W3 by hand: ``sum(gelu(x))`` and d/dx (Python floats stay float32 under NEP 50)."""
    x2 = x * x
    t = np.tanh(0.7978845608 * (x + 0.044715 * x2 * x))
    s = (0.5 * x * (1 + t)).sum()
    grad = 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * 0.7978845608 * (1 + 3 * 0.044715 * x2)
    return s, grad


def log_softmax_nll_numpy(logits: np.ndarray, target: np.ndarray) -> tuple[Any, np.ndarray]:
    """W4 by hand: mean NLL of the log-softmax, and its gradient w.r.t. the logits."""
    n = logits.shape[0]
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    s = e.sum(axis=1, keepdims=True)
    rows = np.arange(n)
    loss = np.log(s[:, 0]).mean() - z[rows, target].mean()
    grad = e / s
    grad[rows, target] -= 1
    grad *= np.float32(1.0 / n)
    return loss, grad


def layer_norm_vjp_numpy(x: np.ndarray, w: np.ndarray, b: np.ndarray, g: np.ndarray,
                         eps: float = 1e-5) -> tuple[np.ndarray, ...]:
    """W4 by hand: LayerNorm over the last axis, and (dx, dweight, dbias) for cotangent g."""
    mu = x.mean(axis=-1, keepdims=True)
    xc = x - mu
    rstd = 1 / np.sqrt((xc * xc).mean(axis=-1, keepdims=True) + np.float32(eps))
    xhat = xc * rstd
    y = xhat * w + b
    dxhat = g * w
    dx = rstd * (dxhat - dxhat.mean(axis=-1, keepdims=True)
                 - xhat * (dxhat * xhat).mean(axis=-1, keepdims=True))
    return y, dx, (g * xhat).sum(axis=0), g.sum(axis=0)


# ------------------------------------------------------------------- cases and instances

def _nothing() -> None:
    """Instance.release for programs that keep nothing between steps."""


@dataclass
class Instance:
    """One contestant set up for one case: ``step()`` runs one repetition and returns the
    program's result; ``state()`` is what else the check compares (gradients, weights);
    ``release()`` drops what the last step left behind (for the memory measurement)."""

    step: Callable[[], Any]
    state: Callable[[], dict[str, np.ndarray]]
    release: Callable[[], None] = field(default=_nothing)


@dataclass(frozen=True)
class Case:
    """One timed row: a workload at one size, how to set it up, and its target."""

    id: str
    title: str
    build: Callable[[str, dict[str, Any]], Instance]
    params: dict[str, Any]
    target: float | None
    check_steps: int = 2

    @property
    def workload(self) -> str:
        return self.id.split("-")[0]


def _as_is(fn: Callable) -> Callable:
    return fn


def library(contestant: str) -> tuple[ModuleType, Callable[[Callable], Callable]]:
    """``(lib, wrap)``: the module a contestant's program uses and how the program is
    wrapped (``torch.compile`` / ``compgrad.compile`` with their defaults, else as is)."""
    if contestant == "torch":
        return torch, _as_is
    if contestant == "torch.compile":
        return torch, torch.compile
    if contestant == "compgrad":
        return compgrad, _as_is
    if contestant == "compgrad.compile":
        return compgrad, compgrad.compile
    raise ValueError(f"unknown contestant {contestant!r}")


def to_numpy(value: Any) -> np.ndarray:
    """A copy of a tensor, array or scalar as a NumPy array (detached from autograd)."""
    if hasattr(value, "detach"):
        value = value.detach().numpy()
    return np.array(value, copy=True)


def _rng(*salt: int) -> np.random.Generator:
    return np.random.default_rng([SEED, *salt])


def mlp_state(sizes: tuple[int, ...]) -> dict[str, np.ndarray]:
    """Initial weights with torch's ``nn.Linear`` law (U(±1/sqrt(fan_in))), drawn with
    NumPy so that a process without torch builds the same model."""
    rng = _rng(len(sizes), *sizes)
    state = {}
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        bound = 1 / math.sqrt(n_in)
        state[f"{2 * i}.weight"] = rng.uniform(-bound, bound, (n_out, n_in)).astype(np.float32)
        state[f"{2 * i}.bias"] = rng.uniform(-bound, bound, n_out).astype(np.float32)
    return state


def build_mlp(lib: ModuleType, sizes: tuple[int, ...]) -> Any:
    """``lib.nn.Sequential`` of Linear layers with ReLU between them."""
    layers: list[Any] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        if i:
            layers.append(lib.nn.ReLU())
        layers.append(lib.nn.Linear(n_in, n_out))
    return lib.nn.Sequential(*layers)


def mlp_instance(contestant: str, p: dict[str, Any]) -> Instance:
    """W1/W2: a model, loss and SGD optimizer; each step takes the next of 4 batches."""
    sizes, batch = p["sizes"], p["batch"]
    rng = _rng(batch, *sizes)
    data = []
    for _ in range(4):  # distinct batches, cycled, so the model does not just memorise one
        x = rng.standard_normal((batch, sizes[0]), dtype=np.float32)
        y = (rng.integers(0, sizes[-1], batch) if p["loss"] == "ce"
             else rng.standard_normal((batch, sizes[-1]), dtype=np.float32))
        data.append((x, y))
    state = mlp_state(sizes)
    if contestant == "numpy":
        net = NumpyMLP(state, p["loss"], p["lr"], p["momentum"])
        batches = itertools.cycle(data)

        def numpy_step() -> Any:
            return net.step(*next(batches))

        return Instance(numpy_step, net.state)
    lib, wrap = library(contestant)
    model = build_mlp(lib, sizes)
    model.load_state_dict({k: lib.from_numpy(v.copy()) for k, v in state.items()})
    loss_fn = lib.nn.CrossEntropyLoss() if p["loss"] == "ce" else lib.nn.MSELoss()
    optimizer = lib.optim.SGD(model.parameters(), lr=p["lr"], momentum=p["momentum"])
    fn = wrap(train_step)
    tensors = itertools.cycle([(lib.from_numpy(x), lib.from_numpy(y)) for x, y in data])

    def step() -> Any:
        return fn(model, loss_fn, optimizer, *next(tensors))

    def state_now() -> dict[str, np.ndarray]:
        out = {}
        for name, param in model.named_parameters():
            out[name] = to_numpy(param)
            out[name + ".grad"] = to_numpy(param.grad)
        return out

    return Instance(step, state_now)


def _grad_state(**tensors: Any) -> Callable[[], dict[str, np.ndarray]]:
    def state() -> dict[str, np.ndarray]:
        return {f"{k}.grad": to_numpy(t.grad) for k, t in tensors.items()}
    return state


def _held_state(held: dict[str, np.ndarray]) -> Callable[[], dict[str, np.ndarray]]:
    def state() -> dict[str, np.ndarray]:
        return {k: v.copy() for k, v in held.items()}
    return state


def gelu_instance(contestant: str, p: dict[str, Any]) -> Instance:
    """W3 on ``p["n"]`` standard-normal elements (shared, read-only, by every contestant)."""
    x_np = _rng(3, p["n"]).standard_normal(p["n"], dtype=np.float32)
    if contestant == "numpy":
        held: dict[str, np.ndarray] = {}

        def numpy_step() -> Any:
            s, held["x.grad"] = gelu_sum_grad_numpy(x_np)
            return s

        return Instance(numpy_step, _held_state(held), held.clear)
    lib, wrap = library(contestant)
    x = lib.from_numpy(x_np).requires_grad_()
    fn = wrap(gelu_sum_grad)

    def step() -> Any:
        return fn(x)

    def release() -> None:
        x.grad = None

    return Instance(step, _grad_state(x=x), release)


def log_softmax_instance(contestant: str, p: dict[str, Any]) -> Instance:
    """W4: logits [rows, classes] and int64 targets."""
    rng = _rng(4, p["rows"], p["classes"])
    logits_np = rng.standard_normal((p["rows"], p["classes"]), dtype=np.float32)
    target_np = rng.integers(0, p["classes"], p["rows"])
    if contestant == "numpy":
        held: dict[str, np.ndarray] = {}

        def numpy_step() -> Any:
            loss, held["logits.grad"] = log_softmax_nll_numpy(logits_np, target_np)
            return loss

        return Instance(numpy_step, _held_state(held), held.clear)
    lib, wrap = library(contestant)
    logits = lib.from_numpy(logits_np).requires_grad_()
    target = lib.from_numpy(target_np)
    fn = wrap(make_log_softmax_nll(lib))

    def step() -> Any:
        return fn(logits, target)

    return Instance(step, _grad_state(logits=logits))


def layer_norm_instance(contestant: str, p: dict[str, Any]) -> Instance:
    """W4: LayerNorm(dim) with random affine parameters on x [rows, dim], cotangent g."""
    rng = _rng(5, p["rows"], p["dim"])
    x_np = rng.standard_normal((p["rows"], p["dim"]), dtype=np.float32)
    g_np = rng.standard_normal((p["rows"], p["dim"]), dtype=np.float32)
    w_np = 1 + 0.1 * rng.standard_normal(p["dim"], dtype=np.float32)
    b_np = 0.1 * rng.standard_normal(p["dim"], dtype=np.float32)
    if contestant == "numpy":
        held: dict[str, np.ndarray] = {}

        def numpy_step() -> Any:
            y, held["x.grad"], held["weight.grad"], held["bias.grad"] = \
                layer_norm_vjp_numpy(x_np, w_np, b_np, g_np)
            return y

        return Instance(numpy_step, _held_state(held), held.clear)
    lib, wrap = library(contestant)
    norm = lib.nn.LayerNorm(p["dim"])
    norm.load_state_dict({"weight": lib.from_numpy(w_np.copy()),
                          "bias": lib.from_numpy(b_np.copy())})
    x = lib.from_numpy(x_np).requires_grad_()
    g = lib.from_numpy(g_np)
    fn = wrap(layer_norm_vjp)

    def step() -> Any:
        return fn(norm, x, g)

    return Instance(step, _grad_state(x=x, weight=norm.weight, bias=norm.bias))


def matmul_instance(contestant: str, p: dict[str, Any]) -> Instance:
    """W5: [n, n] @ [n, n]."""
    rng = _rng(6, p["n"])
    a_np = rng.standard_normal((p["n"], p["n"]), dtype=np.float32)
    b_np = rng.standard_normal((p["n"], p["n"]), dtype=np.float32)
    if contestant == "numpy":
        def numpy_step() -> Any:
            return a_np @ b_np

        return Instance(numpy_step, dict)
    lib, wrap = library(contestant)
    a, b = lib.from_numpy(a_np), lib.from_numpy(b_np)
    fn = wrap(matmul)

    def step() -> Any:
        return fn(a, b)

    return Instance(step, dict)


def cases(quick: bool = False) -> list[Case]:
    """Every case, at the issue's sizes or (``quick``) at tiny ones for a smoke run."""
    mlp = (64, 32, 32, 10) if quick else (784, 512, 512, 10)
    w1 = {"sizes": mlp, "loss": "ce", "lr": 0.01, "momentum": 0.9}
    mlp_title = "-".join(map(str, mlp))
    n3 = 1 << (12 if quick else 24)
    lsm = (64, 100) if quick else (4096, 1000)
    ln = (64, 128) if quick else (8192, 1024)
    mm = (128, 256) if quick else (1024, 4096)
    return [
        Case("W1-b32", f"MLP {mlp_title} SGD-momentum step, batch 32", mlp_instance,
             {**w1, "batch": 32}, 0.70, check_steps=3),
        Case("W1-b256", f"MLP {mlp_title} SGD-momentum step, batch 256", mlp_instance,
             {**w1, "batch": 256}, 0.85, check_steps=3),
        Case("W2", "MLP 2-4-1 MSE plain-SGD step, batch 8", mlp_instance,
             {"sizes": (2, 4, 1), "loss": "mse", "lr": 0.01, "momentum": 0.0, "batch": 8},
             0.03, check_steps=3),
        Case("W3", f"tanh-GELU sum + grad, 2^{n3.bit_length() - 1} elements", gelu_instance,
             {"n": n3}, 0.05),
        Case("W4-lsm", f"log_softmax + nll_loss + grad, [{lsm[0]}, {lsm[1]}]",
             log_softmax_instance, {"rows": lsm[0], "classes": lsm[1]}, 0.75),
        Case("W4-ln", f"LayerNorm({ln[1]}) fwd + VJP, [{ln[0]}, {ln[1]}]", layer_norm_instance,
             {"rows": ln[0], "dim": ln[1]}, 0.45),
        Case("W5-1024", f"matmul {mm[0]}^3", matmul_instance, {"n": mm[0]}, 1.0),
        Case("W5-4096", f"matmul {mm[1]}^3", matmul_instance, {"n": mm[1]}, 1.0),
    ]


def select_cases(all_cases: list[Case], spec: str | None) -> list[Case]:
    """The cases named in ``spec`` (comma-separated workloads ``W1`` or case ids
    ``W4-ln``, any case), all of them for None."""
    if not spec:
        return all_cases
    wanted = {s.strip().upper() for s in spec.split(",") if s.strip()}
    chosen = [c for c in all_cases if c.workload.upper() in wanted or c.id.upper() in wanted]
    unknown = wanted - {c.workload.upper() for c in all_cases} - {c.id.upper() for c in all_cases}
    if unknown:
        raise ValueError(f"unknown workloads {sorted(unknown)}; choose from "
                         f"{', '.join(c.id for c in all_cases)}")
    return chosen


# --------------------------------------------------------------------- checks and timing

def _set_up(case: Case, contestant: str, ref: dict[str, np.ndarray] | None,
            record: dict[str, Any]) -> tuple[Instance | None, dict[str, np.ndarray] | None]:
    """Build one contestant, time its first step, run the check; errors go to ``record``."""
    try:
        inst = case.build(contestant, case.params)
        t0 = time.perf_counter()
        first = inst.step()
        record["first_call_s"] = time.perf_counter() - t0  # with compiling, where any
        results = {"out[0]": to_numpy(first)}
        del first
        for i in range(1, case.check_steps):
            results[f"out[{i}]"] = to_numpy(inst.step())
        results.update(inst.state())
    except Exception as exc:  # noqa: BLE001 - a failing contestant is reported, not fatal
        record["error"] = f"{type(exc).__name__}: {exc}"
        return None, None
    if ref is not None:
        record["check"] = harness.compare_arrays(ref, results, RTOL)
    return inst, results


def time_case(case: Case, contestants: list[str], rounds: int, loop_s: float,
              quick: bool, show_progress: bool = True) -> dict[str, Any]:
    """Set up, check, warm up and time one case; returns its record for the JSON."""
    names = [REFERENCE] + [c for c in contestants if c != REFERENCE]  # the reference first
    records: dict[str, dict[str, Any]] = {c: {} for c in names}
    instances: dict[str, Instance] = {}
    ref: dict[str, np.ndarray] | None = None
    for c in harness.progress(names, len(names), show_progress, desc=f"{case.id} set-up",
                              unit="contestant", leave=False):
        inst, results = _set_up(case, c, ref, records[c])
        if inst is None:
            continue
        if c == REFERENCE:
            ref = results
        del results
        try:
            times = harness.warm_up(inst.step, (QUICK_WARMUP_S if quick else WARMUP_S)[
                c.endswith(".compile")])
        except Exception as exc:  # noqa: BLE001 - reported like a failing first call
            records[c]["error"] = f"{type(exc).__name__} while warming up: {exc}"
            continue
        instances[c] = inst
        records[c]["warmup_calls"] = len(times) + case.check_steps
        records[c]["warmup_last_s"] = statistics.median(times[-3:])
        records[c]["warmup_min_s"] = min(times)
    del ref
    gc.collect()
    out: dict[str, Any] = {"id": case.id, "workload": case.workload, "title": case.title,
                           "loadavg_at_start": harness.loadavg(),
                           "params": {k: list(v) if isinstance(v, tuple) else v
                                      for k, v in case.params.items()},
                           "target": case.target, "contestants": records}
    if REFERENCE not in instances:
        out["error"] = f"the reference ({REFERENCE}) failed: {records[REFERENCE].get('error')}"
        _forget(instances, names)
        return out
    # the fastest warm-up call: a call slowed by other load would shrink the loop to one
    # step, and then every loop would start right where another contestant's threads stop
    t_ref = records[REFERENCE]["warmup_min_s"]
    n = max(1, min(MAX_LOOP, math.ceil(loop_s / max(t_ref, 1e-9))))
    runners = {c: harness.loop_runner(inst.step) for c, inst in instances.items()}
    samples = harness.time_interleaved([runners], [n], rounds, show_progress,
                                       desc=f"{case.id} rounds", leave=False)[0]
    out.update({"unit": "us/step", "n_per_round": n, **harness.summarize(samples),
                "round_ratios": harness.round_ratios(samples, REFERENCE)})
    out["target_ratio"] = _ratio(out, TARGET_CONTESTANT)
    out["target_met"] = _target_met(out)
    _forget(instances, names)
    return out


def _forget(instances: dict[str, Instance], names: list[str]) -> None:
    """Drop a case's contestants (and torch.compile's graphs: each case compiles its own)."""
    instances.clear()
    if torch is not None and "torch.compile" in names:
        torch._dynamo.reset()
    gc.collect()


def _ratio(case: dict[str, Any], contestant: str) -> float | None:
    r = case.get("round_ratios", {}).get(f"{contestant}/{REFERENCE}")
    return None if r is None else r["median"]


def _check_ok(case: dict[str, Any], contestant: str) -> bool | None:
    rec = case["contestants"].get(contestant, {})
    if "error" in rec:
        return False
    chk = rec.get("check")
    return None if chk is None else chk["ok"]


def _target_met(case: dict[str, Any]) -> bool | None:
    ratio = _ratio(case, TARGET_CONTESTANT)
    if ratio is None or case["target"] is None:
        return None
    return ratio <= case["target"] and _check_ok(case, TARGET_CONTESTANT) is not False


def run_benchmark(selected: list[Case], contestants: list[str], rounds: int, loop_s: float,
                  quick: bool = False, show_progress: bool = True) -> dict[str, Any]:
    """Time every selected case (one after another) for the given contestants."""
    out = []
    for case in harness.progress(selected, len(selected), show_progress, desc="cases",
                                 unit="case"):
        out.append(time_case(case, contestants, rounds, loop_s, quick, show_progress))
    return {"cases": out}


# ------------------------------------------------------- fresh processes: cold start, memory

def _child_argv(task: str, contestant: str, quick: bool) -> list[str]:
    # compgrad's children run without torch, as a compgrad-only program would
    block = "sys.modules['torch'] = None; " if contestant.startswith("compgrad") else ""
    code = (f"import sys, time; t0 = time.perf_counter(); {block}"
            "from benchmarks.compiled import child_main; child_main(sys.argv[1:], t0)")
    return [sys.executable, "-c", code, task, contestant, "quick" if quick else "full"]


def _child_env(cache_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    for var in THREAD_ENV:
        env.setdefault(var, str(THREADS))
    env["COMPGRAD_CACHE_DIR"] = str(cache_dir / "compgrad")
    env["NUMBA_CACHE_DIR"] = str(cache_dir / "numba")
    env["TORCHINDUCTOR_CACHE_DIR"] = str(cache_dir / "inductor")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT),
                                                      env.get("PYTHONPATH")]))
    return env


def cold_start(contestants: list[str], quick: bool, timeout_s: float = 600) -> dict[str, Any]:
    """The first W1 batch-32 step in fresh processes: with an empty cache directory
    (COMPGRAD_CACHE_DIR, NUMBA_CACHE_DIR, TORCHINDUCTOR_CACHE_DIR all new), then in a
    second process on the same, now warm, directory."""
    out: dict[str, Any] = {}
    for c in (c for c in ("compgrad.compile", "torch.compile") if c in contestants):
        with tempfile.TemporaryDirectory(prefix="compgrad-bench-") as tmp:
            env = _child_env(Path(tmp))
            out[c] = {cache: harness.run_json_child(_child_argv("cold-start", c, quick), env,
                                                    REPO_ROOT, timeout_s)
                      for cache in ("empty", "warm")}
    return out


def memory(contestants: list[str], quick: bool, timeout_s: float = 600) -> dict[str, Any]:
    """W3's peak memory per contestant, each in a fresh process (torch.compile left out:
    its compile takes minutes and the target concerns compgrad.compile)."""
    out: dict[str, Any] = {}
    for c in (c for c in contestants if c != "torch.compile"):
        with tempfile.TemporaryDirectory(prefix="compgrad-bench-") as tmp:
            out[c] = harness.run_json_child(_child_argv("memory", c, quick),
                                            _child_env(Path(tmp)), REPO_ROOT, timeout_s)
    return out


def _measure_memory(inst: Instance, n: int) -> dict[str, Any]:
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
    """Entry point of the fresh processes: ``cold-start|memory CONTESTANT quick|full``;
    prints one JSON line. ``t0``: ``perf_counter()`` when the child's code began."""
    task, contestant, size = argv
    quick = size == "quick"
    if torch is not None:
        torch.set_num_threads(THREADS)
    imported = time.perf_counter()
    by_id = {c.id: c for c in cases(quick)}
    if task == "memory":
        inst = by_id["W3"].build(contestant, by_id["W3"].params)
        rec = _measure_memory(inst, by_id["W3"].params["n"])
        rec["tracemalloc_sees_numpy"] = harness.tracemalloc_sees_numpy()
        print(json.dumps(rec))
        return
    case = by_id["W1-b32"]
    inst = case.build(contestant, case.params)
    set_up = time.perf_counter()
    loss = float(to_numpy(inst.step()))
    first = time.perf_counter()
    inst.step()
    second = time.perf_counter()
    print(json.dumps({"import_s": imported - t0, "setup_s": set_up - imported,
                      "first_step_s": first - set_up, "second_step_s": second - first,
                      "first_loss": loss, "torch_loaded": torch is not None}))


# ----------------------------------------------------------------------------- output

def _cell(case: dict[str, Any], c: str) -> str:
    rec = case["contestants"].get(c)
    if rec is None:
        return "-"
    if "error" in rec:
        return "**ERROR**"
    med = case.get("median_us", {}).get(c)
    text = harness.fmt_duration(med)
    ratio = 1.0 if c == REFERENCE else _ratio(case, c)
    if med is not None and ratio is not None:
        text += f" ({ratio:.3g}x)"
    if _check_ok(case, c) is False:
        text += " **MISMATCH**"
    return text


def _loads(values: list[float] | None) -> str:
    return "-" if not values else "/".join(f"{v:.1f}" for v in values)


def _met(value: bool | None) -> str:
    return "-" if value is None else ("yes" if value else "**no**")


def format_markdown(result: dict[str, Any]) -> str:
    """The results as Markdown: times and ratios, targets, checks, cold start, memory."""
    cfg = result["config"]
    names = [c for c in CONTESTANTS if c in cfg["contestants"]]
    env = result.get("environment", {})
    lines = [
        "# Compiled workloads W1-W5 (issue 7)", "",
        f"{cfg['rounds']} interleaved rounds{' (--quick sizes)' if cfg['quick'] else ''}; "
        f"cells: median time per step (median over rounds of the ratio to torch eager, "
        f"taken per round); target: compgrad.compile / torch eager. "
        f"{harness.cpus(result)} CPUs, threads {env.get('threads')}, load average (1, 5, 15 "
        f"min) before the run {_loads(env.get('loadavg_before_run'))}, after "
        f"{_loads(env.get('loadavg_after_run'))}; torch {env.get('torch')}, numpy "
        f"{env.get('numpy')}, numba {env.get('numba')}.", "",
    ]
    header = ["case", *(LABELS[c] for c in names), "target", "met"]
    rows = [[f"{case['id']}: {case['title']}", *(_cell(case, c) for c in names),
             f"<= {case['target']}" if case["target"] is not None else "-",
             _met(case.get("target_met"))] for case in result["cases"]]
    lines += [harness.markdown_table(header, rows), ""]
    bad = [(case["id"], c, rec) for case in result["cases"]
           for c, rec in case["contestants"].items()
           if "error" in rec or not rec.get("check", {"ok": True})["ok"]]
    if bad:
        lines += ["**RESULT MISMATCHES / ERRORS** (vs torch eager):", ""]
        for cid, c, rec in bad:
            if "error" in rec:
                lines.append(f"- {cid} {c}: error {rec['error']}")
            else:
                chk = rec["check"]
                lines.append(f"- {cid} {c}: max rel err {chk['max_rel_err']:.2e} in "
                             f"{chk['worst']} (tolerance {RTOL:g}) {chk['problems'] or ''}")
        lines.append("")
    lines += ["Results check (max |x - torch| / max |torch| over outputs, grads and weights, "
              f"tolerance {RTOL:g}):", ""]
    others = [c for c in names if c != REFERENCE]
    rows = []
    for case in result["cases"]:
        row = [case["id"]]
        for c in others:
            rec = case["contestants"].get(c, {})
            chk = rec.get("check")
            row.append("error" if "error" in rec else "-" if chk is None else
                       f"{chk['max_rel_err']:.1e} {'ok' if chk['ok'] else '**MISMATCH**'}")
        rows.append(row)
    lines += [harness.markdown_table(["case", *(LABELS[c] for c in others)], rows), ""]
    lines += _cold_start_lines(result.get("cold_start")) + _memory_lines(result.get("memory"))
    return "\n".join(lines)


def _cold_start_lines(cold: dict[str, Any] | None) -> list[str]:
    if not cold:
        return []
    rows = []
    for c, by_cache in cold.items():
        for cache, rec in by_cache.items():
            target = COLD_TARGETS_S[cache] if c == TARGET_CONTESTANT else None
            if "error" in rec:
                rows.append([c, cache, f"**ERROR** {rec['error']}", "-", "-", "-", "-"])
                continue
            rows.append([c, cache, f"{rec['first_step_s']:.3f} s", f"{rec['import_s']:.2f} s",
                         f"{rec['wall_s']:.2f} s",
                         "-" if target is None else f"<= {target} s",
                         "-" if target is None else _met(rec["first_step_s"] <= target)])
    return ["First W1 step (batch 32) in a fresh process:", "",
            harness.markdown_table(["contestant", "cache", "first step", "imports",
                                    "process wall", "target", "met"], rows), ""]


def _memory_lines(mem: dict[str, Any] | None) -> list[str]:
    if not mem:
        return []
    rows = []
    for c, rec in mem.items():
        if "error" in rec:
            rows.append([c, f"**ERROR** {rec['error']}", "-", "-", "-", "-"])
            continue
        peak = rec.get("peak_total_mib")
        rows.append([c, "-" if peak is None else f"{peak:.0f} MiB",
                     f"{rec['tracemalloc_peak_mib']:.0f} MiB",
                     f"{rec['inputs_mib'] + rec['outputs_mib']:.0f} MiB",
                     f"{rec['budget_mib']:.0f} MiB",
                     _met(rec.get("met")) if c == TARGET_CONTESTANT else "-"])
    sees = next((r.get("tracemalloc_sees_numpy") for r in mem.values() if "error" not in r), None)
    return ["W3 peak memory in a fresh process (inputs + peak RSS above the resident set "
            "before the call; tracemalloc sees NumPy buffers: "
            f"{sees}, not torch's or Numba's):", "",
            harness.markdown_table(["contestant", "peak (RSS)", "tracemalloc peak",
                                    "inputs + outputs", "budget (+64 MiB)", "met"], rows), ""]


_MARKERS = {"numpy": "s", "torch.compile": "^", "compgrad": "o", "compgrad.compile": "D"}
_COLORS = {"numpy": "tab:green", "torch.compile": "tab:orange", "compgrad": "tab:cyan",
           "compgrad.compile": "tab:blue"}


def plot(result: dict[str, Any], path: Path) -> None:
    """Ratio to torch eager per case and contestant (log scale), targets as red bars."""
    cases_ = result["cases"]
    names = [c for c in CONTESTANTS if c != REFERENCE and c in result["config"]["contestants"]]
    xs = np.arange(len(cases_))
    fig, ax = harness.new_figure((max(8.0, 1.2 * len(cases_)), 5.0))
    width = 0.7 / max(1, len(names))
    for i, c in enumerate(names):
        off = (i - (len(names) - 1) / 2) * width
        ys = [_ratio(case, c) for case in cases_]
        ax.scatter(xs + off, [np.nan if y is None else y for y in ys], marker=_MARKERS[c],
                   color=_COLORS[c], label=LABELS[c], zorder=3)
        for x, y, case in zip(xs + off, ys, cases_):
            if y is not None and _check_ok(case, c) is False:
                ax.annotate("mismatch", (x, y), color="red", fontsize=7, rotation=90,
                            ha="center", va="bottom")
    for x, case in zip(xs, cases_):
        if case["target"] is not None:
            ax.hlines(case["target"], x - 0.4, x + 0.4, colors="red", linestyles="--",
                      label="target (compgrad.compile)" if x == 0 else None)
    ax.axhline(1.0, color="grey", lw=1)
    ax.set_yscale("log")
    ax.set_xticks(xs)
    ax.set_xticklabels([case["id"] for case in cases_], fontsize=8)
    ax.set_ylabel("time / torch eager (median of per-round ratios)")
    quick = " (quick sizes)" if result["config"]["quick"] else ""
    ax.set_title(f"compiled workloads, {result['config']['rounds']} rounds, "
                 f"{harness.cpus(result)} CPUs{quick}", fontsize=10)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.08),
              ncol=len(names) + 1)
    ax.grid(axis="y", which="both", alpha=0.3)
    harness.save_figure(fig, path)


def environment() -> dict[str, Any]:
    """mlp_step's record (versions, BLAS builds, thread pools) and the thread env."""
    env = mlp_step.environment()
    env["thread_env"] = {k: os.environ.get(k) for k in THREAD_ENV}
    return env


def main(argv: list[str] | None = None) -> int:
    parser = harness.new_parser(__doc__, DEFAULT_ROUNDS, QUICK_ROUNDS)
    parser.add_argument("--workloads", default=None,
                        help="comma-separated workloads or case ids (W1,W3,W4-ln); default all")
    parser.add_argument("--contestants", default=None,
                        help=f"comma-separated subset of {','.join(CONTESTANTS)} (torch "
                             "eager is always included); default all, --quick: all but "
                             "torch.compile")
    parser.add_argument("--no-cold-start", action="store_true",
                        help="skip the fresh-process first-step measurement")
    parser.add_argument("--no-memory", action="store_true",
                        help="skip the fresh-process W3 memory measurement")
    harness.add_output_options(
        parser, "compiled",
        quick_help="smoke run: tiny sizes, 3 rounds, short loops, no torch.compile")
    args = harness.parse_args(parser, argv)
    if args is None:
        return 2
    rounds = args.rounds or (QUICK_ROUNDS if args.quick else DEFAULT_ROUNDS)
    contestants = ([c.strip() for c in args.contestants.split(",")] if args.contestants
                   else list(QUICK_CONTESTANTS if args.quick else CONTESTANTS))
    unknown = set(contestants) - set(CONTESTANTS)
    if unknown:
        parser.error(f"unknown contestants {sorted(unknown)}")
    contestants = [c for c in CONTESTANTS if c in contestants or c == REFERENCE]
    try:
        selected = select_cases(cases(args.quick), args.workloads)
    except ValueError as exc:
        parser.error(str(exc))
    torch.set_num_threads(THREADS)

    load_before = harness.loadavg()
    t0 = time.perf_counter()
    result = run_benchmark(selected, contestants, rounds,
                           QUICK_LOOP_S if args.quick else LOOP_S, args.quick)
    w1 = any(c.workload == "W1" for c in selected)
    if not args.no_cold_start and w1:
        result["cold_start"] = cold_start(contestants, args.quick)
    if not args.no_memory and any(c.workload == "W3" for c in selected):
        result["memory"] = memory(contestants, args.quick)
    result["config"] = {
        "rounds": rounds, "quick": args.quick, "contestants": contestants,
        "cases": [c.id for c in selected], "loop_s": QUICK_LOOP_S if args.quick else LOOP_S,
        "rtol": RTOL, "seed": SEED, "dtype": "float32", "threads": THREADS,
        "statistic": "median over rounds; ratios: median of per-round ratios to torch eager",
        "wall_s": time.perf_counter() - t0,
    }
    result["environment"] = environment()
    result["environment"]["loadavg_before_run"] = load_before
    result["environment"]["loadavg_after_run"] = harness.loadavg()

    markdown = format_markdown(result)
    print(markdown)
    harness.write_outputs(result, args.out_dir, "compiled", plot, args.no_plot, markdown)
    failed = any(_check_ok(case, c) is False for case in result["cases"]
                 for c in case["contestants"])
    if failed:
        print("\nSOME RESULTS DISAGREE WITH TORCH EAGER (see the table)", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

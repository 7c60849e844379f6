"""The workload programs W1-W5 and their instances: what one contestant runs for one case.

Each workload is one function written once against the PyTorch API and run with
``lib = torch`` and ``lib = compgrad``, eagerly and compiled (``torch.compile(fn)``, default
mode; ``compgrad.compile(fn)``, default backend; ``compgrad.compile(fn,
mode="reduce-overhead")``, which replays a stable step without its Python); the NumPy
contestant is the same arithmetic with the gradients written by hand (``by_hand``).
float32, fixed seeds.

Only NumPy is imported here: a worker process imports torch or compgrad itself, through
``library``, after it has set its thread policy, and never both.
"""

from __future__ import annotations

import functools
import importlib
import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import numpy as np

from benchmarks.compiled import by_hand
from benchmarks.compiled.settings import SEED

# ------------------------------------------------------------------- the programs

# Each is ordinary PyTorch code; torch and compgrad run the very same function.


def train_step(model: Any, loss_fn: Any, optimizer: Any, x: Any, y: Any) -> Any:
    """W1, W2: one training step (zero_grad, forward, loss, backward, step); the loss.

    The same program as ``benchmarks.mlp_step.train_step``, defined here because that
    module imports torch and compgrad together, which a worker must not.
    """
    optimizer.zero_grad()
    loss = loss_fn(model(x), y)
    loss.backward()
    optimizer.step()
    return loss


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


# ------------------------------------------------------------------- cases and instances

def _nothing() -> None:
    """Instance.release for programs that keep nothing between steps."""


@dataclass
class Instance:
    """One contestant set up for one case: ``step()`` runs one repetition and returns the
    program's result; ``state()`` is what else the check compares (gradients, weights);
    ``release()`` drops what the last step left behind (for the memory measurement);
    ``fn`` is the program as the step calls it (wrapped by the contestant's ``compile``,
    where it has one: compgrad's answers ``explain()``)."""

    step: Callable[[], Any]
    state: Callable[[], dict[str, np.ndarray]]
    release: Callable[[], None] = field(default=_nothing)
    fn: Callable[..., Any] | None = None


@dataclass(frozen=True)
class Case:
    """One timed row: a workload at one size, how to set it up, and its target."""

    id: str
    title: str
    build: Callable[[str, dict[str, Any]], Instance]
    params: dict[str, Any]
    target: float | None
    # steps whose results are checked: enough that compgrad.replay's include replayed ones
    # (a plan installs on the second of two identical traced calls and replays from the
    # next; an optimizer's first step makes its state, so the MLPs replay from the 4th)
    check_steps: int = 3

    @property
    def workload(self) -> str:
        return self.id.split("-")[0]


def _as_is(fn: Callable) -> Callable:
    return fn


# contestant -> (its module, the keyword arguments of the module's ``compile`` that wraps
# the program, or None for the program as is)
_LIBRARY: dict[str, tuple[str, dict[str, Any] | None]] = {
    "torch": ("torch", None), "torch.compile": ("torch", {}),
    "compgrad": ("compgrad", None), "compgrad.compile": ("compgrad", {}),
    "compgrad.replay": ("compgrad", {"mode": "reduce-overhead"}),
}


def library(contestant: str) -> tuple[ModuleType, Callable[[Callable], Callable]]:
    """``(lib, wrap)``: the module a contestant's program uses and how the program is
    wrapped (``torch.compile`` / ``compgrad.compile`` with their defaults,
    ``compgrad.compile(mode="reduce-overhead")``, else as is).

    The module is imported here, on first use, so that a worker loads only its own."""
    if contestant not in _LIBRARY:
        raise ValueError(f"unknown contestant {contestant!r}")
    module, options = _LIBRARY[contestant]
    lib = importlib.import_module(module)
    return lib, (_as_is if options is None else functools.partial(lib.compile, **options))


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
        net = by_hand.NumpyMLP(state, p["loss"], p["lr"], p["momentum"])
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

    return Instance(step, state_now, fn=fn)


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
            s, held["x.grad"] = by_hand.gelu_sum_grad_numpy(x_np)
            return s

        return Instance(numpy_step, _held_state(held), held.clear)
    lib, wrap = library(contestant)
    x = lib.from_numpy(x_np).requires_grad_()
    fn = wrap(gelu_sum_grad)

    def step() -> Any:
        return fn(x)

    def release() -> None:
        x.grad = None

    return Instance(step, _grad_state(x=x), release, fn=fn)


def log_softmax_instance(contestant: str, p: dict[str, Any]) -> Instance:
    """W4: logits [rows, classes] and int64 targets."""
    rng = _rng(4, p["rows"], p["classes"])
    logits_np = rng.standard_normal((p["rows"], p["classes"]), dtype=np.float32)
    target_np = rng.integers(0, p["classes"], p["rows"])
    if contestant == "numpy":
        held: dict[str, np.ndarray] = {}

        def numpy_step() -> Any:
            loss, held["logits.grad"] = by_hand.log_softmax_nll_numpy(logits_np, target_np)
            return loss

        return Instance(numpy_step, _held_state(held), held.clear)
    lib, wrap = library(contestant)
    logits = lib.from_numpy(logits_np).requires_grad_()
    target = lib.from_numpy(target_np)
    fn = wrap(make_log_softmax_nll(lib))

    def step() -> Any:
        return fn(logits, target)

    return Instance(step, _grad_state(logits=logits), fn=fn)


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
                by_hand.layer_norm_vjp_numpy(x_np, w_np, b_np, g_np)
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

    return Instance(step, _grad_state(x=x, weight=norm.weight, bias=norm.bias), fn=fn)


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

    return Instance(step, dict, fn=fn)


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
             {**w1, "batch": 32}, 0.70, check_steps=5),
        Case("W1-b256", f"MLP {mlp_title} SGD-momentum step, batch 256", mlp_instance,
             {**w1, "batch": 256}, 0.85, check_steps=5),
        Case("W2", "MLP 2-4-1 MSE plain-SGD step, batch 8", mlp_instance,
             {"sizes": (2, 4, 1), "loss": "mse", "lr": 0.01, "momentum": 0.0, "batch": 8},
             0.03, check_steps=5),
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


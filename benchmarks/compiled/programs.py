"""The workload programs W1-W5 and their instances: what one contestant runs for one case.

A case's ``params["device"]`` (default ``"cpu"``) says where the tensors live: the GPU
suite (``gpu_cases``, issue 8) sets ``"cuda"``, and its by-hand contestant is then CuPy
(``"cupy"``: the same hand-written arithmetic on CuPy arrays).

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


# the by-hand contestants: the NumPy arithmetic of ``by_hand``, on NumPy arrays or, on a CUDA
# device, on CuPy arrays ("cupy" on the CPU runs on NumPy: the GPU suite's CPU smoke path)
BY_HAND = ("numpy", "cupy")


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
    """A copy of a tensor, array or scalar as a NumPy array (detached from autograd, and
    copied to the host from a CUDA device)."""
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    elif hasattr(value, "__cuda_array_interface__") and hasattr(value, "get"):
        value = value.get()  # a CuPy array (np.array refuses an implicit device copy)
    return np.array(value, copy=True)


def device_of(p: dict[str, Any]) -> str:
    """The device a case's tensors live on (``params["device"]``, default the CPU)."""
    return p.get("device", "cpu")


def by_hand_arrays(p: dict[str, Any], *arrays: np.ndarray) -> tuple[Any, ...]:
    """``arrays`` where the by-hand contestant computes on them: as they are on the CPU,
    copied to the GPU as CuPy arrays on a CUDA device (CuPy imported only then)."""
    if device_of(p) == "cpu":
        return arrays
    import cupy

    return tuple(cupy.asarray(a) for a in arrays)


def synchronizer(contestant: str, device: str) -> Callable[[], None]:
    """What waits for a contestant's queued GPU work: ``torch.cuda.synchronize``,
    ``compgrad.cuda.synchronize`` or CuPy's device synchronise; nothing on the CPU."""
    if device == "cpu":
        return _nothing
    if contestant in BY_HAND:
        import cupy

        return cupy.cuda.get_current_stream().synchronize
    lib, _ = library(contestant)
    return lib.cuda.synchronize


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
    device = device_of(p)
    if contestant in BY_HAND:
        names = list(state)
        state = dict(zip(names, by_hand_arrays(p, *state.values())))
        data = [by_hand_arrays(p, x, y) for x, y in data]
        net = by_hand.NumpyMLP(state, p["loss"], p["lr"], p["momentum"])
        batches = itertools.cycle(data)

        def numpy_step() -> Any:
            return net.step(*next(batches))

        return Instance(numpy_step, net.state)
    lib, wrap = library(contestant)
    model = build_mlp(lib, sizes)
    model.load_state_dict({k: lib.from_numpy(v.copy()) for k, v in state.items()})
    model.to(device)  # before the optimizer is made, as PyTorch's docs ask
    loss_fn = lib.nn.CrossEntropyLoss() if p["loss"] == "ce" else lib.nn.MSELoss()
    optimizer = lib.optim.SGD(model.parameters(), lr=p["lr"], momentum=p["momentum"])
    fn = wrap(train_step)
    tensors = itertools.cycle([(lib.from_numpy(x).to(device), lib.from_numpy(y).to(device))
                               for x, y in data])

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
    if contestant in BY_HAND:
        held: dict[str, np.ndarray] = {}
        (x_in,) = by_hand_arrays(p, x_np)

        def numpy_step() -> Any:
            s, held["x.grad"] = by_hand.gelu_sum_grad_numpy(x_in)
            return s

        return Instance(numpy_step, _held_state(held), held.clear)
    lib, wrap = library(contestant)
    x = lib.from_numpy(x_np).to(device_of(p)).requires_grad_()
    del x_np  # W3 on a GPU: 1 GiB of host memory per worker
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
    if contestant in BY_HAND:
        held: dict[str, np.ndarray] = {}
        logits_in, target_in = by_hand_arrays(p, logits_np, target_np)

        def numpy_step() -> Any:
            loss, held["logits.grad"] = by_hand.log_softmax_nll_numpy(logits_in, target_in)
            return loss

        return Instance(numpy_step, _held_state(held), held.clear)
    lib, wrap = library(contestant)
    logits = lib.from_numpy(logits_np).to(device_of(p)).requires_grad_()
    target = lib.from_numpy(target_np).to(device_of(p))
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
    if contestant in BY_HAND:
        held: dict[str, np.ndarray] = {}
        x_in, w_in, b_in, g_in = by_hand_arrays(p, x_np, w_np, b_np, g_np)

        def numpy_step() -> Any:
            y, held["x.grad"], held["weight.grad"], held["bias.grad"] = \
                by_hand.layer_norm_vjp_numpy(x_in, w_in, b_in, g_in)
            return y

        return Instance(numpy_step, _held_state(held), held.clear)
    lib, wrap = library(contestant)
    norm = lib.nn.LayerNorm(p["dim"])
    norm.load_state_dict({"weight": lib.from_numpy(w_np.copy()),
                          "bias": lib.from_numpy(b_np.copy())})
    norm.to(device_of(p))
    x = lib.from_numpy(x_np).to(device_of(p)).requires_grad_()
    g = lib.from_numpy(g_np).to(device_of(p))
    fn = wrap(layer_norm_vjp)

    def step() -> Any:
        return fn(norm, x, g)

    return Instance(step, _grad_state(x=x, weight=norm.weight, bias=norm.bias), fn=fn)


def matmul_instance(contestant: str, p: dict[str, Any]) -> Instance:
    """W5: [n, n] @ [n, n]."""
    rng = _rng(6, p["n"])
    a_np = rng.standard_normal((p["n"], p["n"]), dtype=np.float32)
    b_np = rng.standard_normal((p["n"], p["n"]), dtype=np.float32)
    if contestant in BY_HAND:
        a_in, b_in = by_hand_arrays(p, a_np, b_np)

        def numpy_step() -> Any:
            return a_in @ b_in

        return Instance(numpy_step, dict)
    lib, wrap = library(contestant)
    a, b = lib.from_numpy(a_np).to(device_of(p)), lib.from_numpy(b_np).to(device_of(p))
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


def gpu_cases(quick: bool = False, device: str = "cuda") -> list[Case]:
    """Issue 8's GPU cases at sizes that fill an H100 (W1 batch 4096, W3 2^28 elements, W4
    [65536, 1000] and [65536, 1024]) or (``quick``) tiny ones, their tensors on
    ``device`` (``"cpu"``: the same code paths without a GPU, for smoke tests).

    Targets (compgrad.compile / torch CUDA eager): parity on W1 (within 10 %), ahead on
    W3 and W4."""
    mlp = (64, 32, 32, 10) if quick else (784, 512, 512, 10)
    batch = 64 if quick else 4096
    n3 = 1 << (12 if quick else 28)
    lsm = (64, 100) if quick else (65536, 1000)
    ln = (64, 128) if quick else (65536, 1024)
    title = "-".join(map(str, mlp))
    return [
        Case(f"W1-b{batch}", f"MLP {title} SGD-momentum step, batch {batch}", mlp_instance,
             {"sizes": mlp, "loss": "ce", "lr": 0.01, "momentum": 0.9, "batch": batch,
              "device": device}, 1.10, check_steps=5),
        Case("W3", f"tanh-GELU sum + grad, 2^{n3.bit_length() - 1} elements", gelu_instance,
             {"n": n3, "device": device}, 1.0),
        Case("W4-lsm", f"log_softmax + nll_loss + grad, [{lsm[0]}, {lsm[1]}]",
             log_softmax_instance, {"rows": lsm[0], "classes": lsm[1], "device": device}, 1.0),
        Case("W4-ln", f"LayerNorm({ln[1]}) fwd + VJP, [{ln[0]}, {ln[1]}]", layer_norm_instance,
             {"rows": ln[0], "dim": ln[1], "device": device}, 1.0),
    ]


SUITES = ("cpu", "gpu")


def suite_cases(suite: str, quick: bool, device: str = "cuda") -> list[Case]:
    """The cases of a suite: ``"cpu"`` (issue 7's, ``cases``) or ``"gpu"`` (issue 8's,
    ``gpu_cases`` on ``device``)."""
    if suite == "cpu":
        return cases(quick)
    if suite == "gpu":
        return gpu_cases(quick, device)
    raise ValueError(f"unknown suite {suite!r}; choose from {', '.join(SUITES)}")


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


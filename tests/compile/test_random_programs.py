"""Random programs run eagerly and under ``compgrad.compile``: never different.

A program is data: a list of :class:`Step` records (op name, operand
references, small integers the op reads relative to the shapes it meets), so
hypothesis can shrink a failure to a few steps. :func:`run` interprets a
program on a list of tensors; it is called eagerly and as a compiled function
(``backend="interpret"``) on fresh copies of the same inputs, then the
compiled function is called again on new data (its program cache is hit).
The two runs must give equal results, Python scalars read with ``.item()``,
``.grad`` of the inputs and in-place-modified inputs (float64, rtol 1e-9),
or both raise the same exception type.

Programs mix elementwise ops with tensors, 0-d tensors and Python scalars as
operands (broadcasting), reductions, matmul/mm/bmm, views, in-place writes
(also through views of inputs), indexing (integer tensors, boolean masks,
index_select, gather), ``backward()`` mid-program and at the end, and
``.item()`` reads with a Python branch or loop on the value (graph breaks).

Operands are fitted to each other from their shapes (known to both runs), so
most programs run to the end; a step's ``raw`` argument skips the fitting, so
error paths are compared too. ``pytest -s`` prints how many programs ran.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import operator
from collections import Counter
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import compgrad
from compgrad.tensor import Tensor

RTOL = 1e-9
# float32 tolerance of the backend under test: the interpreter is bit-exact; generated
# kernels compute exp/tanh/... inline (<= 2e-7 relative), which chains of ops amplify
# (exp of a large argument multiplies its absolute error)
FLOAT32_RTOL = [RTOL]
BACKEND_FLOAT32_RTOL = {"interpret": RTOL, "numba": 1e-4}
ATOL = 1e-12
MAX_EXAMPLES = 2000
NUMBA_EXAMPLES = 150

# --------------------------------------------------------------------------- programs


@dataclass(frozen=True)
class Step:
    """One step: ``op`` applied to pool entries ``refs`` (0 = the newest) with
    small integer ``args`` the op interprets; branch steps hold sub-steps."""

    op: str
    refs: tuple[int, ...] = ()
    args: tuple[int, ...] = ()
    then: tuple[Step, ...] = ()
    orelse: tuple[Step, ...] = ()

    def __repr__(self) -> str:
        sub = f", then={self.then!r}, orelse={self.orelse!r}" if self.then or self.orelse else ""
        return f"Step({self.op!r}, {self.refs}, {self.args}{sub})"


@dataclass(frozen=True)
class Program:
    """Input specs ``(shape, kind)`` (kind: ``leaf`` float64 requiring grad,
    ``const`` float64, ``int`` int64), the steps, and whether the program ends
    with ``loss = sum of outputs; loss.backward()``."""

    inputs: tuple[tuple[tuple[int, ...], str], ...]
    steps: tuple[Step, ...]
    backward: bool
    seed: int


_LITERALS = (2.0, -0.5, 3, 0, 1.5, -2, 0.0, 1, 0.25, -1.0)


class _Ctx:
    """The running program: a pool of tensors (inputs first), the Python scalars
    it read, and what the workarounds for known bugs need to know."""

    def __init__(self, tensors):
        self.pool: list[Tensor] = list(tensors)
        self.scalars: list = []
        self.detached: set[int] = set()  # ids of pool tensors made by detach()

    def ref(self, i: int) -> Tensor:
        return self.pool[-1 - i % len(self.pool)]

    def push(self, *ts: Tensor) -> None:
        self.pool.extend(ts)


def _literal(k: int):
    return _LITERALS[k % len(_LITERALS)]


def _broadcastable(a: tuple, b: tuple) -> bool:
    return all(x == y or x == 1 or y == 1 for x, y in zip(reversed(a), reversed(b)))


def _expandable(src: tuple, dst: tuple) -> bool:
    """``src`` broadcasts to exactly ``dst`` (what an in-place operand must do)."""
    return len(src) <= len(dst) and all(x == y or x == 1 for x, y in
                                        zip(reversed(src), reversed(dst)))


def _is_float(t: Tensor) -> bool:
    return t.dtype in (compgrad.float64, compgrad.float32)


def _operand(ctx: _Ctx, x: Tensor, ref: int, mode: int, lit: int, into: bool = False):
    """The second operand of an op on ``x``: a tensor fitted to broadcast with
    ``x`` (or into it, for in-place ops), a Python number, a number read with
    ``.item()`` earlier, an unfitted tensor, or a 0-d tensor."""
    mode %= 6
    if mode == 2:
        return _literal(lit)
    if mode == 3:
        numbers = [v for v in ctx.scalars if isinstance(v, (bool, int, float))]
        return numbers[-1] if numbers else _literal(lit)
    y = ctx.ref(ref)
    if mode == 4:
        return y   # raw: may not broadcast (both runs must raise alike)
    if mode == 5:
        return y.sum()
    shape, ys = tuple(x.shape), tuple(y.shape)
    ok = _expandable(ys, shape) if into else _broadcastable(shape, ys)
    return y if ok else y.sum()


def _mod(a: int, n: int) -> int:
    """``a % n``, 0 for an empty dim (the op then raises alike in both runs)."""
    return a % n if n else 0


def _dim(x: Tensor, k: int) -> int:
    """A valid dim of ``x`` from ``k`` (odd ``k``: counted from the end)."""
    nd = max(x.dim(), 1)
    d = (k // 2) % nd
    return d - nd if k % 2 else d


def _nonscalar(x: Tensor) -> Tensor:
    return x.reshape(1) if x.dim() == 0 else x


# --- elementwise --------------------------------------------------------------------------

_BINARY = {"add": operator.add, "sub": operator.sub, "mul": operator.mul,
           "div": operator.truediv, "pow": operator.pow}
_UNARY = {"exp": Tensor.exp, "tanh": Tensor.tanh, "relu": Tensor.relu,
          "sigmoid": Tensor.sigmoid, "neg": Tensor.neg}


def _binary(ctx: _Ctx, step: Step) -> None:
    x = ctx.ref(step.refs[0])
    mode, lit, flip = step.args
    y = _operand(ctx, x, step.refs[1], mode, lit)
    fn = _BINARY[step.op]
    if step.op == "pow" and isinstance(y, Tensor) and not flip % 2:
        y = y.tanh() if _is_float(y) else y   # keep x ** y finite-ish
    ctx.push(fn(y, x) if flip % 2 else fn(x, y))


def _unary(ctx: _Ctx, step: Step) -> None:
    x = ctx.ref(step.refs[0])
    if step.op == "exp" and _is_float(x):
        x = x.tanh()    # exp of exp of ... overflows; tanh keeps it bounded
    ctx.push(_UNARY[step.op](x))


def _where(ctx: _Ctx, step: Step) -> None:
    x = ctx.ref(step.refs[0])
    mode, lit, cond = step.args
    y = _operand(ctx, x, step.refs[1], mode, lit)
    c = x > (y if cond % 2 else 0)
    ctx.push(compgrad.where(c, x, y) if cond % 3 else compgrad.where(c, y, x))


# --- reductions ---------------------------------------------------------------------------

def _reduce(ctx: _Ctx, step: Step) -> None:
    x = ctx.ref(step.refs[0])
    kind, k, keep = step.args
    d, keepdim = _dim(x, k), bool(keep % 2)
    kind %= 11
    if not _is_float(x) and keep % 7 != 6 and kind in (1, 6, 7, 8):
        x = x.double()   # mean and softmax refuse integers (mostly avoided)
    if kind < 3:    # along a dim
        ctx.push(getattr(x, ("sum", "mean", "amax")[kind])(d, keepdim=keepdim))
    elif kind == 3:
        values, indices = x.max(d, keepdim=keepdim)
        ctx.push(indices, values)
    elif kind < 7:  # over everything
        ctx.push(getattr(x, ("max", "sum", "mean")[kind - 4])())
    elif kind < 9:
        ctx.push(x.softmax(d) if kind == 7 else x.log_softmax(d))
    elif kind == 9:
        dims = tuple(sorted({_dim(x, k) % max(x.dim(), 1), _dim(x, keep) % max(x.dim(), 1)}))
        ctx.push(x.sum(dims, keepdim=keepdim))
    else:
        ctx.push(x.amax(None if x.dim() == 0 else tuple(range(x.dim())), keepdim=keepdim)
                 if keepdim else compgrad.amax(x, d))


# --- matmul -------------------------------------------------------------------------------

def _matmul_ok(a: tuple, b: tuple) -> bool:
    if not a or not b:
        return False
    if len(a) == 1 and len(b) == 1:
        return a == b
    if len(b) == 1:
        return a[-1] == b[0]
    if len(a) == 1:
        return a[0] == b[-2]
    return a[-1] == b[-2] and _broadcastable(a[:-2], b[:-2])


def _as_2d(x: Tensor) -> Tensor:
    return x if x.dim() == 2 else x.reshape(1, -1) if x.dim() < 2 else x.reshape(
        -1, x.shape[-1])


def _matmul(ctx: _Ctx, step: Step) -> None:
    x, y = ctx.ref(step.refs[0]), ctx.ref(step.refs[1])
    kind, raw = step.args
    raw = raw == 23   # rarely: unfitted shapes (both runs raise)
    kind %= 3
    if not raw and x.dtype is not y.dtype:
        x, y = x.double(), y.double()
    if kind == 0:
        if not raw:
            x = _nonscalar(x)
            if not _matmul_ok(tuple(x.shape), tuple(y.shape)):
                y = x.mT if x.dim() >= 2 else x
        ctx.push(x @ y if raw or step.refs[1] % 2 else compgrad.matmul(x, y))
    elif kind == 1:
        if not raw:
            x, y = _as_2d(x), _as_2d(y)
            if x.shape[1] != y.shape[0]:
                y = x.t()
        ctx.push(x.mm(y))
    else:
        if not raw:
            x = x if x.dim() == 3 else _as_2d(x).unsqueeze(0)
            if y.dim() != 3 or y.shape[0] != x.shape[0] or y.shape[1] != x.shape[2]:
                y = x.transpose(1, 2)
        ctx.push(compgrad.bmm(x, y))


# --- views --------------------------------------------------------------------------------

def _reshape_target(shape: tuple, k: int) -> tuple:
    n = int(np.prod(shape, dtype=np.int64))
    divisors = [d for d in range(1, n + 1) if n % d == 0]
    options = [(-1,), (n, 1), (1, -1), (divisors[k // 6 % len(divisors)], -1),
               (1,) + tuple(shape), tuple(s for s in shape if s != 1) or ()]
    return options[k % len(options)]


def _slice(x: Tensor, d: int, k: int) -> tuple:
    size = x.shape[d]
    start = (k % (size + 1)) - (size if k % 7 == 3 else 0)
    stop = None if k % 3 == 0 else start + 1 + k % 4
    step = 1 + (k // 5) % 2
    return (slice(None),) * (d % x.dim()) + (slice(start, stop, step),)


def _view(ctx: _Ctx, step: Step) -> None:
    x = ctx.ref(step.refs[0])
    kind, a, b = step.args
    kind %= 13
    if kind == 0:
        ctx.push(x.reshape(_reshape_target(tuple(x.shape), a)))
    elif kind == 1:
        ctx.push(x.view(_reshape_target(tuple(x.shape), a)))
    elif kind == 2:
        perms = list(itertools.permutations(range(x.dim())))
        ctx.push(x.permute(*perms[a % len(perms)]))
    elif kind == 3:
        ctx.push(x.transpose(_dim(x, a), _dim(x, b)))
    elif kind == 4:
        ctx.push(x.unsqueeze(a % (x.dim() + 1) - (x.dim() + 1 if b % 2 else 0)))
    elif kind == 5:
        ctx.push(x.squeeze() if a % 2 == 0 else x.squeeze(_dim(x, b)))
    elif kind == 6:
        x = _nonscalar(x)
        ctx.push(x[_slice(x, _dim(x, a), b)])
    elif kind == 7:
        x = _nonscalar(x)
        d = _dim(x, a)
        size = x.shape[d]
        ctx.push(x.select(d, _mod(b, 2 * size) - size))
    elif kind == 8:
        x = _nonscalar(x)
        ctx.push(x[_mod(b, 2 * x.shape[0]) - x.shape[0]])
    elif kind == 9:
        if b % 3 == 2:
            ctx.push(x.expand(*x.shape))   # repeats nothing: writes through it are allowed
        elif a % 2 or 1 not in x.shape:
            ctx.push(x.expand(2 + b % 2, *x.shape))
        else:
            ctx.push(x.expand(*[3 if s == 1 else s for s in x.shape]))
    elif kind == 10:
        ctx.push(x.t() if x.dim() <= 2 else x.mT)
    elif kind == 11:
        ctx.push(x[None] if a % 2 else x[..., None])
    else:
        if a % 2:
            ctx.push(x.clone())
        else:
            ctx.push(x.detach())
            ctx.detached.add(id(ctx.pool[-1]))


# --- in-place -----------------------------------------------------------------------------
#
# "BUG n" marks where the generator steers around a known bug; test_known_bug (at the end,
# xfail strict) reproduces each: remove the workaround when its test starts passing.
# Some writes run under no_grad (k % 7 == 3): autograd does not see them.


def _index_tensor(size: int, k: int, n: int, negative: bool = True) -> Tensor:
    """``n`` indices into a dim of ``size`` (some negative, unless not ``negative``)."""
    values = [_mod(k + 2 * i, size) - (size if negative and (k + i) % 3 == 2 else 0)
              for i in range(n)]
    return compgrad.tensor(values, dtype=compgrad.int64)


def _inplace(ctx: _Ctx, step: Step) -> None:
    t = ctx.ref(step.refs[0])
    kind, mode, lit, k = step.args
    kind %= 10
    if t.requires_grad and t.grad_fn is None and k % 5 != 4:
        t = t.clone()   # in place on a leaf that requires grad raises; mostly avoid it
    if not _is_float(t) and mode % 6 != 4:
        t = t.double()  # float operands cannot be written into integers (mostly avoided)
    with compgrad.no_grad() if k % 7 == 3 else contextlib.nullcontext():
        _write_into(ctx, t, step, kind, mode, lit, k)
    ctx.push(t)


def _write_into(ctx: _Ctx, t: Tensor, step: Step, kind: int, mode: int, lit: int,
                k: int) -> None:
    def operand(region: Tensor, m: int = mode):
        return _operand(ctx, region, step.refs[1], m, lit, into=True)

    if kind == 0:
        t.add_(operand(t))
    elif kind == 1:
        t.mul_(operand(t))
    elif kind == 2:
        lo = _literal(lit) if mode % 3 else None
        t.clamp_(min=lo, max=None if mode % 3 == 1 else abs(_literal(k)) + 0.5)
    elif kind == 3:
        y = operand(t)
        t.copy_(y) if isinstance(y, Tensor) else t.fill_(y)
    elif kind in (4, 5):
        # setitem on a slice of t, or through a transposed view of t
        t1 = _nonscalar(t)
        target = t1.mT if kind == 5 and t1.dim() >= 2 else t1
        index = _slice(target, _dim(target, k), lit)
        target[index] = operand(target[index])
    elif kind == 6:
        # a write through a view op: select then add_
        t1 = _nonscalar(t)
        d = _dim(t1, k)
        view = t1.select(d, _mod(lit, t1.shape[d]))
        view.add_(operand(view))
    elif kind == 7:
        t[t > _literal(lit)] = _literal(k) if mode % 2 else _literal(k + 1)
    elif kind == 8:
        t1 = _nonscalar(t)
        idx = _index_tensor(t1.shape[0], k, 1 + lit % 2)
        t1[idx] = _literal(mode) if mode % 2 else operand(t1[idx], 0)
    else:
        alpha = 0.5 if _is_float(t) else 2   # integer tensors refuse float alphas
        t.sub_(operand(t), alpha=alpha)


# --- indexing -----------------------------------------------------------------------------

def _index(ctx: _Ctx, step: Step) -> None:
    x = _nonscalar(ctx.ref(step.refs[0]))
    kind, a, b = step.args
    kind %= 7
    d = _dim(x, a)
    size = x.shape[d]
    if kind == 0:
        ctx.push(x[_index_tensor(x.shape[0], b, 1 + a % 3)])
    elif kind == 1:
        idx = _index_tensor(x.shape[-1], b, 1 + a % 3)
        ctx.push(x[..., idx])
    elif kind == 2:
        ctx.push(x[x > _literal(b)])   # data-dependent shape
    elif kind == 3:
        m = ctx.ref(step.refs[1])
        m = m > 0 if tuple(m.shape) == tuple(x.shape) else x < 0
        ctx.push(x[m])
    elif kind == 4:
        # index_select refuses negative indices
        ctx.push(x.index_select(d, _index_tensor(size, b, 1 + a % 4, negative=False)))
    elif kind == 5:
        idx = x.argmax(d, keepdim=True) if b % 2 else x.argmin(d, keepdim=True)
        ctx.push(x.gather(d, idx))
    else:
        # an integer tensor from the pool as an index (wrapped into range)
        idx = ctx.ref(step.refs[1])
        if idx.dtype != compgrad.int64:
            idx = (idx * 3).long()
        ctx.push(x[idx.remainder(x.shape[0])])


# --- Python reads, branches, backward ---------------------------------------------------

def _item(ctx: _Ctx, step: Step) -> None:
    t, kind = ctx.ref(step.refs[0]), step.args[0] % 4
    if kind < 2:
        ctx.scalars.append(t.sum().item() if kind == 0 else float(t.max()))
    else:
        ctx.scalars.append((t.sum(0) if t.dim() else t).tolist() if kind == 2
                           else bool((t > 0).any()))


def _branch(ctx: _Ctx, step: Step) -> None:
    kind, lit = step.args
    value = ctx.ref(step.refs[0]).sum().item()
    ctx.scalars.append(value)
    if kind % 2 == 0:
        for sub in step.then if value > _literal(lit) else step.orelse:
            _apply(ctx, sub)
        return
    # a loop that runs until a tensor condition holds (at most 3 times)
    x = ctx.ref(step.refs[0])
    for _ in range(3):
        if not bool(x.abs().sum() > abs(_literal(lit)) + 1):
            break
        for sub in step.then:
            _apply(ctx, sub)
        x = ctx.pool[-1] * 0.5
        ctx.push(x)


def _loss(ts) -> Tensor | None:
    parts = [t.sum() for t in ts if t.requires_grad and _is_float(t)]
    return functools.reduce(operator.add, parts) if parts else None


def _backward(ctx: _Ctx, step: Step) -> None:
    n, retain = step.args
    loss = _loss(ctx.pool[-1 - n % 3:])
    if loss is None:
        loss = _loss(ctx.pool)
    if loss is None:
        if retain % 8 != 7:
            return
        loss = ctx.ref(step.refs[0]).sum()   # does not require grad: both runs raise
    loss.backward(retain_graph=retain % 3 != 2)
    ctx.push(loss)


_HANDLERS = {**{name: _binary for name in _BINARY}, **{name: _unary for name in _UNARY},
             "where": _where, "reduce": _reduce, "matmul": _matmul, "view": _view,
             "inplace": _inplace, "index": _index, "item": _item, "branch": _branch,
             "backward": _backward}


def _apply(ctx: _Ctx, step: Step) -> None:
    _HANDLERS[step.op](ctx, step)


def run(program: Program, tensors) -> tuple[list, list]:
    """Run ``program`` on ``tensors``: every tensor it made (inputs first) and the
    Python values it read."""
    ctx = _Ctx(tensors)
    for step in program.steps:
        _apply(ctx, step)
    if program.backward:
        loss = _loss(ctx.pool)
        if loss is not None:
            loss.backward()
            ctx.push(loss)
    return ctx.pool, ctx.scalars


# --------------------------------------------------------------------------- strategies

_REF = st.integers(0, 6)
_ARG = st.integers(0, 23)


def _step(ops: list[str], nrefs: int, nargs: int) -> st.SearchStrategy:
    return st.builds(Step, st.sampled_from(ops), st.tuples(*[_REF] * nrefs),
                     st.tuples(*[_ARG] * nargs))


_SIMPLE = st.one_of(
    _step(list(_BINARY), 2, 3),
    _step(list(_UNARY), 1, 0),
    _step(["where"], 2, 3),
    _step(["reduce"], 1, 3),
    _step(["matmul"], 2, 2),
    _step(["view"], 1, 3),
    _step(["inplace"], 2, 4),
    _step(["index"], 2, 3),
)
_BODY = st.lists(_SIMPLE, min_size=1, max_size=2).map(tuple)
_STEP = st.one_of(
    _SIMPLE,
    _step(["item"], 1, 1),
    _step(["backward"], 1, 2),
    st.builds(Step, st.just("branch"), st.tuples(_REF), st.tuples(_ARG, _ARG), _BODY, _BODY),
)
_SHAPES = st.lists(st.sampled_from((3, 2, 1, 4)), max_size=3).map(tuple)
_INPUT = st.tuples(_SHAPES, st.sampled_from(("leaf", "const", "int")))

programs = st.builds(
    Program,
    st.lists(_INPUT, min_size=1, max_size=4).map(tuple),
    st.lists(_STEP, min_size=1, max_size=12).map(tuple),
    st.booleans(),
    st.integers(0, 2**16),
)


# --------------------------------------------------------------------------- checking

def make_inputs(program: Program, seed: int) -> list[Tensor]:
    """Fresh tensors for ``program``'s input specs, from ``seed``."""
    rng = np.random.default_rng(seed)
    out = []
    for shape, kind in program.inputs:
        if kind == "int":
            out.append(compgrad.tensor(rng.integers(-3, 4, shape), dtype=compgrad.int64))
        else:
            out.append(compgrad.tensor(rng.standard_normal(shape), dtype=compgrad.float64,
                                       requires_grad=kind == "leaf"))
    return out


def _outcome(fn, program: Program, tensors):
    try:
        return fn(program, tensors), None
    except Exception as e:  # noqa: BLE001 - the exception is the outcome compared
        return None, e


def _close(a, b, what: str) -> None:
    a, b = np.asarray(a), np.asarray(b)
    rtol = FLOAT32_RTOL[0] if a.dtype == np.float32 else RTOL
    np.testing.assert_allclose(a, b, rtol=rtol, atol=ATOL, equal_nan=True, err_msg=what)


def _same_tensor(a: Tensor, b: Tensor, what: str) -> None:
    assert isinstance(b, Tensor), f"{what}: Tensor vs {type(b).__name__}"
    assert a.dtype is b.dtype, f"{what}: dtype {a.dtype} vs {b.dtype}"
    assert tuple(a.shape) == tuple(b.shape), f"{what}: shape {a.shape} vs {b.shape}"
    assert a.requires_grad == b.requires_grad, f"{what}: requires_grad differs"
    _close(a.detach().numpy(), b.detach().numpy(), what)


def _same_scalar(a, b, what: str) -> None:
    assert type(a) is type(b), f"{what}: {a!r} vs {b!r}"
    if isinstance(a, list):
        assert len(a) == len(b), f"{what}: {a!r} vs {b!r}"
        for i, (x, y) in enumerate(zip(a, b)):
            _same_scalar(x, y, f"{what}[{i}]")
    elif isinstance(a, float):
        _close(a, b, what)
    else:
        assert a == b, f"{what}: {a!r} vs {b!r}"


def _same_inputs(eager: list[Tensor], compiled: list[Tensor]) -> None:
    for i, (a, b) in enumerate(zip(eager, compiled)):
        _same_tensor(a, b, f"input {i} after the call")
        assert a.is_leaf == b.is_leaf, f"input {i}: is_leaf differs"
        if not a.is_leaf:
            continue   # written in place with autograd: no .grad to compare
        ga, gb = a.grad, b.grad
        assert (ga is None) == (gb is None), f"input {i}: .grad {ga!r} vs {gb!r}"
        if ga is not None:
            _same_tensor(ga, gb, f"input {i}.grad")


def check(program: Program, compiled, seed: int) -> str:
    """Run ``program`` eagerly and through ``compiled`` on copies of the same
    inputs; assert they agree. Returns the outcome (``ok`` or the error type)."""
    eager_in, comp_in = make_inputs(program, seed), make_inputs(program, seed)
    eager, e_err = _outcome(run, program, eager_in)
    comp, c_err = _outcome(compiled, program, comp_in)
    if e_err is not None:
        assert c_err is not None, f"eager raised {e_err!r}, compiled returned"
        assert type(c_err) is type(e_err), f"eager raised {e_err!r}, compiled {c_err!r}"
    else:
        assert c_err is None, f"compiled raised {c_err!r}, eager returned"
        (e_pool, e_scalars), (c_pool, c_scalars) = eager, comp
        assert len(e_pool) == len(c_pool) and len(e_scalars) == len(c_scalars)
        for i, (a, b) in enumerate(zip(e_scalars, c_scalars)):
            _same_scalar(a, b, f"python value {i}")
        for i, (a, b) in enumerate(zip(e_pool, c_pool)):
            _same_tensor(a, b, f"tensor {i}")
    # the work done before an exception happened in both runs too
    _same_inputs(eager_in, comp_in)
    return "ok" if e_err is None else type(e_err).__name__


STATS: Counter = Counter()


def _random_programs(backend: str, max_examples: int):
    @settings(max_examples=max_examples, derandomize=True, database=None, deadline=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(programs)
    def one(program: Program) -> None:
        compiled = compgrad.compile(run, backend=backend)
        STATS["programs"] += 1
        STATS["steps"] += len(program.steps)
        STATS.update(f"step {s.op}" for s in program.steps)
        STATS[f"outcome {check(program, compiled, program.seed)}"] += 1
        # the same compiled function on new data: its cached programs run again
        check(program, compiled, program.seed + 1)
        explained = compiled.explain()
        STATS["graphs"] += explained.program_count
        STATS["graph breaks"] += explained.total_graph_break_count
        STATS["cache hits"] += explained.cache_hits

    return one


@pytest.mark.parametrize("backend, examples", [("interpret", MAX_EXAMPLES),
                                               ("numba", NUMBA_EXAMPLES)])
def test_random_programs(backend, examples):
    """Hypothesis-generated programs: eager and compiled agree (see the module docstring).
    The numba backend (generated kernels) runs fewer: each new kernel compiles."""
    STATS.clear()
    FLOAT32_RTOL[0] = BACKEND_FLOAT32_RTOL[backend]
    try:
        _random_programs(backend, examples)()
    finally:
        FLOAT32_RTOL[0] = RTOL
    print(f"\nrandom programs ({backend}):",
          ", ".join(f"{k}: {v}" for k, v in sorted(STATS.items())))
    # most programs must run to the end, or the test checks little
    assert STATS["outcome ok"] >= 0.6 * STATS["programs"], dict(STATS)
    assert STATS["cache hits"] > 0 and STATS["graph breaks"] > 0, dict(STATS)

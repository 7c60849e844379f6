"""The registry sweep: every registered op, every declared sample.

For each op: it declares samples; each sample runs eagerly and every op the
call applies matches its NumPy reference; the VJP matches float64 central
finite differences in a random direction; and where PyTorch is importable,
values, dtypes, exception types and gradients match torch 2.13.0.
"""

from __future__ import annotations

import numpy as np
import pytest

import compgrad
from compgrad._eager import EAGER
from ir import dtypes
from ir.dispatch import interpreter
from ir.opdef import REGISTRY, ErrorSample, Sample
from ir.vjp import call_vjp
from tests.oracle import assert_same, call, convert, resolve, to_numpy, torch
from tests.recording import Recorder

OPS = sorted(REGISTRY.values(), key=lambda op: op.name)


def _samples(op):
    return list(op.samples()) if op.samples is not None else []


def _cases(kind):
    out = []
    for op in OPS:
        for i, s in enumerate(_samples(op)):
            if isinstance(s, kind):
                out.append(pytest.param(op, i, id=f"{op.name}-{i}"))
    return out


def _run_recorded(op, sample):
    rec = Recorder()
    with interpreter(rec):
        result, targs = call("compgrad", op.public, sample.args, sample.kwargs)
    return result, targs, rec.records


@pytest.mark.parametrize("op", OPS, ids=[op.name for op in OPS])
def test_every_op_declares_samples(op):
    samples = _samples(op)
    assert any(isinstance(s, Sample) for s in samples), f"{op.name} declares no samples"
    assert op.kind is not None and op.type_rule is not None and op.impl is not None


@pytest.mark.parametrize("op,index", _cases(Sample))
def test_forward_matches_reference(op, index):
    sample = _samples(op)[index]
    result, _, nodes = _run_recorded(op, sample)
    assert any(n[0] is op for n in nodes), f"calling {op.public} did not apply {op.name}"
    for node_op, _args, snapshot, attrs, out, _outputs in nodes:
        if node_op.kind.value == "random":
            continue
        expected = node_op.impl(*snapshot, **attrs)
        outs = out if isinstance(out, tuple) else (out,)
        exps = expected if isinstance(expected, tuple) else (expected,)
        for o, e in zip(outs, exps):
            e = np.asarray(e).astype(o._data.dtype)
            assert o._data.shape == e.shape, f"{node_op.name}: shape"
            np.testing.assert_allclose(o._data, e, rtol=1e-6, atol=1e-7, equal_nan=True,
                                       err_msg=f"eager {node_op.name} differs from reference")


_DIRECT_CASES = [c for c in _cases(Sample) if c.values[0].direct is not None]


@pytest.mark.parametrize("op,index", _DIRECT_CASES)
def test_direct_kernel_is_the_reference_bit_for_bit(op, index):
    # OpDef.direct: the kernel eager runs in place of impl for these input types must give
    # impl's result exactly (same dtype, same bits), not merely close to it
    sample = _samples(op)[index]
    _, _, nodes = _run_recorded(op, sample)
    checked = 0
    for node_op, args, snapshot, attrs, _out, _outputs in nodes:
        if node_op is not op or attrs:
            continue
        kernel = op.direct(tuple(EAGER.type_of(a) for a in args))
        if kernel is None:
            continue
        with np.errstate(all="ignore"):
            got, want = kernel(*snapshot), op.impl(*snapshot)
        got, want = np.asarray(got), np.asarray(want)
        assert got.dtype == want.dtype and got.shape == want.shape
        assert got.tobytes() == want.tobytes(), f"{op.name}: direct {got} != impl {want}"
        checked += 1
    if not checked:
        pytest.skip("the reference casts for these inputs: no direct kernel")


@pytest.mark.skipif(torch is None, reason="torch is not installed")
@pytest.mark.parametrize("op,index", _cases(Sample))
def test_forward_matches_torch(op, index):
    sample = _samples(op)[index]
    if not sample.torch:
        pytest.skip("sample not comparable with torch")
    ours, _ = call("compgrad", op.public, sample.args, sample.kwargs)
    sample = _samples(op)[index]
    theirs, _ = call("torch", op.public, sample.args, sample.kwargs)
    assert_same(ours, theirs, sample.rtol, sample.atol, where=f"{op.name}[{index}]")


@pytest.mark.parametrize("op,index", _cases(ErrorSample))
def test_errors_match(op, index):
    sample = _samples(op)[index]
    with pytest.raises(sample.error) as info:
        call("compgrad", op.public, sample.args, sample.kwargs)
    assert sample.match in str(info.value)
    if torch is not None and sample.torch:
        sample = _samples(op)[index]
        with pytest.raises(sample.error):
            call("torch", op.public, sample.args, sample.kwargs)


def _as_f64(x):
    if isinstance(x, np.ndarray) and x.dtype.kind == "f":
        return x.astype(np.float64)
    return x


def _f64_attrs(attrs):
    return {k: (dtypes.float64 if isinstance(v, dtypes.DType) and v.is_floating_point else v)
            for k, v in attrs.items()}


def _grad_node(op, sample):
    """The first apply of ``op`` in the sample's call: (args, snapshot, attrs, out)."""
    _, targs, nodes = _run_recorded(op, sample)
    for node in nodes:
        if node[0] is op:
            return node, targs, nodes
    raise AssertionError(f"{op.public} did not apply {op.name}")


def _differentiable(x) -> bool:
    return isinstance(x, np.ndarray) and x.dtype.kind == "f" and x.size > 0


@pytest.mark.parametrize("op,index", _cases(Sample))
def test_vjp_matches_finite_differences(op, index):
    sample = _samples(op)[index]
    if not sample.grad or not op.differentiable:
        pytest.skip("no gradient for this sample")
    (_, _, snapshot, attrs, out, _), _, _ = _grad_node(op, sample)
    attrs = _f64_attrs(attrs)
    xs = [_as_f64(x) for x in snapshot]
    diff = [i for i, x in enumerate(xs) if _differentiable(x)]
    if not diff:
        pytest.skip("no float inputs")
    rng = np.random.default_rng(index)

    def f(inputs):
        res = op.impl(*inputs, **attrs)
        res = res if isinstance(res, tuple) else (res,)
        return [np.asarray(r, dtype=np.float64) if np.asarray(r).dtype.kind == "f" else None
                for r in res]

    outs = f(xs)
    raw = op.impl(*xs, **attrs)
    raw = raw if isinstance(raw, tuple) else (raw,)
    cots = [None if o is None else rng.standard_normal(o.shape) for o in outs]
    dirs = {i: rng.standard_normal(xs[i].shape) for i in diff}

    def phi(t):
        moved = [np.asarray(x + t * dirs[i]) if i in dirs else x for i, x in enumerate(xs)]
        return sum(float(np.sum(c * o)) for c, o in zip(cots, f(moved)) if c is not None)

    h = 1e-6
    numeric = (phi(h) - phi(-h)) / (2 * h)

    tin = tuple(compgrad.from_numpy(x) if isinstance(x, np.ndarray) else x for x in xs)
    # integer outputs (indices) are passed too: VJP rules may read them
    touts = tuple(compgrad.from_numpy(o) if o is not None else
                  compgrad.from_numpy(np.asarray(r)) for o, r in zip(outs, raw))
    tcots = tuple(compgrad.from_numpy(c) if c is not None else None for c in cots)
    grads = call_vjp(op, tin, touts, attrs, tcots)
    analytic = 0.0
    for i in diff:
        g = grads[i]
        if g is not None:
            assert tuple(g.shape) == xs[i].shape, f"grad {i} has shape {tuple(g.shape)}"
            analytic += float(np.sum(to_numpy(g) * dirs[i]))
    scale = max(1.0, abs(numeric), abs(analytic))
    assert abs(analytic - numeric) <= 1e-5 * scale, (
        f"{op.name}: VJP gives {analytic}, finite differences {numeric}")


@pytest.mark.skipif(torch is None, reason="torch is not installed")
@pytest.mark.parametrize("op,index", _cases(Sample))
def test_vjp_matches_torch(op, index):
    sample = _samples(op)[index]
    if not (sample.grad and sample.torch and op.differentiable):
        pytest.skip("no gradient comparison for this sample")
    (_, args, snapshot, attrs, out, _), targs, nodes = _grad_node(op, sample)
    if len(nodes) != 1:
        pytest.skip("public call applies several ops; gradients are checked per op")
    flat = list(targs)
    positions = []
    for a in args:
        idx = next((k for k, t in enumerate(flat) if t is a), None)
        positions.append(idx)
    outs = out if isinstance(out, tuple) else (out,)
    rng = np.random.default_rng(index)
    cots = [rng.standard_normal(o.shape).astype(o._data.dtype) if o.dtype.is_floating_point
            else None for o in outs]
    tin = tuple(args)
    grads = call_vjp(op, tin, outs, attrs,
                     tuple(None if c is None else compgrad.from_numpy(c) for c in cots))

    sample = _samples(op)[index]
    args_t = convert(sample.args, "torch")
    leaves = []
    for pos in positions:
        if pos is not None and isinstance(args_t[pos], torch.Tensor) and \
                args_t[pos].is_floating_point():
            args_t[pos].requires_grad_(True)
            leaves.append(args_t[pos])
        else:
            leaves.append(None)
    kwargs_t = convert(sample.kwargs, "torch")
    path = op.public
    if path.startswith("Tensor."):
        res = getattr(args_t[0], path[len("Tensor."):])(*args_t[1:], **kwargs_t)
    else:
        res = resolve(torch, path)(*args_t, **kwargs_t)
    res = res if isinstance(res, (tuple, list)) else (res,)
    pairs = [(r, torch.from_numpy(c)) for r, c in zip(res, cots)
             if c is not None and r.requires_grad]
    wanted = [leaf for leaf in leaves if leaf is not None]
    if not pairs or not wanted:
        pytest.skip("nothing differentiable")
    tgrads = torch.autograd.grad([p[0] for p in pairs], wanted, [p[1] for p in pairs],
                                 allow_unused=True)
    k = 0
    for g, leaf in zip(grads, leaves):
        if leaf is None:
            continue
        tg = tgrads[k]
        k += 1
        if tg is None or g is None:
            continue
        assert_same(g, tg, sample.rtol or 1e-4, sample.atol or 1e-5, where=f"grad of {op.name}")

"""Convolution, pooling and interpolation against PyTorch: values, first and second order
gradients over stride/padding/dilation/groups combinations, and error messages."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import compgrad
from compgrad import autograd

torch = pytest.importorskip("torch")
F = compgrad.nn.functional
TF = torch.nn.functional


def _rand(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def _both(*arrays):
    ours = [compgrad.tensor(a, requires_grad=True) for a in arrays]
    theirs = [torch.tensor(a, requires_grad=True) for a in arrays]
    return ours, theirs


def _check(fn_ours, fn_theirs, arrays, rtol=1e-7, atol=1e-9, second=True):
    """Values, gradients and a double-backward (gradient of <grad, r>) agree (float64)."""
    ours, theirs = _both(*arrays)
    out, tout = fn_ours(*ours), fn_theirs(*theirs)
    np.testing.assert_allclose(out.detach().numpy(), tout.detach().numpy(), rtol, atol)
    cot = _rand(*tout.shape, seed=7)
    g = autograd.grad(out, ours, compgrad.tensor(cot), create_graph=second)
    tg = torch.autograd.grad(tout, theirs, torch.tensor(cot), create_graph=second)
    for a, b in zip(g, tg):
        np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), rtol, atol)
    if not second:
        return
    rs = [_rand(*a.shape, seed=11 + i) for i, a in enumerate(arrays)]
    s = sum((a * compgrad.tensor(r)).sum() for a, r in zip(g, rs))
    ts = sum((a * torch.tensor(r)).sum() for a, r in zip(tg, rs))
    if not ts.requires_grad:
        return
    if not s.requires_grad:   # our gradient does not depend on the inputs: torch's is zero
        tg2 = torch.autograd.grad(ts, theirs, allow_unused=True)
        assert all(b is None or not b.any() for b in tg2)
        return
    g2 = autograd.grad(s, ours, allow_unused=True)
    tg2 = torch.autograd.grad(ts, theirs, allow_unused=True)
    for a, b in zip(g2, tg2):
        if b is None:
            assert a is None or not np.any(a.numpy())
        else:
            np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), rtol, atol)


CONV2D_CASES = [
    dict(stride=s, padding=p, dilation=d, groups=g)
    for s, p, d, g in itertools.product([1, 2, (2, 1)], [0, 1, (2, 0), "same", "valid"],
                                        [1, 2], [1, 2])
    if not (p == "same" and s != 1)
]


@pytest.mark.parametrize("kw", CONV2D_CASES, ids=str)
def test_conv2d_matches_torch(kw):
    x, w, b = _rand(2, 4, 7, 6), _rand(6, 4 // kw["groups"], 3, 2, seed=1), _rand(6, seed=2)
    _check(lambda x, w, b: F.conv2d(x, w, b, **kw), lambda x, w, b: TF.conv2d(x, w, b, **kw),
           (x, w, b))


@pytest.mark.parametrize("kw", [dict(stride=2, padding=1, output_padding=1),
                                dict(stride=(3, 2), padding=(2, 0), output_padding=(2, 1)),
                                dict(dilation=2, output_padding=1, groups=2),
                                dict(stride=2, dilation=(1, 3), padding=1, groups=2)], ids=str)
def test_conv_transpose2d_matches_torch(kw):
    x, w, b = _rand(2, 4, 4, 3), _rand(4, 3, 3, 2, seed=1), _rand(3 * kw.get("groups", 1),
                                                                   seed=2)
    _check(lambda x, w, b: F.conv_transpose2d(x, w, b, **kw),
           lambda x, w, b: TF.conv_transpose2d(x, w, b, **kw), (x, w, b))


@pytest.mark.parametrize("kw", [dict(), dict(stride=3, padding=2, dilation=2),
                                dict(padding="same", dilation=3), dict(groups=3, stride=2)],
                         ids=str)
def test_conv1d_and_transpose_match_torch(kw):
    x, w = _rand(2, 3, 9), _rand(6, 3 // kw.get("groups", 1), 3, seed=1)
    _check(lambda x, w: F.conv1d(x, w, **kw), lambda x, w: TF.conv1d(x, w, **kw), (x, w))
    if kw.get("padding") != "same":
        wt = _rand(3, 2, 3, seed=1)
        _check(lambda x, w: F.conv_transpose1d(x, w, **kw),
               lambda x, w: TF.conv_transpose1d(x, w, **kw), (x, wt))


def test_unbatched_conv_and_pool():
    x, w = _rand(3, 6, 6), _rand(4, 3, 3, 3, seed=1)
    _check(lambda x, w: F.conv2d(x, w, padding=1), lambda x, w: TF.conv2d(x, w, padding=1),
           (x, w))
    _check(lambda x: F.max_pool2d(x, 2), lambda x: TF.max_pool2d(x, 2), (x,))
    _check(lambda x: F.adaptive_avg_pool2d(x, 4), lambda x: TF.adaptive_avg_pool2d(x, 4), (x,))
    assert tuple(compgrad.conv2d(compgrad.tensor(x), compgrad.tensor(w)).shape) == (4, 4, 4)


@pytest.mark.parametrize("kw", [dict(kernel_size=2), dict(kernel_size=3, stride=2, padding=1),
                                dict(kernel_size=(3, 2), stride=(1, 2), dilation=(2, 1),
                                     ceil_mode=True),
                                dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)],
                         ids=str)
def test_pools_match_torch(kw):
    x = _rand(2, 3, 7, 8)
    _check(lambda x: F.max_pool2d(x, **kw), lambda x: TF.max_pool2d(x, **kw), (x,))
    ours = F.max_pool2d(compgrad.tensor(x), return_indices=True, **kw)[1]
    theirs = TF.max_pool2d(torch.tensor(x), return_indices=True, **kw)[1]
    np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    if "dilation" not in kw:
        for cip in (True, False):
            _check(lambda x, cip=cip: F.avg_pool2d(x, count_include_pad=cip, **kw),
                   lambda x, cip=cip: TF.avg_pool2d(x, count_include_pad=cip, **kw), (x,))


def test_max_pool_ties_take_the_first_maximum():
    x = np.array([[[[1.0, 3.0, 3.0, 0.0], [3.0, 2.0, 3.0, 3.0]]]])
    ours = F.max_pool2d(compgrad.tensor(x, requires_grad=True), 2, return_indices=True)
    theirs = TF.max_pool2d(torch.tensor(x), 2, return_indices=True)
    np.testing.assert_array_equal(ours[1].numpy(), theirs[1].numpy())
    xt = compgrad.tensor(x, requires_grad=True)
    F.max_pool2d(xt, 2).sum().backward()
    tt = torch.tensor(x, requires_grad=True)
    TF.max_pool2d(tt, 2).sum().backward()
    np.testing.assert_array_equal(xt.grad.numpy(), tt.grad.numpy())


def test_max_pool1d_and_adaptive_max_pool():
    x = _rand(2, 3, 9)
    _check(lambda x: F.max_pool1d(x, 3, 2, 1), lambda x: TF.max_pool1d(x, 3, 2, 1), (x,))
    _check(lambda x: F.avg_pool1d(x, 3, 2, 1), lambda x: TF.avg_pool1d(x, 3, 2, 1), (x,))
    _check(lambda x: F.adaptive_max_pool1d(x, 4), lambda x: TF.adaptive_max_pool1d(x, 4), (x,))
    x2 = _rand(2, 3, 7, 5)
    _check(lambda x: F.adaptive_max_pool2d(x, (3, 4)),
           lambda x: TF.adaptive_max_pool2d(x, (3, 4)), (x2,))
    _check(lambda x: F.adaptive_avg_pool2d(x, (3, 4)),
           lambda x: TF.adaptive_avg_pool2d(x, (3, 4)), (x2,))


def test_avg_pool_divisor_override_and_ints():
    x = _rand(1, 2, 6, 6)
    _check(lambda x: F.avg_pool2d(x, 3, 2, 1, divisor_override=5),
           lambda x: TF.avg_pool2d(x, 3, 2, 1, divisor_override=5), (x,))
    xi = np.random.default_rng(0).integers(-9, 9, (1, 2, 5, 5))
    np.testing.assert_array_equal(F.avg_pool2d(compgrad.tensor(xi), 3, 1, 1).numpy(),
                                  TF.avg_pool2d(torch.tensor(xi), 3, 1, 1).numpy())


INTERP_CASES = [
    ((2, 3, 5, 4), dict(size=(9, 7), mode="nearest")),
    ((2, 3, 5, 4), dict(scale_factor=1.7, mode="nearest")),
    ((2, 3, 5, 4), dict(scale_factor=(0.6, 3), mode="nearest-exact")),
    ((2, 3, 5, 4), dict(size=(3, 11), mode="bilinear")),
    ((2, 3, 5, 4), dict(size=(3, 11), mode="bilinear", align_corners=True)),
    ((2, 3, 5, 4), dict(scale_factor=2.5, mode="bilinear")),
    ((2, 3, 5, 4), dict(scale_factor=(2, 0.5), mode="bicubic", align_corners=False)),
    ((2, 3, 5, 4), dict(size=(4, 3), mode="area")),
    ((2, 3, 6), dict(size=13, mode="linear")),
    ((2, 3, 6), dict(scale_factor=0.5, mode="linear", align_corners=True)),
    ((1, 2, 3, 4, 2), dict(size=(5, 2, 3), mode="trilinear")),
]


@pytest.mark.parametrize("shape,kw", INTERP_CASES, ids=str)
def test_interpolate_matches_torch(shape, kw):
    x = _rand(*shape)
    _check(lambda x: F.interpolate(x, **kw), lambda x: TF.interpolate(x, **kw), (x,))


def test_interpolate_float32_indices_match_torch():
    # scale factors whose float32 products land near integers
    x = np.arange(2 * 3 * 7 * 9, dtype=np.float32).reshape(2, 3, 7, 9)
    for sf in (1.1, 1.3, 2.7, 0.35, 3.0):
        for mode in ("nearest", "nearest-exact", "bilinear"):
            ours = F.interpolate(compgrad.tensor(x), scale_factor=sf, mode=mode)
            theirs = TF.interpolate(torch.tensor(x), scale_factor=sf, mode=mode)
            np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-5, atol=1e-4)


ERRORS = [
    (lambda m: m.nn.functional.conv2d(m.zeros(2, 4, 5, 5), m.zeros(8, 3, 3, 3)),
     RuntimeError, "Given groups=1, weight of size [8, 3, 3, 3], expected input[2, 4, 5, 5] to "
     "have 3 channels, but got 4 channels instead"),
    (lambda m: m.nn.functional.conv2d(m.zeros(1, 3, 2, 2), m.zeros(8, 3, 3, 3)),
     RuntimeError, "Calculated padded input size per channel: (2 x 2). Kernel size: (3 x 3). "
     "Kernel size can't be greater than actual input size"),
    (lambda m: m.nn.functional.conv2d(m.zeros(1, 3, 4, 4), m.zeros(8, 3, 3, 3), dilation=2),
     RuntimeError, "Kernel size: (5 x 5)"),
    (lambda m: m.nn.functional.conv2d(m.zeros(1, 4, 5, 5), m.zeros(4, 1, 3, 3), groups=2),
     RuntimeError, "Given groups=2, weight of size [4, 1, 3, 3], expected input[1, 4, 5, 5] to "
     "have 2 channels, but got 4 channels instead"),
    (lambda m: m.nn.functional.conv2d(m.zeros(1, 3, 5, 5), m.zeros(8, 3, 3, 3), groups=0),
     RuntimeError, "non-positive groups is not supported"),
    (lambda m: m.nn.functional.conv2d(m.zeros(1, 3, 5, 5), m.zeros(8, 3, 3, 3), dilation=0),
     RuntimeError, "dilation should be greater than zero"),
    (lambda m: m.nn.functional.conv1d(m.zeros(3, 5, 5, 5), m.zeros(8, 3, 3)), RuntimeError,
     "Expected 2D (unbatched) or 3D (batched) input to conv1d, but got input of size: "
     "[3, 5, 5, 5]"),
    (lambda m: m.nn.functional.conv2d(m.zeros(1, 3, 5, 5), m.zeros(3, 3, 3, 3, 3)),
     RuntimeError, "expected stride to be a single integer value or a list of 3 values"),
    (lambda m: m.nn.functional.conv2d(m.zeros(1, 3, 5, 5), m.zeros(8, 3, 3, 3),
                                      padding=(1, 1, 1)),
     RuntimeError, "expected padding to be a single integer value or a list of 2 values"),
    (lambda m: m.nn.functional.conv_transpose2d(m.zeros(2, 3, 5, 5), m.zeros(3, 4, 3, 3),
                                                stride=2, output_padding=2),
     RuntimeError, "output padding must be smaller than either stride or dilation"),
    (lambda m: m.nn.functional.max_pool2d(m.zeros(2, 3, 6, 6), 3, padding=2), RuntimeError,
     "pad should be at most half of effective kernel size, but got pad=2, kernel_size=3 and "
     "dilation=1"),
    (lambda m: m.nn.functional.max_pool2d(m.zeros(2, 3, 6, 6), 8), RuntimeError,
     "Given input size: (3x6x6). Calculated output size: (3x0x0). Output size is too small"),
    (lambda m: m.nn.functional.max_pool1d(m.zeros(2, 3, 6), 2, padding=2), RuntimeError, ""),
    (lambda m: m.nn.functional.avg_pool1d(m.zeros(2, 3, 6), 7), RuntimeError,
     "Given input size: (3x1x6). Calculated output size: (3x1x0). Output size is too small"),
    (lambda m: m.nn.functional.avg_pool2d(m.zeros(2, 3, 6, 6), 2, divisor_override=0),
     RuntimeError, "divisor must be not zero"),
    (lambda m: m.nn.functional.adaptive_avg_pool2d(m.zeros(2, 3, 6, 6), (1, 2, 3)),
     RuntimeError, "adaptive_avg_pool2d: output_size must be 2"),
    (lambda m: m.nn.functional.interpolate(m.zeros(2, 3, 4, 4), size=(3, 3, 3)), ValueError,
     "Input and output must have the same number of spatial dimensions"),
    (lambda m: m.nn.functional.interpolate(m.zeros(2, 3, 4, 4), scale_factor=0.1),
     RuntimeError, "Input and output sizes should be greater than 0, but got input (H: 4, W: 4) "
     "output (H: 0, W: 0)"),
    (lambda m: m.nn.functional.interpolate(m.zeros(2, 3, 4, 4), size=3, mode="trilinear"),
     NotImplementedError, "Got 4D input, but trilinear mode needs 5D input"),
]


@pytest.mark.parametrize("fn,error,match", ERRORS)
def test_errors_match_torch(fn, error, match):
    with pytest.raises(error) as info:
        fn(compgrad)
    assert match in str(info.value)
    with pytest.raises(error) as tinfo:
        fn(torch)
    if match:
        assert match in str(tinfo.value)


def test_small_cnn_step_matches_torch():
    """The demo's shape: conv 1->16->32 (3x3, padding 1), relu, max_pool 2, one linear."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 1, 8, 8)).astype(np.float32)
    params = [rng.standard_normal(s).astype(np.float32) * 0.3 for s in
              [(16, 1, 3, 3), (16,), (32, 16, 3, 3), (32,), (10, 32 * 4 * 4), (10,)]]

    def net(lib, fn, ps):
        w1, b1, w2, b2, w3, b3 = ps
        h = fn.max_pool2d(fn.relu(fn.conv2d(lib.tensor(x), w1, b1, padding=1)), 2)
        h = fn.relu(fn.conv2d(h, w2, b2, padding=1))
        return fn.linear(h.reshape(8, -1), w3, b3).logsumexp(1).sum()

    ours = [compgrad.tensor(p, requires_grad=True) for p in params]
    theirs = [torch.tensor(p, requires_grad=True) for p in params]
    net(compgrad, F, ours).backward()
    net(torch, TF, theirs).backward()
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-4, atol=1e-4)

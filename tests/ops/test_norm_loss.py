"""Normalization layers and losses against PyTorch: values and gradients for every option
(weights, ignore_index, label smoothing, probability targets, reductions), errors,
warnings, and batch_norm / instance_norm running statistics over several steps."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import compgrad
import compgrad.nn.functional as CF
from compgrad.autograd import gradcheck, gradgradcheck
from compgrad.nn import _stateful
from ir.samples import arr, positive

torch = pytest.importorskip("torch")
TF = torch.nn.functional


def _fn(name):
    """compgrad's functional (batch_norm/instance_norm may not be re-exported yet)."""
    return getattr(CF, name, None) or getattr(_stateful, name)


# arguments PyTorch refuses to differentiate (it raises when they require grad)
_NO_GRAD = {"nll_loss": ("weight",), "cross_entropy": ("weight",),
            "binary_cross_entropy": ("weight",),
            "binary_cross_entropy_with_logits": ("weight", "pos_weight")}


def _convert(value, lib, grad):
    if isinstance(value, np.ndarray):
        t = compgrad.from_numpy(value.copy()) if lib == "c" else torch.from_numpy(value.copy())
        if grad and value.dtype.kind == "f":
            t.requires_grad_(True)
        return t
    return value


def _compare(name, args, kwargs=None, grad=True, rtol=1e-5, atol=1e-6, grtol=1e-4,
             gatol=1e-5):
    """Run F.<name> in both libraries on the same arrays; compare the values, dtypes, and
    the gradients of every float array argument (positional or keyword)."""
    kwargs = kwargs or {}
    nograd = _NO_GRAD.get(name, ())
    # running statistics (positions 1, 2 of the norms) take no gradient either
    pos_grad = [grad and (i == 0 or name not in ("batch_norm", "instance_norm"))
                for i in range(len(args))]
    ca = [_convert(a, "c", g) for a, g in zip(args, pos_grad)]
    ck = {k: _convert(v, "c", grad and k not in nograd) for k, v in kwargs.items()}
    ta = [_convert(a, "t", g) for a, g in zip(args, pos_grad)]
    tk = {k: _convert(v, "t", grad and k not in nograd) for k, v in kwargs.items()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        oc = _fn(name)(*ca, **ck)
        ot = getattr(TF, name)(*ta, **tk)
    assert oc.dtype.name == str(ot.dtype).replace("torch.", "")
    assert tuple(oc.shape) == tuple(ot.shape)
    np.testing.assert_allclose(oc.detach().numpy(), ot.detach().numpy(), rtol=rtol, atol=atol,
                               equal_nan=True)
    if grad and ot.requires_grad:
        cot = np.random.default_rng(1).standard_normal(tuple(ot.shape)).astype(
            str(ot.dtype).replace("torch.", ""))
        (oc * compgrad.from_numpy(cot)).sum().backward()
        (ot * torch.from_numpy(cot)).sum().backward()
        pairs = list(zip(ca, ta)) + [(ck[k], tk[k]) for k in kwargs]
        for c, t in pairs:
            if isinstance(t, torch.Tensor) and t.grad is not None:
                np.testing.assert_allclose(c.grad.numpy(), t.grad.numpy(), rtol=grtol,
                                           atol=gatol)
    return oc


def _raises_like(name, args, kwargs, exc, match):
    kwargs = kwargs or {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(exc) as info:
            _fn(name)(*[_convert(a, "c", False) for a in args],
                      **{k: _convert(v, "c", False) for k, v in kwargs.items()})
        assert match in str(info.value)
        with pytest.raises(exc):
            getattr(TF, name)(*[_convert(a, "t", False) for a in args],
                              **{k: _convert(v, "t", False) for k, v in kwargs.items()})


# --- layer_norm / group_norm ---------------------------------------------------------------

@pytest.mark.parametrize("shape,norm", [((4, 5), (5,)), ((2, 3, 4), (3, 4)), ((6,), (6,)),
                                        ((2, 3, 4, 5), (5,))])
@pytest.mark.parametrize("affine", [False, True])
def test_layer_norm(shape, norm, affine):
    kw = {"weight": arr(*norm, seed=1), "bias": arr(*norm, seed=2)} if affine else {}
    _compare("layer_norm", (arr(*shape), norm), kw)


def test_layer_norm_large_offset_is_stable():
    x = (arr(4, 8, dtype=np.float64) + 1e6)
    _compare("layer_norm", (x, (8,)), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("shape,groups", [((2, 6, 4), 3), ((2, 6), 2), ((3, 4, 2, 3), 4),
                                          ((2, 6, 5), 1), ((2, 6, 5), 6)])
@pytest.mark.parametrize("affine", [False, True])
def test_group_norm(shape, groups, affine):
    c = shape[1]
    kw = {"weight": arr(c, seed=1), "bias": arr(c, seed=2)} if affine else {}
    _compare("group_norm", (arr(*shape), groups), kw)


@pytest.mark.parametrize("args,kwargs,exc,match", [
    ((arr(2, 6, 4), 4), {}, RuntimeError, "divisible by num_groups"),
    ((arr(2, 6, 4), 3, arr(5)), {}, RuntimeError, "Expected weight to be a vector of size equal"),
    ((arr(2, 6, 4), 3, None, arr(5)), {}, RuntimeError, "Expected bias to be a vector"),
    ((arr(6), 3), {}, RuntimeError, "Expected at least 2 dimensions for input tensor"),
    ((arr(1, 3), 3), {}, ValueError,
     "Expected more than 1 value per channel when training, got input size [1, 3]"),
    ((np.ones((2, 6), dtype=np.int64), 3), {}, NotImplementedError,
     "\"GroupNormKernelImpl\" not implemented for 'Long'"),
])
def test_group_norm_errors(args, kwargs, exc, match):
    _raises_like("group_norm", args, kwargs, exc, match)


def test_norm_double_backward():
    x = compgrad.tensor(arr(3, 4, 2, dtype=np.float64), requires_grad=True)
    w = compgrad.tensor(arr(4, dtype=np.float64, seed=1), requires_grad=True)
    b = compgrad.tensor(arr(4, dtype=np.float64, seed=2), requires_grad=True)
    assert gradcheck(lambda x, w, b: CF.group_norm(x, 2, w, b), (x, w, b))
    assert gradgradcheck(lambda x, w, b: CF.group_norm(x, 2, w, b), (x, w, b))
    assert gradgradcheck(lambda x, w, b: _fn("batch_norm")(x, None, None, w, b, True),
                         (x, w, b))


# --- batch_norm / instance_norm --------------------------------------------------------------

@pytest.mark.parametrize("shape", [(5, 3), (4, 3, 6), (2, 3, 4, 5)])
@pytest.mark.parametrize("affine", [False, True])
def test_batch_norm_running_stats_over_steps(shape, affine):
    c = shape[1]
    rm_c, rv_c = compgrad.zeros(c), compgrad.ones(c)
    rm_t, rv_t = torch.zeros(c), torch.ones(c)
    w = arr(c, seed=7) if affine else None
    b = arr(c, seed=8) if affine else None
    for step in range(4):
        x = arr(*shape, seed=step) * (step + 1) + step
        training = step != 2        # one evaluation step in between
        momentum = 0.1 if step < 3 else 0.3
        kw = dict(weight=w, bias=b, training=training, momentum=momentum, eps=1e-4)
        _compare_bn(x, (rm_c, rv_c), (rm_t, rv_t), kw)
        np.testing.assert_allclose(rm_c.numpy(), rm_t.numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(rv_c.numpy(), rv_t.numpy(), rtol=1e-5, atol=1e-6)
    # evaluation uses (and does not change) the running statistics
    before = rm_c.numpy().copy()
    _compare_bn(arr(*shape, seed=9), (rm_c, rv_c), (rm_t, rv_t), dict(training=False))
    np.testing.assert_array_equal(rm_c.numpy(), before)


def _compare_bn(x, cstats, tstats, kw):
    xc = compgrad.from_numpy(x.copy()).requires_grad_(True)
    xt = torch.from_numpy(x.copy()).requires_grad_(True)
    kc = {k: _convert(v, "c", True) for k, v in kw.items()}
    kt = {k: _convert(v, "t", True) for k, v in kw.items()}
    oc = _fn("batch_norm")(xc, *cstats, **kc)
    ot = TF.batch_norm(xt, *tstats, **kt)
    np.testing.assert_allclose(oc.detach().numpy(), ot.detach().numpy(), rtol=1e-4, atol=1e-5)
    cot = np.random.default_rng(0).standard_normal(x.shape).astype(np.float32)
    (oc * compgrad.from_numpy(cot)).sum().backward()
    (ot * torch.from_numpy(cot)).sum().backward()
    np.testing.assert_allclose(xc.grad.numpy(), xt.grad.numpy(), rtol=1e-4, atol=1e-5)
    for k in ("weight", "bias"):
        if kw.get(k) is not None:
            np.testing.assert_allclose(kc[k].grad.numpy(), kt[k].grad.numpy(), rtol=1e-4,
                                       atol=1e-5)
    assert not any(s.requires_grad for s in cstats)


def test_batch_norm_without_running_stats_and_views():
    x = arr(6, 4)
    _compare("batch_norm", (x, None, None), {"training": True})
    # running stats that are views of a buffer are updated through the view
    buf_c = compgrad.zeros(2, 4)
    buf_t = torch.zeros(2, 4)
    buf_c[1].fill_(1.0)
    buf_t[1].fill_(1.0)
    _stateful.batch_norm(compgrad.from_numpy(x), buf_c[0], buf_c[1], training=True)
    TF.batch_norm(torch.from_numpy(x), buf_t[0], buf_t[1], training=True)
    np.testing.assert_allclose(buf_c.numpy(), buf_t.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kwargs,exc,match", [
    ({"x": arr(1, 3), "training": True}, ValueError,
     "Expected more than 1 value per channel when training, got input size [1, 3]"),
    ({"rm": np.zeros(4, np.float32), "training": True}, RuntimeError,
     "running_mean should contain 3 elements not 4"),
    ({"rv": np.ones(4, np.float32)}, RuntimeError, "running_var should contain 3 elements not 4"),
    ({"weight": np.ones(4, np.float32), "training": True}, RuntimeError,
     "weight should contain 3 elements not 4"),
    ({"bias": np.ones(2, np.float32), "training": True}, RuntimeError,
     "bias should contain 3 elements not 4"[:27]),
    ({"rm": None, "rv": None}, RuntimeError, "running_mean must be defined in evaluation mode"),
    ({"rm": np.zeros(3), "training": True}, RuntimeError, "mixed dtype (CPU)"),
    ({"x": np.ones((4, 3), np.int64), "training": True}, NotImplementedError,
     "\"batch_norm\" not implemented for 'Long'"),
    ({"momentum": None, "training": True}, TypeError, "argument 'momentum'"),
    ({"eps": 0.0, "training": True}, ValueError, "eps must be positive"),
])
def test_batch_norm_errors_leave_stats_untouched(kwargs, exc, match):
    kwargs = dict(kwargs)
    x = kwargs.pop("x", arr(4, 3))
    rm = kwargs.pop("rm", np.zeros(3, np.float32))
    rv = kwargs.pop("rv", np.ones(3, np.float32))
    cm, cv = (_convert(v, "c", False) for v in (rm, rv))
    with pytest.raises(exc) as info:
        _fn("batch_norm")(_convert(x, "c", False), cm, cv,
                          **{k: _convert(v, "c", False) for k, v in kwargs.items()})
    assert match in str(info.value)
    with pytest.raises(exc):
        TF.batch_norm(_convert(x, "t", False), _convert(rm, "t", False),
                      _convert(rv, "t", False),
                      **{k: _convert(v, "t", False) for k, v in kwargs.items()})
    if cm is not None:
        np.testing.assert_array_equal(cm.numpy(), rm)
    if cv is not None:
        np.testing.assert_array_equal(cv.numpy(), rv)


@pytest.mark.parametrize("with_stats", [False, True])
@pytest.mark.parametrize("affine", [False, True])
def test_instance_norm(with_stats, affine):
    x = arr(3, 4, 5)
    kw = {"weight": arr(4, seed=1), "bias": arr(4, seed=2)} if affine else {}
    rm_c, rv_c = compgrad.zeros(4), compgrad.ones(4)
    rm_t, rv_t = torch.zeros(4), torch.ones(4)
    stats_c = (rm_c, rv_c) if with_stats else (None, None)
    stats_t = (rm_t, rv_t) if with_stats else (None, None)
    for step in range(2):
        xc = compgrad.from_numpy(x + step).requires_grad_(True)
        xt = torch.from_numpy(x + step).requires_grad_(True)
        oc = _fn("instance_norm")(xc, *stats_c, **{k: compgrad.from_numpy(v)
                                                   for k, v in kw.items()})
        ot = TF.instance_norm(xt, *stats_t, **{k: torch.from_numpy(v) for k, v in kw.items()})
        np.testing.assert_allclose(oc.detach().numpy(), ot.detach().numpy(), rtol=1e-4,
                                   atol=1e-5)
        oc.sum().backward()
        ot.sum().backward()
        np.testing.assert_allclose(xc.grad.numpy(), xt.grad.numpy(), atol=1e-5)
    np.testing.assert_allclose(rm_c.numpy(), rm_t.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(rv_c.numpy(), rv_t.numpy(), rtol=1e-5, atol=1e-6)
    if with_stats:
        _compare("instance_norm", (x, rm_t.numpy(), rv_t.numpy()), {"use_input_stats": False})


# --- regression losses ---------------------------------------------------------------------

@pytest.mark.parametrize("name", ["mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss"])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_regression_losses(name, reduction):
    x, y = arr(4, 5), arr(4, 5, seed=1)
    _compare(name, (x, y), {"reduction": reduction})
    _compare(name, (x, arr(5, seed=2)), {"reduction": reduction})      # broadcast target
    _compare(name, (arr(), arr(seed=1)), {"reduction": reduction})
    _compare(name, (arr(0, 3), arr(0, 3)), {"reduction": reduction})
    # PyTorch's huber backward fails on mixed dtypes ("Found dtype Double but expected Float")
    _compare(name, (x, y.astype(np.float64)), {"reduction": reduction},
             grad=name != "huber_loss")
    if name != "smooth_l1_loss":
        _compare(name, (x, y), {"reduction": reduction, "weight": positive(4, 5)})


@pytest.mark.parametrize("beta", [0.0, 0.5, 1.0, 3.0])
def test_smooth_l1_and_huber_thresholds(beta):
    x, y = arr(6, 5, low=-3, high=3), arr(6, 5, seed=1)
    _compare("smooth_l1_loss", (x, y), {"beta": beta})
    if beta > 0:
        _compare("huber_loss", (x, y), {"delta": beta, "reduction": "sum"})


def test_regression_loss_warnings_and_legacy_args():
    x, y = compgrad.from_numpy(arr(3, 5)), compgrad.from_numpy(arr(5))
    with pytest.warns(UserWarning, match="Using a target size"):
        CF.mse_loss(x, y)
    with pytest.warns(UserWarning, match="please use reduction='sum' instead"):
        out = CF.mse_loss(x, x * 2, size_average=False)
    np.testing.assert_allclose(out.item(), float((x.numpy() ** 2).sum()), rtol=1e-5)
    with pytest.warns(UserWarning, match="reduction='none'"):
        assert CF.l1_loss(x, x, reduce=False).shape == (3, 5)


@pytest.mark.parametrize("name,args,kwargs,exc,match", [
    ("mse_loss", (arr(3), arr(3)), {"reduction": "x"}, ValueError,
     "x is not a valid value for reduction"),
    ("mse_loss", (arr(3), arr(3)), {"weight": arr(2)}, ValueError,
     "Weights and input must have the same size."),
    ("mse_loss", (arr(3), arr(3)), {"weight": arr(3), "reduction": "x"}, ValueError,
     "Invalid reduction mode: x."),
    ("mse_loss", (np.ones(3, np.int64), np.ones(3, np.int64)), {}, NotImplementedError,
     "\"mse_cpu\" not implemented for 'Long'"),
    ("l1_loss", (arr(3, 5), arr(4)), {}, RuntimeError, "must match the size"),
    ("smooth_l1_loss", (arr(3), arr(3)), {"beta": -1.0}, RuntimeError,
     "smooth_l1_loss does not support negative values for beta."),
    ("huber_loss", (arr(3), arr(3)), {"delta": 0.0}, RuntimeError,
     "huber_loss does not support non-positive values for delta."),
    ("huber_loss", (arr(3), arr(3)), {"reduction": "avg"}, ValueError,
     "avg is not a valid value for reduction"),
])
def test_regression_loss_errors(name, args, kwargs, exc, match):
    _raises_like(name, args, kwargs, exc, match)


# --- nll_loss / cross_entropy ------------------------------------------------------------------

_TARGETS = {
    "2d": (arr(4, 5), np.array([1, 0, 4, 2])),
    "2d_ignored": (arr(4, 5), np.array([1, -100, 4, 2])),
    "1d": (arr(5), np.array(3)),
    "3d": (arr(2, 5, 3), np.array([[0, 4, 1], [2, 2, 3]])),
    "4d": (arr(2, 5, 2, 3), np.random.default_rng(0).integers(0, 5, (2, 2, 3))),
    "5d": (arr(2, 5, 2, 1, 2), np.random.default_rng(1).integers(0, 5, (2, 2, 1, 2))),
}


@pytest.mark.parametrize("case", sorted(_TARGETS))
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("ignore_index", [-100, 2])
def test_nll_and_cross_entropy_class_indices(case, reduction, weighted, ignore_index):
    x, t = _TARGETS[case]
    kw = {"reduction": reduction, "ignore_index": ignore_index}
    if weighted:
        kw["weight"] = positive(5, seed=3)
    if case == "2d_ignored" and ignore_index != -100:
        _raises_like("nll_loss", (x, t), kw, IndexError, "Target -100 is out of bounds.")
        _raises_like("cross_entropy", (x, t), kw, IndexError, "Target -100 is out of bounds.")
        return
    _compare("cross_entropy", (x, t), kw)
    # torch refuses a weight that requires grad for nll_loss: compare the input grad only
    xc = compgrad.from_numpy(x.copy()).requires_grad_(True)
    xt = torch.from_numpy(x.copy()).requires_grad_(True)
    kc = {k: compgrad.from_numpy(v) if isinstance(v, np.ndarray) else v for k, v in kw.items()}
    kt = {k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v for k, v in kw.items()}
    oc = CF.nll_loss(xc, compgrad.from_numpy(t), **kc)
    ot = TF.nll_loss(xt, torch.from_numpy(t), **kt)
    np.testing.assert_allclose(oc.detach().numpy(), ot.detach().numpy(), rtol=1e-5,
                               atol=1e-6, equal_nan=True)
    oc.sum().backward()
    ot.sum().backward()
    np.testing.assert_allclose(xc.grad.numpy(), xt.grad.numpy(), rtol=1e-5, atol=1e-6,
                               equal_nan=True)


@pytest.mark.parametrize("case", ["2d", "2d_ignored", "1d", "3d", "4d"])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("weighted", [False, True])
def test_cross_entropy_label_smoothing(case, reduction, weighted):
    x, t = _TARGETS[case]
    kw = {"reduction": reduction, "label_smoothing": 0.2}
    if weighted:
        kw["weight"] = positive(5, seed=3)
    _compare("cross_entropy", (x, t), kw)


@pytest.mark.parametrize("shape", [(4, 5), (5,), (2, 5, 3)])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("smoothing", [0.0, 0.3])
def test_cross_entropy_probability_targets(shape, reduction, weighted, smoothing):
    x = arr(*shape)
    p = TF.softmax(torch.from_numpy(arr(*shape, seed=5)), 0 if len(shape) == 1 else 1).numpy()
    kw = {"reduction": reduction, "label_smoothing": smoothing}
    if weighted:
        kw["weight"] = positive(5, seed=3)
    _compare("cross_entropy", (x, p), kw)


def test_cross_entropy_stable_and_double_backward():
    x = arr(3, 4, low=-1, high=1) * 1e3  # log_softmax keeps huge logits finite
    _compare("cross_entropy", (x, np.array([0, 3, 1])), rtol=1e-5, atol=1e-4)
    xc = compgrad.tensor(arr(3, 4, dtype=np.float64), requires_grad=True)
    t = compgrad.tensor(np.array([0, 3, 1]))
    assert gradgradcheck(lambda x: CF.cross_entropy(x, t, label_smoothing=0.1), (xc,))
    assert gradgradcheck(lambda x: CF.nll_loss(x, t), (xc,))


def test_unbatched_nll_with_one_element_target():
    for reduction in ("none", "mean", "sum"):
        _compare("nll_loss", (arr(5), np.array([2])), {"reduction": reduction}, grad=False)


def test_all_ignored_and_empty_batches_are_nan_like_torch():
    _compare("cross_entropy", (arr(3, 5), np.array([-100, -100, -100])), grad=False)
    _compare("cross_entropy", (arr(0, 5), np.zeros(0, np.int64)), grad=False)
    _compare("cross_entropy", (arr(0, 5), arr(0, 5)), grad=False)


@pytest.mark.parametrize("name,args,kwargs,exc,match", [
    ("nll_loss", (arr(3, 5), np.array([1.0, 0.0, 4.0], np.float32)), {}, RuntimeError,
     "expected target dtype to be Long or Byte, but got Float"),
    ("cross_entropy", (arr(3, 5), np.array([1, 0])), {}, ValueError,
     "Expected input batch_size (3) to match target batch_size (2)."),
    ("cross_entropy", (arr(3, 5), np.array([1, 5, 0])), {}, IndexError,
     "Target 5 is out of bounds."),
    ("cross_entropy", (arr(3, 5), np.array([1, 5, 0])), {"label_smoothing": 0.1}, IndexError,
     "Target 5 is out of bounds."),
    ("cross_entropy", (arr(3, 5), np.ones((3, 5), np.int64)), {}, RuntimeError,
     "Expected floating point type for target with class probabilities, got Long"),
    ("cross_entropy", (arr(3, 5), arr(3, 5)), {"ignore_index": 1}, RuntimeError,
     "ignore_index is not supported for floating point target"),
    ("cross_entropy", (arr(3, 5), np.array([1, 2, 0])), {"label_smoothing": 1.5}, RuntimeError,
     "label_smoothing must be between 0.0 and 1.0. Got: 1.5"),
    ("cross_entropy", (arr(3, 5), arr(3, 5)), {"weight": arr(4)}, RuntimeError,
     "weight tensor should be defined either for all 5 classes"),
    ("cross_entropy", (arr(3, 5), np.array([1, 2, 0])), {"reduction": "batchmean"},
     ValueError, "batchmean is not a valid value for reduction"),
    ("cross_entropy", (np.ones((3, 5), np.int64), np.array([1, 2, 0])), {},
     NotImplementedError, "not implemented for 'Long'"),
    ("nll_loss", (arr(3, 5, 2, 2), np.zeros((3, 2), np.int64)), {}, RuntimeError,
     "only batches of spatial targets supported (3D tensors)"),
])
def test_classification_errors(name, args, kwargs, exc, match):
    _raises_like(name, args, kwargs, exc, match)


# --- binary cross entropy / kl_div ------------------------------------------------------------

@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("weight", [None, (4,), (3, 4), (3, 1)])
def test_binary_cross_entropy(reduction, weight):
    p, y = arr(3, 4, low=0.02, high=0.98), arr(3, 4, low=0, high=1, seed=1)
    kw = {"reduction": reduction}
    if weight is not None:
        kw["weight"] = positive(*weight, seed=2)
    _compare("binary_cross_entropy", (p, y), kw)


def test_binary_cross_entropy_clamps_logs():
    p = np.array([0.0, 1.0, 0.0, 1.0], np.float32)
    y = np.array([1.0, 0.0, 0.0, 1.0], np.float32)
    out = _compare("binary_cross_entropy", (p, y), {"reduction": "none"}, grad=False)
    np.testing.assert_allclose(out.numpy(), [100.0, 100.0, 0.0, 0.0])


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("weight", [None, (4,), (3, 4)])
@pytest.mark.parametrize("pos_weight", [None, (4,), (3, 4)])
def test_binary_cross_entropy_with_logits(reduction, weight, pos_weight):
    x, y = arr(3, 4, low=-4, high=4), arr(3, 4, low=0, high=1, seed=1)
    kw = {"reduction": reduction}
    if weight is not None:
        kw["weight"] = positive(*weight, seed=2)
    if pos_weight is not None:
        kw["pos_weight"] = positive(*pos_weight, seed=3)
    _compare("binary_cross_entropy_with_logits", (x, y), kw)


def test_binary_cross_entropy_with_logits_is_stable():
    x = np.array([-200.0, -50.0, 0.0, 50.0, 200.0], np.float32)
    y = np.array([1.0, 0.0, 0.5, 1.0, 0.0], np.float32)
    out = _compare("binary_cross_entropy_with_logits", (x, y), {"reduction": "none"})
    assert np.isfinite(out.detach().numpy()).all()


@pytest.mark.parametrize("name,args,kwargs,exc,match", [
    ("binary_cross_entropy", (arr(3, 4), arr(3, 4)), {}, RuntimeError,
     "all elements of input should be between 0 and 1"),
    ("binary_cross_entropy", (arr(3, 4, low=0, high=1), arr(2, 4)), {}, ValueError,
     "Using a target size"),
    ("binary_cross_entropy", (arr(3, 4, low=0, high=1), arr(3, 4, dtype=np.float64)), {},
     RuntimeError, "Found dtype Double but expected Float"),
    ("binary_cross_entropy", (arr(3, 4, low=0, high=1), arr(3, 4)), {"weight": arr(5)},
     RuntimeError, ""),
    ("binary_cross_entropy_with_logits", (arr(3, 4), arr(2, 4)), {}, ValueError,
     "must be the same as input size"),
    ("binary_cross_entropy_with_logits", (arr(3, 4), np.ones((3, 4), np.int64)), {},
     RuntimeError, "can't be cast to the desired output type Long"),
    ("kl_div", (np.ones(3, np.int64), np.ones(3, np.int64)), {"reduction": "sum"},
     RuntimeError, "kl_div: Integral inputs not supported."),
    ("kl_div", (arr(3), arr(3)), {"reduction": "x"}, ValueError,
     "x is not a valid value for reduction"),
])
def test_binary_and_kl_errors(name, args, kwargs, exc, match):
    _raises_like(name, args, kwargs, exc, match)


@pytest.mark.parametrize("reduction", ["mean", "batchmean", "sum", "none"])
@pytest.mark.parametrize("log_target", [False, True])
def test_kl_div(reduction, log_target):
    x = np.log(TF.softmax(torch.from_numpy(arr(4, 5)), 1).numpy())
    p = TF.softmax(torch.from_numpy(arr(4, 5, seed=1)), 1).numpy()
    t = np.log(p) if log_target else p
    _compare("kl_div", (x, t), {"reduction": reduction, "log_target": log_target})
    if not log_target:
        p0 = p.copy()
        p0[0, 1] = 0.0              # 0 * log 0 counts as 0
        _compare("kl_div", (x, p0), {"reduction": reduction}, grad=False)
    _compare("kl_div", (arr(), arr(low=0.1, high=1, seed=2)), {"reduction": reduction})


def test_kl_div_mean_warns():
    x = compgrad.from_numpy(arr(2, 3))
    with pytest.warns(UserWarning, match="'batchmean' divides only by the batch size"):
        CF.kl_div(x, x.exp())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        CF.kl_div(x, x.exp(), reduction="batchmean")


def test_class_weights_that_require_grad_are_refused_like_torch():
    import compgrad
    import compgrad.nn.functional as CF
    x = compgrad.randn(2, 3, requires_grad=True)
    w = compgrad.ones(3, requires_grad=True)
    loss = CF.cross_entropy(x, compgrad.tensor([0, 1]), weight=w)
    with pytest.raises(RuntimeError, match="not differentiable with respect to argument 'weight'"):
        loss.backward()
    assert x.grad is None

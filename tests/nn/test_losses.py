"""Loss modules against PyTorch: every option, values and gradients, buffers, repr."""

import numpy as np
import pytest

import compgrad
import compgrad.nn.functional as F
from compgrad import nn
from tests.nn._common import close, randn

torch = pytest.importorskip("torch")

REDUCTIONS = ["mean", "sum", "none"]


def _needs(*names):
    missing = [n for n in names if not hasattr(F, n)]
    return pytest.mark.skipif(bool(missing), reason=f"F.{missing} not available yet")


def _lib_tensor(lib):
    def convert(a):
        if a is None:
            return None
        return torch.from_numpy(a.copy()) if lib is torch else compgrad.from_numpy(a.copy())
    return convert


def compare_loss(make, input, target, target_grad: bool = False, rtol: float = 1e-4,
                 atol: float = 1e-6):
    """``make(nn, T)`` builds the loss (``T`` turns NumPy arrays into that library's
    tensors); compare repr, buffers, value and the gradients of input (and target)."""
    theirs, ours = make(torch.nn, _lib_tensor(torch)), make(nn, _lib_tensor(compgrad))
    assert repr(ours) == repr(theirs)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert [n for n, _ in ours.named_buffers()] == [n for n, _ in theirs.named_buffers()]
    assert list(ours.parameters()) == []
    float_target = target.dtype.kind == "f"
    ti = torch.from_numpy(input.copy()).requires_grad_()
    ci = compgrad.from_numpy(input.copy()).requires_grad_()
    tt = torch.from_numpy(target.copy()).requires_grad_(target_grad and float_target)
    ct = compgrad.from_numpy(target.copy()).requires_grad_(target_grad and float_target)
    to, co = theirs(ti, tt), ours(ci, ct)
    close(co, to, rtol, atol)
    g = np.random.default_rng(5).standard_normal(tuple(to.shape)).astype(np.float32)
    to.backward(torch.from_numpy(g))
    co.backward(compgrad.from_numpy(g.copy()))
    close(ci.grad, ti.grad, rtol, atol)
    if target_grad and float_target:
        close(ct.grad, tt.grad, rtol, atol)
    return theirs, ours


def _labels(*shape, classes: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, classes, shape).astype(np.int64)


# --- regression losses -------------------------------------------------------------------

@_needs("mse_loss", "l1_loss")
@pytest.mark.parametrize("cls", ["MSELoss", "L1Loss"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", [(4, 3), (2, 3, 5), ()])
def test_mse_l1(cls, reduction, shape):
    compare_loss(lambda nn, T: getattr(nn, cls)(reduction=reduction), randn(*shape),
                 randn(*shape, seed=1), target_grad=True)


@_needs("smooth_l1_loss")
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("beta", [1.0, 0.5, 0.0, 2.0])
def test_smooth_l1(reduction, beta):
    compare_loss(lambda nn, T: nn.SmoothL1Loss(reduction=reduction, beta=beta),
                 randn(5, 4) * 2, randn(5, 4, seed=1), target_grad=True)


@_needs("huber_loss")
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("delta", [1.0, 0.3, 2.5])
def test_huber(reduction, delta):
    compare_loss(lambda nn, T: nn.HuberLoss(reduction=reduction, delta=delta),
                 randn(5, 4) * 2, randn(5, 4, seed=1), target_grad=True)


# --- classification losses ---------------------------------------------------------------

CLASS_OPTIONS = [
    {}, {"reduction": "sum"}, {"reduction": "none"}, {"ignore_index": 1},
    {"weight": np.array([0.2, 1.0, 2.0, 0.5], np.float32)},
    {"weight": np.array([0.2, 1.0, 2.0, 0.5], np.float32), "ignore_index": 2,
     "reduction": "mean"},
    {"weight": np.array([0.2, 1.0, 2.0, 0.5], np.float32), "reduction": "none"},
]


def _with_weight(cls_name, options, **extra):
    def make(nn, T):
        kwargs = dict(options, **extra)
        kwargs["weight"] = T(kwargs.get("weight"))
        return getattr(nn, cls_name)(**kwargs)
    return make


@_needs("cross_entropy")
@pytest.mark.parametrize("options", CLASS_OPTIONS)
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
@pytest.mark.parametrize("shape", [(6, 4), (2, 4, 3, 2), (4,)])
def test_cross_entropy_class_indices(options, smoothing, shape):
    target = _labels(*((shape[0],) + shape[2:] if len(shape) > 1 else ()), classes=4)
    compare_loss(_with_weight("CrossEntropyLoss", options, label_smoothing=smoothing),
                 randn(*shape) * 2, target)


@_needs("cross_entropy")
@pytest.mark.parametrize("options", [o for o in CLASS_OPTIONS if "ignore_index" not in o])
@pytest.mark.parametrize("smoothing", [0.0, 0.3])
def test_cross_entropy_probabilities(options, smoothing):
    logits = randn(5, 4, seed=2)
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    compare_loss(_with_weight("CrossEntropyLoss", options, label_smoothing=smoothing),
                 randn(5, 4) * 2, probs.astype(np.float32), target_grad=True)


@_needs("nll_loss")
@pytest.mark.parametrize("options", CLASS_OPTIONS)
@pytest.mark.parametrize("shape", [(6, 4), (2, 4, 3)])
def test_nll_loss(options, shape):
    logp = np.log(np.random.default_rng(3).dirichlet(np.ones(4), shape[:1] + shape[2:]))
    logp = np.moveaxis(logp, -1, 1).astype(np.float32)
    target = _labels(*(shape[:1] + shape[2:]), classes=4)
    compare_loss(_with_weight("NLLLoss", options), logp, target)


@_needs("binary_cross_entropy")
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
def test_bce(reduction, weighted):
    rng = np.random.default_rng(4)
    p = rng.uniform(0.05, 0.95, (5, 3)).astype(np.float32)
    y = rng.integers(0, 2, (5, 3)).astype(np.float32)
    weight = rng.uniform(0.5, 2, (3,)).astype(np.float32) if weighted else None
    compare_loss(lambda nn, T: nn.BCELoss(weight=T(weight), reduction=reduction), p, y)


@_needs("binary_cross_entropy_with_logits")
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("pos_weighted", [False, True])
def test_bce_with_logits(reduction, weighted, pos_weighted):
    rng = np.random.default_rng(5)
    y = rng.uniform(0, 1, (5, 3)).astype(np.float32)
    weight = rng.uniform(0.5, 2, (5, 1)).astype(np.float32) if weighted else None
    pos_weight = rng.uniform(0.5, 3, (3,)).astype(np.float32) if pos_weighted else None

    def make(nn, T):
        return nn.BCEWithLogitsLoss(weight=T(weight), reduction=reduction,
                                    pos_weight=T(pos_weight))
    theirs, ours = compare_loss(make, randn(5, 3) * 3, y, target_grad=True)
    expected = (["weight"] if weighted else []) + (["pos_weight"] if pos_weighted else [])
    assert list(ours.state_dict()) == expected


@_needs("kl_div")
@pytest.mark.parametrize("reduction", ["mean", "sum", "none", "batchmean"])
@pytest.mark.parametrize("log_target", [False, True])
def test_kl_div(reduction, log_target):
    rng = np.random.default_rng(6)
    logq = np.log(rng.dirichlet(np.ones(4), 5)).astype(np.float32)
    p = rng.dirichlet(np.ones(4), 5).astype(np.float32)
    target = np.log(p).astype(np.float32) if log_target else p
    compare_loss(lambda nn, T: nn.KLDivLoss(reduction=reduction, log_target=log_target),
                 logq, target, target_grad=True)


# --- module plumbing ---------------------------------------------------------------------

def test_weight_is_a_buffer():
    w = compgrad.tensor([1.0, 2.0, 3.0])
    m = nn.CrossEntropyLoss(weight=w)
    assert m.weight is w
    assert list(m.state_dict()) == ["weight"] == list(torch.nn.CrossEntropyLoss(
        weight=torch.ones(3)).state_dict())
    assert [n for n, _ in m.named_buffers()] == ["weight"]
    assert list(m.parameters()) == []
    m.double()
    assert m.weight.dtype == compgrad.float64
    assert list(nn.CrossEntropyLoss().state_dict()) == []
    b = nn.BCEWithLogitsLoss(pos_weight=compgrad.ones(3))
    assert [n for n, _ in b.named_buffers()] == ["pos_weight"]


@pytest.mark.parametrize("cls", ["MSELoss", "L1Loss", "SmoothL1Loss", "HuberLoss",
                                 "CrossEntropyLoss", "NLLLoss", "BCELoss", "BCEWithLogitsLoss",
                                 "KLDivLoss"])
def test_repr_and_defaults(cls):
    ours, theirs = getattr(nn, cls)(), getattr(torch.nn, cls)()
    assert repr(ours) == repr(theirs) == f"{cls}()"
    for attr in ("reduction", "ignore_index", "label_smoothing", "beta", "delta", "log_target"):
        assert getattr(ours, attr, None) == getattr(theirs, attr, None), attr


@pytest.mark.parametrize("size_average, reduce, expected", [
    (False, None, "sum"), (None, False, "none"), (True, True, "mean"), (False, True, "sum"),
])
def test_legacy_reduction_args(size_average, reduce, expected):
    with pytest.warns(UserWarning, match="size_average and reduce args will be deprecated"):
        m = nn.MSELoss(size_average=size_average, reduce=reduce)
    assert m.reduction == expected
    with pytest.warns(UserWarning):
        assert nn.NLLLoss(size_average=size_average, reduce=reduce).reduction == expected


@_needs("cross_entropy")
def test_cross_entropy_errors_match_torch():
    x, y = randn(3, 4), np.array([0, 1, 5], np.int64)
    with pytest.raises(Exception) as theirs:
        torch.nn.CrossEntropyLoss()(torch.from_numpy(x), torch.from_numpy(y))
    with pytest.raises(type(theirs.value)):
        nn.CrossEntropyLoss()(compgrad.from_numpy(x), compgrad.from_numpy(y))
    with pytest.raises(ValueError):
        nn.MSELoss(reduction="average")(compgrad.ones(2), compgrad.ones(2))

"""Unary math and activations: names, in-place forms, kinks, double backward, vs PyTorch."""

import numpy as np
import pytest

import compgrad
import compgrad.nn.functional as F
from compgrad import autograd

torch = pytest.importorskip("torch")
TF = torch.nn.functional

UNARY = ("abs absolute sign sgn exp2 log log2 log10 log1p expm1 sqrt rsqrt reciprocal square sin "
         "cos tan asin arcsin acos arccos atan arctan sinh cosh tanh asinh arcsinh acosh arccosh "
         "atanh arctanh erf erfc erfinv deg2rad rad2deg floor ceil round trunc fix frac").split()
PREDICATES = "isnan isinf isfinite isposinf isneginf signbit".split()
FUNCTIONAL = ("sigmoid logsigmoid relu relu6 hardtanh leaky_relu elu selu celu gelu silu mish "
              "softplus hardsigmoid hardswish tanhshrink softsign threshold hardshrink "
              "softshrink tanh").split()


@pytest.mark.parametrize("name", UNARY + PREDICATES + ["nan_to_num", "sigmoid", "relu"])
def test_names_exist_where_torch_has_them(name):
    assert callable(getattr(compgrad, name))
    assert callable(getattr(compgrad.Tensor, name))
    has_inplace = hasattr(torch.Tensor, name + "_")
    assert hasattr(compgrad.Tensor, name + "_") == has_inplace, name


@pytest.mark.parametrize("name", FUNCTIONAL)
def test_functional_names(name):
    assert callable(getattr(F, name)) and hasattr(TF, name)


@pytest.mark.parametrize("name", ["abs", "sqrt", "floor", "round", "sigmoid", "relu", "exp2",
                                  "nan_to_num", "frac", "erfinv"])
def test_inplace_writes_through_views(name):
    base = np.array([[0.3, -1.7, 2.2], [4.5, -0.4, 1.1]], np.float32)
    a = compgrad.tensor(base.copy())
    view = a[0] if hasattr(compgrad.Tensor, "__getitem__") else a
    t = torch.tensor(base.copy())
    out = getattr(a, name + "_")()
    getattr(t, name + "_")()
    assert out is a
    np.testing.assert_allclose(a.numpy(), t.numpy(), rtol=1e-6, equal_nan=True)
    np.testing.assert_allclose(view.numpy(), t[0].numpy(), rtol=1e-6, equal_nan=True)


def test_inplace_float_result_into_int_tensor_fails_like_torch():
    with pytest.raises(RuntimeError):
        torch.tensor([1, 4]).sqrt_()
    with pytest.raises(RuntimeError, match="can't be cast"):
        compgrad.tensor([1, 4]).sqrt_()
    a = compgrad.tensor([-3, 2])
    a.abs_()
    assert a.tolist() == [3, 2] and a.dtype is compgrad.int64


KINK_CASES = [
    ("relu", F.relu, TF.relu, {}, [-1.0, 0.0, 1.0]),
    ("relu6", F.relu6, TF.relu6, {}, [0.0, 6.0, 3.0, 7.0]),
    ("hardtanh", F.hardtanh, TF.hardtanh, {"min_val": -0.5, "max_val": 2.0}, [-0.5, 2.0, 0.0]),
    ("leaky_relu", F.leaky_relu, TF.leaky_relu, {"negative_slope": 0.2}, [-1.0, 0.0, 1.0]),
    ("elu", F.elu, TF.elu, {"alpha": 0.7}, [-1.0, 0.0, 1.0]),
    ("celu", F.celu, TF.celu, {"alpha": 2.0}, [-1.0, 0.0, 1.0]),
    ("hardsigmoid", F.hardsigmoid, TF.hardsigmoid, {}, [-3.0, 3.0, 0.0, 4.0]),
    ("hardswish", F.hardswish, TF.hardswish, {}, [-3.0, 3.0, 0.0, -4.0, 4.0]),
    ("softplus", F.softplus, TF.softplus, {"threshold": 1.0}, [1.0, 2.0, -1.0]),
    ("hardshrink", F.hardshrink, TF.hardshrink, {}, [-0.5, 0.5, 0.0, 1.0]),
    ("softshrink", F.softshrink, TF.softshrink, {}, [-0.5, 0.5, 0.0, 1.0]),
    ("threshold", F.threshold, TF.threshold, {"threshold": 0.5, "value": 3.0}, [0.5, 1.0, 0.0]),
    ("abs", compgrad.abs, torch.abs, {}, [0.0, -2.0, 2.0]),
]


@pytest.mark.parametrize("name,ours,theirs,kwargs,values", KINK_CASES,
                         ids=[c[0] for c in KINK_CASES])
def test_gradient_at_kinks_follows_torch(name, ours, theirs, kwargs, values):
    x = compgrad.tensor(values, requires_grad=True)
    ours(x, **kwargs).sum().backward()
    tx = torch.tensor(values, requires_grad=True)
    theirs(tx, **kwargs).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-6, err_msg=name)


SMOOTH = [
    ("sigmoid", compgrad.sigmoid, torch.sigmoid, {}),
    ("logsigmoid", F.logsigmoid, TF.logsigmoid, {}),
    ("gelu", F.gelu, TF.gelu, {}),
    ("gelu_tanh", F.gelu, TF.gelu, {"approximate": "tanh"}),
    ("silu", F.silu, TF.silu, {}),
    ("mish", F.mish, TF.mish, {}),
    ("softplus", F.softplus, TF.softplus, {"beta": 2.0}),
    ("elu", F.elu, TF.elu, {}),
    ("selu", F.selu, TF.selu, {}),
    ("tanh", compgrad.tanh, torch.tanh, {}),
    ("erf", compgrad.erf, torch.erf, {}),
    ("asin", compgrad.asin, torch.asin, {}),
    ("rsqrt", lambda x: compgrad.rsqrt(x + 3), lambda x: torch.rsqrt(x + 3), {}),
    ("tanhshrink", F.tanhshrink, TF.tanhshrink, {}),
    ("softsign", F.softsign, TF.softsign, {}),
]


@pytest.mark.parametrize("name,ours,theirs,kwargs", SMOOTH, ids=[c[0] for c in SMOOTH])
def test_second_derivatives_match_torch(name, ours, theirs, kwargs):
    values = np.array([-0.8, -0.3, 0.2, 0.7], np.float64)
    x = compgrad.tensor(values, requires_grad=True)
    (g,) = autograd.grad(ours(x, **kwargs).sum(), x, create_graph=True)
    (h,) = autograd.grad(g.sum(), x)
    tx = torch.tensor(values, requires_grad=True)
    (tg,) = torch.autograd.grad(theirs(tx, **kwargs).sum(), tx, create_graph=True)
    (th,) = torch.autograd.grad(tg.sum(), tx)
    np.testing.assert_allclose(g.detach().numpy(), tg.detach().numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(h.numpy(), th.numpy(), rtol=1e-7, atol=1e-10)


def test_stable_at_extremes():
    big = [-1000.0, -100.0, 100.0, 1000.0]
    x, tx = compgrad.tensor(big), torch.tensor(big)
    for ours, theirs in [(compgrad.sigmoid, torch.sigmoid), (F.logsigmoid, TF.logsigmoid),
                         (F.softplus, TF.softplus), (F.silu, TF.silu), (F.mish, TF.mish),
                         (F.elu, TF.elu), (F.gelu, TF.gelu)]:
        np.testing.assert_allclose(ours(x).numpy(), theirs(tx).numpy(), rtol=1e-6, atol=1e-30)
        xg = compgrad.tensor(big, requires_grad=True)
        ours(xg).sum().backward()
        assert np.isfinite(xg.grad.numpy()).all()


def test_rounding_and_sign_semantics():
    v = [-2.5, -0.5, 0.5, 1.5, 2.5, float("nan"), -0.0]
    x, tx = compgrad.tensor(v), torch.tensor(v)
    for name in ("round", "floor", "ceil", "trunc", "sign", "frac"):
        np.testing.assert_array_equal(getattr(compgrad, name)(x).numpy(),
                                      getattr(torch, name)(tx).numpy())
    r = compgrad.round(compgrad.tensor([1234.5678, -0.125]), decimals=2)
    np.testing.assert_allclose(r.numpy(), torch.round(torch.tensor([1234.5678, -0.125]),
                                                      decimals=2).numpy())
    i = compgrad.tensor([3, -4])
    assert compgrad.floor(i).dtype is compgrad.int64 and compgrad.floor(i).tolist() == [3, -4]
    assert compgrad.sign(compgrad.tensor([True, False])).dtype is compgrad.bool


def test_nan_to_num_defaults_per_dtype():
    v = [float("nan"), float("inf"), -float("inf"), 1.0]
    for dt, tdt in [(compgrad.float16, torch.float16), (compgrad.float64, torch.float64)]:
        ours = compgrad.nan_to_num(compgrad.tensor(v, dtype=dt))
        theirs = torch.nan_to_num(torch.tensor(v, dtype=tdt))
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    x = compgrad.tensor(v, requires_grad=True)
    compgrad.nan_to_num(x).sum().backward()
    assert x.grad.tolist() == [0.0, 0.0, 0.0, 1.0]


def test_int_and_bool_inputs_follow_torch():
    i, ti = compgrad.tensor([1, 2, 3]), torch.tensor([1, 2, 3])
    for name in ("sqrt", "exp2", "sigmoid", "erf", "reciprocal"):
        ours, theirs = getattr(compgrad, name)(i), getattr(torch, name)(ti)
        assert ours.dtype is compgrad.float32 and theirs.dtype == torch.float32
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-6)
    with pytest.raises(NotImplementedError):
        F.gelu(i)
    with pytest.raises(NotImplementedError):
        compgrad.abs(compgrad.tensor([True]))
    with pytest.raises(RuntimeError, match="Boolean"):
        compgrad.relu(compgrad.tensor([True]))
    assert compgrad.square(compgrad.tensor([True, False])).dtype is compgrad.int64

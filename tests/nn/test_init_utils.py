"""compgrad.nn.init and compgrad.nn.utils (clip_grad_*, parameters <-> vector) vs PyTorch."""

import math
import warnings

import numpy as np
import pytest

import compgrad
from compgrad.nn import init
from compgrad.nn import utils as nn_utils

torch = pytest.importorskip("torch")


def param(*shape, dtype=compgrad.float32):
    return compgrad.zeros(*shape, dtype=dtype, requires_grad=True)


# --- calculate_gain and fans ---------------------------------------------------------------

@pytest.mark.parametrize("args", [("linear",), ("conv1d",), ("conv2d",), ("conv3d",),
                                  ("conv_transpose1d",), ("conv_transpose2d",),
                                  ("conv_transpose3d",), ("sigmoid",), ("tanh",), ("relu",),
                                  ("leaky_relu",), ("leaky_relu", 0.2), ("leaky_relu", 1),
                                  ("leaky_relu", None), ("selu",)])
def test_calculate_gain_matches_torch(args):
    ours, theirs = init.calculate_gain(*args), torch.nn.init.calculate_gain(*args)
    assert ours == theirs and type(ours) is type(theirs)


@pytest.mark.parametrize("args", [("gelu",), ("leaky_relu", True), ("leaky_relu", "0.1"),
                                  ("Relu",)])
def test_calculate_gain_errors(args):
    with pytest.raises(ValueError) as theirs:
        torch.nn.init.calculate_gain(*args)
    with pytest.raises(ValueError) as ours:
        init.calculate_gain(*args)
    assert str(ours.value) == str(theirs.value)


@pytest.mark.parametrize("shape", [(3, 4), (5, 2, 3), (8, 4, 3, 3), (2, 3, 1, 2, 2), (4, 0)])
def test_fans_match_torch(shape):
    ours = init._calculate_fan_in_and_fan_out(compgrad.zeros(*shape))
    assert ours == torch.nn.init._calculate_fan_in_and_fan_out(torch.zeros(*shape))


@pytest.mark.parametrize("fn", ["xavier_uniform_", "xavier_normal_", "kaiming_uniform_",
                                "kaiming_normal_"])
def test_fan_errors_match_torch(fn):
    for shape in [(3,), ()]:
        with pytest.raises(ValueError) as theirs:
            getattr(torch.nn.init, fn)(torch.zeros(shape))
        with pytest.raises(ValueError) as ours:
            getattr(init, fn)(compgrad.zeros(shape))
        assert str(ours.value) == str(theirs.value)
        assert "fewer than 2 dimensions" in str(ours.value)


def test_bad_mode():
    with pytest.raises(ValueError, match=r"Mode fan_avg not supported, please use one of "
                                         r"\['fan_in', 'fan_out'\]"):
        init.kaiming_uniform_(compgrad.zeros(3, 4), mode="fan_avg")
    # mode is case-insensitive, as in torch
    init.kaiming_normal_(compgrad.zeros(3, 4), mode="FAN_OUT")


# --- deterministic initialisers --------------------------------------------------------------

@pytest.mark.parametrize("dtype", [compgrad.float32, compgrad.float64, compgrad.float16,
                                   compgrad.int64])
def test_constant_ones_zeros(dtype):
    t = compgrad.empty(3, 4, dtype=dtype)
    assert init.constant_(t, 3) is t
    np.testing.assert_array_equal(t.numpy(), np.full((3, 4), 3))
    init.ones_(t)
    np.testing.assert_array_equal(t.numpy(), np.ones((3, 4)))
    init.zeros_(t)
    np.testing.assert_array_equal(t.numpy(), np.zeros((3, 4)))
    assert t.dtype is dtype


@pytest.mark.parametrize("shape", [(3, 3), (2, 5), (5, 2), (0, 3)])
def test_eye_matches_torch(shape):
    p = param(*shape)
    out = init.eye_(p)
    assert out is p and p.requires_grad and p.is_leaf and p.grad_fn is None
    np.testing.assert_array_equal(p.detach().numpy(),
                                  torch.nn.init.eye_(torch.zeros(shape)).numpy())


def test_eye_and_dirac_errors_match_torch():
    for fn, args in [("eye_", ((3,),)), ("eye_", ((2, 2, 2),)), ("dirac_", ((2, 2),)),
                     ("dirac_", ((3, 2, 3), 2)), ("sparse_", ((2, 2, 2), 0.5))]:
        shape, *rest = args
        with pytest.raises(ValueError) as theirs:
            getattr(torch.nn.init, fn)(torch.zeros(shape), *rest)
        with pytest.raises(ValueError) as ours:
            getattr(init, fn)(compgrad.zeros(shape), *rest)
        assert str(ours.value) == str(theirs.value)


@pytest.mark.parametrize("shape, groups", [((4, 4, 3), 1), ((6, 2, 3, 3), 2), ((3, 5, 2, 3, 1), 1),
                                           ((4, 2, 3, 3), 2)])
def test_dirac_matches_torch(shape, groups):
    p = param(*shape)
    init.dirac_(p, groups)
    np.testing.assert_array_equal(p.detach().numpy(),
                                  torch.nn.init.dirac_(torch.zeros(shape), groups).numpy())


# --- random initialisers: statistics ---------------------------------------------------------

N = 200_000


def test_uniform_and_normal_statistics():
    compgrad.manual_seed(0)
    p = param(N)
    assert init.uniform_(p, -2.0, 3.0) is p
    v = p.detach().numpy()
    assert v.min() >= -2.0 and v.max() < 3.0
    assert abs(v.mean() - 0.5) < 0.03 and abs(v.std() - 5 / math.sqrt(12)) < 0.02
    init.normal_(p, 1.5, 0.5)
    v = p.detach().numpy()
    assert abs(v.mean() - 1.5) < 0.01 and abs(v.std() - 0.5) < 0.01
    assert p.is_leaf and p.requires_grad and p.grad_fn is None


def test_generator_reproducible_and_default_untouched():
    g1, g2 = compgrad.Generator().manual_seed(7), compgrad.Generator().manual_seed(7)
    state = compgrad.get_rng_state()
    fns = [lambda t, g: init.uniform_(t, generator=g), lambda t, g: init.normal_(t, generator=g),
           lambda t, g: init.xavier_uniform_(t, generator=g),
           lambda t, g: init.kaiming_normal_(t, generator=g),
           lambda t, g: init.trunc_normal_(t, generator=g),
           lambda t, g: init.orthogonal_(t, generator=g),
           lambda t, g: init.sparse_(t, 0.5, generator=g)]
    for fn in fns:
        a, b = fn(compgrad.empty(6, 5), g1), fn(compgrad.empty(6, 5), g2)
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    np.testing.assert_array_equal(compgrad.get_rng_state().numpy(), state.numpy())


def test_trunc_normal_statistics_and_bounds():
    compgrad.manual_seed(1)
    p = param(N)
    init.trunc_normal_(p, mean=0.5, std=2.0, a=-1.0, b=3.0)
    v = p.detach().numpy()
    assert v.min() >= -1.0 and v.max() <= 3.0
    from scipy import stats
    dist = stats.truncnorm((-1.0 - 0.5) / 2.0, (3.0 - 0.5) / 2.0, loc=0.5, scale=2.0)
    assert abs(v.mean() - dist.mean()) < 0.02 and abs(v.std() - dist.std()) < 0.02
    init.trunc_normal_(p, std=0.02)  # the common ViT use: [-2, 2] is ~100 std wide
    v = p.detach().numpy()
    assert abs(v.std() - 0.02) < 0.001 and abs(v.mean()) < 0.001


def test_trunc_normal_warns_far_mean():
    with pytest.warns(UserWarning, match="mean is more than 2 std from"):
        init.trunc_normal_(compgrad.empty(10), mean=10.0, std=1.0, a=-1.0, b=1.0)


@pytest.mark.parametrize("shape", [(300, 400), (64, 32, 3, 3)])
def test_xavier_statistics(shape):
    compgrad.manual_seed(2)
    fan_in, fan_out = init._calculate_fan_in_and_fan_out(compgrad.empty(*shape))
    std = 0.5 * math.sqrt(2.0 / (fan_in + fan_out))
    p = param(*shape)
    init.xavier_uniform_(p, gain=0.5)
    v = p.detach().numpy()
    bound = math.sqrt(3.0) * std
    assert v.min() >= -bound and v.max() <= bound and v.max() > 0.99 * bound
    assert abs(v.std() - std) / std < 0.02
    init.xavier_normal_(p, gain=0.5)
    v = p.detach().numpy()
    assert abs(v.std() - std) / std < 0.02 and abs(v.mean()) < 0.05 * std


@pytest.mark.parametrize("a, mode, nonlinearity", [(0, "fan_in", "leaky_relu"),
                                                   (math.sqrt(5), "fan_in", "leaky_relu"),
                                                   (0, "fan_out", "relu"),
                                                   (0.1, "fan_in", "tanh")])
def test_kaiming_statistics(a, mode, nonlinearity):
    compgrad.manual_seed(3)
    shape = (256, 128, 3, 3)
    fan = 128 * 9 if mode == "fan_in" else 256 * 9
    std = init.calculate_gain(nonlinearity, a) / math.sqrt(fan)
    p = param(*shape)
    init.kaiming_uniform_(p, a=a, mode=mode, nonlinearity=nonlinearity)
    v = p.detach().numpy()
    assert np.abs(v).max() <= math.sqrt(3.0) * std
    assert abs(v.std() - std) / std < 0.02
    init.kaiming_normal_(p, a=a, mode=mode, nonlinearity=nonlinearity)
    v = p.detach().numpy()
    assert abs(v.std() - std) / std < 0.02


def test_kaiming_zero_element_warns_and_is_noop():
    for fn in (init.kaiming_uniform_, init.kaiming_normal_):
        t = compgrad.empty(0, 3)
        with pytest.warns(UserWarning, match="Initializing zero-element tensors is a no-op"):
            assert fn(t) is t


@pytest.mark.parametrize("shape", [(5, 5), (3, 7), (7, 3), (4, 2, 3), (1, 1), (6, 2, 2, 2)])
@pytest.mark.parametrize("dtype", [compgrad.float32, compgrad.float64])
def test_orthogonal(shape, dtype):
    compgrad.manual_seed(4)
    p = param(*shape, dtype=dtype)
    assert init.orthogonal_(p, gain=2.0) is p
    assert p.requires_grad and p.is_leaf and p.dtype is dtype
    q = p.detach().numpy().reshape(shape[0], -1).astype(np.float64) / 2.0
    rows, cols = q.shape
    gram = q @ q.T if rows <= cols else q.T @ q
    np.testing.assert_allclose(gram, np.eye(min(rows, cols)), atol=1e-5)


def test_orthogonal_sign_fix_gives_positive_r_diagonal():
    compgrad.manual_seed(5)
    g = compgrad.Generator().manual_seed(5)
    t = init.orthogonal_(compgrad.empty(6, 6, dtype=compgrad.float64), generator=g)
    noise = compgrad.empty(6, 6, dtype=compgrad.float64).normal_(
        generator=compgrad.Generator().manual_seed(5)).numpy()
    # Q^T A = R must have a positive diagonal (torch's sign correction)
    r = t.numpy().T @ noise
    assert np.all(np.diag(r) > 0)
    np.testing.assert_allclose(np.tril(r, -1), 0, atol=1e-10)


def test_orthogonal_errors_and_empty():
    with pytest.raises(ValueError, match="Only tensors with 2 or more dimensions are supported"):
        init.orthogonal_(compgrad.empty(3))
    t = compgrad.empty(0, 3)
    assert init.orthogonal_(t) is t


def test_sparse():
    compgrad.manual_seed(6)
    p = param(10, 50)
    init.sparse_(p, sparsity=0.3, std=0.5)
    v = p.detach().numpy()
    assert np.all((v == 0).sum(axis=0) >= 3)
    assert abs(v[v != 0].std() - 0.5) < 0.1


def test_deprecated_aliases_warn():
    t = compgrad.empty(3, 4)
    with pytest.warns(FutureWarning, match=r"`nn.init.uniform` is now deprecated in favor of "
                                            r"`nn.init.uniform_`"):
        init.uniform(t)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert init.constant(t, 2.0) is t
    assert np.all(t.numpy() == 2.0)


def test_init_does_not_record_autograd():
    p = param(4, 4)
    for fn in (init.uniform_, init.normal_, init.xavier_uniform_, init.kaiming_normal_,
               init.trunc_normal_, init.orthogonal_, init.eye_, init.ones_):
        fn(p)
        assert p.is_leaf and p.grad_fn is None and p.requires_grad
    (p * 2).sum().backward()
    np.testing.assert_array_equal(p.grad.numpy(), np.full((4, 4), 2.0))


def test_not_a_tensor():
    with pytest.raises(TypeError):
        init.uniform_([1.0, 2.0])


# --- clip_grad -------------------------------------------------------------------------------

def make_params(grads):
    ours, theirs = [], []
    for g in grads:
        if g is None:
            a = compgrad.zeros(2, requires_grad=True)
            b = torch.zeros(2, requires_grad=True)
        else:
            g = np.asarray(g, dtype=np.float32)
            a = compgrad.zeros(*g.shape, requires_grad=True)
            b = torch.zeros(*g.shape, requires_grad=True)
            a.grad = compgrad.tensor(g)
            b.grad = torch.tensor(g)
        ours.append(a)
        theirs.append(b)
    return ours, theirs


GRADS = [[[3.0, 4.0]], [[1.0, -2.0, 3.0], [[0.5, -0.5], [2.0, 7.0]], None],
         [[1e-3, 2e-3]], [[0.0, 0.0]], [np.arange(-10.0, 10.0).reshape(4, 5) / 7]]


@pytest.mark.parametrize("grads", GRADS)
@pytest.mark.parametrize("max_norm", [1.0, 0.5, 100.0])
@pytest.mark.parametrize("norm_type", [2.0, 1, 3.5, float("inf"), "inf"])
def test_clip_grad_norm_matches_torch(grads, max_norm, norm_type):
    if norm_type == "inf":
        norm_type = float("inf")
    ours, theirs = make_params(grads)
    tn_ours = nn_utils.clip_grad_norm_(ours, max_norm, norm_type=norm_type)
    tn_theirs = torch.nn.utils.clip_grad_norm_(theirs, max_norm, norm_type=norm_type)
    assert tn_ours.shape == () and tn_ours.dtype is compgrad.float32
    np.testing.assert_allclose(tn_ours.numpy(), tn_theirs.numpy(), rtol=1e-6)
    for a, b in zip(ours, theirs):
        assert (a.grad is None) == (b.grad is None)
        if a.grad is not None:
            np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-6, atol=1e-9)


def test_clip_grad_norm_single_tensor_and_generator():
    a = compgrad.zeros(2, requires_grad=True)
    a.grad = compgrad.tensor([3.0, 4.0])
    total = nn_utils.clip_grad_norm_(a, 1.0)
    assert total.item() == pytest.approx(5.0)
    np.testing.assert_allclose(a.grad.numpy(), [0.6, 0.8], rtol=1e-5)
    total = nn_utils.clip_grad_norm_((p for p in [a]), 10.0)
    assert total.item() == pytest.approx(1.0, rel=1e-5)
    with pytest.warns(UserWarning, match="empty generator"):
        total = nn_utils.clip_grad_norm_((p for p in []), 1.0)
    assert total.item() == 0.0
    assert nn_utils.clip_grad_norm_([], 1.0).item() == 0.0


def test_clip_grad_norm_nonfinite():
    ours, theirs = make_params([[1.0, float("inf")], [float("nan"), 1.0]])
    with pytest.raises(RuntimeError) as t_err:
        torch.nn.utils.clip_grad_norm_(theirs, 1.0, error_if_nonfinite=True)
    with pytest.raises(RuntimeError) as o_err:
        nn_utils.clip_grad_norm_(ours, 1.0, error_if_nonfinite=True)
    assert str(o_err.value) == str(t_err.value)
    # nothing was scaled before the error
    np.testing.assert_array_equal(ours[0].grad.numpy(), [1.0, np.inf])
    total = nn_utils.clip_grad_norm_(ours, 1.0)
    assert math.isnan(total.item())


def test_clip_grad_norm_records_no_autograd():
    p = compgrad.ones(3, requires_grad=True)
    (p * p * 3).sum().backward()
    total = nn_utils.clip_grad_norm_([p], 1.0)
    assert p.grad.grad_fn is None and not p.grad.requires_grad
    assert total.grad_fn is None and not total.requires_grad


def test_deprecated_clip_grad_norm():
    ours, _ = make_params([[3.0, 4.0]])
    with pytest.warns(FutureWarning):
        assert nn_utils.clip_grad_norm(ours, 1.0).item() == pytest.approx(5.0)


def test_total_norm_helpers():
    grads = [compgrad.tensor([3.0, 0.0]), compgrad.tensor([[4.0]])]
    total = nn_utils.get_total_norm(grads)
    assert total.item() == pytest.approx(5.0)
    assert nn_utils.get_total_norm(grads, norm_type=1).item() == pytest.approx(7.0)
    ours, theirs = make_params([[3.0, 4.0]])
    nn_utils.clip_grads_with_norm_(ours, 2.0, compgrad.tensor(10.0))
    torch.nn.utils.clip_grads_with_norm_(theirs, 2.0, torch.tensor(10.0))
    np.testing.assert_allclose(ours[0].grad.numpy(), theirs[0].grad.numpy(), rtol=1e-6)


@pytest.mark.parametrize("clip_value", [0.5, 2, 10.0, 0.0])
def test_clip_grad_value_matches_torch(clip_value):
    ours, theirs = make_params([[1.0, -2.0, 3.0], [[0.25, -0.75]], None])
    assert nn_utils.clip_grad_value_(ours, clip_value) is None
    torch.nn.utils.clip_grad_value_(theirs, clip_value)
    for a, b in zip(ours, theirs):
        if a.grad is not None:
            np.testing.assert_array_equal(a.grad.numpy(), b.grad.numpy())
    single = compgrad.zeros(2, requires_grad=True)
    single.grad = compgrad.tensor([5.0, -5.0])
    nn_utils.clip_grad_value_(single, 1)
    np.testing.assert_array_equal(single.grad.numpy(), [1.0, -1.0])


# --- parameters <-> vector -------------------------------------------------------------------

def test_parameters_to_vector_and_back():
    shapes = [(2, 3), (4,), (1, 1, 2), ()]
    ps = [compgrad.randn(s, requires_grad=True) for s in shapes]
    vec = nn_utils.parameters_to_vector(ps)
    tvec = torch.nn.utils.parameters_to_vector(
        [torch.tensor(p.detach().numpy()) for p in ps])
    np.testing.assert_array_equal(vec.detach().numpy(), tvec.numpy())
    assert vec.shape == (6 + 4 + 2 + 1,) and vec.requires_grad
    # differentiable, as in torch (view + cat)
    (vec * compgrad.arange(13.0)).sum().backward()
    np.testing.assert_array_equal(ps[0].grad.numpy(), np.arange(6.0).reshape(2, 3))

    new = compgrad.arange(13.0)
    nn_utils.vector_to_parameters(new, ps)
    for p, s in zip(ps, shapes):
        assert p.shape == s and p.requires_grad
    np.testing.assert_array_equal(ps[1].detach().numpy(), [6.0, 7.0, 8.0, 9.0])
    assert ps[3].item() == 12.0
    # a longer vector is fine (torch ignores the rest)
    nn_utils.vector_to_parameters(compgrad.zeros(20), ps)
    assert all(float(p.detach().abs().sum()) == 0 for p in ps)


def test_parameters_to_vector_errors():
    with pytest.raises(ValueError) as theirs:
        torch.nn.utils.parameters_to_vector([])
    with pytest.raises(ValueError) as ours:
        nn_utils.parameters_to_vector([])
    assert str(ours.value) == str(theirs.value)


@pytest.mark.parametrize("vec", [[1.0, 2.0], 3.0, np.zeros(3)])
def test_vector_to_parameters_type_error_matches_torch(vec):
    with pytest.raises(TypeError) as theirs:
        torch.nn.utils.vector_to_parameters(vec, [torch.zeros(2)])
    with pytest.raises(TypeError) as ours:
        nn_utils.vector_to_parameters(vec, [compgrad.zeros(2)])
    assert str(ours.value) == str(theirs.value)


def test_vector_to_parameters_short_vector_changes_nothing():
    ps = [compgrad.ones(3), compgrad.ones(4)]
    with pytest.raises(RuntimeError, match="has 5 elements but the parameters need 7"):
        nn_utils.vector_to_parameters(compgrad.zeros(5), ps)
    assert all(np.all(p.numpy() == 1) for p in ps)


def test_different_devices_refused():
    a = compgrad.zeros(2)
    b = compgrad.Tensor._from_array(np.zeros(2, dtype=np.float32), compgrad.device("cuda:0"))
    with pytest.raises(TypeError, match="Found two parameters on different devices"):
        nn_utils.parameters_to_vector([a, b])


@pytest.mark.parametrize("fn", [init.uniform_, init.normal_, init.xavier_uniform_,
                                init.kaiming_uniform_, init.trunc_normal_, init.orthogonal_,
                                init.eye_])
def test_init_float16_and_float64(fn):
    for dtype in (compgrad.float16, compgrad.float64):
        t = fn(compgrad.zeros(8, 6, dtype=dtype))
        assert t.dtype is dtype and np.all(np.isfinite(t.numpy()))
        assert t.numpy().std() > 0


def test_bad_generator_type():
    with pytest.raises(TypeError, match="Generator"):
        init.uniform_(compgrad.zeros(3), generator=42)

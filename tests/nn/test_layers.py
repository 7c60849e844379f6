"""nn layers against PyTorch: repr, state_dict keys, init, forward and gradients."""

import math
import warnings

import numpy as np
import pytest

import compgrad
import compgrad.nn.functional as F
from compgrad import nn
from tests.nn._common import close, compare, copy_state, randn, to_np

torch = pytest.importorskip("torch")

needs = {name: pytest.mark.skipif(not hasattr(F, name), reason=f"F.{name} not available yet")
         for name in ("conv1d", "conv2d", "conv_transpose2d", "max_pool1d", "max_pool2d",
                      "avg_pool1d", "avg_pool2d", "adaptive_avg_pool1d",
                      "adaptive_avg_pool2d", "layer_norm", "group_norm")}


def _has_batch_norm() -> bool:
    if hasattr(F, "batch_norm"):
        return True
    try:
        from compgrad.nn import _stateful
    except ImportError:
        return False
    return hasattr(_stateful, "batch_norm")


needs_bn = pytest.mark.skipif(not _has_batch_norm(), reason="batch_norm not available yet")


# --- linear ------------------------------------------------------------------------------

@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("shape", [(5, 4), (2, 3, 4), (4,)])
def test_linear(bias, shape):
    compare(torch, lambda nn: nn.Linear(4, 3, bias=bias), randn(*shape))


def test_linear_repr_and_errors():
    assert repr(nn.Linear(2, 4)) == "Linear(in_features=2, out_features=4, bias=True)"
    m = nn.Linear(4, 3)
    with pytest.raises(RuntimeError, match=r"mat1 and mat2 shapes cannot be multiplied "
                                           r"\(32x5 and 4x3\)"):
        m(compgrad.randn(32, 5))
    assert [n for n, _ in m.named_parameters()] == ["weight", "bias"]
    assert isinstance(m.weight, nn.Parameter) and m.weight.requires_grad


def test_identity():
    m = nn.Identity(54, unused="x")
    x = compgrad.randn(3)
    assert m(x) is x and repr(m) == "Identity()"


@pytest.mark.parametrize("bias", [True, False])
def test_bilinear(bias):
    compare(torch, lambda nn: nn.Bilinear(3, 4, 5, bias=bias), randn(6, 3), randn(6, 4, seed=1))


def test_bilinear_init_bound():
    compgrad.manual_seed(0)
    m = nn.Bilinear(16, 4, 8)
    bound = 1 / math.sqrt(16)
    for p in (m.weight, m.bias):
        a = to_np(p)
        assert a.min() >= -bound and a.max() <= bound


@pytest.mark.parametrize("make, fan_in", [
    (lambda: nn.Linear(100, 50), 100),
    (lambda: nn.Conv2d(8, 16, 3), 72),
    (lambda: nn.Conv1d(6, 4, 5, groups=2), 15),
    (lambda: nn.ConvTranspose2d(4, 6, 3), 54),
])
def test_default_init_is_uniform_over_fan_in(make, fan_in):
    compgrad.manual_seed(1)
    m = make()
    bound = 1 / math.sqrt(fan_in)
    w, b = to_np(m.weight), to_np(m.bias)
    assert w.min() >= -bound and w.max() <= bound
    assert w.max() > 0.8 * bound and w.min() < -0.8 * bound  # spread over the whole range
    assert abs(w.std() - bound / math.sqrt(3)) < 0.15 * bound
    assert b.min() >= -bound and b.max() <= bound


def test_init_follows_the_seed():
    compgrad.manual_seed(3)
    a = to_np(nn.Linear(5, 4).weight)
    compgrad.manual_seed(3)
    m = nn.Linear(5, 4)
    np.testing.assert_array_equal(a, to_np(m.weight))
    m.reset_parameters()
    assert not np.array_equal(a, to_np(m.weight))


# --- convolution -------------------------------------------------------------------------

@needs["conv2d"]
@pytest.mark.parametrize("kwargs", [
    {}, {"padding": 1}, {"stride": 2, "padding": (1, 2)}, {"dilation": 2, "bias": False},
    {"groups": 2}, {"padding": "same"}, {"padding": "valid"},
    {"padding": 1, "padding_mode": "reflect"}, {"padding": (1, 2), "padding_mode": "circular"},
    {"padding": 2, "padding_mode": "replicate"}, {"padding": "same", "dilation": 2,
                                                   "padding_mode": "reflect"},
])
def test_conv2d(kwargs):
    compare(torch, lambda nn: nn.Conv2d(4, 6, 3, **kwargs), randn(2, 4, 7, 8))


@needs["conv2d"]
def test_conv2d_rect_kernel_unbatched():
    compare(torch, lambda nn: nn.Conv2d(3, 2, (2, 3), stride=(1, 2)), randn(3, 6, 7))


@needs["conv1d"]
@pytest.mark.parametrize("kwargs", [
    {}, {"stride": 2, "padding": 1}, {"dilation": 2, "groups": 2, "bias": False},
    {"padding": "same"}, {"padding": 2, "padding_mode": "circular"},
])
def test_conv1d(kwargs):
    compare(torch, lambda nn: nn.Conv1d(4, 6, 3, **kwargs), randn(2, 4, 9))


@needs["conv_transpose2d"]
@pytest.mark.parametrize("kwargs", [
    {}, {"stride": 2}, {"stride": 2, "padding": 1, "output_padding": 1},
    {"groups": 2, "bias": False}, {"dilation": 2, "stride": (2, 1)},
])
def test_conv_transpose2d(kwargs):
    compare(torch, lambda nn: nn.ConvTranspose2d(4, 6, 3, **kwargs), randn(2, 4, 5, 6))


@needs["conv_transpose2d"]
def test_conv_transpose2d_output_size():
    compare(torch, lambda nn: nn.ConvTranspose2d(2, 3, 3, stride=2, padding=1),
            randn(1, 2, 4, 4), call_kwargs={"output_size": [8, 8]})
    m = nn.ConvTranspose2d(2, 3, 3, stride=2, padding=1)
    with pytest.raises(ValueError, match="requested an output size of"):
        m(compgrad.randn(1, 2, 4, 4), output_size=[10, 10])


def test_conv_repr():
    cases = [
        lambda nn: nn.Conv2d(3, 8, 3, padding=1),
        lambda nn: nn.Conv2d(4, 8, (3, 5), stride=2, dilation=(1, 2), groups=2, bias=False,
                             padding_mode="reflect", padding=1),
        lambda nn: nn.Conv2d(3, 8, 3, padding="same"),
        lambda nn: nn.Conv1d(3, 6, 4, stride=2),
        lambda nn: nn.ConvTranspose2d(3, 6, 3, stride=2, output_padding=1),
    ]
    for make in cases:
        assert repr(make(nn)) == repr(make(torch.nn))
    assert repr(nn.Conv2d(3, 8, 3, padding=1)) == \
        "Conv2d(3, 8, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))"


def test_conv_state_dict_shapes():
    for make in (lambda nn: nn.Conv2d(4, 6, 3, groups=2), lambda nn: nn.ConvTranspose2d(4, 6, 3,
                                                                                          groups=2),
                 lambda nn: nn.Conv1d(2, 4, 5, bias=False)):
        ours, theirs = make(nn), make(torch.nn)
        assert {k: tuple(v.shape) for k, v in ours.state_dict().items()} == \
            {k: tuple(v.shape) for k, v in theirs.state_dict().items()}


@pytest.mark.parametrize("make, error, match", [
    (lambda nn: nn.Conv2d(3, 8, 3, padding_mode="bogus"), ValueError,
     "padding_mode must be one of"),
    (lambda nn: nn.Conv2d(3, 8, 3, groups=2), ValueError,
     "in_channels must be divisible by groups"),
    (lambda nn: nn.Conv2d(4, 6, 3, groups=4), ValueError,
     "out_channels must be divisible by groups"),
    (lambda nn: nn.Conv2d(4, 6, 3, groups=0), ValueError, "groups must be a positive integer"),
    (lambda nn: nn.Conv2d(4, 6, 3, padding="full"), ValueError, "Invalid padding string"),
    (lambda nn: nn.Conv2d(4, 6, 3, padding="same", stride=2), ValueError,
     "padding='same' is not supported for strided convolutions"),
    (lambda nn: nn.ConvTranspose2d(4, 6, 3, padding_mode="reflect"), ValueError,
     'Only "zeros" padding mode is supported for ConvTranspose2d'),
])
def test_conv_constructor_errors(make, error, match):
    with pytest.raises(error, match=match):
        make(torch.nn)
    with pytest.raises(error, match=match):
        make(nn)


# --- pooling -----------------------------------------------------------------------------

@needs["max_pool2d"]
@pytest.mark.parametrize("kwargs", [
    {"kernel_size": 2}, {"kernel_size": 3, "stride": 2, "padding": 1},
    {"kernel_size": (2, 3), "stride": 1, "dilation": 2}, {"kernel_size": 3, "stride": 2,
                                                          "ceil_mode": True},
    {"kernel_size": 2, "return_indices": True},
])
def test_max_pool2d(kwargs):
    compare(torch, lambda nn: nn.MaxPool2d(**kwargs), randn(2, 3, 7, 8))


@needs["max_pool1d"]
@pytest.mark.parametrize("kwargs", [
    {"kernel_size": 2}, {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True},
    {"kernel_size": 2, "return_indices": True, "dilation": 2},
])
def test_max_pool1d(kwargs):
    compare(torch, lambda nn: nn.MaxPool1d(**kwargs), randn(2, 3, 9))


@needs["avg_pool2d"]
@pytest.mark.parametrize("kwargs", [
    {"kernel_size": 2}, {"kernel_size": 3, "stride": 2, "padding": 1},
    {"kernel_size": 3, "stride": 2, "padding": 1, "count_include_pad": False},
    {"kernel_size": 3, "stride": 2, "ceil_mode": True}, {"kernel_size": 2, "divisor_override": 3},
])
def test_avg_pool2d(kwargs):
    compare(torch, lambda nn: nn.AvgPool2d(**kwargs), randn(2, 3, 7, 8))


@needs["avg_pool1d"]
@pytest.mark.parametrize("kwargs", [
    {"kernel_size": 2}, {"kernel_size": 3, "stride": 2, "padding": 1, "count_include_pad": False},
])
def test_avg_pool1d(kwargs):
    compare(torch, lambda nn: nn.AvgPool1d(**kwargs), randn(2, 3, 9))


@needs["adaptive_avg_pool2d"]
@pytest.mark.parametrize("size", [1, (3, 2), (None, 3), 5])
def test_adaptive_avg_pool2d(size):
    compare(torch, lambda nn: nn.AdaptiveAvgPool2d(size), randn(2, 3, 7, 5))


@needs["adaptive_avg_pool1d"]
@pytest.mark.parametrize("size", [1, 3, 4])
def test_adaptive_avg_pool1d(size):
    compare(torch, lambda nn: nn.AdaptiveAvgPool1d(size), randn(2, 3, 7))


def test_pool_repr():
    for make in (lambda nn: nn.MaxPool2d(2), lambda nn: nn.MaxPool2d(3, 2, 1, ceil_mode=True),
                 lambda nn: nn.MaxPool1d(3), lambda nn: nn.AvgPool2d(3, 2),
                 lambda nn: nn.AvgPool1d(2), lambda nn: nn.AdaptiveAvgPool2d((1, 1)),
                 lambda nn: nn.AdaptiveAvgPool1d(4)):
        assert repr(make(nn)) == repr(make(torch.nn))


# --- normalization -----------------------------------------------------------------------

@needs_bn
@pytest.mark.parametrize("make, shape", [
    (lambda nn: nn.BatchNorm1d(4), (8, 4)),
    (lambda nn: nn.BatchNorm1d(4, momentum=0.3), (6, 4, 5)),
    (lambda nn: nn.BatchNorm1d(4, momentum=None), (8, 4)),
    (lambda nn: nn.BatchNorm2d(3), (4, 3, 5, 5)),
    (lambda nn: nn.BatchNorm2d(3, affine=False), (4, 3, 2, 3)),
    (lambda nn: nn.BatchNorm2d(3, track_running_stats=False), (4, 3, 2, 3)),
    (lambda nn: nn.BatchNorm2d(3, bias=False, eps=1e-3), (4, 3, 2, 3)),
])
def test_batch_norm_train_then_eval(make, shape):
    theirs, ours = compare(torch, make, randn(*shape))
    # several training steps: running statistics and batch counter follow torch's
    for step in range(1, 4):
        x = randn(*shape, seed=step) * (step + 1) + step
        close(ours(compgrad.from_numpy(x)), theirs(torch.from_numpy(x)))
    for (name, a), (_, b) in zip(ours.state_dict().items(), theirs.state_dict().items()):
        close(a, b)
        assert str(a.dtype).split(".")[1] == str(b.dtype).split(".")[1], name
    theirs.eval()
    ours.eval()
    x = randn(*shape, seed=9)
    compare_eval = (ours(compgrad.from_numpy(x)), theirs(torch.from_numpy(x)))
    close(*compare_eval)
    if theirs.track_running_stats:
        assert int(ours.num_batches_tracked) == int(theirs.num_batches_tracked) == 4


@needs_bn
def test_batch_norm_eval_grads():
    def make(nn):
        m = nn.BatchNorm2d(3)
        m.eval()
        return m
    theirs, ours = make(torch.nn), make(nn)
    with torch.no_grad():
        theirs.running_mean.copy_(torch.tensor([0.5, -1.0, 2.0]))
        theirs.running_var.copy_(torch.tensor([2.0, 0.5, 1.5]))
        theirs.weight.copy_(torch.tensor([1.5, 0.5, -1.0]))
    copy_state(theirs, ours)
    x = randn(2, 3, 4, 4)
    tx = torch.from_numpy(x).requires_grad_()
    cx = compgrad.from_numpy(x.copy()).requires_grad_()
    to, co = theirs(tx), ours(cx)
    close(co, to)
    to.sum().backward()
    co.sum().backward()
    close(cx.grad, tx.grad)
    close(ours.weight.grad, theirs.weight.grad)
    close(ours.bias.grad, theirs.bias.grad)
    assert int(ours.num_batches_tracked) == 0


def test_batch_norm_buffers_and_repr():
    for make in (lambda nn: nn.BatchNorm1d(4), lambda nn: nn.BatchNorm2d(3, momentum=None),
                 lambda nn: nn.BatchNorm2d(3, affine=False, track_running_stats=False),
                 lambda nn: nn.BatchNorm1d(2, bias=False)):
        ours, theirs = make(nn), make(torch.nn)
        assert repr(ours) == repr(theirs)
        assert list(ours.state_dict()) == list(theirs.state_dict())
        for (_, a), (_, b) in zip(ours.state_dict().items(), theirs.state_dict().items()):
            np.testing.assert_array_equal(to_np(a), to_np(b))
    m = nn.BatchNorm1d(4)
    assert m.num_batches_tracked.dtype == compgrad.int64
    assert list(m.state_dict()) == ["weight", "bias", "running_mean", "running_var",
                                    "num_batches_tracked"]


def test_batch_norm_input_dim_errors():
    with pytest.raises(ValueError, match=r"expected 2D or 3D input \(got 4D input\)"):
        nn.BatchNorm1d(3)(compgrad.randn(2, 3, 4, 4))
    with pytest.raises(ValueError, match=r"expected 4D input \(got 3D input\)"):
        nn.BatchNorm2d(3)(compgrad.randn(2, 3, 4))


@needs_bn
def test_batch_norm_reset_running_stats():
    m = nn.BatchNorm1d(3)
    m(compgrad.randn(5, 3) * 3 + 1)
    m.reset_running_stats()
    close(m.running_mean, np.zeros(3, np.float32))
    close(m.running_var, np.ones(3, np.float32))
    assert int(m.num_batches_tracked) == 0


@needs["layer_norm"]
@pytest.mark.parametrize("make, shape", [
    (lambda nn: nn.LayerNorm(6), (4, 6)),
    (lambda nn: nn.LayerNorm((3, 4)), (2, 3, 4)),
    (lambda nn: nn.LayerNorm([4], elementwise_affine=False), (2, 3, 4)),
    (lambda nn: nn.LayerNorm(4, bias=False, eps=1e-3), (5, 4)),
])
def test_layer_norm(make, shape):
    def perturbed(nn):  # non-trivial affine parameters so their gradients matter
        m = make(nn)
        if m.weight is not None:
            with (torch.no_grad() if nn is torch.nn else compgrad.no_grad()):
                m.weight.mul_(1.5)
        return m
    compare(torch, perturbed, randn(*shape) * 2 + 1)


def test_layer_norm_repr():
    assert repr(nn.LayerNorm(16)) == \
        "LayerNorm((16,), eps=1e-05, elementwise_affine=True, bias=True)"
    for make in (lambda nn: nn.LayerNorm([3, 4], elementwise_affine=False),
                 lambda nn: nn.LayerNorm(5, bias=False)):
        assert repr(make(nn)) == repr(make(torch.nn))
        assert list(make(nn).state_dict()) == list(make(torch.nn).state_dict())


@needs["group_norm"]
@pytest.mark.parametrize("make, shape", [
    (lambda nn: nn.GroupNorm(2, 6), (3, 6, 4)),
    (lambda nn: nn.GroupNorm(3, 6, affine=False), (2, 6, 2, 3)),
    (lambda nn: nn.GroupNorm(1, 4, eps=1e-3), (2, 4, 5)),
])
def test_group_norm(make, shape):
    compare(torch, make, randn(*shape) * 3 - 1)


def test_group_norm_repr_and_errors():
    assert repr(nn.GroupNorm(2, 4)) == repr(torch.nn.GroupNorm(2, 4))
    assert repr(nn.GroupNorm(2, 4, bias=False)) == repr(torch.nn.GroupNorm(2, 4, bias=False))
    with pytest.raises(ValueError, match=r"num_channels \(5\) must be divisible by num_groups"):
        nn.GroupNorm(2, 5)


# --- dropout -----------------------------------------------------------------------------

def test_dropout_eval_is_identity_and_train_rate():
    m = nn.Dropout(0.3)
    assert repr(m) == repr(torch.nn.Dropout(0.3)) == "Dropout(p=0.3, inplace=False)"
    x = compgrad.ones(200, 100)
    m.eval()
    assert m(x) is x or np.array_equal(to_np(m(x)), to_np(x))
    m.train()
    compgrad.manual_seed(0)
    y = to_np(m(x))
    kept = y != 0
    assert abs(kept.mean() - 0.7) < 0.02
    np.testing.assert_allclose(y[kept], 1 / 0.7, rtol=1e-6)


def test_dropout_gradient_uses_mask():
    m = nn.Dropout(0.5)
    x = compgrad.ones(50, 20, requires_grad=True)
    y = m(x)
    y.sum().backward()
    np.testing.assert_allclose(to_np(x.grad), to_np(y), rtol=1e-6)


def test_dropout_inplace_and_bounds():
    m = nn.Dropout(0.5, inplace=True)
    assert repr(m) == "Dropout(p=0.5, inplace=True)"
    x = compgrad.ones(10, 10)
    y = m(x)
    np.testing.assert_array_equal(to_np(x), to_np(y))
    for p in (-0.1, 1.5):
        with pytest.raises(ValueError, match="dropout probability has to be between 0 and 1"):
            nn.Dropout(p)
    assert np.all(to_np(nn.Dropout(1.0)(compgrad.ones(5, 5))) == 0)


@pytest.mark.parametrize("cls, shape", [("Dropout1d", (20, 30, 6)), ("Dropout2d", (20, 30, 3, 4)),
                                        ("Dropout1d", (40, 5))])
def test_channel_dropout(cls, shape):
    m = getattr(nn, cls)(0.4)
    assert repr(m) == repr(getattr(torch.nn, cls)(0.4))
    compgrad.manual_seed(0)
    y = to_np(m(compgrad.ones(*shape)))
    per_channel = y.reshape(shape[0], shape[1], -1) if len(shape) > 2 else y[..., None]
    # a channel is dropped or kept as a whole
    assert np.all((per_channel == 0).all(-1) | (per_channel != 0).all(-1))
    kept = per_channel[..., 0] != 0
    assert abs(kept.mean() - 0.6) < 0.06
    np.testing.assert_allclose(per_channel[kept], 1 / 0.6, rtol=1e-6)
    m.eval()
    np.testing.assert_array_equal(to_np(m(compgrad.ones(*shape))), np.ones(shape))


def test_dropout2d_3d_input_warns():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        nn.Dropout2d(0.5)(compgrad.ones(2, 3, 4))
    assert any("dropout2d" in str(w.message) for w in caught)


# --- embedding ---------------------------------------------------------------------------

@pytest.mark.parametrize("padding_idx", [None, 0, 3, -1])
def test_embedding(padding_idx):
    idx = np.array([[0, 2, 4], [3, 3, 1]], dtype=np.int64)
    theirs, ours = compare(torch, lambda nn: nn.Embedding(5, 3, padding_idx=padding_idx), idx)
    if padding_idx is not None:
        assert np.all(to_np(ours.weight.grad)[padding_idx] == 0)


def test_embedding_init_and_repr():
    compgrad.manual_seed(0)
    m = nn.Embedding(1000, 16, padding_idx=0)
    w = to_np(m.weight)
    assert np.all(w[0] == 0)
    assert abs(w[1:].mean()) < 0.02 and abs(w[1:].std() - 1) < 0.02
    assert repr(m) == "Embedding(1000, 16, padding_idx=0)"
    assert repr(nn.Embedding(5, 2, padding_idx=-1)) == repr(torch.nn.Embedding(5, 2,
                                                                               padding_idx=-1))
    assert nn.Embedding(5, 2, padding_idx=-1).padding_idx == 4
    with pytest.raises(AssertionError, match="Padding_idx must be within num_embeddings"):
        nn.Embedding(5, 2, padding_idx=5)


def test_embedding_from_pretrained():
    w = compgrad.tensor([[1.0, 2.3, 3.0], [4.0, 5.1, 6.3]])
    m = nn.Embedding.from_pretrained(w)
    assert not m.weight.requires_grad
    close(m(compgrad.tensor([1])), np.array([[4.0, 5.1, 6.3]], np.float32))
    m2 = nn.Embedding.from_pretrained(w, freeze=False, padding_idx=1)
    assert m2.weight.requires_grad and m2.padding_idx == 1
    assert repr(m2) == repr(torch.nn.Embedding.from_pretrained(torch.ones(2, 3), padding_idx=1))
    with pytest.raises(AssertionError, match="expected to be 2-dimensional"):
        nn.Embedding.from_pretrained(compgrad.ones(3))


# --- flatten -----------------------------------------------------------------------------

@pytest.mark.parametrize("make, shape", [
    (lambda nn: nn.Flatten(), (2, 3, 4, 5)),
    (lambda nn: nn.Flatten(0, 2), (2, 3, 4, 5)),
    (lambda nn: nn.Unflatten(1, (3, 4)), (2, 12, 5)),
    (lambda nn: nn.Unflatten(-1, [2, -1]), (2, 3, 8)),
])
def test_flatten_unflatten(make, shape):
    compare(torch, make, randn(*shape))


def test_unflatten_errors():
    with pytest.raises(TypeError, match="unflattened_size must be tuple of ints"):
        nn.Unflatten(1, (2, 2.0))
    with pytest.raises(TypeError, match="unflattened_size must be a tuple of ints"):
        nn.Unflatten(1, 4)


# --- activations -------------------------------------------------------------------------

ACTIVATIONS = [
    lambda nn: nn.ReLU(), lambda nn: nn.ReLU6(), lambda nn: nn.LeakyReLU(),
    lambda nn: nn.LeakyReLU(0.2), lambda nn: nn.ELU(), lambda nn: nn.ELU(alpha=0.5),
    lambda nn: nn.SELU(), lambda nn: nn.CELU(), lambda nn: nn.CELU(2.0), lambda nn: nn.GELU(),
    lambda nn: nn.GELU(approximate="tanh"), lambda nn: nn.SiLU(), lambda nn: nn.Mish(),
    lambda nn: nn.Sigmoid(), lambda nn: nn.Tanh(), lambda nn: nn.Softmax(dim=1),
    lambda nn: nn.Softmax(dim=-1), lambda nn: nn.LogSoftmax(dim=0), lambda nn: nn.Softplus(),
    lambda nn: nn.Softplus(beta=2.0, threshold=1.0), lambda nn: nn.Hardtanh(),
    lambda nn: nn.Hardtanh(-2.0, 0.5), lambda nn: nn.Hardsigmoid(), lambda nn: nn.Hardswish(),
    lambda nn: nn.Softsign(), lambda nn: nn.Tanhshrink(), lambda nn: nn.Threshold(0.1, 20.0),
    lambda nn: nn.LogSigmoid(), lambda nn: nn.Hardshrink(), lambda nn: nn.Softshrink(0.3),
]


@pytest.mark.parametrize("make", ACTIVATIONS, ids=lambda m: repr(m(nn)))
def test_activation(make):
    x = randn(4, 5) * 3
    compare(torch, make, x)


INPLACE = [lambda nn: nn.ReLU(inplace=True), lambda nn: nn.ReLU6(True),
           lambda nn: nn.LeakyReLU(0.1, inplace=True), lambda nn: nn.ELU(inplace=True),
           lambda nn: nn.SELU(True), lambda nn: nn.CELU(inplace=True),
           lambda nn: nn.SiLU(True), lambda nn: nn.Mish(True), lambda nn: nn.Hardtanh(
               inplace=True), lambda nn: nn.Hardsigmoid(True), lambda nn: nn.Hardswish(True),
           lambda nn: nn.Threshold(0.0, -1.0, True)]


@pytest.mark.parametrize("make", INPLACE, ids=lambda m: repr(m(nn)))
def test_activation_inplace(make):
    theirs, ours = make(torch.nn), make(nn)
    assert repr(ours) == repr(theirs)
    x = randn(3, 4) * 3
    tx, cx = torch.from_numpy(x.copy()), compgrad.from_numpy(x.copy())
    to, co = theirs(tx), ours(cx)
    close(co, to)
    close(cx, tx)  # the input itself was overwritten
    # in-place on a non-leaf keeps gradients flowing, as in torch
    tl = torch.from_numpy(x.copy()).requires_grad_()
    cl = compgrad.from_numpy(x.copy()).requires_grad_()
    theirs(tl * 1.0).sum().backward()
    ours(cl * 1.0).sum().backward()
    close(cl.grad, tl.grad)


def test_activation_repr_and_errors():
    for make in ACTIVATIONS + INPLACE:
        assert repr(make(nn)) == repr(make(torch.nn))
    with pytest.raises(AssertionError, match=r"max_val \(1\) must be greater than min_val"):
        nn.Hardtanh(2, 1)
    with pytest.warns(FutureWarning, match="min_value"):
        m = nn.Hardtanh(min_value=-3.0)
    assert m.min_val == -3.0


# --- whole models ------------------------------------------------------------------------

def test_mlp_parameter_count_and_state_dict():
    def make(nn):
        return nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Dropout(0.1), nn.Linear(32, 3),
                             nn.LayerNorm(3), nn.Embedding(7, 3, padding_idx=0),
                             nn.BatchNorm1d(3))
    ours, theirs = make(nn), make(torch.nn)
    assert sum(p.numel() for p in ours.parameters()) == \
        sum(p.numel() for p in theirs.parameters())
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert repr(ours) == repr(theirs)


@needs["conv2d"]
@needs["max_pool2d"]
def test_small_cnn_matches_torch():
    def make(nn):
        return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Conv2d(4, 6, 3, stride=2), nn.Tanh(), nn.Flatten(),
                             nn.Linear(6, 5))
    compare(torch, make, randn(2, 3, 8, 8))


def test_module_to_double_moves_buffers():
    m = nn.BatchNorm1d(3).double()
    assert m.weight.dtype == compgrad.float64 and m.running_mean.dtype == compgrad.float64
    assert m.num_batches_tracked.dtype == compgrad.int64

"""Random factories and in-place random methods: reproducibility, independence,
distributions, signatures (against PyTorch where values don't matter)."""

from __future__ import annotations

import numpy as np
import pytest

import compgrad
from compgrad import random as R

N = 100_000


def _np(t):
    return np.asarray(t._data)


def test_same_seed_same_numbers():
    R.manual_seed(123)
    a = _np(R.rand(5)), _np(R.randn(2, 3)), _np(R.randint(0, 100, (4,))), _np(R.randperm(6))
    R.manual_seed(123)
    b = _np(R.rand(5)), _np(R.randn(2, 3)), _np(R.randint(0, 100, (4,))), _np(R.randperm(6))
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


def test_calls_differ():
    R.manual_seed(0)
    assert not np.array_equal(_np(R.rand(10)), _np(R.rand(10)))
    assert not np.array_equal(_np(R.randn(10)), _np(R.randn(10)))


def test_generators_are_independent():
    g1, g2 = R.Generator().manual_seed(7), R.Generator().manual_seed(7)
    x = _np(R.randn(8, generator=g1))
    R.manual_seed(99)
    R.rand(100)  # advancing the default generator changes nothing in g2
    np.testing.assert_array_equal(x, _np(R.randn(8, generator=g2)))
    g3 = R.Generator().manual_seed(8)
    assert not np.array_equal(_np(R.randn(8, generator=g3)), x)


def test_state_replay():
    g = R.Generator().manual_seed(5)
    R.rand(3, generator=g)
    state = g.get_state()
    a = _np(R.randn(4, generator=g))
    g.set_state(state)
    np.testing.assert_array_equal(a, _np(R.randn(4, generator=g)))
    s = R.get_rng_state()
    c = _np(R.rand(4))
    R.set_rng_state(s)
    np.testing.assert_array_equal(c, _np(R.rand(4)))
    before = _np(R.get_rng_state()).copy()
    with R.fork_rng():
        R.rand(10)
    np.testing.assert_array_equal(before, _np(R.get_rng_state()))


def test_distributions():
    R.manual_seed(1)
    u = _np(R.rand(N))
    assert u.dtype == np.float32 and u.min() >= 0 and u.max() < 1
    assert abs(u.mean() - 0.5) < 0.01 and abs(u.std() - (1 / 12) ** 0.5) < 0.01
    z = _np(R.randn(N, dtype=compgrad.float64))
    assert z.dtype == np.float64 and abs(z.mean()) < 0.02 and abs(z.std() - 1) < 0.02
    n = _np(R.normal(3.0, 2.0, (N,)))
    assert abs(n.mean() - 3) < 0.05 and abs(n.std() - 2) < 0.05
    e = compgrad.zeros(N).exponential_(2.0)
    assert abs(_np(e).mean() - 0.5) < 0.01 and _np(e).min() >= 0
    w = compgrad.zeros(N).uniform_(-2, 4)
    assert _np(w).min() >= -2 and _np(w).max() < 4 and abs(_np(w).mean() - 1) < 0.05
    m = compgrad.zeros(N).normal_(-1, 0.5)
    assert abs(_np(m).mean() + 1) < 0.01 and abs(_np(m).std() - 0.5) < 0.01
    b = _np(R.bernoulli(compgrad.full((N,), 0.3)))
    assert set(np.unique(b)) <= {0.0, 1.0} and abs(b.mean() - 0.3) < 0.01
    r = _np(R.randint(-3, 4, (N,)))
    assert r.dtype == np.int64 and r.min() == -3 and r.max() == 3
    assert abs(r.mean()) < 0.03
    h = _np(R.rand(N, dtype=compgrad.float16))
    assert h.dtype == np.float16 and h.max() < 1


def test_randperm_is_permutation():
    p = _np(R.randperm(1000))
    assert p.dtype == np.int64 and sorted(p.tolist()) == list(range(1000))
    assert _np(R.randperm(0)).shape == (0,)
    assert _np(R.randperm(5, dtype=compgrad.float32)).dtype == np.float32


def test_multinomial():
    probs = compgrad.tensor([0.1, 0.0, 0.6, 0.3])
    s = _np(R.multinomial(probs, 20_000, replacement=True))
    counts = np.bincount(s, minlength=4) / s.size
    np.testing.assert_allclose(counts, [0.1, 0.0, 0.6, 0.3], atol=0.02)
    s = _np(R.multinomial(probs, 3))
    assert len(set(s.tolist())) == 3 and 1 not in s.tolist()
    rows = _np(compgrad.ones(5, 6).multinomial(6))
    assert all(sorted(r) == list(range(6)) for r in rows.tolist())


def test_signatures_and_dtypes():
    assert R.rand(2, 3).shape == (2, 3) and R.rand((2, 3)).shape == (2, 3)
    assert R.randn(size=(4,)).shape == (4,)
    assert R.randint(10, (3,)).shape == (3,)
    assert R.randint(3, 10, size=(2,)).shape == (2,)
    assert R.randint(10, size=(2,)).shape == (2,)
    assert R.randint(high=10, size=(2,)).shape == (2,)
    assert R.randint(0, 10, (3,), dtype=compgrad.float32).dtype is compgrad.float32
    x = compgrad.ones(2, 3, dtype=compgrad.float64)
    assert R.rand_like(x).dtype is compgrad.float64
    assert R.randn_like(x).shape == (2, 3)
    rl = R.randint_like(x, 5)
    assert rl.dtype is compgrad.float64 and _np(rl).max() < 5
    assert _np(R.randint_like(x, 3, 5)).min() >= 3
    n = R.normal(compgrad.zeros(2, 1, dtype=compgrad.float64), compgrad.ones(3))
    assert n.shape == (2, 3) and n.dtype is compgrad.float64
    assert R.normal(0.0, compgrad.ones(3, dtype=compgrad.float64)).dtype is compgrad.float64
    t = R.rand(2, 2, requires_grad=True)
    assert t.requires_grad and t.is_leaf
    assert compgrad.zeros(3).bernoulli(0.5).shape == (3,)
    assert compgrad.ones(3).bernoulli().tolist() == [1.0, 1.0, 1.0]


def test_inplace_methods_write_and_keep_dtype():
    t = compgrad.zeros(4, dtype=compgrad.int32)
    v = t._version_value
    assert t.random_(5, 8) is t and t._version_value == v + 1
    assert t.dtype is compgrad.int32 and set(_np(t).tolist()) <= {5, 6, 7}
    assert set(_np(compgrad.zeros(50).random_(3)).tolist()) <= {0.0, 1.0, 2.0}
    big = _np(compgrad.zeros(1000).random_())
    assert big.max() <= 2 ** 24 and big.max() > 2 ** 20
    assert set(_np(compgrad.zeros(10, dtype=compgrad.bool).random_()).tolist()) <= {0, 1}
    assert _np(compgrad.zeros(10, dtype=compgrad.uint8).random_()).dtype == np.uint8
    b = compgrad.zeros(6, dtype=compgrad.int64).bernoulli_(1.0)
    assert b.tolist() == [1] * 6
    p = compgrad.tensor([0.0, 1.0, 0.0])
    assert compgrad.zeros(3).bernoulli_(p).tolist() == [0.0, 1.0, 0.0]
    base = compgrad.zeros(4, 4)
    base[1].uniform_(2, 3)  # a view: writes show in the base
    row = _np(base)[1]
    assert row.min() >= 2 and row.max() < 3 and _np(base)[0].sum() == 0


def test_generator_kwarg_in_methods():
    g = R.Generator().manual_seed(3)
    a = _np(compgrad.zeros(5).normal_(generator=g))
    g.manual_seed(3)
    np.testing.assert_array_equal(a, _np(compgrad.zeros(5).normal_(generator=g)))


def test_errors_match_torch():
    torch = pytest.importorskip("torch")
    cases = [
        (lambda m: m.rand(3, dtype=m.int64), NotImplementedError),
        (lambda m: m.randn(3, dtype=m.int64), NotImplementedError),
        (lambda m: m.rand(-1), RuntimeError),
        (lambda m: m.rand(2.5), TypeError),
        (lambda m: m.randint(5, 5, (2,)), RuntimeError),
        (lambda m: m.randint(0, 300, (2,), dtype=m.uint8), RuntimeError),
        (lambda m: m.randperm(-1), RuntimeError),
        (lambda m: m.normal(m.zeros(3), -1.0), RuntimeError),
        (lambda m: m.normal(m.zeros(3), -m.ones(3)), RuntimeError),
        (lambda m: m.normal(m.zeros(2), m.ones(3)), RuntimeError),
        (lambda m: m.bernoulli(m.full((3,), 1.5)), RuntimeError),
        (lambda m: m.ones(3).bernoulli_(1.5), RuntimeError),
        (lambda m: m.ones(3).uniform_(2, 1), RuntimeError),
        (lambda m: m.ones(3).normal_(0, -1), RuntimeError),
        (lambda m: m.ones(3).exponential_(0), RuntimeError),
        (lambda m: m.ones(3, dtype=m.int64).exponential_(), RuntimeError),
        (lambda m: m.ones(3, dtype=m.int64).uniform_(), NotImplementedError),
        (lambda m: m.ones(3).random_(5, 2), RuntimeError),
        (lambda m: m.multinomial(m.tensor([0.0, 0.0]), 1), RuntimeError),
        (lambda m: m.multinomial(m.ones(2, 2, 3), 2), RuntimeError),
        (lambda m: m.multinomial(m.ones(3), 4), RuntimeError),
    ]
    ns = type("ns", (), {})()
    for name in dir(compgrad):
        setattr(ns, name, getattr(compgrad, name))
    for name in R.__all__:
        setattr(ns, name, getattr(R, name))
    for call, exc in cases:
        with pytest.raises(exc):
            call(ns)
        with pytest.raises(exc):
            call(torch)


def test_normal_and_bernoulli_pass_zero_grads():
    from ir.ops import random as rops
    from ir.vjp import call_vjp
    mean = compgrad.zeros(3)
    out = R.normal(mean, 1.0)
    g = call_vjp(rops.NORMAL, (R.default_generator.get_state(), mean, 1.0), (out,),
                 {"shape": (3,), "dtype": compgrad.float32, "device": mean.device},
                 (compgrad.ones(3),))
    assert g[0] is None and g[2] is None and g[1].tolist() == [0.0, 0.0, 0.0]

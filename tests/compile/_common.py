"""Shared helpers for the @compile tests: run the same code eagerly and compiled and
compare values, parameters, buffers and optimizer state."""

from __future__ import annotations

import numpy as np

import compgrad
from compgrad.tensor import Tensor

# every compiled test runs on both backends that execute captured graphs
BACKENDS = ("interpret", "numba")


def to_np(x) -> np.ndarray:
    """A copy of a tensor's (or array's) values."""
    if isinstance(x, Tensor):
        return np.array(x.detach().numpy())
    return np.array(x)


# a few ulp of float32 / float64 (kernels vs the NumPy reference)
ULP_RTOL = {"f4": 2e-6, "f8": 1e-12}


def assert_same(a, b, atol: float = 0.0, msg: str = "", requires_grad: bool = True) -> None:
    """Equal values (within a few ulp, or within ``atol``), shapes, dtypes and (unless
    ``requires_grad=False``) ``requires_grad``; recurses into tuples, lists and dicts;
    None matches None. A few ulp: generated kernels compute transcendentals with
    their own inline functions (codegen.mathfns), not NumPy's."""
    if a is None or b is None:
        assert a is None and b is None, f"{msg}: {a!r} vs {b!r}"
        return
    if isinstance(a, (tuple, list)):
        assert type(a) is type(b) and len(a) == len(b), f"{msg}: {a!r} vs {b!r}"
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, atol, f"{msg}[{i}]", requires_grad)
        return
    if isinstance(a, dict):
        assert list(a) == list(b), msg
        for k in a:
            assert_same(a[k], b[k], atol, f"{msg}[{k!r}]", requires_grad)
        return
    if isinstance(a, Tensor):
        assert isinstance(b, Tensor), f"{msg}: Tensor vs {type(b).__name__}"
        assert a.dtype is b.dtype, f"{msg}: dtype {a.dtype} vs {b.dtype}"
        assert tuple(a.shape) == tuple(b.shape), f"{msg}: shape {a.shape} vs {b.shape}"
        if requires_grad:
            assert a.requires_grad == b.requires_grad, f"{msg}: requires_grad differs"
        expected = to_np(a)
        rtol = ULP_RTOL.get(expected.dtype.kind + str(expected.dtype.itemsize), 0.0)
        np.testing.assert_allclose(expected, to_np(b), rtol=rtol, atol=atol, err_msg=msg)
        return
    if isinstance(a, float):
        assert isinstance(b, float), f"{msg}: {a!r} vs {b!r}"
        assert abs(a - b) <= atol + 2e-6 * abs(a) or a == b, f"{msg}: {a!r} vs {b!r}"
        return
    assert a == b, f"{msg}: {a!r} vs {b!r}"


def module_state(model) -> dict[str, np.ndarray]:
    """Parameters, buffers and parameter grads as arrays."""
    out = {k: to_np(v) for k, v in model.state_dict().items()}
    for k, p in model.named_parameters():
        out[k + ".grad"] = None if p.grad is None else to_np(p.grad)
    return out


def optimizer_state(opt) -> list:
    """Each parameter's optimizer state as arrays / numbers, in parameter order."""
    out = []
    for group in opt.param_groups:
        for p in group["params"]:
            st = opt.state.get(p, {})
            out.append({k: to_np(v) if isinstance(v, Tensor) else v for k, v in st.items()})
    return out


def assert_states_equal(a, b, atol: float = 0.0) -> None:
    """Equal :func:`module_state` / :func:`optimizer_state` results."""
    if isinstance(a, dict):
        assert list(a) == list(b)
        for k in a:
            assert_states_equal(a[k], b[k], atol) if isinstance(a[k], dict) else (
                _arr_equal(a[k], b[k], atol, k))
        return
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert_states_equal(x, y, atol)


def _arr_equal(x, y, atol, name) -> None:
    if x is None or y is None:
        assert x is None and y is None, name
        return
    np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=0, atol=atol, err_msg=str(name))


def seeded(seed: int = 0):
    """Seed compgrad's default generator (returns it)."""
    return compgrad.manual_seed(seed)


def class_batch(n: int, n_in: int, n_out: int, seed: int):
    """``n`` float32 inputs of ``n_in`` features and int64 class targets below ``n_out``."""
    rng = np.random.default_rng(seed)
    x = compgrad.tensor(rng.standard_normal((n, n_in)).astype(np.float32))
    y = compgrad.tensor(rng.integers(0, n_out, n), dtype=compgrad.int64)
    return x, y


def train_step(model, opt, x, y):
    """One classification training step (zero_grad, cross-entropy, backward, step); the
    loss."""
    opt.zero_grad()
    loss = compgrad.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    return loss

"""Build a layer in compgrad and in PyTorch with the same weights and compare them."""

from __future__ import annotations

import numpy as np

import compgrad


def to_np(t) -> np.ndarray:
    """A compgrad or torch tensor as a NumPy array (a copy)."""
    if isinstance(t, compgrad.Tensor):
        return np.array(t.detach().numpy())
    if isinstance(t, np.ndarray):
        return t.copy()
    return t.detach().numpy().copy()


def copy_state(theirs, ours) -> None:
    """Load torch's state_dict into ours (through NumPy); keys must match exactly."""
    state = theirs.state_dict()
    assert list(ours.state_dict().keys()) == list(state.keys())
    ours.load_state_dict({k: compgrad.from_numpy(v.detach().numpy().copy())
                          for k, v in state.items()})


def same_repr(theirs, ours) -> None:
    assert repr(ours) == repr(theirs).replace("torch.", "compgrad.")


def close(a, b, rtol: float = 1e-4, atol: float = 1e-5) -> None:
    a, b = to_np(a), to_np(b)
    assert a.shape == b.shape, (a.shape, b.shape)
    np.testing.assert_allclose(a, b, rtol=rtol, atol=atol)


def compare(torch, make, *inputs: np.ndarray, rtol: float = 1e-4, atol: float = 1e-5,
            grad: bool = True, seed: int = 0, call_kwargs: dict | None = None):
    """``make(nn)`` builds the layer in each library; compare repr, state_dict keys,
    parameter count, forward output and the gradients of inputs and parameters.
    Returns (theirs, ours) for further checks."""
    call_kwargs = call_kwargs or {}
    theirs, ours = make(torch.nn), make(compgrad.nn)
    same_repr(theirs, ours)
    copy_state(theirs, ours)
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    assert [n for n, _ in ours.named_buffers()] == [n for n, _ in theirs.named_buffers()]
    assert sum(p.numel() for p in ours.parameters()) == \
        sum(p.numel() for p in theirs.parameters())
    floating = [x.dtype.kind == "f" for x in inputs]
    t_in = [torch.from_numpy(x.copy()).requires_grad_(grad and f)
            for x, f in zip(inputs, floating)]
    c_in = [compgrad.from_numpy(x.copy()).requires_grad_(grad and f)
            for x, f in zip(inputs, floating)]
    t_out, c_out = theirs(*t_in, **call_kwargs), ours(*c_in, **call_kwargs)
    if isinstance(t_out, tuple):  # (values, indices) of return_indices
        for a, b in zip(c_out, t_out):
            close(a, b, rtol, atol)
        t_out, c_out = t_out[0], c_out[0]
    close(c_out, t_out, rtol, atol)
    if not grad:
        return theirs, ours
    g = np.random.default_rng(seed).standard_normal(tuple(t_out.shape)).astype(np.float32)
    t_out.backward(torch.from_numpy(g))
    c_out.backward(compgrad.from_numpy(g.copy()))
    for a, b, f in zip(c_in, t_in, floating):
        if f:
            close(a.grad, b.grad, rtol, atol)
    t_params = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        if t_params[name].grad is None:
            assert p.grad is None, name
        else:
            assert p.grad is not None, name
            close(p.grad, t_params[name].grad, rtol, atol)
    return theirs, ours


def randn(*shape: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)

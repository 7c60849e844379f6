"""NumPy by hand, the floor: the workloads' arithmetic with gradients written out.

Each function follows what torch computes (same loss reductions, same SGD update), so
its results are checked against torch eager's like every other contestant's. The same code
runs on CuPy arrays (the GPU suite's by-hand contestant): NumPy's ufuncs dispatch to CuPy,
and index arrays are made next to the data (``np.arange(n, like=...)``).
"""

from __future__ import annotations

from typing import Any

import numpy as np


class NumpyMLP:
    """An MLP with ReLU, cross-entropy or MSE loss and torch's SGD, gradients by hand.

    Parameters are named as ``nn.Sequential``'s state_dict (``0.weight``, ``0.bias``,
    ``2.weight``, ...). SGD follows torch: with momentum, the first step sets ``buf = g``
    and later ones ``buf = momentum * buf + g``; then ``p -= lr * buf``.
    """

    def __init__(self, state: dict[str, np.ndarray], loss: str, lr: float,
                 momentum: float) -> None:
        self.names = list(state)
        self.params = {k: v.copy() for k, v in state.items()}
        self.grads: dict[str, np.ndarray] = {}
        self.bufs: dict[str, np.ndarray] = {}
        self.loss, self.lr, self.momentum = loss, np.float32(lr), np.float32(momentum)

    def step(self, x: np.ndarray, y: np.ndarray) -> np.float32:
        layers = [k[:-len(".weight")] for k in self.names if k.endswith(".weight")]
        inputs, h = [], x
        for i, name in enumerate(layers):
            inputs.append(h)
            h = h @ self.params[f"{name}.weight"].T + self.params[f"{name}.bias"]
            if i < len(layers) - 1:
                h = np.maximum(h, 0)
        n = len(y)
        if self.loss == "ce":  # mean cross-entropy via a stable log-softmax
            z = h - h.max(axis=1, keepdims=True)
            e = np.exp(z)
            s = e.sum(axis=1, keepdims=True)
            rows = np.arange(n, like=h)
            loss = np.log(s[:, 0]).mean() - z[rows, y].mean()
            g = e / s
            g[rows, y] -= 1
            g *= np.float32(1.0 / n)
        else:  # mean squared error
            d = h - y
            loss = (d * d).mean()
            g = d * np.float32(2.0 / d.size)
        for i in range(len(layers) - 1, -1, -1):
            self.grads[f"{layers[i]}.weight"] = g.T @ inputs[i]
            self.grads[f"{layers[i]}.bias"] = g.sum(axis=0)
            if i:  # through the ReLU that produced layer i's input
                g = (g @ self.params[f"{layers[i]}.weight"]) * (inputs[i] > 0)
        for k, p in self.params.items():
            upd = self.grads[k]
            if self.momentum:
                if k in self.bufs:
                    self.bufs[k] *= self.momentum
                    self.bufs[k] += upd
                else:
                    self.bufs[k] = upd.copy()
                upd = self.bufs[k]
            p -= self.lr * upd
        return loss

    def state(self) -> dict[str, np.ndarray]:
        """Parameters and their last gradients, keyed as ``named_parameters`` (+ ``.grad``)."""
        out = {}
        for k in self.names:
            out[k] = self.params[k].copy()
            out[k + ".grad"] = self.grads[k].copy()
        return out


def gelu_sum_grad_numpy(x: np.ndarray) -> tuple[np.float32, np.ndarray]:
    """W3 by hand: ``sum(gelu(x))`` and d/dx (Python floats stay float32 under NEP 50)."""
    x2 = x * x
    t = np.tanh(0.7978845608 * (x + 0.044715 * x2 * x))
    s = (0.5 * x * (1 + t)).sum()
    grad = 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * 0.7978845608 * (1 + 3 * 0.044715 * x2)
    return s, grad


def log_softmax_nll_numpy(logits: np.ndarray, target: np.ndarray) -> tuple[Any, np.ndarray]:
    """W4 by hand: mean NLL of the log-softmax, and its gradient w.r.t. the logits."""
    n = logits.shape[0]
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    s = e.sum(axis=1, keepdims=True)
    rows = np.arange(n, like=logits)
    loss = np.log(s[:, 0]).mean() - z[rows, target].mean()
    grad = e / s
    grad[rows, target] -= 1
    grad *= np.float32(1.0 / n)
    return loss, grad


def layer_norm_vjp_numpy(x: np.ndarray, w: np.ndarray, b: np.ndarray, g: np.ndarray,
                         eps: float = 1e-5) -> tuple[np.ndarray, ...]:
    """W4 by hand: LayerNorm over the last axis, and (dx, dweight, dbias) for cotangent g."""
    mu = x.mean(axis=-1, keepdims=True)
    xc = x - mu
    rstd = 1 / np.sqrt((xc * xc).mean(axis=-1, keepdims=True) + np.float32(eps))
    xhat = xc * rstd
    y = xhat * w + b
    dxhat = g * w
    dx = rstd * (dxhat - dxhat.mean(axis=-1, keepdims=True)
                 - xhat * (dxhat * xhat).mean(axis=-1, keepdims=True))
    return y, dx, (g * xhat).sum(axis=0), g.sum(axis=0)


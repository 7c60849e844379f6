"""Softmax regression on scikit-learn's bundled 8x8 digits, with compgrad's eager tensors.

Autograd arrives with the next issue; until then the gradient of the
cross-entropy is written out by hand (softmax minus one-hot).
"""

from __future__ import annotations

import numpy as np
from sklearn.datasets import load_digits
from tqdm import tqdm

import compgrad as torch
import compgrad.nn.functional as F


def main(epochs: int = 200, lr: float = 0.5) -> float:
    digits = load_digits()
    x = torch.tensor(digits.data / 16.0, dtype=torch.float32)
    y = torch.tensor(digits.target)
    n_train = 1500
    x_train, y_train, x_test, y_test = x[:n_train], y[:n_train], x[n_train:], y[n_train:]

    torch.manual_seed(0)
    w = torch.randn(64, 10) * 0.01
    b = torch.zeros(10)
    targets = F.one_hot(y_train, 10).float()
    bar = tqdm(range(epochs), desc="training")
    for epoch in bar:
        logits = x_train @ w + b
        loss = -(F.log_softmax(logits, dim=1) * targets).sum(dim=1).mean()
        grad_logits = (F.softmax(logits, dim=1) - targets) / n_train
        w -= lr * (x_train.T @ grad_logits)
        b -= lr * grad_logits.sum(dim=0)
        if epoch % 20 == 0 or epoch == epochs - 1:
            bar.set_postfix(loss=f"{loss.item():.4f}")

    accuracy = (torch.argmax(x_test @ w + b, dim=1) == y_test).float().mean().item()
    print(f"test accuracy: {accuracy:.3f} on {len(y_test)} held-out digits")
    assert np.isfinite(accuracy)
    return accuracy


if __name__ == "__main__":
    main()

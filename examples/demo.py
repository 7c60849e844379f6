"""Train an MLP and a small CNN on scikit-learn's bundled 8x8 handwritten digits.

Ordinary PyTorch code with ``import compgrad as torch``: a Dataset and DataLoader,
``nn.Module`` models, CrossEntropyLoss, Adam, a progress bar per epoch, held-out
accuracy, and a checkpoint saved and loaded back. No download: the digits ship
with scikit-learn.

    python examples/demo.py [--epochs 15] [--model mlp|cnn|both] [--compile]
                            [--device cpu|cuda]

``--compile`` puts ``@compgrad.compile`` on the training step: zero_grad,
forward, backward and the Adam update are captured as one graph per batch
shape and run as compiled programs, with the same results as eager.

``--device cuda`` trains on the GPU as in PyTorch: the models move there
(``model.to(device)``) and each batch follows (``x.to(device)``); the
DataLoader stays on the CPU. Without a GPU it says why and exits.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from tqdm import tqdm

import compgrad as torch
from compgrad import nn
from compgrad.utils.data import DataLoader, TensorDataset


class MLP(nn.Module):
    def __init__(self, hidden: int = 128):
        super().__init__()
        self.net = nn.Sequential(
            nn.Flatten(), nn.Linear(64, hidden), nn.ReLU(), nn.Dropout(0.1),
            nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 10))

    def forward(self, x):
        return self.net(x)


class CNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, kernel_size=3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
            nn.MaxPool2d(2),                                   # 8x8 -> 4x4
            nn.Conv2d(16, 32, kernel_size=3, padding=1), nn.ReLU(),
            nn.MaxPool2d(2))                                   # 4x4 -> 2x2
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(32 * 2 * 2, 10))

    def forward(self, x):
        return self.classifier(self.features(x))


def load_data(seed: int = 0):
    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)[:, None]      # N, 1, 8, 8
    x_train, x_test, y_train, y_test = train_test_split(
        images, digits.target, test_size=0.2, random_state=seed, stratify=digits.target)
    train = TensorDataset(torch.from_numpy(x_train), torch.from_numpy(y_train))
    test = TensorDataset(torch.from_numpy(x_test), torch.from_numpy(y_test))
    return train, test


def evaluate(model: nn.Module, loader: DataLoader, device: str = "cpu") -> float:
    model.eval()
    correct = total = 0
    with torch.no_grad():
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            correct += (model(x).argmax(dim=1) == y).sum().item()
            total += len(y)
    return correct / total


def train(name: str, model: nn.Module, train_set, test_set, epochs: int, lr: float,
          compile_step: bool = False, device: str = "cpu") -> float:
    model.to(device)   # before the optimizer is made, as in PyTorch
    generator = torch.Generator().manual_seed(0)
    train_loader = DataLoader(train_set, batch_size=64, shuffle=True, generator=generator)
    test_loader = DataLoader(test_set, batch_size=256)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss()

    def train_step(x, y):
        optimizer.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
        return loss

    step = torch.compile(train_step) if compile_step else train_step
    start = time.perf_counter()
    for epoch in range(epochs):
        model.train()
        bar = tqdm(train_loader, desc=f"{name} epoch {epoch + 1}/{epochs}", leave=False)
        for x, y in bar:
            loss = step(x.to(device), y.to(device))
            bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
    seconds = time.perf_counter() - start
    if compile_step:
        report = step.explain()
        print(f"{name}: compiled step: {report.graph_count} graph(s) and "
              f"{report.graph_break_count} graph breaks per step; {report.program_count} "
              f"programs compiled over {report.calls} steps, {report.cache_hits} cache hits")
    accuracy = evaluate(model, test_loader, device)
    print(f"{name}: held-out accuracy {accuracy:.4f} on {len(test_set)} digits "
          f"({epochs} epochs, {seconds:.1f} s)")

    # a checkpoint of model and optimizer, loaded back into fresh objects
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, f"{name}.ckpt")
        torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                    "epoch": epochs}, path)
        checkpoint = torch.load(path, map_location=device)
    restored = type(model)().to(device)
    restored.load_state_dict(checkpoint["model"])
    torch.optim.Adam(restored.parameters(), lr=lr).load_state_dict(checkpoint["optimizer"])
    reloaded = evaluate(restored, test_loader, device)
    print(f"{name}: checkpoint reloaded (epoch {checkpoint['epoch']}), accuracy {reloaded:.4f}")
    assert reloaded == accuracy
    return accuracy


def main(argv=None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--model", choices=["mlp", "cnn", "both"], default="both")
    parser.add_argument("--compile", action="store_true",
                        help="run the training step with @compgrad.compile")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                        help="where the models and batches live (default cpu)")
    args = parser.parse_args(argv)
    try:
        device = torch.device(args.device)
        torch.empty(0, device=device)   # no GPU: CudaUnavailableError, saying why
    except torch.cuda.CudaUnavailableError as exc:
        parser.exit(2, f"{parser.prog}: --device {args.device}: {exc}\n")
    where = torch.cuda.get_device_name() if device.type == "cuda" else "the CPU"
    print(f"device: {device} ({where})")
    torch.manual_seed(0)
    train_set, test_set = load_data()
    results = {}
    if args.model in ("mlp", "both"):
        results["mlp"] = train("mlp", MLP(), train_set, test_set, args.epochs, lr=1e-3,
                                compile_step=args.compile, device=device)
    if args.model in ("cnn", "both"):
        results["cnn"] = train("cnn", CNN(), train_set, test_set, args.epochs, lr=3e-3,
                                compile_step=args.compile, device=device)
    return results


if __name__ == "__main__":
    main()

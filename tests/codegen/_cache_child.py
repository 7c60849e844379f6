"""A separate process for tests/codegen/test_cache.py: loads the test kernel through a
KernelCache in ``argv[1]``, runs it, prints a JSON report.

``python -m tests.codegen._cache_child <cache dir> [<barrier dir> <n>]``: with a
barrier, the child announces itself there after its imports and waits until ``n``
children have, so that they load and compile at the same moment.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from codegen.cache import KernelCache, compile_counts
from codegen.source import kernel_module

SOURCE = kernel_module(['''@njit(cache=True, error_model="numpy")
def kernel(x, out):
    for i in range(x.shape[0]):
        out[i] = _mf.tanh_f32(x[i]) * np.float32(2.0) + np.float32(1.0)
'''], header="tests/codegen/test_cache.py kernel")


def expected(x: np.ndarray) -> np.ndarray:
    return np.tanh(x) * np.float32(2.0) + np.float32(1.0)


def _barrier(directory: Path, n: int, timeout: float = 60.0) -> None:
    (directory / f"ready.{os.getpid()}").touch()
    deadline = time.monotonic() + timeout
    while len(list(directory.glob("ready.*"))) < n and time.monotonic() < deadline:
        time.sleep(0.001)


def main(argv: list[str]) -> None:
    cache = KernelCache(argv[0])
    if len(argv) > 2:
        _barrier(Path(argv[1]), int(argv[2]))
    kernel = cache.load(SOURCE, "kernel")
    x = np.linspace(-3.0, 3.0, 101, dtype=np.float32)
    out = np.empty_like(x)
    kernel(x, out)
    loaded, compiled = compile_counts(kernel)
    ok = bool(np.allclose(out, expected(x), rtol=1e-6, atol=1e-6))
    print(json.dumps({"ok": ok, "loaded": loaded, "compiled": compiled,
                      "stats": vars(cache.stats),
                      "numba_dir": str(kernel._cache.cache_path)}))


if __name__ == "__main__":
    main(sys.argv[1:])

"""The loop every CUDA check subprocess runs: each named case checked with a fresh
kernel cache, its failure caught as a traceback, its time recorded, and the results
written as JSON for the test process (``conftest.cuda_checks``) to read. Imports
nothing of Numba, so the simulator's and the PTX compiler's processes both use it."""

from __future__ import annotations

import json
import tempfile
import time
import traceback
from collections.abc import Callable, Iterable


def run_cases(out: str, names: Iterable[str], check: Callable[[str, str], dict],
              prefix: str, failed: Callable[[str], dict] | None = None) -> None:
    """``check(name, cache_dir)`` for each of ``names``, into the JSON file ``out``.
    A case that raises gets ``failed(traceback)`` (default: ``{"failures": [it]}``)."""
    results = {}
    with tempfile.TemporaryDirectory(prefix=prefix) as cache_dir:
        for name in names:
            start = time.perf_counter()
            try:
                results[name] = check(name, cache_dir)
            except Exception:
                tb = traceback.format_exc()
                results[name] = failed(tb) if failed is not None else {"failures": [tb]}
            results[name]["seconds"] = round(time.perf_counter() - start, 2)
    write_results(out, results)


def write_results(out: str, results: dict) -> None:
    with open(out, "w") as f:
        json.dump(results, f, indent=1)

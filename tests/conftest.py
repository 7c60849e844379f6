"""Test configuration: caches in a temporary directory, torch optional."""

import os
import tempfile

# Tests must not depend on a warm Numba or compgrad cache.
_CACHE = tempfile.mkdtemp(prefix="compgrad-test-cache-")
os.environ.setdefault("NUMBA_CACHE_DIR", os.path.join(_CACHE, "numba"))
os.environ.setdefault("COMPGRAD_CACHE_DIR", os.path.join(_CACHE, "compgrad"))

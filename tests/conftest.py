"""Test configuration: caches in a temporary directory, torch optional."""

import os
import tempfile

# Tests must not depend on a warm Numba or compgrad cache.
_CACHE = tempfile.mkdtemp(prefix="compgrad-test-cache-")
os.environ.setdefault("NUMBA_CACHE_DIR", os.path.join(_CACHE, "numba"))
os.environ.setdefault("COMPGRAD_CACHE_DIR", os.path.join(_CACHE, "compgrad"))

# Every graph a test verifies is also printed, parsed back and printed again
# (ir.verify checks the text is unchanged), so passes exercise the IR text form.
os.environ.setdefault("COMPGRAD_VERIFY_ROUNDTRIP", "1")

"""The code generator's tests exercise kernels at small sizes: rows groups get a kernel
whatever their size here (the runtime skips the kernel of a small rows group to save
its compile time; tests/codegen/test_runtime.py checks that rule on its own).
Package-scoped, so module-scoped fixtures that compile programs see it too."""

from __future__ import annotations

import pytest

from codegen import runtime


@pytest.fixture(autouse=True, scope="package")
def rows_kernels_at_every_size():
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(runtime, "ROWS_KERNEL_MIN_ELEMENTS", 0)
        yield

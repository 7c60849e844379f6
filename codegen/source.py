"""Building generated Python source: indented lines, and whole kernel modules.

Generated kernels are ordinary Python modules that Numba compiles; they are
written to files by :mod:`codegen.cache` (so Numba's disk cache works) and
dumped for users (``COMPGRAD_DUMP``), so they should read like code a person
wrote.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator

from codegen.mathfns import MODULE_ALIAS

__all__ = ["SourceBuilder", "kernel_module", "PRELUDE"]

# the names generated expressions use (codegen.scalar writes np.float32(...), _mf.exp_f32(...))
PRELUDE = f"import math\nimport numpy as np\nimport codegen.mathfns as {MODULE_ALIAS}\n"


class SourceBuilder:
    """Lines of Python source with an indentation level: ``line()`` appends at the
    current level, ``block(header)`` opens an indented block under ``header``."""

    def __init__(self, indent: str = "    "):
        self._indent = indent
        self._level = 0
        self._lines: list[str] = []

    def line(self, text: str = "") -> None:
        """Append one line (empty lines carry no indentation)."""
        self._lines.append(f"{self._indent * self._level}{text}" if text else "")

    def lines(self, texts: Iterable[str]) -> None:
        for text in texts:
            self.line(text)

    @contextlib.contextmanager
    def block(self, header: str) -> Iterator[None]:
        """``header`` (ending in ``:``), then the ``with`` body one level deeper."""
        if not header.rstrip().endswith(":"):
            raise ValueError(f"a block header ends with ':' (got {header!r})")
        self.line(header)
        self._level += 1
        try:
            yield
        finally:
            self._level -= 1

    def text(self) -> str:
        """The source, ending in a newline."""
        return "\n".join(self._lines) + "\n"


def kernel_module(functions: Iterable[str], header: str = "") -> str:
    """A kernel module: ``header`` as comment lines, the imports generated expressions use
    (:data:`PRELUDE`) and Numba's decorators, and ``functions`` (each a
    complete definition, two blank lines apart)."""
    comment = "".join(f"# {line}".rstrip() + "\n" for line in header.splitlines())
    body = "\n\n".join(f.rstrip("\n") + "\n" for f in functions)
    return f"{comment}{PRELUDE}from numba import njit, prange\n\n\n{body}"

"""Building generated Python source: indented lines, and whole kernel modules.

Generated kernels are ordinary Python modules that Numba compiles; they are
written to files by :mod:`codegen.cache` (so Numba's disk cache works) and
dumped for users (``COMPGRAD_DUMP``), so they should read like code a person
wrote.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterable, Iterator, Mapping, Sequence

from codegen.mathfns import MODULE_ALIAS

__all__ = ["SourceBuilder", "kernel_module", "njit_kernel", "PRELUDE"]

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


def njit_kernel(prefix: str, params: Sequence[str], body: Sequence[str],
                options: Mapping[str, object], helpers: Sequence[str] = ()) -> tuple[str, str]:
    """(module source, function name) of one ``@numba.njit(**options)`` kernel taking
    ``params`` with ``body`` (lines indented one level), after the :data:`PRELUDE` and
    ``helpers`` (complete function definitions). The name is ``prefix`` and a hash of
    the body, parameters and options, so equal kernels share one cache entry."""
    text = "\n".join(list(body) + list(params) + [repr(sorted(options.items()))])
    name = f"{prefix}_{hashlib.sha256(text.encode()).hexdigest()[:16]}"
    header = f"@numba.njit({', '.join(f'{k}={v!r}' for k, v in options.items())})"
    functions = [h.rstrip("\n") + "\n" for h in helpers]
    functions.append(f"{header}\ndef {name}({', '.join(params)}):\n" + "\n".join(body) + "\n")
    return PRELUDE + "import numba\n\n\n" + "\n\n".join(functions), name

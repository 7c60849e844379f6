"""The pass pipeline: run Graph -> Graph passes in order, verifying, timing and dumping.

A pass is a pure function ``Graph -> Graph`` (it returns a new graph, or its input
when it changes nothing, and never mutates its input); its contract is its
docstring. :func:`run_pipeline` runs passes in order and, after each one:

* verifies the result with :func:`ir.verify.verify` (and checks that the pass left
  its input graph unchanged), so a broken invariant is reported by the pass that
  broke it;
* reports the pass's wall time to ``on_timing(name, seconds)``;
* when ``dump_dir`` is given, writes the printed graph to
  ``{dump_dir}/{graph.name}.{NN}-{pass}.ir``, NN the pass's two-digit position
  (``01`` for the first pass; ``00`` is left to whoever dumps the pipeline's input).

An exception from a pass, or from verifying its result, propagates with a note
naming the pass and the graph. ``passes/`` never reads compgrad's configuration:
the caller passes ``dump_dir`` (from ``COMPGRAD_DUMP``).
"""

from __future__ import annotations

import functools
import os
import re
import time
from collections.abc import Callable, Sequence

from ir.graph import Graph
from ir.printer import print_graph
from ir.verify import verify as verify_graph

__all__ = ["Pass", "run_pipeline", "pass_name", "dump_path"]

Pass = Callable[[Graph], Graph]

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def pass_name(fn: Pass) -> str:
    """The name a pass is reported and dumped under: its ``__name__`` (a
    ``functools.partial`` reports its function's)."""
    while isinstance(fn, functools.partial):
        fn = fn.func
    return getattr(fn, "__name__", None) or type(fn).__name__


def _file_part(text: str) -> str:
    # graph and pass names become parts of a file name: keep it one plain path component
    return _UNSAFE.sub("_", text).strip(".") or "_"


def dump_path(dump_dir: str | os.PathLike, graph_name: str, index: int, name: str) -> str:
    """``{dump_dir}/{graph_name}.{index:02d}-{name}.ir`` with unsafe characters replaced."""
    return os.path.join(os.fspath(dump_dir),
                        f"{_file_part(graph_name)}.{index:02d}-{_file_part(name)}.ir")


def run_pipeline(graph: Graph, passes: Sequence[Pass], *,
                 dump_dir: str | os.PathLike | None = None, verify: bool = True,
                 on_timing: Callable[[str, float], None] | None = None) -> Graph:
    """Run ``passes`` on ``graph`` in order and return the final graph.

    ``graph`` itself is not changed. With ``verify`` (the default) the input graph
    and each pass's result are verified, and each pass's input is checked to be
    unchanged (by its printed text). ``on_timing(name, seconds)`` receives each pass's wall time
    (the pass alone, not the checks or the dump). With ``dump_dir`` the graph after
    pass ``i`` (1-based) is written to :func:`dump_path` ``(dump_dir, graph.name, i,
    name)``; a pass's result is dumped before it is verified, so a broken graph can
    be inspected.

    An exception raised by a pass, or by the verification of its result, keeps its
    type and gains a note naming the pass, its position and the graph.
    """
    if dump_dir is not None:
        os.makedirs(dump_dir, exist_ok=True)
    base_name = str(graph.name)
    if verify and passes:
        try:
            verify_graph(graph)
        except Exception as e:  # blame the caller, not the first pass
            e.add_note(f"in the input of the pass pipeline (graph {base_name!r})")
            raise
    for index, fn in enumerate(passes, start=1):
        name = pass_name(fn)
        where = f"in pass {name!r} ({index} of {len(passes)}) on graph {base_name!r}"
        before = print_graph(graph) if verify else None
        try:
            start = time.perf_counter()
            result = fn(graph)
            elapsed = time.perf_counter() - start
            if not isinstance(result, Graph):
                raise TypeError(f"pass {name!r} returned {type(result).__name__}, not a Graph")
        except Exception as e:
            e.add_note(where)
            raise
        if on_timing is not None:
            on_timing(name, elapsed)
        if dump_dir is not None:
            with open(dump_path(dump_dir, base_name, index, name), "w", encoding="utf-8") as f:
                f.write(print_graph(result) + "\n")
        if verify:
            try:
                verify_graph(result)
                if print_graph(graph) != before:
                    raise RuntimeError(f"pass {name!r} mutated its input graph (a pass must "
                                       f"copy it first: passes.graph_utils.copy_graph)")
            except Exception as e:
                e.add_note(f"after pass {name!r} ({index} of {len(passes)}) on graph "
                           f"{base_name!r}")
                raise
        graph = result
    return graph

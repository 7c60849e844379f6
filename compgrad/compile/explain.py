"""``CompiledFunction.explain()``'s report.

Field names follow ``torch._dynamo.explain`` where it has one for the same
thing (``graph_count``, ``graph_break_count``, ``break_reasons``,
``ops_per_graph``, ``compile_times``), so PyTorch users find their way.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["ExplainOutput", "BreakReason"]


@dataclass
class BreakReason:
    """Why a compiled call handed control back to Python (and where), and how often."""

    reason: str
    count: int = 1

    def __str__(self) -> str:
        return f"{self.reason} ({self.count}x)"


@dataclass
class ExplainOutput:
    graphs: list
    graph_count: int
    graph_break_count: int
    break_reasons: list[BreakReason]
    ops_per_graph: list[list[str]]
    compile_times: list[dict]
    paths: dict = field(default_factory=dict)
    recompiles: list[str] = field(default_factory=list)
    calls: int = 0
    eager_calls: int = 0
    cache_hits: int = 0
    cache_misses: int = 0
    backend: str = "numba"
    gave_up: str | None = None
    guards: list = field(default_factory=list)
    kernel_count: int = 0

    def __str__(self) -> str:
        from ir.printer import print_graph
        lines = [f"Graph Count: {self.graph_count}",
                 f"Graph Break Count: {self.graph_break_count}",
                 f"Op Count: {sum(len(o) for o in self.ops_per_graph)}",
                 f"Calls: {self.calls} compiled, {self.eager_calls} eager; "
                 f"program cache: {self.cache_hits} hits, {self.cache_misses} misses; "
                 f"backend: {self.backend}; kernels: {self.kernel_count}"]
        if self.gave_up:
            lines.append(f"Gave up compiling (recompile limit): {self.gave_up}")
        lines.append("Break Reasons:")
        lines += [f"  {i + 1}. {r}" for i, r in enumerate(self.break_reasons)] or ["  (none)"]
        lines.append(f"Paths ({len(self.paths)} distinct):")
        for path, count in self.paths.items():
            lines.append(f"  programs {list(path)}: {count} call(s)")
        if self.recompiles:
            lines.append("Recompiles:")
            lines += [f"  {i + 1}. {cause}" for i, cause in enumerate(self.recompiles)]
        lines.append("Compile Times (s):")
        for i, t in enumerate(self.compile_times):
            lines.append(f"  graph {i}: " + ", ".join(f"{k} {v:.4f}" for k, v in t.items()))
        for i, (g, ops) in enumerate(zip(self.graphs, self.ops_per_graph)):
            lines.append(f"Graph {i} ({len(ops)} ops):")
            lines += ["  " + line for line in print_graph(g).splitlines()]
        return "\n".join(lines)

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
    """A report of what a compiled function captured (print it for a readable form).

    As ``torch._dynamo.explain`` reports one call, ``graphs``, ``graph_count``,
    ``graph_break_count``, ``break_reasons`` and ``ops_per_graph`` describe the most
    recent call: the graphs it ran and why it broke between them. The rest covers
    every call so far: the distinct ``programs`` compiled, the ``paths`` taken
    (sequences of program indices), ``recompiles`` with their cause, all break
    reasons, cache hits and misses, compile times and the guards of each program.
    """

    graphs: list
    graph_count: int
    graph_break_count: int
    break_reasons: list[BreakReason]
    ops_per_graph: list[list[str]]
    compile_times: list[dict]
    programs: list = field(default_factory=list)
    program_count: int = 0
    total_graph_break_count: int = 0
    all_break_reasons: list[BreakReason] = field(default_factory=list)
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
    # mode="reduce-overhead": calls replayed without running the function's Python, and
    # why the latest call was not (None: it was, or the mode is off)
    replays: int = 0
    replay_status: str | None = None
    replay_guards: list = field(default_factory=list)
    # programs not run by generated kernels, each with why (e.g. values on a CUDA device)
    program_notes: dict = field(default_factory=dict)

    def __str__(self) -> str:
        from ir.printer import print_graph
        lines = ["Last call:",
                 f"  Graph Count: {self.graph_count}",
                 f"  Graph Break Count: {self.graph_break_count}",
                 f"  Op Count: {sum(len(o) for o in self.ops_per_graph)}",
                 "  Break Reasons:"]
        lines += [f"    {i + 1}. {r}" for i, r in enumerate(self.break_reasons)] or ["    (none)"]
        lines += ["All calls:",
                  f"  Calls: {self.calls} compiled, {self.eager_calls} eager; programs "
                  f"compiled: {self.program_count}; graph breaks: "
                  f"{self.total_graph_break_count}",
                  f"  Program cache: {self.cache_hits} hits, {self.cache_misses} misses; "
                  f"backend: {self.backend}; kernels: {self.kernel_count}"]
        if self.gave_up:
            lines.append(f"  Gave up compiling (recompile limit): {self.gave_up}")
        for index, note in self.program_notes.items():
            lines.append(f"  Program {index}: {note}")
        if self.replays or self.replay_status:
            lines.append(f"  Replayed calls (reduce-overhead): {self.replays}"
                         + (f"; {self.replay_status}" if self.replay_status else ""))
            lines += [f"    guard: {g}" for g in self.replay_guards]
        if self.all_break_reasons:
            lines.append("  Break Reasons:")
            lines += [f"    {i + 1}. {r}" for i, r in enumerate(self.all_break_reasons)]
        lines.append(f"  Paths ({len(self.paths)} distinct):")
        for path, count in self.paths.items():
            lines.append(f"    programs {list(path)}: {count} call(s)")
        if self.recompiles:
            lines.append("  Recompiles:")
            lines += [f"    {i + 1}. {cause}" for i, cause in enumerate(self.recompiles)]
        lines.append("  Compile Times (s):")
        for i, t in enumerate(self.compile_times):
            lines.append(f"    program {i}: " + ", ".join(f"{k} {v:.4f}" for k, v in t.items()))
        for i, g in enumerate(self.programs):
            lines.append(f"Program {i} ({len(g.nodes)} ops):")
            lines += ["  " + line for line in print_graph(g).splitlines()]
        return "\n".join(lines)

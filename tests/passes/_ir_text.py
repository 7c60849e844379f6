"""The shared check of the pass tests: IR text in, IR text out."""

from __future__ import annotations

from ir.graph import Graph
from ir.parser import parse
from ir.printer import print_graph


def check_rewrite(pass_fn, before: str, after: str, **options) -> tuple[Graph, Graph]:
    """``pass_fn`` turns ``before`` into ``after`` (compared as printed IR) and leaves
    its input graph as it was; returns (input graph, result) for further checks."""
    graph = parse(before)
    text = print_graph(graph)
    result = pass_fn(graph, **options)
    assert print_graph(result) == print_graph(parse(after))
    assert print_graph(graph) == text, f"{pass_fn.__name__} changed its input graph"
    return graph, result

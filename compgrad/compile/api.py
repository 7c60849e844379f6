"""``compgrad.compile``: run a function (a whole training step) as compiled programs.

Default mode (DESIGN.md, "A compiled call"): Python runs the function on
every call with tensors recorded lazily; each run of recorded ops between
points where Python needs a value is a segment, looked up by its structure
in this function's program cache and compiled on a miss. Nothing about the
user's Python is frozen, so results and side effects are the eager ones.
"""

from __future__ import annotations

import functools
import os
import time
import warnings
from collections import Counter
from collections.abc import Callable, Collection
from typing import Any

from compgrad import config
from compgrad.compile.backward_cache import BackwardCache
from compgrad.compile.escape import attach_backward
from compgrad.compile.explain import BreakReason, ExplainOutput
from compgrad.compile.lazy import LazyInterpreter
from compgrad.compile.naming import NameCache, captured_names
from compgrad.compile.on_device import DeviceRunner, uses_cuda
from compgrad.compile.segment import build_program_graph
from compgrad.compile.trace import Trace
from compgrad.tensor import _active_trace
from ir.dispatch import interpreter
from ir.interpret import interpret

__all__ = ["compile", "CompiledFunction", "BACKENDS"]

BACKENDS = ("numba", "interpret", "eager")

# reduce-overhead mode watches at most this many traced calls in a row for a stable
# step (a step whose Python changes every call stays in the default mode after that)
_WATCHED_CALLS_LIMIT = 8


class Program:
    """One compiled segment: its captured Graph and how to run it.

    ``backend="numba"`` runs the pass pipeline and generated kernels
    (:class:`codegen.runtime.CompiledProgram`, built at the first run);
    ``"interpret"`` runs the captured graph on the reference interpreter.
    """

    def __init__(self, graph, backend: str, index: int = 0):
        self.graph = graph
        self.backend = backend
        self.index = index          # its place in compile order (explain()'s paths)
        self.runs = 0
        self.compiled = None        # the codegen runtime's program (numba backend)
        self.tiering = None         # how it runs: step by step or as one function
        # a program with CUDA values runs on the GPU (compgrad.compile.on_device)
        self.on_device = DeviceRunner(graph, backend == "numba", config.dump_dir()) \
            if uses_cuda(graph) else None

    def kernel_count(self) -> int:
        """Generated kernels this program runs (CPU or GPU; 0 before its first run)."""
        if self.on_device is not None:
            return self.on_device.kernel_count()
        return self.compiled.stats.kernels if self.compiled is not None else 0

    def run(self, args: list, inplace: Collection[int] = ()) -> tuple[list, list]:
        """Outputs and mutation values; ``inplace``: the positions of the inputs whose
        update may be written into their own arrays (``codegen.runtime.CompiledProgram``)."""
        self.runs += 1
        if self.on_device is not None:
            return self.on_device.run(args)
        if self.backend == "numba":
            if self.tiering is None:
                from codegen.runtime import CompiledProgram
                from codegen.tiering import Tiering
                self.compiled = CompiledProgram(self.graph, dump_dir=config.dump_dir())
                # a small program run often becomes one Numba function (codegen.tiering)
                self.tiering = Tiering(self.compiled)
            return self.tiering.run(args, inplace)
        result = interpret(self.graph, args)
        return result.outputs, [arr for _, arr in result.mutations]


def _inplace(trace, external: list, writes: list) -> frozenset[int]:
    """The positions in ``external`` of the written tensors whose new value the segment's
    program may compute into their own storage: the call's last segment
    (``Trace.values_final``), a value no live tensor of the call holds."""
    if not writes or not trace.values_final:
        return frozenset()
    held = trace.landing_held
    position = {v: i for i, v in enumerate(external)}
    return frozenset(position[target] for _, target, value in writes if value not in held)


def _program_notes(programs) -> dict[int, str]:
    """By program index: how a program runs where that is not the plain step runner (on a
    CUDA device; as one Numba function, and since when; refused that, and why)."""
    notes = {}
    for p in programs:
        if p.on_device is not None:
            notes[p.index] = p.on_device.note
        elif p.compiled is not None and p.compiled.one_function_reason:
            notes[p.index] = f"runs step by step, not as one function: " \
                             f"{p.compiled.one_function_reason}"
        elif p.tiering is not None and p.tiering.as_one_function:
            how = p.tiering.how
            notes[p.index] = "runs as one Numba function" + (f" ({how})" if how else "")
        elif p.tiering is not None and p.tiering.small_runs is not None:
            notes[p.index] = f"runs step by step, {p.tiering.small_runs.summary()} " \
                             f"({p.tiering.how})"
    return notes


class CompiledFunction:
    """What ``compile(fn)`` returns: call it like ``fn``; ``explain()`` reports what
    was captured."""

    def __init__(self, fn: Callable, *, backend: str = "numba", fullgraph: bool = False,
                 dynamic: bool | None = None, mode: str | None = None,
                 options: dict | None = None, disable: bool = False):
        if backend not in BACKENDS:
            raise ValueError(f"unknown compgrad backend {backend!r}; expected one of "
                             f"{', '.join(BACKENDS)}")
        if mode not in (None, "default", "reduce-overhead", "max-autotune"):
            raise ValueError(f"unknown compile mode {mode!r}")
        functools.update_wrapper(self, fn)
        self.fn = fn
        self.backend = backend
        self.fullgraph = fullgraph
        self.dynamic = dynamic
        self.mode = mode
        self.options = dict(options or {})
        self.disable = disable
        self.programs: dict[tuple, Program] = {}
        self._backward_cache = BackwardCache()   # symbolic backwards by forward structure
        self._name_cache = NameCache()           # captured modules' parameter names
        self._order: list[tuple] = []            # keys in compile order
        self._gave_up: str | None = None
        self._variants: dict[tuple, int] = {}     # programs per op sequence (type variants)
        self._stats = {"calls": 0, "eager_calls": 0, "hits": 0, "misses": 0, "replays": 0,
                       "replay_stops": [],
                       "compile_times": [], "breaks": {}, "paths": {}, "recompiles": [],
                       "last_call": ((), [])}
        self._name = getattr(fn, "__qualname__", getattr(fn, "__name__", "fn"))
        # mode="reduce-overhead": the installed replay plan, the last traced call's plan
        # (a plan is installed when the next traced call makes an equal one), why the
        # last call was not replayed, and how many calls were watched to make plans
        self._plan = None
        self._candidate = None
        self._replay_note: str | None = None
        self._watched = 0

    # --- calling ------------------------------------------------------------------------

    def __call__(self, *args, **kwargs):
        if self.disable or self.backend == "eager" or config.disabled():
            return self.fn(*args, **kwargs)
        if _active_trace() is not None:
            return self.fn(*args, **kwargs)   # nested: recorded into the caller's trace
        if self._gave_up is not None:
            self._stats["eager_calls"] += 1
            return self.fn(*args, **kwargs)
        if self._plan is not None:
            why = self._plan.guard_failure(args, kwargs)
            if why is None:
                try:
                    result = self._plan.run(args, kwargs)
                except Exception as e:  # noqa: BLE001 - the traced call below raises it
                    # a data-dependent error (an index out of range): the program lands
                    # nothing before it finishes, so the traced call runs from the same
                    # state and fails as eagerly, after the effects that precede it
                    why = f"the replayed program raised {type(e).__name__}"
                else:
                    self._stats["replays"] += 1
                    return result
            self._plan = None
            self._replay_note = f"replay stopped: {why}"
            self._stats["replay_stops"].append(why)
        self._stats["calls"] += 1
        trace = Trace(self._name, self._run_segment,
                      captured_names(self.fn, args, kwargs, self._name_cache),
                      backward_cache=self._backward_cache)
        if self.mode == "reduce-overhead" and self._watched < _WATCHED_CALLS_LIMIT:
            return self._watched_call(trace, args, kwargs)
        result, _ = self._traced(trace, lambda: self.fn(*args, **kwargs))
        return result

    def _traced(self, trace, run: Callable):
        """``run()`` (the user's function) with ``trace`` recording; its result and the
        outputs that left the call with a ``grad_fn`` (``trace.escaped`` before
        ``attach_backward`` took them)."""
        with interpreter(LazyInterpreter(trace)):
            try:
                result = run()
            except BaseException:
                # the work recorded before the exception happened eagerly too; an error
                # it raises (found only when it runs) came first eagerly, so it wins
                trace.final = True
                if trace.error is None and trace.pending():
                    trace.flush(reason="exception")
                raise
            trace.final = True
            if trace.pending():
                trace.flush(reason="return")
            escaped = list(trace.escaped)
            attach_backward(trace)
            # hooks of recorded tensors run in a backward inside the call; their grad_fns
            # point back at the trace (a cycle keeping it alive past the call until the
            # cyclic GC runs)
            trace.graph_fns.clear()
        path = tuple(trace.path)
        self._stats["paths"][path] = self._stats["paths"].get(path, 0) + 1
        self._stats["last_call"] = (path, trace.breaks)
        return result, escaped

    def _watched_call(self, trace, args: tuple, kwargs: dict):
        """A traced call in reduce-overhead mode: as ``__call__``, also watching the
        user's Python (``pyreads``) and the program run, to make a replay plan."""
        from compgrad.compile.pyreads import observe
        from compgrad.compile.replay import Recorder, make_plan
        from compgrad.state_epoch import STRUCTURE
        self._watched += 1
        trace.replay = recorder = Recorder()
        before = STRUCTURE[0]
        try:
            (result, observation), escaped = self._traced(
                trace, lambda: observe(self.fn, args, kwargs))
        except BaseException:
            self._candidate = None
            raise
        trace.replay = None
        plan = make_plan(trace, recorder, args, kwargs, result, observation, before, escaped)
        del recorder, escaped
        if isinstance(plan, str):
            self._candidate = None
            self._replay_note = f"not replayed: {plan}"
            return result
        previous, self._candidate = self._candidate, plan
        if previous is not None and previous.signature() == plan.signature():
            self._plan, self._candidate = plan, None
            self._watched = 0
            self._replay_note = None
        else:
            self._replay_note = "not replayed yet: waiting for a second identical call"
        return result

    def _run_segment(self, trace, nodes, outputs, writes, reason: str) -> dict:
        if not trace.final:
            if self.fullgraph:
                raise RuntimeError(f"compgrad.compile(fullgraph=True): graph break in "
                                   f"{self._name}: {reason}")
            self._stats["breaks"][reason] = self._stats["breaks"].get(reason, 0) + 1
            trace.breaks.append(reason)
        key, external = trace.segment_keys().key(outputs, writes)   # the key of ``nodes``
        program = self.programs.get(key)
        if program is None:
            program = self._compile(key, nodes, external, outputs, writes)
            self._stats["misses"] += 1
        else:
            self._stats["hits"] += 1
        trace.path.append(program.index)
        outs, muts = program.run([trace.env[v] for v in external],
                                 _inplace(trace, external, writes))
        trace.pool = program.compiled.pool if program.compiled is not None else None
        if trace.replay is not None:
            trace.replay.segment(trace, program, external, outputs, writes, outs, muts)
        results = dict(zip(outputs, outs))
        for (_, _, value), arr in zip(writes, muts):
            results[value] = arr
        return results

    def _compile(self, key, nodes, external, outputs, writes) -> Program:
        from ir.verify import verify
        start = time.perf_counter()
        graph = build_program_graph(f"{_ident(self._name)}_{len(self._order)}", nodes, external,
                                    outputs, writes)
        verify(graph)
        program = Program(graph, self.backend, index=len(self._order))
        elapsed = time.perf_counter() - start
        self._stats["compile_times"].append({"capture": elapsed})
        _dump(graph, "capture")
        if self._order:
            self._stats["recompiles"].append(_recompile_cause(self.programs, key))
        self.programs[key] = program
        self._order.append(key)
        # a recompile in torch's sense: the same ops at the same place, new input types
        group = (tuple(p[0][0] for p in key[0]), key[1], key[2])   # op names
        variants = self._variants[group] = self._variants.get(group, 0) + 1
        limit = config.recompile_limit()
        if variants > limit and self._gave_up is None:
            cause = self._stats["recompiles"][-1]
            self._gave_up = cause
            warnings.warn(f"compgrad.compile: {self._name} recompiled the same ops {variants} "
                          f"times (recompile limit {limit}); it runs eagerly from now on. Last "
                          f"recompile: {cause}", RuntimeWarning, stacklevel=4)
        return program

    # --- reporting ----------------------------------------------------------------------

    def explain(self) -> ExplainOutput:
        """What the calls so far captured. As in ``torch._dynamo.explain`` (which runs one
        call), ``graph_count``, ``graph_break_count``, ``break_reasons``, ``graphs`` and
        ``ops_per_graph`` describe one call: the most recent. Totals over all calls:
        ``program_count`` (distinct programs compiled), ``total_graph_break_count``,
        ``all_break_reasons``, ``paths``, ``recompiles`` and the cache counts."""
        stats = self._stats
        path, breaks = stats["last_call"]
        programs = [self.programs[k].graph for k in self._order]
        graphs = [programs[i] for i in path]   # a program's index is its place in _order
        reasons = Counter(breaks)
        return ExplainOutput(
            graphs=graphs,
            graph_count=len(graphs),
            graph_break_count=len(breaks),
            break_reasons=[BreakReason(reason, count) for reason, count in reasons.items()],
            ops_per_graph=[[n.op.name for n in g.nodes] for g in graphs],
            compile_times=stats["compile_times"],
            programs=programs,
            program_count=len(programs),
            total_graph_break_count=sum(stats["breaks"].values()),
            all_break_reasons=[BreakReason(reason, count)
                               for reason, count in stats["breaks"].items()],
            paths=dict(stats["paths"]),
            recompiles=list(stats["recompiles"]),
            calls=stats["calls"], eager_calls=stats["eager_calls"],
            cache_hits=stats["hits"], cache_misses=stats["misses"],
            backend=self.backend, gave_up=self._gave_up,
            kernel_count=sum(p.kernel_count() for p in self.programs.values()),
            guards=[_guards(g) for g in programs],
            replays=stats["replays"], replay_status=self._replay_note,
            replay_guards=self._plan.describe() if self._plan is not None else [],
            program_notes=_program_notes(self.programs.values()))

    def __repr__(self) -> str:
        return f"<compgrad.compile({self._name}, backend={self.backend!r})>"

    def __get__(self, obj, objtype=None):
        # decorating a method: bind like a function
        if obj is None:
            return self
        return functools.partial(self.__call__, obj)


def _ident(name: str) -> str:
    out = "".join(c if c.isalnum() or c == "_" else "_" for c in name)
    return out if out and not out[0].isdigit() else f"f_{out}"


def _guards(graph) -> list[str]:
    """What a call must match to reuse the program: its input types (structure is the key)."""
    return [f"%{v.name}: {v.type}{' weak' if v.type.weak else ''}" for v in graph.inputs]


def _recompile_cause(programs: dict, key: tuple) -> str:
    parts, outs, muts, types = key
    for old in programs:
        if old[0] == parts and old[1:3] == (outs, muts):
            for i, (a, b) in enumerate(zip(old[3], types)):
                if a != b:
                    return f"input {i} changed type: {a} -> {b}"
    for old in programs:
        if len(old[0]) != len(parts):
            continue
        for a, b in zip(old[0], parts):
            if a[0] != b[0]:   # (op name, attributes)
                return f"recorded op changed: {a[0][0]} -> {b[0][0]}"
    return "a new sequence of recorded ops (a new path through the function)"


def _dump(graph, stage: str) -> None:
    directory = config.dump_dir()
    if directory is None:
        return
    from ir.printer import print_graph
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, f"{graph.name}.{stage}.ir"), "w") as f:
        f.write(print_graph(graph))


def compile(fn: Callable | None = None, *, backend: str = "numba", fullgraph: bool = False,  # noqa: A001
            dynamic: bool | None = None, mode: str | None = None,
            options: dict[str, Any] | None = None, disable: bool = False):
    """Compile ``fn`` (a function, a training step, or an ``nn.Module``), as
    ``torch.compile``: ``@compile``, ``@compile(backend=...)``, ``compile(fn)``,
    ``compile(module)``.

    ``backend``: ``"numba"`` (generated kernels; until code generation lands it
    runs the reference interpreter), ``"interpret"`` (the reference interpreter:
    checks capture without codegen) or ``"eager"`` (the plain function).
    ``fullgraph=True`` makes a graph break an error naming the user's line.
    ``COMPGRAD_DISABLE=1`` turns compilation off everywhere.
    """
    kwargs = dict(backend=backend, fullgraph=fullgraph, dynamic=dynamic, mode=mode,
                  options=options, disable=disable)
    if fn is None:
        return lambda f: compile(f, **kwargs)
    from compgrad.nn.modules.module import Module
    if isinstance(fn, Module):
        from compgrad.compile.module import OptimizedModule
        return OptimizedModule(fn, CompiledFunction(fn.__call__, **kwargs))
    if not callable(fn):
        raise TypeError(f"compile() expects a callable or an nn.Module, got {type(fn).__name__}")
    return CompiledFunction(fn, **kwargs)

"""When a small program in the default compile mode stops running step by step and runs as
ONE Numba function (:mod:`codegen.whole`).

The step runner (:meth:`codegen.runtime.CompiledProgram.run`) costs ~12 us of Python per
step, most of a tiny program's call (issue 7's W2: ~250 us of its ~880 us). The one
function runs the same program in ~10 us, but building it costs seconds of Numba compile
on a cold disk cache (W2: 2.5-7 s on this machine) and milliseconds from a warm one. So
a program moves to its one function:

* at its second run, when the disk cache already holds the function's machine code (an
  earlier process built it): loading costs ~50 ms, a few hundred step-runner calls;
* after :data:`TIER_UP_RUNS` runs on the step runner otherwise: a program run that often
  is part of a training loop, where the compile is soon repaid (and then cached on disk
  for every later process).

Programs run once (a graph break taken once, most tests) never pay for it. A program larger
than :data:`codegen.whole.MAX_ELEMENTS` keeps the step runner, and at the same moment its
runs of small steps become one function each instead (:mod:`codegen.small_runs`).
The one function gives the step runner's results (elementwise phases bit for bit,
NumPy's summation order, the same BLAS; transcendentals the step runner leaves to NumPy
may differ by a few ulp, checked on sample inputs before it is used), and falls back to
the step runner for a call it was not written for (:class:`codegen.whole.OneFunction`).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence

from codegen.cache import kernel_cache, load_kernel
from codegen.small_runs import find_runs, install_small_runs, sub_program
from codegen.whole import MAX_ELEMENTS, program_elements, sample_inputs
from codegen.whole_lower import lower_program

__all__ = ["TIER_UP_RUNS", "Tiering"]

# step-runner runs after which a small program is built as one function (read when a
# program is made, so tests can change it)
TIER_UP_RUNS = 1000


class Tiering:
    """How one :class:`codegen.runtime.CompiledProgram` runs: ``tiering.run(args, inplace)``
    has the step runner's contract; ``state`` says where the program stands: "step runner"
    (and why, once decided), "one function"."""

    __slots__ = ("compiled", "one", "runs", "after", "decided", "how", "large", "small_runs")

    def __init__(self, compiled, *, after: int | None = None):
        self.compiled = compiled
        self.one: Callable | None = None
        self.runs = 0
        self.after = TIER_UP_RUNS if after is None else after
        # too large for one function: its runs of small steps are built instead
        self.large = program_elements(compiled.graph) > MAX_ELEMENTS
        # a large program with no run of small steps has nothing to build: decided at once
        # (a W5 matmul is not run a thousand times for nothing)
        self.decided = self.large and not find_runs(compiled.graph, compiled.steps)
        self.how: str | None = None   # how the one function came to be built
        self.small_runs = None        # a large program's codegen.small_runs.RunsPlan

    def run(self, args: Sequence, inplace: Collection[int] = ()) -> tuple[list, list]:
        """The program's outputs and mutation values for ``args``."""
        one = self.one
        if one is not None:
            return one(args, inplace)
        if not self.decided:
            self.runs += 1
            if self.runs >= self.after:
                self._build(f"after {self.runs} runs on the step runner")
            elif self.runs == 2 and (_runs_cached(self.compiled) if self.large
                                     else _cached(self.compiled)):
                self._build("its machine code was in the disk cache")
            if self.one is not None:
                return self.one(args, inplace)
        return self.compiled.run(args, inplace)

    def _build(self, how: str) -> None:
        self.decided = True
        if self.large:
            self.small_runs = install_small_runs(self.compiled)
            self.how = how
            return
        self.one = self.compiled.as_one_function()
        if self.one is not None:
            self.how = how

    @property
    def as_one_function(self) -> bool:
        """Whether the program runs as one function: moved here, or built by a replay
        (:mod:`compgrad.compile.replay` asks the compiled program directly)."""
        return self.one is not None or self.compiled.has_one_function

    @property
    def state(self) -> str:
        """"one function (how)", or "step runner" with the reason once one was refused."""
        if self.one is not None:
            return f"one function ({self.how})"
        if self.small_runs is not None:
            return f"step runner, {self.small_runs.summary()} ({self.how})"
        reason = self.compiled.one_function_reason
        return f"step runner ({reason})" if reason else "step runner"


def _cached(compiled) -> bool:
    """Whether ``compiled``'s one function is already compiled in the default disk cache
    (lowering it costs ~1-2 ms of Python; a program that cannot be lowered is not)."""
    return compiled._load is load_kernel and _has_machine_code(compiled.graph, compiled.steps,
                                                               compiled._load)


def _runs_cached(compiled) -> bool:
    """Whether every run of small steps of ``compiled`` (a large program) is compiled in
    the default disk cache, and there is at least one."""
    if compiled._load is not load_kernel:
        return False   # a custom loader keeps its own cache
    subs = [sub_program(compiled.graph, compiled.steps, start, stop)
            for start, stop in find_runs(compiled.graph, compiled.steps)]
    return bool(subs) and all(_has_machine_code(sub, sub.steps, compiled._load)
                              for sub in subs)


def _has_machine_code(program, steps, load) -> bool:
    """Whether the one function lowered from ``program`` (a Graph or a
    :class:`~codegen.small_runs.SubProgram`, run by ``steps``) is compiled in the default
    disk cache."""
    try:
        lowered = lower_program(program, steps, sample_inputs(program), load)
    except Exception:   # noqa: BLE001
        # NotLowerable, or the step runner failed on the sample inputs (a size that a
        # data-dependent op counted on the caller's data): building it refuses it too
        return False
    return kernel_cache().has_machine_code(lowered.source)

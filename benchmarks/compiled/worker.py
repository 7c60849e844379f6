"""A contestant's worker process: sets up one case at a time and times its step on request.

Started by ``pool.Worker`` as ``python -m benchmarks.compiled.worker CONTESTANT READ_FD
WRITE_FD [PRELOAD ...]`` with the environment ``policy.worker_env`` gives it (thread counts
set before any library loads). It then reads requests ``(command, kwargs)`` from READ_FD and
answers each on WRITE_FD with ``("ok", value)`` or ``("error", "Type: message",
traceback)``; arrays travel as NumPy arrays (pickled by ``multiprocessing.connection``).
A PRELOAD ``module:function`` is imported and called with the contestant's name before the
first request (tests use it to break a contestant on purpose).

Only this contestant's library is imported here: torch's processes never load compgrad
(nor Numba, nor scipy's OpenBLAS), compgrad's and NumPy's never load torch.

compgrad.replay's worker also reports how many of its calls were replays (its compiled
function's ``explain().replays``): after the checked steps, after warm-up (and whether the
warm-up's last call was one) and per timed loop, where every step must be one.
"""

from __future__ import annotations

import cProfile
import gc
import importlib
import io
import pstats
import statistics
import sys
import time
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from benchmarks import harness
from benchmarks.compiled import policy, programs
from benchmarks.compiled.settings import REPLAY_CONTESTANT


class Server:
    """The worker's state (its contestant and the instance of the current case) and one
    method per command."""

    def __init__(self, contestant: str) -> None:
        self.contestant = contestant
        self.instance: programs.Instance | None = None
        self.commands: dict[str, Callable[..., Any]] = {
            "hello": self.hello, "setup": self.setup, "warm_up": self.warm_up,
            "time": self.timed_loop, "profile": self.profile, "drop": self.drop,
        }

    def hello(self) -> dict[str, Any]:
        """Load the contestant's library (timed) and apply the in-process policy."""
        t0 = time.perf_counter()
        if self.contestant != "numpy":
            programs.library(self.contestant)
        policy.apply_in_process(self.contestant)
        return {"import_s": time.perf_counter() - t0, "policy": policy.describe()}

    def setup(self, case_id: str, quick: bool, check_steps: int) -> dict[str, Any]:
        """Build the case's instance, time its first step (compiling, where anything
        compiles) and return the results of ``check_steps`` steps and the state after them
        (what the parent compares with torch eager's)."""
        self.drop()
        case = {c.id: c for c in programs.cases(quick)}[case_id]
        self.instance = inst = case.build(self.contestant, case.params)
        t0 = time.perf_counter()
        first = inst.step()
        first_call_s = time.perf_counter() - t0
        results = {"out[0]": programs.to_numpy(first)}
        del first
        for i in range(1, check_steps):
            results[f"out[{i}]"] = programs.to_numpy(inst.step())
        results.update(inst.state())
        out: dict[str, Any] = {"first_call_s": first_call_s, "results": results}
        if self.contestant == REPLAY_CONTESTANT:
            out["replay"] = self._replay_state()  # how many checked steps were replays
        return out

    def warm_up(self, min_s: float, min_calls: int = 3, max_calls: int = 200) -> dict[str, Any]:
        """Call the step at least ``min_calls`` times and for at least ``min_s`` seconds
        (compiled code keeps settling for a few calls), at most ``max_calls`` times; the
        call times in s and the policy now that every library of the step is loaded.

        compgrad.replay: one more call, timed with the rest, tells whether the step is
        replayed now (``replay["last_replayed"]``); if not, ``replay["status"]`` says why."""
        step = self._step()
        times = harness.warm_up(step, min_s, min_calls, max_calls)
        out: dict[str, Any] = {"times": times}
        if self.contestant == REPLAY_CONTESTANT:
            before = self._replay_state()["replays"]
            t0 = time.perf_counter()
            step()
            times.append(time.perf_counter() - t0)
            out["replay"] = state = self._replay_state()
            state["last_replayed"] = state["replays"] == before + 1
        out["policy"] = policy.describe()
        return out

    def timed_loop(self, loop_s: float, max_steps: int) -> dict[str, Any]:
        """One round's timed loop: after a ``gc.collect()``, repeat the step (each one timed)
        until ``loop_s`` has passed (at least once, at most ``max_steps`` times); µs per step
        as the loop's mean (its whole time / steps) and the median step.

        compgrad.replay: also the replays in the loop, which must be every step (else
        ``RuntimeError``: the loop timed something other than replays)."""
        step = self._step()
        replay = self.contestant == REPLAY_CONTESTANT
        before = self._replay_state()["replays"] if replay else 0
        gc.collect()  # the collector stays on in the loop, as in a training loop
        deadline = time.perf_counter_ns() + int(loop_s * 1e9)
        times: list[int] = []
        start = end = time.perf_counter_ns()
        while True:
            t0 = time.perf_counter_ns()
            step()
            end = time.perf_counter_ns()
            times.append(end - t0)
            if end >= deadline or len(times) >= max_steps:
                break
        out = {"n": len(times), "mean_us": (end - start) / len(times) / 1e3,
               "median_us": statistics.median(times) / 1e3}
        if replay:
            state = self._replay_state()
            out["replays"] = replays = state["replays"] - before
            if replays != len(times):
                raise RuntimeError(f"{len(times) - replays} of the {len(times)} timed steps "
                                   f"were not replayed ({state['status']})")
        return out

    def profile(self, steps: int, top: int) -> dict[str, Any]:
        """cProfile ``steps`` steps: the ``top`` functions by own time (pstats text), with
        the µs per step with and without the profiler."""
        step = self._step()
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        plain = time.perf_counter() - t0
        prof = cProfile.Profile()
        t0 = time.perf_counter()
        prof.enable()
        for _ in range(steps):
            step()
        prof.disable()
        profiled = time.perf_counter() - t0
        text = io.StringIO()
        pstats.Stats(prof, stream=text).sort_stats("tottime").print_stats(top)
        return {"steps": steps, "top": top, "unprofiled_us_per_step": plain / steps * 1e6,
                "profiled_us_per_step": profiled / steps * 1e6, "text": text.getvalue()}

    def drop(self) -> None:
        """Forget the current case (torch.compile's graphs too: each case compiles its own)."""
        self.instance = None
        if self.contestant == "torch.compile":
            import torch

            torch._dynamo.reset()
        gc.collect()

    def _step(self) -> Callable[[], Any]:
        if self.instance is None:
            raise RuntimeError("no case is set up")
        return self.instance.step

    def _replay_state(self) -> dict[str, Any]:
        """The replay counts of compgrad.replay's compiled function: ``replays`` (calls
        replayed so far), ``status`` (why the last call was not replayed, None when it
        was or the plan was just installed) and ``installed`` (a plan is in place)."""
        if self.instance is None or self.instance.fn is None:
            raise RuntimeError("no compiled function to ask about replays")
        info = self.instance.fn.explain()
        return {"replays": info.replays, "status": info.replay_status,
                "installed": bool(info.replay_guards)}

    def serve(self, inbox: Connection, outbox: Connection) -> None:
        """Answer requests until ``exit`` or until the parent goes away."""
        while True:
            try:
                command, kwargs = inbox.recv()
            except EOFError:  # the parent closed the pipe (or died): nothing more to do
                return
            if command == "exit":
                outbox.send(("ok", None))
                return
            try:
                value = self.commands[command](**kwargs)
            except Exception as exc:  # noqa: BLE001 - reported to the parent, worker lives on
                outbox.send(("error", f"{type(exc).__name__}: {exc}", traceback.format_exc()))
            else:
                outbox.send(("ok", value))


def preload(spec: str, contestant: str) -> None:
    """Import ``module:function`` and call it with the contestant's name."""
    module, _, name = spec.partition(":")
    getattr(importlib.import_module(module), name)(contestant)


def main(argv: list[str]) -> None:
    """The worker's entry point: ``CONTESTANT READ_FD WRITE_FD [PRELOAD ...]``."""
    contestant, read_fd, write_fd, *preloads = argv
    policy.block_other_libraries(contestant)
    inbox = Connection(int(read_fd), writable=False)
    outbox = Connection(int(write_fd), readable=False)
    for spec in preloads:
        preload(spec, contestant)
    Server(contestant).serve(inbox, outbox)


if __name__ == "__main__":
    main(sys.argv[1:])

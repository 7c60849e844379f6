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

On a CUDA device (a case whose ``params["device"]`` is not the CPU: the GPU suite) the
worker synchronises the device (``programs.synchronizer``) before it reads the clock: after
each warm-up call, and before and after each timed loop, whose steps are queued back to
back as in a training loop (a round's time is the loop's mean; no per-step median). It also
answers ``gpu_memory`` (the peak GPU memory of one step) and ``describe`` (how
compgrad's compiled programs ran: ``explain().program_notes``).

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
        self.device = "cpu"
        self.sync: Callable[[], None] = _no_sync  # waits for queued GPU work (CUDA cases)
        self.commands: dict[str, Callable[..., Any]] = {
            "hello": self.hello, "setup": self.setup, "warm_up": self.warm_up,
            "time": self.timed_loop, "profile": self.profile, "drop": self.drop,
            "gpu_memory": self.gpu_memory, "describe": self.describe,
        }

    def hello(self) -> dict[str, Any]:
        """Load the contestant's library (timed) and apply the in-process policy."""
        t0 = time.perf_counter()
        if self.contestant not in programs.BY_HAND:
            programs.library(self.contestant)
        policy.apply_in_process(self.contestant)
        return {"import_s": time.perf_counter() - t0, "policy": policy.describe()}

    def setup(self, case_id: str, quick: bool, check_steps: int, suite: str = "cpu",
              device: str = "cuda") -> dict[str, Any]:
        """Build the case (of ``suite``, on ``device`` for the GPU suite), time its first
        step (compiling, where anything compiles; synchronised on a GPU) and return the
        results of ``check_steps`` steps and the state after them (what the parent
        compares with torch eager's)."""
        self.drop()
        case = {c.id: c for c in programs.suite_cases(suite, quick, device)}[case_id]
        self.device = programs.device_of(case.params)
        self.sync = programs.synchronizer(self.contestant, self.device)
        self.instance = inst = case.build(self.contestant, case.params)
        t0 = time.perf_counter()
        first = inst.step()
        self.sync()
        first_call_s = time.perf_counter() - t0
        results = {"out[0]": programs.to_numpy(first)}
        del first
        for i in range(1, check_steps):
            results[f"out[{i}]"] = programs.to_numpy(inst.step())
        # host NumPy copies: a by-hand contestant's state may be CuPy arrays on a GPU
        results.update({k: programs.to_numpy(v) for k, v in inst.state().items()})
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
        if self.device != "cpu":  # each call's time includes its GPU work
            step = self._synced_step
        times = harness.warm_up(step, min_s, min_calls, max_calls)
        if self.contestant == "compgrad.compile":
            self._settle_tiering(step, times)
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
        if self.device != "cpu":
            out = self._device_loop(step, loop_s, max_steps)
        else:
            out = self._host_loop(step, loop_s, max_steps)
        if replay:
            state = self._replay_state()
            out["replays"] = replays = state["replays"] - before
            if replays != out["n"]:
                raise RuntimeError(f"{out['n'] - replays} of the {out['n']} timed steps "
                                   f"were not replayed ({state['status']})")
        return out

    @staticmethod
    def _host_loop(step: Callable[[], Any], loop_s: float, max_steps: int) -> dict[str, Any]:
        """The CPU loop: every step timed; the loop's mean and the median step in µs."""
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
        return {"n": len(times), "mean_us": (end - start) / len(times) / 1e3,
                "median_us": statistics.median(times) / 1e3}

    def _device_loop(self, step: Callable[[], Any], loop_s: float,
                     max_steps: int) -> dict[str, Any]:
        """The GPU loop: the device synchronised before the clock starts and before it
        stops, the steps queued back to back between (a per-step time would need a sync
        per step, which a training loop does not do); ``median_us`` is the loop's mean."""
        self.sync()
        start = time.perf_counter_ns()
        deadline = start + int(loop_s * 1e9)
        n = 0
        while True:
            step()
            n += 1
            if n >= max_steps or time.perf_counter_ns() >= deadline:
                break
        self.sync()
        mean_us = (time.perf_counter_ns() - start) / n / 1e3
        return {"n": n, "mean_us": mean_us, "median_us": mean_us, "synchronized": True}

    def _synced_step(self) -> Any:
        """One step and a wait for its GPU work."""
        result = self._step()()
        self.sync()
        return result

    def gpu_memory(self) -> dict[str, Any]:
        """The peak GPU memory allocated during one step (after warm-up, inputs, weights
        and optimizer state included), from the contestant's own allocator statistics:
        ``torch.cuda.max_memory_allocated`` and ``compgrad.cuda.max_memory_allocated``
        (compgrad samples its pool: a peak between two samples is missed), CuPy's pool
        in use after the step for the by-hand contestant (no peak). None on the CPU."""
        if self.device == "cpu":
            return {"peak_bytes": None, "how": "cpu"}
        self.sync()
        if self.contestant in programs.BY_HAND:
            import cupy

            self._synced_step()
            return {"peak_bytes": int(cupy.get_default_memory_pool().used_bytes()),
                    "how": "CuPy pool in use after a step (no peak recorded)"}
        lib, _ = programs.library(self.contestant)
        lib.cuda.reset_peak_memory_stats()
        self._synced_step()
        return {"peak_bytes": int(lib.cuda.max_memory_allocated()),
                "how": f"{lib.__name__}.cuda.max_memory_allocated over one step"}

    def describe(self) -> dict[str, Any] | None:
        """How a compgrad compiled step ran (None for the other contestants):
        ``explain().program_notes`` by program (generated CUDA kernels, or node by node
        and why) and, per GPU program built, its kernel and node-by-node group counts."""
        if self.instance is None or self.instance.fn is None \
                or not hasattr(self.instance.fn, "explain"):
            return None
        info = self.instance.fn.explain()
        notes = {str(k): v for k, v in info.program_notes.items()}
        return {"program_notes": notes, "program_count": info.program_count,
                "kernel_count": info.kernel_count, "cuda_programs": _cuda_stats(self.instance.fn)}

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

    def _settle_tiering(self, step: Callable[[], Any], times: list[float]) -> None:
        """compgrad.compile: go on calling (times appended) while a program the step runs
        is still on its way to one Numba function (``codegen.tiering``: a small program
        moves after ``TIER_UP_RUNS`` runs when the disk cache does not have it yet), so
        that the timed rounds see the steady state, not the move."""
        from codegen.tiering import TIER_UP_RUNS
        programs_of = self.instance.fn.programs.values

        def pending() -> dict[int, int]:
            return {id(p): p.tiering.runs for p in programs_of()
                    if p.tiering is not None and not p.tiering.decided}

        while len(times) < TIER_UP_RUNS + 20:
            before = pending()
            if not before:
                return
            t0 = time.perf_counter()
            step()
            times.append(time.perf_counter() - t0)
            after = pending()
            if not any(after.get(k, -1) > runs for k, runs in before.items()):
                return   # no program still waiting ran in this call

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


def _no_sync() -> None:
    """The CPU's synchronisation: nothing is queued."""


def _cuda_stats(fn: Any) -> list[dict[str, int]]:
    """Per GPU program of a compiled function that was built: its generated-kernel and
    node-by-node group counts (``CudaProgram.stats``). Benchmark-only probing of
    compgrad's internals (``explain()`` does not count GPU kernels): empty where the
    attributes are not there."""
    out = []
    for prog in getattr(fn, "programs", {}).values():
        runner = getattr(prog, "on_device", None)
        stats = getattr(getattr(runner, "program", None), "stats", None)
        if stats is not None:
            out.append({"kernels": stats.kernels,
                        "node_by_node_groups": stats.interpreted_phases})
    return out


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

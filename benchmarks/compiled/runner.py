"""Interleaved rounds over the contestants' worker processes, one case at a time.

For each case every contestant's worker sets the case up (the reference, torch eager,
first), runs a few steps from the same initial state and sends back its results, which are
compared here with torch eager's; then it warms up (torch.compile and compgrad.compile
compile here, never in a timed loop). Round r then asks each worker in turn, the order
rotating from round to round, to time its step for about ``loop_s``; only one worker runs
at a time, the others wait on their pipe. Ratios to torch eager are taken per round from
the same round's numbers and reduced to medians over the rounds.

The GPU suite (``gpu``) uses the same machinery with a few settings (``CaseOptions``): its
cases set up in the workers by suite and device, a deadline after which no new round
starts, a reference other than torch eager where torch is missing (CuPy by hand), and
``probes``: worker commands asked of each contestant after the rounds (GPU memory peaks,
how compiled programs ran), their answers recorded under the command's name.

compgrad.replay is timed only once its step is replayed: a case whose step is not
replayed after warm-up is recorded as ``not_replayed`` (with compgrad's reason) and left
out of the rounds, and a timed loop with a step that was not replayed is an error.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, replace
from typing import Any

from benchmarks import harness
from benchmarks.compiled.pool import ContestantError, WorkerError, WorkerPool
from benchmarks.compiled.programs import Case
from benchmarks.compiled.settings import (
    COMPILED_CONTESTANTS,
    MAX_STEPS,
    PROFILE_TOP,
    QUICK_WARMUP_S,
    REFERENCE,
    REPLAY_CONTESTANT,
    RTOL,
    SETTLE_S,
    TARGET_CONTESTANT,
    WARMUP_S,
)


@dataclass(frozen=True)
class CaseOptions:
    """How a case is run beyond its contestants and rounds (defaults: the CPU suite's).

    ``suite`` and ``device``: where the workers find the case (``programs.suite_cases``);
    ``deadline``: a ``time.monotonic()`` after which no further round starts (at least
    one round runs); ``reference``: the contestant the ratios are taken against;
    ``probes``: worker commands asked of every timed contestant after the rounds;
    ``settle_s``: the pause before each timed loop."""

    suite: str = "cpu"
    device: str = "cpu"
    deadline: float | None = None
    reference: str = REFERENCE
    probes: tuple[str, ...] = ()
    settle_s: float = SETTLE_S


def _set_up(pool: WorkerPool, case: Case, contestant: str, quick: bool,
            ref: dict[str, Any] | None, record: dict[str, Any],
            opts: CaseOptions = CaseOptions()) -> dict[str, Any] | None:
    """Set one contestant up in its worker, check its results against ``ref`` and warm it
    up; its results, or None after writing the error (or, for compgrad.replay, why its
    step is not replayed) into ``record``."""
    stage = "starting its worker"
    try:
        worker = pool.get(contestant)
        record["pid"] = worker.pid
        stage = "setting up"
        where = {} if opts.suite == "cpu" else {"suite": opts.suite, "device": opts.device}
        rep = worker.call("setup", pool.timeouts.setup_s, case_id=case.id, quick=quick,
                          check_steps=case.check_steps, **where)
        record["first_call_s"] = rep["first_call_s"]  # with compiling, where any
        if ref is not None:
            record["check"] = harness.compare_arrays(ref, rep["results"], RTOL)
        if "replay" in rep:  # how many of the checked steps were replays
            record["check_replays"] = rep["replay"]["replays"]
        stage = "warming up"
        warm = worker.call("warm_up", pool.timeouts.call_s,
                           min_s=(QUICK_WARMUP_S if quick else WARMUP_S)[
                               contestant in COMPILED_CONTESTANTS])
    except ContestantError as exc:  # the program raised: reported, its worker lives on
        record["error"] = str(exc) if stage == "setting up" else f"{exc} while {stage}"
        return None
    except WorkerError as exc:
        pool.discard(contestant)
        record["error"] = str(exc)
        return None
    times = warm["times"]
    record["warmup_calls"] = len(times) + case.check_steps
    record["warmup_last_s"] = statistics.median(times[-3:])
    record["warmup_min_s"] = min(times)
    record["policy"] = warm["policy"]
    replay = warm.get("replay")
    if replay is not None:
        record["warmup_replays"] = replay["replays"]
        if not replay["last_replayed"]:
            record["not_replayed"] = replay["status"] or "no replay after warm-up"
            return None
    return rep["results"]


def _rounds(pool: WorkerPool, names: list[str], rounds: int, loop_s: float,
            records: dict[str, dict[str, Any]], show_progress: bool, desc: str,
            deadline: float | None = None, settle_s: float = SETTLE_S
            ) -> tuple[dict[str, list[float]], dict[str, list[float]], dict[str, list[int]]]:
    """The interleaved rounds: per contestant, the per-round mean and median µs per step
    and the steps per round. A contestant that fails is dropped with its error recorded.
    No round after the first starts past ``deadline`` (``time.monotonic()``)."""
    means: dict[str, list[float]] = {c: [] for c in names}
    medians: dict[str, list[float]] = {c: [] for c in names}
    steps: dict[str, list[int]] = {c: [] for c in names}
    for rnd in harness.progress(range(rounds), rounds, show_progress, desc=desc, leave=False):
        if rnd and deadline is not None and time.monotonic() >= deadline:
            break  # the time budget is spent: the rounds so far are the result
        k = rnd % len(names)
        for c in names[k:] + names[:k]:  # rotate who goes first
            if c not in means:
                continue
            # the previous contestant's BLAS/OpenMP threads spin on for a while after its
            # loop (OpenBLAS's up to ~0.1 s), taking the cores from whoever goes next
            time.sleep(settle_s)
            try:
                rep = pool.workers[c].call("time", pool.timeouts.call_s, loop_s=loop_s,
                                           max_steps=MAX_STEPS)
            except (ContestantError, WorkerError) as exc:
                if isinstance(exc, WorkerError):
                    pool.discard(c)
                records[c]["error"] = f"round {rnd}: {exc}"
                for table in (means, medians, steps):
                    del table[c]
                continue
            means[c].append(rep["mean_us"])
            medians[c].append(rep["median_us"])
            steps[c].append(rep["n"])
            if "replays" in rep:  # compgrad.replay: every timed step (the worker checks)
                records[c].setdefault("replays_per_round", []).append(rep["replays"])
    return means, medians, steps


def time_case(case: Case, contestants: list[str], rounds: int, loop_s: float,
              quick: bool, show_progress: bool = True, pool: WorkerPool | None = None,
              profile_steps: int = 0, opts: CaseOptions = CaseOptions()) -> dict[str, Any]:
    """Set up, check, warm up and time one case, each contestant in its worker; its record
    for the JSON. ``pool``: the workers to use (default: a pool for this case alone);
    ``profile_steps``: where > 0, a cProfile of that many compgrad.compile steps after the
    rounds; ``opts``: suite, device, deadline, reference and probes (``CaseOptions``)."""
    if pool is None:
        with WorkerPool() as own:
            return time_case(case, contestants, rounds, loop_s, quick, show_progress, own,
                             profile_steps, opts)
    reference = opts.reference
    names = [reference] + [c for c in contestants if c != reference]  # the reference first
    records: dict[str, dict[str, Any]] = {c: {} for c in names}
    for c, error in pool.start(names).items():  # all start at once; failures reported
        records[c]["error"] = error
    ref: dict[str, Any] | None = None
    ready: list[str] = []
    for c in harness.progress(names, len(names), show_progress, desc=f"{case.id} set-up",
                              unit="contestant", leave=False):
        if "error" in records[c]:
            continue
        results = _set_up(pool, case, c, quick, ref, records[c], opts)
        if results is None:
            continue
        if c == reference:
            ref = results
        ready.append(c)
    del ref
    out: dict[str, Any] = {"id": case.id, "workload": case.workload, "title": case.title,
                           "loadavg_at_start": harness.loadavg(),
                           "params": {k: list(v) if isinstance(v, tuple) else v
                                      for k, v in case.params.items()},
                           "target": case.target, "contestants": records}
    if reference != REFERENCE:
        out["reference"] = reference
    means: dict[str, list[float]] = {}
    if reference in ready:
        means, medians, steps = _rounds(pool, ready, rounds, loop_s, records, show_progress,
                                        f"{case.id} rounds", opts.deadline, opts.settle_s)
    if reference not in means:
        out["error"] = f"the reference ({reference}) failed: {records[reference].get('error')}"
        _drop(pool, names)
        return out
    out.update({"unit": "us/step", "statistic": "mean µs per step of each round's loop",
                "n_per_round": steps, "round_step_median_us": medians,
                **harness.summarize(means), "round_ratios": harness.round_ratios(means, reference)})
    out["target_ratio"] = ratio(out, TARGET_CONTESTANT)
    out["target_met"] = target_met(out)
    if REPLAY_CONTESTANT in names:  # beside the target, never in its place
        out["replay_ratio"] = ratio(out, REPLAY_CONTESTANT)
        out["replay_within_target"] = target_met(out, REPLAY_CONTESTANT)
    if profile_steps > 0 and TARGET_CONTESTANT in means:
        out["profile"] = _profile(pool, profile_steps)
    for probe in opts.probes:
        _probe(pool, [c for c in names if c in means], probe, records)
    _drop(pool, names)
    return out


def _probe(pool: WorkerPool, names: list[str], command: str,
           records: dict[str, dict[str, Any]]) -> None:
    """Ask each contestant's worker ``command`` (no arguments); its answer, or the error,
    goes to ``records[c][command]``."""
    for c in names:
        try:
            records[c][command] = pool.workers[c].call(command, pool.timeouts.call_s)
        except ContestantError as exc:
            records[c][command] = {"error": str(exc)}
        except WorkerError as exc:
            pool.discard(c)
            records[c][command] = {"error": str(exc)}


def _profile(pool: WorkerPool, steps: int) -> dict[str, Any]:
    try:
        return pool.workers[TARGET_CONTESTANT].call("profile", pool.timeouts.call_s,
                                                    steps=steps, top=PROFILE_TOP)
    except ContestantError as exc:
        return {"error": str(exc)}
    except WorkerError as exc:
        pool.discard(TARGET_CONTESTANT)
        return {"error": str(exc)}


def _drop(pool: WorkerPool, names: list[str]) -> None:
    """Have every live worker forget the case (its arrays, torch.compile's graphs)."""
    for c in names:
        worker = pool.workers.get(c)
        if worker is None:
            continue
        try:
            worker.call("drop", pool.timeouts.call_s)
        except WorkerError:
            pool.discard(c)
        except ContestantError:  # a worker that cannot forget starts afresh
            pool.discard(c)


def ratio(case: dict[str, Any], contestant: str) -> float | None:
    """The median over rounds of ``contestant``'s per-round ratio to the case's reference
    (torch eager unless the record names another)."""
    r = case.get("round_ratios", {}).get(f"{contestant}/{case.get('reference', REFERENCE)}")
    return None if r is None else r["median"]


def check_ok(case: dict[str, Any], contestant: str) -> bool | None:
    """False for an error or a mismatch, True for a passed check, None for no check."""
    rec = case["contestants"].get(contestant, {})
    if "error" in rec:
        return False
    chk = rec.get("check")
    return None if chk is None else chk["ok"]


def target_met(case: dict[str, Any], contestant: str = TARGET_CONTESTANT) -> bool | None:
    """Whether ``contestant``'s ratio (by default compgrad.compile's, which the targets
    are about) is within the case's target with correct results."""
    r = ratio(case, contestant)
    if r is None or case["target"] is None:
        return None
    return r <= case["target"] and check_ok(case, contestant) is not False


def run_benchmark(selected: list[Case], contestants: list[str], rounds: int, loop_s: float,
                  quick: bool = False, show_progress: bool = True,
                  pool: WorkerPool | None = None, profile_steps: int = 0,
                  opts: CaseOptions = CaseOptions()) -> dict[str, Any]:
    """Time every selected case (one after another) for the given contestants, each in its
    own worker process kept for the whole run (``pool``, default: a new one); the cases'
    records and, per contestant, its worker's pid and thread policy.

    ``opts.deadline`` is the whole run's: each case gets an equal share of the time left
    when it starts (its rounds stop at that share's end)."""
    if pool is None:
        with WorkerPool() as own:
            return run_benchmark(selected, contestants, rounds, loop_s, quick, show_progress,
                                 own, profile_steps, opts)
    out = []
    for i, case in enumerate(harness.progress(selected, len(selected), show_progress,
                                              desc="cases", unit="case")):
        case_opts = opts
        if opts.deadline is not None:
            share = (opts.deadline - time.monotonic()) / (len(selected) - i)
            case_opts = replace(opts, deadline=time.monotonic() + share)
        out.append(time_case(case, contestants, rounds, loop_s, quick, show_progress, pool,
                             profile_steps, case_opts))
    workers: dict[str, Any] = {}
    for case in out:  # the last policy each contestant reported
        for c, rec in case["contestants"].items():
            if "policy" in rec:
                workers[c] = {"pid": rec["pid"], "policy": rec["policy"]}
    for c, rec in workers.items():
        rec["processes_started"] = pool.started.get(c, 0)
    return {"cases": out, "workers": workers}

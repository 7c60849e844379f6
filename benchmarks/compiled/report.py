"""The results as Markdown (times, ratios, targets, checks, worker policies, profiles,
cold start, memory) and as a plot (ratio to torch eager per case)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import harness
from benchmarks.compiled import policy
from benchmarks.compiled.runner import check_ok, ratio
from benchmarks.compiled.settings import (
    ALL_CONTESTANTS,
    COLD_TARGETS_S,
    CONTESTANTS,
    LABELS,
    REFERENCE,
    REPLAY_CONTESTANT,
    RTOL,
    TARGET_CONTESTANT,
)


def _cell(case: dict[str, Any], c: str) -> str:
    rec = case["contestants"].get(c)
    if rec is None:
        return "-"
    if "error" in rec:
        return "**ERROR**"
    if "not_replayed" in rec:
        return "not replayed" + (" **MISMATCH**" if check_ok(case, c) is False else "")
    med = case.get("median_us", {}).get(c)
    text = harness.fmt_duration(med)
    r = 1.0 if c == case.get("reference", REFERENCE) else ratio(case, c)
    if med is not None and r is not None:
        text += f" ({r:.3g}x)"
    if check_ok(case, c) is False:
        text += " **MISMATCH**"
    return text


def _loads(values: list[float] | None) -> str:
    return "-" if not values else "/".join(f"{v:.1f}" for v in values)


def _met(value: bool | None) -> str:
    return "-" if value is None else ("yes" if value else "**no**")


def _replay_cell(case: dict[str, Any]) -> str:
    """compgrad.replay's ratio to torch eager and whether it is within the case's target
    (the target column stays compgrad.compile's)."""
    rec = case["contestants"].get(REPLAY_CONTESTANT, {})
    if "error" in rec:
        return "**ERROR**"
    if "not_replayed" in rec:
        return "not replayed"
    r = case.get("replay_ratio")
    if r is None:
        return "-"
    within = case.get("replay_within_target")
    return f"{r:.3g}x" + ("" if within is None else
                          " (within target)" if within else " (**over target**)")


def _check_cell(case: dict[str, Any], c: str) -> str:
    """One cell of the results-check table: the largest relative error and whether it is
    within the tolerance (compgrad.replay: and how many checked steps were replays)."""
    rec = case["contestants"].get(c, {})
    chk = rec.get("check")
    if "error" in rec:
        return "error"
    if chk is None:
        return "-"
    text = f"{chk['max_rel_err']:.1e} {'ok' if chk['ok'] else '**MISMATCH**'}"
    if "check_replays" in rec:
        text += f" ({rec['check_replays']} replayed)"
    return text


def format_markdown(result: dict[str, Any]) -> str:
    """The results as Markdown: times and ratios, targets, checks, cold start, memory."""
    cfg = result["config"]
    names = [c for c in CONTESTANTS if c in cfg["contestants"]]
    env = result.get("environment", {})
    replay = REPLAY_CONTESTANT in names
    replay_note = ("; replay ratio: compgrad.compile(mode=\"reduce-overhead\") / torch "
                   "eager, every timed step a replay" if replay else "")
    lines = [
        "# Compiled workloads W1-W5 (issue 7)", "",
        f"{cfg['rounds']} interleaved rounds{' (--quick sizes)' if cfg['quick'] else ''}, "
        f"each contestant in its own worker process, one running at a time; cells: the mean "
        f"time per step of a round's loop (~{cfg.get('loop_s', 0) * 1e3:g} ms), median over "
        f"rounds (median over rounds of the ratio to torch eager, taken per round); target: "
        f"compgrad.compile / torch eager{replay_note}. {harness.cpus(result)} CPUs, "
        f"{cfg.get('threads')} "
        f"threads per process, load average (1, 5, 15 min) before the run "
        f"{_loads(env.get('loadavg_before_run'))}, after {_loads(env.get('loadavg_after_run'))}; "
        f"torch {env.get('torch')}, numpy {env.get('numpy')}, numba {env.get('numba')}.", "",
    ]
    header = ["case", *(LABELS[c] for c in names), "target", "met",
              *(["replay ratio"] if replay else [])]
    rows = [[f"{case['id']}: {case['title']}", *(_cell(case, c) for c in names),
             f"<= {case['target']}" if case["target"] is not None else "-",
             _met(case.get("target_met")), *([_replay_cell(case)] if replay else [])]
            for case in result["cases"]]
    lines += [harness.markdown_table(header, rows), ""]
    unreplayed = [(case["id"], rec["not_replayed"]) for case in result["cases"]
                  for c, rec in case["contestants"].items() if "not_replayed" in rec]
    if unreplayed:
        lines += [f"{LABELS[REPLAY_CONTESTANT]} not timed where its step is not replayed "
                  "after warm-up:", ""]
        lines += [f"- {cid}: {why}" for cid, why in unreplayed] + [""]
    bad = [(case["id"], c, rec) for case in result["cases"]
           for c, rec in case["contestants"].items()
           if "error" in rec or not rec.get("check", {"ok": True})["ok"]]
    if bad:
        lines += ["**RESULT MISMATCHES / ERRORS** (vs torch eager):", ""]
        lines += problem_lines(bad) + [""]
    lines += ["Results check (max |x - torch| / max |torch| over outputs, grads and weights, "
              f"tolerance {RTOL:g}):", ""]
    others = [c for c in names if c != REFERENCE]
    rows = [[case["id"], *(_check_cell(case, c) for c in others)]
            for case in result["cases"]]
    lines += [harness.markdown_table(["case", *(LABELS[c] for c in others)], rows), ""]
    lines += _policy_lines(result.get("workers"))
    lines += _profile_lines(result["cases"])
    lines += _cold_start_lines(result.get("cold_start")) + _memory_lines(result.get("memory"))
    return "\n".join(lines)


def _policy_lines(workers: dict[str, Any] | None) -> list[str]:
    """One line per worker process: its pid and thread policy."""
    if not workers:
        return []
    lines = ["Worker processes (one per contestant; thread policy after warm-up):", ""]
    for c in (c for c in ALL_CONTESTANTS if c in workers):
        rec = workers[c]
        restarts = rec.get("processes_started", 1) - 1
        again = f", restarted {restarts}x" if restarts > 0 else ""
        lines.append(f"- {LABELS[c]} (pid {rec['pid']}{again}): {policy.summary(rec['policy'])}")
    return [*lines, ""]


def _profile_lines(cases: list[dict[str, Any]]) -> list[str]:
    """The compgrad.compile profiles (--profile): file, steps, and whether the target is met."""
    profiled = [case for case in cases if "profile" in case]
    if not profiled:
        return []
    lines = [f"Profiles of {TARGET_CONTESTANT} in its worker (cProfile, top functions by "
             "own time):", ""]
    for case in profiled:
        prof = case["profile"]
        met = {True: "target met", False: "**target not met**", None: "no target"}[
            case.get("target_met")]
        if "error" in prof:
            lines.append(f"- {case['id']} ({met}): **ERROR** {prof['error']}")
            continue
        where = f"[{prof['file']}]({prof['file']})" if prof.get("file") else "(not written)"
        lines.append(f"- {case['id']} ({met}): {where}, {prof['steps']} steps, "
                     f"{harness.fmt_duration(prof['unprofiled_us_per_step'])} per step "
                     f"unprofiled, {harness.fmt_duration(prof['profiled_us_per_step'])} "
                     "profiled")
    return [*lines, ""]


def _cold_start_lines(cold: dict[str, Any] | None) -> list[str]:
    if not cold:
        return []
    rows = []
    for c, by_cache in cold.items():
        for cache, rec in by_cache.items():
            target = COLD_TARGETS_S[cache] if c == TARGET_CONTESTANT else None
            if "error" in rec:
                rows.append([c, cache, f"**ERROR** {rec['error']}", "-", "-", "-", "-"])
                continue
            rows.append([c, cache, f"{rec['first_step_s']:.3f} s", f"{rec['import_s']:.2f} s",
                         f"{rec['wall_s']:.2f} s",
                         "-" if target is None else f"<= {target} s",
                         "-" if target is None else _met(rec["first_step_s"] <= target)])
    return ["First W1 step (batch 32) in a fresh process:", "",
            harness.markdown_table(["contestant", "cache", "first step", "imports",
                                    "process wall", "target", "met"], rows), ""]


def _memory_lines(mem: dict[str, Any] | None) -> list[str]:
    if not mem:
        return []
    rows = []
    for c, rec in mem.items():
        if "error" in rec:
            rows.append([c, f"**ERROR** {rec['error']}", "-", "-", "-", "-"])
            continue
        peak = rec.get("peak_total_mib")
        rows.append([c, "-" if peak is None else f"{peak:.0f} MiB",
                     f"{rec['tracemalloc_peak_mib']:.0f} MiB",
                     f"{rec['inputs_mib'] + rec['outputs_mib']:.0f} MiB",
                     f"{rec['budget_mib']:.0f} MiB",
                     _met(rec.get("met")) if c == TARGET_CONTESTANT else "-"])
    sees = next((r.get("tracemalloc_sees_numpy") for r in mem.values() if "error" not in r), None)
    return ["W3 peak memory in a fresh process (inputs + peak RSS above the resident set "
            "before the call; tracemalloc sees NumPy buffers: "
            f"{sees}, not torch's or Numba's):", "",
            harness.markdown_table(["contestant", "peak (RSS)", "tracemalloc peak",
                                    "inputs + outputs", "budget (+64 MiB)", "met"], rows), ""]


_MARKERS = {"numpy": "s", "cupy": "s", "torch.compile": "^", "compgrad": "o",
            "compgrad.compile": "D", "compgrad.replay": "*"}
_COLORS = {"numpy": "tab:green", "cupy": "tab:olive", "torch.compile": "tab:orange",
           "compgrad": "tab:cyan", "compgrad.compile": "tab:blue", "compgrad.replay": "tab:purple"}


def plot(result: dict[str, Any], path: Path) -> None:
    """Ratio to torch eager per case and contestant (log scale), targets as red bars."""
    cases_ = result["cases"]
    reference = result["config"].get("reference", REFERENCE)
    names = [c for c in ALL_CONTESTANTS
             if c != reference and c in result["config"]["contestants"]]
    xs = np.arange(len(cases_))
    fig, ax = harness.new_figure((max(8.0, 1.2 * len(cases_)), 5.0))
    width = 0.7 / max(1, len(names))
    for i, c in enumerate(names):
        off = (i - (len(names) - 1) / 2) * width
        ys = [ratio(case, c) for case in cases_]
        ax.scatter(xs + off, [np.nan if y is None else y for y in ys], marker=_MARKERS[c],
                   color=_COLORS[c], label=LABELS[c], zorder=3)
        for x, y, case in zip(xs + off, ys, cases_):
            if y is not None and check_ok(case, c) is False:
                ax.annotate("mismatch", (x, y), color="red", fontsize=7, rotation=90,
                            ha="center", va="bottom")
    for x, case in zip(xs, cases_):
        if case["target"] is not None:
            ax.hlines(case["target"], x - 0.4, x + 0.4, colors="red", linestyles="--",
                      label="target (compgrad.compile)" if x == 0 else None)
    ax.axhline(1.0, color="grey", lw=1)
    ax.set_yscale("log")
    ax.set_xticks(xs)
    ax.set_xticklabels([case["id"] for case in cases_], fontsize=8)
    ax.set_ylabel(f"time / {LABELS[reference]} (median of per-round ratios)")
    quick = " (quick sizes)" if result["config"]["quick"] else ""
    where = result["config"].get("device_name") or f"{harness.cpus(result)} CPUs"
    ax.set_title(f"compiled workloads, {result['config']['rounds']} rounds, "
                 f"{where}{quick}", fontsize=10)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.08),
              ncol=len(names) + 1)
    ax.grid(axis="y", which="both", alpha=0.3)
    harness.save_figure(fig, path)



def problem_lines(problems: list) -> list[str]:
    """One Markdown bullet per ``(case id, contestant, record)`` whose run failed or whose
    results disagree with the reference (the CPU and GPU reports alike)."""
    lines = []
    for cid, c, rec in problems:
        if "error" in rec:
            lines.append(f"- {cid} {c}: error {rec['error']}")
        else:
            chk = rec["check"]
            lines.append(f"- {cid} {c}: max rel err {chk['max_rel_err']:.2e} in "
                         f"{chk['worst']} (tolerance {RTOL:g}) {chk['problems'] or ''}")
    return lines

"""The GPU suite (issue 8): W1, W3 and W4 at sizes that fill an H100, every contestant on
one CUDA device, timed against torch CUDA eager (CuPy by hand where torch is missing).

Run from the repository root on a machine with a GPU::

    python -m benchmarks.compiled --device cuda [--quick] [--budget-s 390] [--rounds 5]
    python -m benchmarks.compiled.gpu ...            (the same)

It is the CPU suite's machinery (``runner``, ``worker``, ``pool``) with GPU settings
(``runner.CaseOptions``): the cases of ``programs.gpu_cases`` set up on the device,
workers that synchronise the device before they read the clock, a time budget after
which no new round starts, and two probes after each case's rounds: each contestant's
peak GPU memory over one step (``worker.Server.gpu_memory``) and how compgrad's compiled
programs ran (``worker.Server.describe``: generated CUDA kernels or node by node, from
``explain().program_notes``). Results are checked against the reference's as on the CPU.

``--device cpu`` runs the same code paths on the CPU (with ``--quick``: a smoke test
without a GPU). ``--device cuda`` without a GPU exits with status 2 and says why.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks import harness
from benchmarks.compiled import programs, report, runner
from benchmarks.compiled.pool import Timeouts, WorkerPool
from benchmarks.compiled.settings import (
    ALL_CONTESTANTS,
    GPU_BUDGET_S,
    GPU_CONTESTANTS,
    GPU_DEFAULT_CONTESTANTS,
    GPU_DEFAULT_ROUNDS,
    GPU_FALLBACK_REFERENCE,
    GPU_LOOP_S,
    GPU_PROBES,
    GPU_QUICK_LOOP_S,
    GPU_QUICK_ROUNDS,
    GPU_SETTLE_S,
    LABELS,
    REFERENCE,
    REPLAY_CONTESTANT,
    RTOL,
    SEED,
    TARGET_CONTESTANT,
)

STEM = "compiled-gpu"
# a set-up that compiles for longer than this is reported as failed, not waited for:
# the whole run must fit one 10-minute command
GPU_TIMEOUTS = Timeouts(start_s=180.0, setup_s=300.0, call_s=240.0)
MIB = 1 << 20


def gpu_problem(device: str) -> str | None:
    """Why the suite cannot run on ``device`` (None where it can): on ``"cuda"``, the
    message of ``compgrad.cuda.CudaUnavailableError`` where compgrad finds no GPU."""
    if device == "cpu":
        return None
    import compgrad

    try:
        compgrad.cuda.synchronize()  # raises, saying why, where there is no usable GPU
    except compgrad.cuda.CudaUnavailableError as exc:
        return str(exc)
    return None


def has_torch() -> bool:
    """Whether torch is installed (it is imported only in its own workers)."""
    return importlib.util.find_spec("torch") is not None


def device_info(device: str) -> dict[str, Any]:
    """The device's name and the GPU libraries' versions (where installed)."""
    info: dict[str, Any] = {"device": device}
    if device != "cpu":
        import compgrad

        info["device_name"] = compgrad.cuda.get_device_name()
        info["capability"] = list(compgrad.cuda.get_device_capability())
    for name in ("cupy", "numba_cuda"):
        if importlib.util.find_spec(name) is not None:
            info[name] = getattr(importlib.import_module(name), "__version__", "?")
    return info


def new_parser() -> argparse.ArgumentParser:
    """The GPU suite's command line."""
    parser = harness.new_parser(__doc__, GPU_DEFAULT_ROUNDS, GPU_QUICK_ROUNDS)
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda",
                        help="where every contestant computes (cpu: the same code paths "
                             "without a GPU, for smoke tests)")
    parser.add_argument("--workloads", default=None,
                        help="comma-separated workloads or case ids (W1,W3,W4-ln); default all")
    parser.add_argument("--contestants", default=None,
                        help=f"comma-separated subset of {','.join(GPU_CONTESTANTS)} (the "
                             "reference is always included); default all but torch.compile")
    parser.add_argument("--budget-s", type=float, default=GPU_BUDGET_S,
                        help=f"no new round starts after this many s of the run (default "
                             f"{GPU_BUDGET_S:g}; set-ups and probes come on top)")
    harness.add_output_options(parser, STEM, quick_help="smoke run: tiny sizes, 2 rounds")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the GPU suite; 0 where every contestant agreed with the reference, 1 otherwise,
    2 where there is no GPU (``--device cuda``) or no reference."""
    parser = new_parser()
    args = parser.parse_args(argv)
    problem = gpu_problem(args.device)
    if problem is not None:
        print(f"The GPU benchmark needs a CUDA device: {problem}\n"
              "(--device cpu runs its code paths on the CPU)", file=sys.stderr)
        return 2
    reference = REFERENCE if has_torch() else GPU_FALLBACK_REFERENCE
    wanted = ([c.strip() for c in args.contestants.split(",")] if args.contestants
              else list(GPU_DEFAULT_CONTESTANTS))
    unknown = set(wanted) - set(GPU_CONTESTANTS)
    if unknown:
        parser.error(f"unknown contestants {sorted(unknown)}")
    if reference != REFERENCE:
        print(f"torch is not installed: timing against {LABELS[reference]}", file=sys.stderr)
        wanted = [c for c in wanted if not c.startswith("torch")]
    contestants = [c for c in ALL_CONTESTANTS if c in wanted or c == reference]
    try:
        selected = programs.select_cases(programs.gpu_cases(args.quick, args.device),
                                         args.workloads)
    except ValueError as exc:
        parser.error(str(exc))
    rounds = args.rounds or (GPU_QUICK_ROUNDS if args.quick else GPU_DEFAULT_ROUNDS)
    loop_s = GPU_QUICK_LOOP_S if args.quick else GPU_LOOP_S

    t0 = time.perf_counter()
    opts = runner.CaseOptions(suite="gpu", device=args.device, reference=reference,
                              deadline=time.monotonic() + args.budget_s, probes=GPU_PROBES,
                              settle_s=GPU_SETTLE_S)
    with WorkerPool(timeouts=GPU_TIMEOUTS) as pool:
        result = runner.run_benchmark(selected, contestants, rounds, loop_s, args.quick,
                                      pool=pool, opts=opts)
    info = device_info(args.device)
    result["config"] = {
        "suite": "gpu", "device": args.device, "device_name": info.get("device_name"),
        "rounds": rounds, "quick": args.quick, "contestants": contestants,
        "reference": reference, "cases": [c.id for c in selected], "loop_s": loop_s,
        "budget_s": args.budget_s, "rtol": RTOL, "seed": SEED, "dtype": "float32",
        "statistic": "per round: the device synchronised, a ~loop_s loop of steps queued "
                     "back to back, synchronised again: mean µs per step; reported: median "
                     "over rounds; ratios: median of per-round ratios to the reference",
        "wall_s": time.perf_counter() - t0,
    }
    result["environment"] = {**info, "python": sys.version.split()[0]}
    markdown = format_markdown(result)
    print(markdown)
    harness.write_outputs(result, Path(args.out_dir), STEM, report.plot, args.no_plot,
                          markdown)
    failed = any(runner.check_ok(case, c) is False for case in result["cases"]
                 for c in case["contestants"])
    if failed:
        print(f"\nSOME RESULTS DISAGREE WITH {LABELS[reference].upper()} (see the table)",
              file=sys.stderr)
    return 1 if failed else 0


# ----------------------------------------------------------------------------- the report

KERNELS_NOTE = "generated CUDA kernels"  # compgrad.compile.on_device's notes begin so ...
NODE_BY_NODE_NOTE = "values on a CUDA device"  # ... or so (on_device.WHY)


def program_cell(desc: dict[str, Any] | None) -> str:
    """How a compiled contestant's programs ran, from its ``describe`` probe: how many ran
    as generated CUDA kernels (with their kernel and node-by-node group counts), how many
    node by node (with why), and any other note (a replay run step by step)."""
    if not desc:
        return "-"
    if "error" in desc:
        return f"**ERROR** {desc['error']}"
    notes = list(desc["program_notes"].values())
    total = desc["program_count"]
    kernels = [n for n in notes if n.startswith(KERNELS_NOTE)]
    slow = sorted({n for n in notes if n.startswith(NODE_BY_NODE_NOTE)})
    other = sorted({n for n in notes if n not in kernels and n not in slow})
    if kernels or slow:
        text = f"{len(kernels)}/{total} as generated CUDA kernels"
        built = desc.get("cuda_programs") or []
        if built:
            text += (f" ({sum(b['kernels'] for b in built)} kernels, "
                     f"{sum(b['node_by_node_groups'] for b in built)} node-by-node groups)")
        if slow:
            text += (f"; **{len(notes) - len(kernels) - len(other)} node by node**: "
                     + "; ".join(slow))
    else:  # no program on a device: CPU programs (the --device cpu smoke path)
        text = f"{total} CPU program(s), {desc['kernel_count']} kernels"
    return "; ".join([text, *other])


def runtime_verdict(cases: list[dict[str, Any]]) -> str:
    """One line: did every compiled program on the device run as generated CUDA kernels?"""
    notes = [n for case in cases for rec in case["contestants"].values()
             if rec.get("describe") and "error" not in rec["describe"]
             for n in rec["describe"]["program_notes"].values()
             if n.startswith((KERNELS_NOTE, NODE_BY_NODE_NOTE))]
    if not notes:
        return "No compiled program ran on a CUDA device."
    slow = [n for n in notes if not n.startswith(KERNELS_NOTE)]
    if not slow:
        return f"All {len(notes)} compiled programs on the device ran as generated CUDA kernels."
    return (f"**{len(slow)} of {len(notes)} compiled programs on the device ran node by "
            "node**, not as generated CUDA kernels (see the table).")


def memory_cell(rec: dict[str, Any]) -> str:
    """A contestant's peak GPU memory over one step, in MiB."""
    mem = rec.get("gpu_memory")
    if not mem:
        return "-"
    if "error" in mem:
        return "**ERROR**"
    return "-" if mem["peak_bytes"] is None else f"{mem['peak_bytes'] / MIB:,.0f} MiB"


def format_markdown(result: dict[str, Any]) -> str:
    """The GPU results as Markdown: times and ratios, targets, how compiled programs ran,
    GPU memory peaks, result checks, errors."""
    cfg = result["config"]
    ref = cfg["reference"]
    names = [c for c in ALL_CONTESTANTS if c in cfg["contestants"]]
    env = result.get("environment", {})
    replay = REPLAY_CONTESTANT in names
    where = cfg.get("device_name") or cfg["device"]
    lines = [
        "# Compiled workloads on the GPU (issue 8)", "",
        f"{where}; up to {cfg['rounds']} interleaved rounds"
        f"{' (--quick sizes)' if cfg['quick'] else ''} within a {cfg['budget_s']:g} s "
        f"budget, each contestant in its own worker process; cells: mean time per step of "
        f"a round's loop (~{cfg['loop_s'] * 1e3:g} ms, device synchronised before the clock "
        f"starts and stops), median over rounds (median of the per-round ratio to "
        f"{LABELS[ref]}); target: {TARGET_CONTESTANT} / {LABELS[ref]}. "
        f"CuPy {env.get('cupy', '-')}, numba-cuda {env.get('numba_cuda', '-')}; "
        f"run took {cfg['wall_s']:.0f} s.", "",
        runtime_verdict(result["cases"]), "",
    ]
    header = ["case", *(LABELS[c] for c in names), "rounds", "target", "met",
              *(["replay ratio"] if replay else [])]
    rows = [[f"{case['id']}: {case['title']}", *(report._cell(case, c) for c in names),
             str(len(case.get("rounds_us", {}).get(ref, []))),
             f"<= {case['target']}" if case["target"] is not None else "-",
             report._met(case.get("target_met")),
             *([report._replay_cell(case)] if replay else [])]
            for case in result["cases"]]
    lines += [harness.markdown_table(header, rows), ""]
    compiled = [c for c in (TARGET_CONTESTANT, REPLAY_CONTESTANT) if c in names]
    if compiled:
        lines += ["How the compiled programs ran (explain().program_notes):", ""]
        rows = [[case["id"], *(program_cell(case["contestants"][c].get("describe"))
                               for c in compiled)] for case in result["cases"]]
        lines += [harness.markdown_table(["case", *(LABELS[c] for c in compiled)], rows), ""]
    lines += ["Peak GPU memory allocated over one step after the rounds (inputs, weights and "
              "state included; compgrad's peak is sampled, CuPy's is the pool in use after "
              "the step):", ""]
    rows = [[case["id"], *(memory_cell(case["contestants"].get(c, {})) for c in names)]
            for case in result["cases"]]
    lines += [harness.markdown_table(["case", *(LABELS[c] for c in names)], rows), ""]
    problems = [(case["id"], c, rec) for case in result["cases"]
                for c, rec in case["contestants"].items()
                if "error" in rec or not rec.get("check", {"ok": True})["ok"]]
    problems += [(case["id"], ref, {"error": case["error"]}) for case in result["cases"]
                 if "error" in case]
    if problems:
        lines += [f"**RESULT MISMATCHES / ERRORS** (vs {LABELS[ref]}):", ""]
        lines += report.problem_lines(problems) + [""]
    unreplayed = [(case["id"], rec["not_replayed"]) for case in result["cases"]
                  for rec in case["contestants"].values() if "not_replayed" in rec]
    if unreplayed:
        lines += [f"{LABELS[REPLAY_CONTESTANT]} not timed where its step is not replayed:", ""]
        lines += [f"- {cid}: {why}" for cid, why in unreplayed] + [""]
    others = [c for c in names if c != ref]
    lines += [f"Results check (max |x - ref| / max |ref| over outputs, grads and weights, "
              f"tolerance {RTOL:g}):", ""]
    rows = [[case["id"], *(report._check_cell(case, c) for c in others)]
            for case in result["cases"]]
    lines += [harness.markdown_table(["case", *(LABELS[c] for c in others)], rows), ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())

"""The command line: ``python -m benchmarks.compiled [--workloads W1,W3] [--contestants ...]
[--rounds N] [--quick] [--profile] [--no-cold-start] [--no-memory] [--out-dir DIR]``.

``--device cuda`` (or ``--device=cuda``) runs the GPU suite instead (issue 8:
``benchmarks.compiled.gpu``, which takes the remaining options)."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from benchmarks import harness
from benchmarks.compiled import coldstart, memory, programs, report, runner
from benchmarks.compiled.settings import (
    CONTESTANTS,
    DEFAULT_ROUNDS,
    LOOP_S,
    PROFILE_STEPS,
    QUICK_CONTESTANTS,
    QUICK_LOOP_S,
    QUICK_PROFILE_STEPS,
    QUICK_ROUNDS,
    REFERENCE,
    RTOL,
    SEED,
    THREADS,
)

DESCRIPTION = ("Compiled workloads W1-W5 (issue 7): the same PyTorch-style programs run by "
               "NumPy by hand, torch eager, torch.compile, compgrad eager, compgrad.compile "
               "and compgrad.replay (compgrad.compile(mode='reduce-overhead')), each in its "
               "own process, timed against torch eager.")


def environment() -> dict[str, Any]:
    """The parent's record: versions and BLAS builds (``mlp_step.environment``); the
    workers' own thread policies are in ``result["workers"]``."""
    from benchmarks import mlp_step

    return mlp_step.environment()


def write_profiles(result: dict[str, Any], out_dir: Path) -> None:
    """Write each case's compgrad.compile profile to ``compiled-profile-<case>.txt`` in
    ``out_dir`` and note the file name in the case's record."""
    for case in result["cases"]:
        prof = case.get("profile")
        if not prof or "error" in prof:
            continue
        name = f"compiled-profile-{case['id']}.txt"
        out_dir.mkdir(parents=True, exist_ok=True)
        head = (f"{case['id']}: {case['title']}; compgrad.compile, {prof['steps']} steps in "
                f"its worker; {prof['unprofiled_us_per_step']:.1f} us/step unprofiled, "
                f"{prof['profiled_us_per_step']:.1f} us/step profiled; target "
                f"{case['target']}, ratio {case.get('target_ratio')}\n\n")
        (out_dir / name).write_text(head + prof["text"], encoding="utf-8")
        prof["file"] = name


def wants_gpu_suite(argv: list[str]) -> bool:
    """Whether the command line asks for the GPU suite (``--device cuda``)."""
    return any(a == "--device=cuda" or (a == "--device" and nxt == "cuda")
               for a, nxt in zip(argv, [*argv[1:], ""]))


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; 0 where every contestant agreed with torch eager, 1 otherwise,
    2 where torch (the reference) is missing. ``--device cuda``: the GPU suite
    (``gpu.main``), with its own exit codes."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if wants_gpu_suite(argv):
        from benchmarks.compiled import gpu

        return gpu.main(argv)
    parser = harness.new_parser(DESCRIPTION, DEFAULT_ROUNDS, QUICK_ROUNDS)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                        help="cpu: this suite (issue 7); cuda: the GPU suite (issue 8, "
                             "python -m benchmarks.compiled.gpu --help)")
    parser.add_argument("--workloads", default=None,
                        help="comma-separated workloads or case ids (W1,W3,W4-ln); default all")
    parser.add_argument("--contestants", default=None,
                        help=f"comma-separated subset of {','.join(CONTESTANTS)} (torch "
                             "eager is always included); default all, --quick: all but "
                             "torch.compile")
    parser.add_argument("--no-cold-start", action="store_true",
                        help="skip the fresh-process first-step measurement")
    parser.add_argument("--no-memory", action="store_true",
                        help="skip the fresh-process W3 memory measurement")
    parser.add_argument("--profile", action="store_true",
                        help="cProfile compgrad.compile's step in its worker after each case's "
                             "rounds; the top functions by own time go to "
                             "compiled-profile-<case>.txt in the output folder")
    parser.add_argument("--profile-steps", type=int, default=None,
                        help=f"steps profiled (default {PROFILE_STEPS}, quick "
                             f"{QUICK_PROFILE_STEPS})")
    harness.add_output_options(
        parser, "compiled",
        quick_help="smoke run: tiny sizes, 3 rounds, short loops, no torch.compile")
    args = harness.parse_args(parser, argv)
    if args is None:
        return 2
    rounds = args.rounds or (QUICK_ROUNDS if args.quick else DEFAULT_ROUNDS)
    contestants = ([c.strip() for c in args.contestants.split(",")] if args.contestants
                   else list(QUICK_CONTESTANTS if args.quick else CONTESTANTS))
    unknown = set(contestants) - set(CONTESTANTS)
    if unknown:
        parser.error(f"unknown contestants {sorted(unknown)}")
    contestants = [c for c in CONTESTANTS if c in contestants or c == REFERENCE]
    try:
        selected = programs.select_cases(programs.cases(args.quick), args.workloads)
    except ValueError as exc:
        parser.error(str(exc))
    loop_s = QUICK_LOOP_S if args.quick else LOOP_S
    profile_steps = 0
    if args.profile:
        profile_steps = args.profile_steps or (QUICK_PROFILE_STEPS if args.quick
                                               else PROFILE_STEPS)

    load_before = harness.loadavg()
    t0 = time.perf_counter()
    result = runner.run_benchmark(selected, contestants, rounds, loop_s, args.quick,
                                  profile_steps=profile_steps)
    if not args.no_cold_start and any(c.workload == "W1" for c in selected):
        result["cold_start"] = coldstart.cold_start(contestants, args.quick)
    if not args.no_memory and any(c.workload == "W3" for c in selected):
        result["memory"] = memory.memory(contestants, args.quick)
    result["config"] = {
        "rounds": rounds, "quick": args.quick, "contestants": contestants,
        "cases": [c.id for c in selected], "loop_s": loop_s, "profile_steps": profile_steps,
        "rtol": RTOL, "seed": SEED, "dtype": "float32", "threads": THREADS,
        "processes": "one worker process per contestant; one runs at a time",
        "statistic": "per round: mean µs per step of a ~loop_s loop; reported: median over "
                     "rounds; ratios: median of per-round ratios to torch eager",
        "wall_s": time.perf_counter() - t0,
    }
    result["environment"] = environment()
    result["environment"]["loadavg_before_run"] = load_before
    result["environment"]["loadavg_after_run"] = harness.loadavg()

    write_profiles(result, args.out_dir)
    markdown = report.format_markdown(result)
    print(markdown)
    harness.write_outputs(result, args.out_dir, "compiled", report.plot, args.no_plot, markdown)
    failed = any(runner.check_ok(case, c) is False for case in result["cases"]
                 for c in case["contestants"])
    if failed:
        print("\nSOME RESULTS DISAGREE WITH TORCH EAGER (see the table)", file=sys.stderr)
    return 1 if failed else 0

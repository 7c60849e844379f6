"""Random programs (``test_random_programs``'s generator) with every compiled program
treated as large and tiered up at its second run, so that its runs of small steps run as
one Numba function each (``codegen.small_runs``) when the compiled function is called
again on new data: eager and compiled still agree, or raise the same exception type."""

from __future__ import annotations

from codegen import small_runs, tiering
from tests.compile import test_random_programs as random_programs

EXAMPLES = 100


def test_random_programs_with_runs_of_small_steps_as_functions(monkeypatch):
    monkeypatch.setattr(tiering, "MAX_ELEMENTS", 0)      # every program counts as large
    monkeypatch.setattr(tiering, "TIER_UP_RUNS", 2)      # tiered up at its second run
    monkeypatch.setattr(tiering, "_runs_cached", lambda compiled: False)
    built, refused = [], []
    install = small_runs.install_small_runs

    def counting_install(compiled):
        plan = install(compiled)
        built.extend(plan.built)
        refused.extend(plan.refused)
        return plan

    monkeypatch.setattr(tiering, "install_small_runs", counting_install)
    stats = random_programs.STATS
    stats.clear()
    random_programs.FLOAT32_RTOL[0] = random_programs.BACKEND_FLOAT32_RTOL["numba"]
    try:
        random_programs._random_programs("numba", EXAMPLES)()
    finally:
        random_programs.FLOAT32_RTOL[0] = random_programs.RTOL
    print(f"\nrandom programs with small runs: {len(built)} runs built, {len(refused)} "
          f"refused {sorted({reason for _, reason in refused})},",
          ", ".join(f"{k}: {v}" for k, v in sorted(stats.items())))
    assert stats["outcome ok"] >= 0.6 * stats["programs"], dict(stats)
    # the runs were really built (and then run by the second call of each program)
    assert len(built) >= 5, built

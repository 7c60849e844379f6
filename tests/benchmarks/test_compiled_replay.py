"""The compgrad.replay contestant of benchmarks/compiled/ (``compgrad.compile(fn,
mode="reduce-overhead")``): it is timed only on replayed steps, its replays are counted in
the JSON, its results are checked on replayed steps too, its ratio gets its own column
beside compgrad.compile's target, and a step that is not replayed is reported, not timed.

Timings are never asserted. Worker caches live in temporary directories.
"""

from __future__ import annotations

import itertools

import pytest

pytest.importorskip("torch")
pytest.importorskip("compgrad.compile.pyreads", reason="reduce-overhead mode needs pyreads")

from benchmarks.compiled import programs, report, runner, worker  # noqa: E402
from benchmarks.compiled.pool import WorkerPool  # noqa: E402
from benchmarks.compiled.settings import (  # noqa: E402
    QUICK_CONTESTANTS,
    REPLAY_CONTESTANT,
    TARGET_CONTESTANT,
)
from tests.benchmarks._faults import REPLAY_REFUSAL  # noqa: E402

CONTESTANTS = ["torch", TARGET_CONTESTANT, REPLAY_CONTESTANT]
LOOP_S = 1e-3


@pytest.fixture(autouse=True)
def _private_caches(tmp_path, monkeypatch):
    """compgrad's and Numba's caches in a temporary directory (no warm cache needed)."""
    monkeypatch.setenv("COMPGRAD_CACHE_DIR", str(tmp_path / "compgrad-cache"))
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "numba-cache"))


def _quick(spec: str) -> list[programs.Case]:
    return programs.select_cases(programs.cases(quick=True), spec)


@pytest.fixture(scope="module")
def replay_result(tmp_path_factory) -> dict:
    """W2 (a training step) and W5-1024 (one product) at quick sizes, two rounds, torch /
    compgrad.compile / compgrad.replay."""
    with WorkerPool(cache_dir=tmp_path_factory.mktemp("replay-caches")) as pool:
        return runner.run_benchmark(_quick("W2,W5-1024"), CONTESTANTS, rounds=2,
                                    loop_s=LOOP_S, quick=True, show_progress=False, pool=pool)


def test_replay_wraps_the_same_program_in_reduce_overhead_mode() -> None:
    from compgrad.compile.api import CompiledFunction

    assert REPLAY_CONTESTANT in QUICK_CONTESTANTS
    fn = programs.library(REPLAY_CONTESTANT)[1](programs.matmul)
    assert isinstance(fn, CompiledFunction) and fn.mode == "reduce-overhead"
    assert fn.fn is programs.matmul
    assert programs.library(TARGET_CONTESTANT)[1](programs.matmul).mode is None


def test_timed_steps_are_all_replays_and_counted(replay_result) -> None:
    for case in replay_result["cases"]:
        rec = case["contestants"][REPLAY_CONTESTANT]
        assert "error" not in rec and "not_replayed" not in rec, (case["id"], rec)
        assert rec["check"]["ok"], (case["id"], rec["check"])
        # the checked steps include replayed ones (a plan installs on the 2nd traced call)
        assert rec["check_replays"] >= 1, case["id"]
        assert rec["warmup_replays"] >= rec["check_replays"] + 1
        assert rec["replays_per_round"] == case["n_per_round"][REPLAY_CONTESTANT]
        assert len(rec["replays_per_round"]) == 2


def test_replay_ratio_sits_beside_the_target(replay_result) -> None:
    for case in replay_result["cases"]:
        ratios = case["round_ratios"]
        assert case["replay_ratio"] == ratios[f"{REPLAY_CONTESTANT}/torch"]["median"]
        assert case["target_ratio"] == ratios[f"{TARGET_CONTESTANT}/torch"]["median"]
        assert case["target_met"] == runner.target_met(case)  # about compgrad.compile
        assert isinstance(case["replay_within_target"], bool)
    md = report.format_markdown({**replay_result, "config": {
        "rounds": 2, "quick": True, "contestants": CONTESTANTS}})
    header = next(line for line in md.splitlines() if line.startswith("| case |"))
    assert header.split(" | ")[-3:] == ["target", "met", "replay ratio |"]
    w2 = next(line for line in md.splitlines() if line.startswith("| W2:"))
    assert f"{replay_result['cases'][0]['replay_ratio']:.3g}x" in w2.split(" | ")[-1]
    assert " replayed)" in md  # the check table says how many checked steps were replays


def test_a_step_that_is_not_replayed_is_reported_and_not_timed(tmp_path) -> None:
    with WorkerPool(preload=("tests.benchmarks._faults:refuse_replay",),
                    cache_dir=tmp_path / "caches") as pool:
        rec = runner.time_case(_quick("W5-1024")[0], ["torch", REPLAY_CONTESTANT], rounds=1,
                               loop_s=LOOP_S, quick=True, show_progress=False, pool=pool)
    replay = rec["contestants"][REPLAY_CONTESTANT]
    assert REPLAY_REFUSAL in replay["not_replayed"] and "error" not in replay
    assert replay["check"]["ok"]  # its results were still checked
    assert set(rec["median_us"]) == {"torch"}
    assert rec["replay_ratio"] is None and rec["replay_within_target"] is None
    md = report.format_markdown({"cases": [rec], "config": {
        "rounds": 1, "quick": True, "contestants": ["torch", REPLAY_CONTESTANT]}})
    row = next(line for line in md.splitlines() if line.startswith("| W5-1024:"))
    assert row.split(" | ")[2] == "not replayed" and row.endswith("| not replayed |")
    assert f"- W5-1024: not replayed: {REPLAY_REFUSAL}" in md


def test_a_timed_loop_that_leaves_replay_is_an_error() -> None:
    """The worker's loop refuses to report a time for steps that were not replayed."""
    import compgrad

    fn = compgrad.compile(programs.matmul, mode="reduce-overhead")
    small = (compgrad.ones(4, 4), compgrad.ones(4, 4))
    other = (compgrad.ones(3, 3), compgrad.ones(3, 3))
    feed = itertools.chain(itertools.repeat(small, 6), itertools.cycle([other, small]))

    def step() -> object:
        return fn(*next(feed))

    server = worker.Server(REPLAY_CONTESTANT)
    server.instance = programs.Instance(step, dict, fn=fn)
    warm = server.warm_up(min_s=0.0, min_calls=5, max_calls=5)
    assert warm["replay"]["last_replayed"] and warm["replay"]["installed"]
    with pytest.raises(RuntimeError, match="timed steps were not replayed"):
        server.timed_loop(loop_s=10.0, max_steps=4)


def test_compile_warm_up_goes_on_until_small_programs_are_one_function(monkeypatch) -> None:
    """compgrad.compile's warm-up does not stop while a program the step runs is still on
    its way to one Numba function (codegen.tiering), so timed rounds see the steady state."""
    import compgrad
    from codegen import tiering

    monkeypatch.setattr(tiering, "TIER_UP_RUNS", 12)
    monkeypatch.setattr(tiering, "_cached", lambda compiled: False)
    fn = compgrad.compile(programs.matmul)
    args = (compgrad.ones(4, 4), compgrad.ones(4, 4))
    server = worker.Server("compgrad.compile")
    server.instance = programs.Instance(lambda: fn(*args), dict, fn=fn)
    warm = server.warm_up(min_s=0.0, min_calls=3, max_calls=3)
    (program,) = fn.programs.values()
    assert len(warm["times"]) == 12 and program.tiering.one is not None

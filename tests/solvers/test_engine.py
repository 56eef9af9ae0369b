"""The engine and its parts against a brute-force oracle, the checker and the clock.

Small instances are the 3x3 grid of ``tests/conftest.py``::

    potential            rep bases
    5   3   4            R0  .   R1
    2   9   2            .   .   .          band [9, 15] per rep, capacity 10 h,
    4   6   1            .   R2  .          centre locked to R2

and random ones from the ``random_problem`` factory (units and bases in the unit square,
three nearest reps as candidates, bands around a planted feasible plan). With nine units
and three reps the oracle enumerates all 3**9 = 19,683 plans.
"""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
import pytest

from solvers.align import solve
from solvers.check import check_plan
from solvers.cpsat import solve_cpsat
from solvers.greedy import greedy_assign, repair, solve_greedy
from solvers.lns import improve, rep_neighbours, subproblem
from solvers.lp import solve_elastic, solve_mip, solve_relaxation
from solvers.problem import AlignmentProblem
from solvers.settings import SolveSettings

SMALL = ["grid", 0, 1, 2, 3]  # the grid, and random 9-unit instances by seed


@pytest.fixture
def small(request, grid_problem, random_problem):
    """One small instance by name (see ``SMALL``)."""
    if request.param == "grid":
        return grid_problem
    problem, _ = random_problem(9, 3, seed=request.param)
    return problem


@pytest.mark.parametrize("small", SMALL, indirect=True)
def test_solve_finds_the_brute_force_optimum(small, brute_force, fast_settings):
    optimum, _ = brute_force(small)
    events = []
    res = solve(small, fast_settings, progress=events.append)
    assert res.has_plan
    assert res.objective == pytest.approx(optimum, rel=1e-9)
    report = check_plan(small, res.assignment, reported_objective=res.objective)
    assert report.ok, report.describe()
    assert res.bound <= optimum + 1e-9
    assert res.status in ("OPTIMAL", "FEASIBLE")
    # Progress: time runs forward, the last plan reported is the one returned.
    assert [e.elapsed_s for e in events] == sorted(e.elapsed_s for e in events)
    plans = [e for e in events if np.isfinite(e.objective)]
    assert plans and plans[-1].objective == pytest.approx(res.objective)


def test_grid_optimum_is_proven(grid_problem, brute_force, fast_settings):
    # On the grid the relaxation is integral, so the bound closes the gap.
    res = solve(grid_problem, fast_settings)
    assert res.status == "OPTIMAL"
    assert res.objective == pytest.approx(26.0) == brute_force(grid_problem)[0]
    assert res.gap <= 1e-9


@pytest.mark.parametrize("small", SMALL, indirect=True)
def test_lp_bound_and_mip_against_brute_force(small, brute_force):
    optimum, _ = brute_force(small)
    lp = solve_relaxation(small, time_limit_s=5.0)
    assert lp.status == "OPTIMAL"
    assert lp.bound <= optimum + 1e-9
    # Each unit's shares add up to one.
    shares = np.bincount(small.pair_unit, weights=lp.x, minlength=small.num_units)
    np.testing.assert_allclose(shares, 1.0, atol=1e-7)
    mip = solve_mip(small, time_limit_s=5.0)
    assert mip.status == "OPTIMAL"
    assert mip.objective == pytest.approx(optimum, rel=1e-9)
    assert mip.bound <= optimum * (1 + 1e-9)
    chosen = mip.x > 0.5
    plan = np.empty(small.num_units, dtype=np.int64)
    plan[small.pair_unit[chosen]] = small.cand_rep[chosen]
    assert check_plan(small, plan, reported_objective=mip.objective).ok


def test_infeasible_instance_is_reported_as_such(tiny_problem, brute_force, fast_settings):
    # rep0 can hold at most 10 + 20 + 30 = 60; a minimum of 70 admits no plan.
    impossible = tiny_problem.with_bands(np.array([70.0, 0.0]), np.array([100.0, 100.0]))
    assert brute_force(impossible) == (float("inf"), None)
    assert solve_relaxation(impossible).status == "INFEASIBLE"
    res = solve(impossible, fast_settings)
    assert res.status == "INFEASIBLE"
    assert not res.has_plan


# --- large-neighbourhood search ------------------------------------------------------------


def test_lns_never_worsens_and_stays_feasible(random_problem):
    problem, planted = random_problem(80, 8, seed=2, tolerance=0.1)
    start = check_plan(problem, planted)
    assert start.ok
    seen = []

    def record(plan, objective):
        report = check_plan(problem, plan)
        assert report.ok, report.describe()
        assert report.objective == pytest.approx(objective)
        seen.append(objective)

    plan, stats = improve(
        problem,
        planted,
        SolveSettings(num_workers=1, seed=1),
        time_left=lambda: 30.0,
        good_enough=lambda objective: False,
        on_improve=record,
        group_size=3,
    )
    assert stats.improvements == len(seen) > 0
    assert all(b < a for a, b in zip([start.objective, *seen], seen, strict=False))
    final = check_plan(problem, plan)
    assert final.ok
    assert final.objective == pytest.approx(seen[-1])
    assert final.objective >= solve_relaxation(problem).bound - 1e-9


def test_lns_subproblem_is_the_group_with_everyone_else_fixed(random_problem):
    problem, planted = random_problem(80, 8, seed=2, tolerance=0.1)
    group = np.sort(np.r_[0, rep_neighbours(problem)[0][:2]])
    sub, free, pairs = subproblem(problem, planted, group)
    # The freed units sit in the group now and could move within it.
    assert np.all(np.isin(planted[free], group))
    assert np.all(np.isin(problem.cand_rep[pairs], group))
    # Their current places are a plan of the sub-problem ...
    local = sub.current_rep
    np.testing.assert_array_equal(group[local], planted[free])
    assert check_plan(sub, local).ok
    # ... whose cost is the full cost less what the fixed units cost.
    full = check_plan(problem, planted).objective
    pair_of = problem.pair_index(np.arange(problem.num_units), planted)
    fixed = np.setdiff1d(np.arange(problem.num_units), free)
    fixed_cost = problem.pair_cost[pair_of[fixed]].sum()
    assert check_plan(sub, local).objective == pytest.approx(full - fixed_cost)


def test_lns_accepts_every_checked_plan(tiny_problem):
    # rep1 holds u3 (10 h) against a capacity of 10 h - 5e-9 h: rounding, says the checker.
    problem = replace(tiny_problem, capacity_h=np.array([40.0, 10.0 - 5e-9]))
    plan = np.array([0, 0, 0, 1])
    assert check_plan(problem, plan).ok
    improved, _ = improve(
        problem,
        plan,
        SolveSettings(num_workers=1),
        time_left=lambda: 5.0,
        good_enough=lambda objective: False,
    )
    assert check_plan(problem, improved).ok


# --- greedy baseline -----------------------------------------------------------------------


# Greedy's plan passes on the two loose instances and breaks bands on the two tight ones.
@pytest.mark.parametrize(("seed", "tolerance"), [(0, 0.3), (1, 0.05), (2, 0.01), (5, 0.002)])
def test_greedy_result_and_checker_agree(random_problem, seed, tolerance):
    problem, _ = random_problem(120, 6, seed=seed, tolerance=tolerance)
    res = solve_greedy(problem)
    assert res.status == "HEURISTIC"
    assert res.bound == -np.inf
    report = check_plan(problem, res.assignment, reported_objective=res.objective)
    # Greedy never leaves its candidates or the locks; its objective is honest.
    assert not {v.rule for v in report.violations} & {"candidate", "locked", "objective"}
    # The verdict matches a recomputation of the bands and capacities by hand.
    a = res.assignment
    pair = problem.pair_index(np.arange(problem.num_units), a)
    pot = np.array([problem.unit_measure[a == r, 0].sum() for r in range(problem.num_reps)])
    work = np.array([problem.pair_workload_h[pair[a == r]].sum() for r in range(problem.num_reps)])
    in_band = np.all(pot >= problem.measure_lo[:, 0] - 1e-7) & np.all(
        pot <= problem.measure_hi[:, 0] + 1e-7
    )
    assert report.ok == (in_band and bool(np.all(work <= problem.capacity_h + 1e-7)))
    if not report.ok:
        assert {v.rule for v in report.violations} <= {"band", "capacity"}


def test_repair_fixes_a_broken_plan_without_breaking_locks(grid_problem):
    # Nearest bases: R1 holds 4 + 2 = 6 < 9 and R2 holds 9 + 4 + 6 + 1 = 20 > 15.
    nearest = np.array([0, 0, 1, 0, 2, 1, 2, 2, 2])
    broken = check_plan(grid_problem, nearest)
    assert broken.rep_measure[:, 0].tolist() == [10.0, 6.0, 20.0]
    assert not broken.ok
    fixed = repair(grid_problem, nearest)
    assert check_plan(grid_problem, fixed).ok
    assert fixed[4] == 2
    assert check_plan(grid_problem, greedy_assign(grid_problem)).rep_units.sum() == 9


def test_repair_exchanges_units_where_no_single_move_helps():
    """Rep 0 is one short of its potential band with every hour in use; rep 1 is one over.
    Any single move breaks a capacity or deepens a breach, but exchanging rep 0's
    potential-poor, hour-hungry unit for rep 1's rich, quick one mends both::

        unit   potential   hours   start
        0      10          10      rep 0
        1       2           6      rep 0      band [13, 15], capacity 16 h
        2       4           2      rep 1
        3      12          10      rep 1
    """
    pot = np.array([10.0, 2.0, 4.0, 12.0])
    hours = np.array([10.0, 6.0, 2.0, 10.0])
    problem = AlignmentProblem(
        cand_indptr=np.arange(0, 9, 2),
        cand_rep=np.tile([0, 1], 4),
        pair_cost=np.tile([1.0, 2.0], 4),
        pair_workload_h=np.repeat(hours, 2),
        unit_measure=pot,
        measure_lo=np.full(2, 13.0),
        measure_hi=np.full(2, 15.0),
        measure_target=np.full(2, 14.0),
        capacity_h=np.full(2, 16.0),
        fixed_rep=np.full(4, -1),
        current_rep=np.full(4, -1),
    )
    start = np.array([0, 0, 1, 1])
    assert not check_plan(problem, start).ok
    for u in range(4):  # every single move leaves the plan broken
        moved = start.copy()
        moved[u] = 1 - moved[u]
        assert not check_plan(problem, moved).ok
    fixed = repair(problem, start)
    report = check_plan(problem, fixed)
    assert report.ok
    assert report.rep_measure[:, 0].tolist() == [14.0, 14.0]


# --- determinism and the clock -------------------------------------------------------------


def test_same_seed_same_plan(random_problem):
    problem, _ = random_problem(400, 10, seed=1, tolerance=0.05)
    # A gap target below what rounding reaches, so the LNS phase runs too.
    settings = SolveSettings(time_limit_s=30.0, num_workers=1, seed=5, relative_gap=0.005)
    first = solve(problem, settings)
    second = solve(problem, settings)
    assert first.stats["stop_reason"] != "wall-clock limit", "only deterministic stops repeat"
    assert "lns" in first.stats
    np.testing.assert_array_equal(first.assignment, second.assignment)
    assert first.objective == second.objective
    assert check_plan(problem, first.assignment).ok


def test_cpsat_same_seed_same_plan(random_problem):
    problem, planted = random_problem(400, 10, seed=1, tolerance=0.05)
    settings = SolveSettings(
        time_limit_s=30.0, num_workers=1, seed=5, relative_gap=0.0, deterministic_time=0.2
    )
    first = solve_cpsat(problem, settings, hint=planted)
    second = solve_cpsat(problem, settings, hint=planted)
    assert first.stats["stop_reason"] == "deterministic limit"
    np.testing.assert_array_equal(first.assignment, second.assignment)
    assert check_plan(problem, first.assignment).ok


def test_time_limit_is_honoured(random_problem):
    # Tight bands and a zero gap target: the LNS would run for minutes without the limit.
    problem, _ = random_problem(3_000, 30, seed=3, tolerance=0.01)
    limit_s, slack_s = 2.0, 1.0
    t0 = time.perf_counter()
    res = solve(problem, SolveSettings(time_limit_s=limit_s, num_workers=1, relative_gap=0.0))
    wall = time.perf_counter() - t0
    assert wall <= limit_s + slack_s
    assert res.runtime_s <= limit_s + slack_s
    assert res.stats["stop_reason"] == "wall-clock limit"
    assert res.has_plan and check_plan(problem, res.assignment).ok


def test_elastic_lp_names_the_limit_that_must_give(tiny_problem):
    """Raise rep1's band minimum to 90. u0 is locked to rep0 and u1 can only go there, so
    rep1 holds u3 (40) plus a share x of u2 (30): it is 50 - 30x short (of target 55), while
    rep0 (30 + 30(1 - x)) falls short of its minimum 35 once x > 5/6, by 30x - 25 (of target
    50). The elastic LP minimises (50 - 30x)/55 + max(0, 30x - 25)/50: x = 5/6, so rep1 is
    25 short and rep0 sits exactly on its minimum.
    """
    p = tiny_problem.with_bands(np.array([[35.0], [90.0]]), np.array([[65.0], [120.0]]))
    assert solve_relaxation(p).status == "INFEASIBLE"
    relax = solve_elastic(p)
    assert relax.status == "OPTIMAL"
    assert relax.band_short[1, 0] == pytest.approx(25.0, abs=1e-4)
    assert relax.band_short[0, 0] == pytest.approx(0.0, abs=1e-5)
    assert np.allclose(relax.band_over, 0.0, atol=1e-5)


def test_elastic_lp_is_zero_on_a_feasible_problem(tiny_problem):
    relax = solve_elastic(tiny_problem)
    assert relax.status == "OPTIMAL"
    assert np.allclose(relax.band_short, 0, atol=1e-6)
    assert np.allclose(relax.band_over, 0, atol=1e-6)
    assert np.allclose(relax.capacity_over, 0, atol=1e-6)


class _CtrlC:
    """A progress callback that behaves like Ctrl-C arriving once the engine holds a plan."""

    def __init__(self) -> None:
        self.fired = False

    def __call__(self, event) -> None:
        if not self.fired and np.isfinite(event.objective):
            self.fired = True
            raise KeyboardInterrupt


def test_interrupt_returns_the_best_checked_plan(random_problem):
    problem, _ = random_problem(400, 10, seed=1, tolerance=0.05)
    settings = SolveSettings(time_limit_s=30, num_workers=1, relative_gap=0.0)
    ctrl_c = _CtrlC()
    result = solve(problem, settings, progress=ctrl_c)
    assert ctrl_c.fired
    assert result.stats["stop_reason"] == "interrupted"
    assert result.has_plan
    report = check_plan(problem, result.assignment)
    assert report.ok
    assert report.objective == pytest.approx(result.objective)


def test_interrupt_before_any_plan_propagates(random_problem):
    problem, _ = random_problem(60, 4, seed=3, tolerance=0.05)

    def ctrl_c_at_once(event) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        solve(problem, SolveSettings(time_limit_s=10, num_workers=1), progress=ctrl_c_at_once)

"""Column generation over every eligible pair (:mod:`solvers.colgen`) and the engine path
that uses it when capacity binds.

The instance: 80 accounts scattered over a 2 x 2 degree box in Georgia and 4 reps at its
corners; each account's only candidate is its nearest rep. Rep 0 sits far from most of
its accounts and its capacity is tight, so the optimum must hand some of its accounts to
reps that are not their nearest: pricing has to find those pairs.

    rep 2 .            . rep 3
          .  accounts  .
    rep 0 .            . rep 1   (rep 0's capacity binds)
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

import solvers.align as align
from solvers.check import check_plan
from solvers.colgen import solve_relaxation_priced
from solvers.lagrange import DualSettings
from solvers.lns import repair_by_neighbourhoods, restricted
from solvers.lp import solve_mip, solve_relaxation
from solvers.pairspace import PairSpace, with_pairs
from solvers.problem import AlignmentProblem
from solvers.settings import SolveSettings


def _instance(seed: int = 0, cap_share: float = 0.9, whales: int = 0):
    rng = np.random.default_rng(seed)
    n = 80
    lat = 32.0 + 2.0 * rng.random(n)
    lon = -85.0 + 2.0 * rng.random(n)
    rlat = np.array([32.0, 32.0, 34.0, 34.0])
    rlon = np.array([-85.0, -83.0, -85.0, -83.0])
    pot = rng.lognormal(0.0, 0.4, n)
    pot[:whales] = 4.0  # about four times the mean: above a band's half-width
    visits = rng.choice([1.0, 2.0, 4.0], n)
    space = PairSpace(
        unit_lat=lat,
        unit_lon=lon,
        rep_lat=rlat,
        rep_lon=rlon,
        cost_per_km=pot,
        hours_fixed=visits,
        hours_per_km=visits * 0.04,
        unit_pool=np.zeros(n),
        rep_pool=np.zeros(4),
    )
    km = space.km(np.repeat(np.arange(n), 4), np.tile(np.arange(4), n)).reshape(n, 4)
    near = km.argmin(axis=1)
    cost, work = space.pair_values(np.arange(n), near)
    target = np.full(4, pot.sum() / 4)
    # Capacity: a share of what an even split of the nearest-rep workload would need.
    cap = np.full(4, np.inf)
    cap[0] = cap_share * work.sum() / 4
    problem = AlignmentProblem(
        cand_indptr=np.arange(n + 1),
        cand_rep=near,
        pair_cost=cost,
        pair_workload_h=work,
        unit_measure=pot,
        measure_lo=0.9 * target,
        measure_hi=1.1 * target,
        measure_target=target,
        capacity_h=cap,
        fixed_rep=np.full(n, -1),
        current_rep=np.full(n, -1),
    )
    full = with_pairs(problem, space, np.repeat(np.arange(n), 4), np.tile(np.arange(4), n))
    return space, problem, full


def test_nearest_candidates_alone_leave_no_relaxation():
    _, problem, full = _instance()
    assert solve_relaxation(problem).status == "INFEASIBLE"
    assert solve_relaxation(full).status == "OPTIMAL"


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_priced_relaxation_matches_the_lp_over_every_pair(seed):
    space, problem, full = _instance(seed)
    exact = solve_relaxation(full)
    bigger, sol = solve_relaxation_priced(
        problem,
        space,
        time_limit_s=30,
        group_size=3,
        margin=0.0,
        capacity_margin=0.0,
        gap_target=1e-6,
    )
    assert sol.status == "FEASIBLE"
    # The bound holds over every pair (weak duality) and is tight at the LP optimum.
    assert sol.bound <= exact.objective * (1 + 1e-7)
    assert sol.bound >= exact.objective * (1 - 1e-4)
    # Sifting ends near the LP optimum, with a solution of the enlarged problem's rows.
    assert sol.objective == pytest.approx(exact.objective, rel=1e-2)
    load = np.bincount(bigger.cand_rep, weights=sol.x * bigger.unit_measure[bigger.pair_unit, 0])
    assert np.all(load >= bigger.measure_lo[:, 0] - 1e-6)
    assert np.all(load <= bigger.measure_hi[:, 0] + 1e-6)
    work = np.bincount(bigger.cand_rep, weights=sol.x * bigger.pair_workload_h)
    assert work[0] <= bigger.capacity_h[0] + 1e-6


def test_pulled_in_limits_keep_a_valid_bound():
    """With limits pulled in, the LP solves a tighter problem, yet the bound it reports is
    stated against the real limits: still below the true optimum."""
    space, problem, full = _instance(3)
    best = solve_mip(full, time_limit_s=30)
    assert best.status == "OPTIMAL"
    _, sol = solve_relaxation_priced(problem, space, time_limit_s=30, group_size=3)
    assert sol.bound <= best.objective * (1 + 1e-7)


def test_engine_prices_every_pair_when_the_candidates_fail(monkeypatch):
    space, problem, full = _instance(4)
    monkeypatch.setattr(align, "LARGE_UNITS", 10)
    res = align.solve(problem, SolveSettings(time_limit_s=30), space=space)
    assert res.has_plan
    assert res.stats["bound_scope"] == "all eligible pairs"
    report = check_plan(res.problem, res.assignment)
    assert report.ok
    assert report.objective == pytest.approx(res.objective)
    # Its bound is below the MIP optimum over every pair, and its plan is no better.
    best = solve_mip(full, time_limit_s=30)
    assert res.bound <= best.objective * (1 + 1e-7)
    assert res.objective >= best.objective * (1 - 1e-7)


def test_restricted_problem_over_every_rep_adds_back_to_a_checked_plan():
    space, problem, full = _instance(5)
    best = solve_mip(full, time_limit_s=30)
    plan = best.rounded(full)
    free = np.arange(0, full.num_units, 3)
    pairs = np.flatnonzero(np.isin(full.pair_unit, free))
    sub = restricted(full, plan, free, pairs, np.arange(full.num_reps))
    sol = solve_mip(sub, time_limit_s=30)
    assert sol.feasible
    chosen = sol.x > 0.5
    out = plan.copy()
    out[free[sub.pair_unit[chosen]]] = sub.cand_rep[chosen]
    assert check_plan(full, out).ok


def test_neighbourhood_repair_clears_a_broken_rep():
    space, problem, full = _instance(6)
    plan = solve_mip(full, time_limit_s=30).rounded(full)
    # Break rep 3's band: hand three of its accounts to rep 2.
    moved = np.flatnonzero(plan == 3)[:3]
    broken = plan.copy()
    broken[moved] = 2
    assert not check_plan(full, broken).ok
    fixed, stats = repair_by_neighbourhoods(full, broken, time_left=lambda: 20.0)
    assert check_plan(full, fixed).ok
    assert stats["fixed"] >= 1


@pytest.mark.parametrize("seed", [1, 2, 4])
def test_units_above_the_band_half_width_end_whole_and_the_bound_stays_valid(seed):
    """Six whales, each above the +-10 % band's half-width; on these seeds the LP splits
    some of them (rounding one would break a band). Pinning makes every one whole, pins from earlier
    rounds stay pinned, and the bound stays below the LP optimum over every pair."""
    space, problem, full = _instance(seed, whales=6)
    half = 0.5 * (problem.measure_hi - problem.measure_lo).min()
    whales = np.flatnonzero(problem.unit_measure[:, 0] > half)
    assert whales.size >= 6
    exact = solve_relaxation(full).objective
    shares = {}
    for rounds in (0, 4):
        enlarged, sol = solve_relaxation_priced(
            problem, space, time_limit_s=30, pin_rounds=rounds, pin_share=1.0, pin_min=1
        )
        assert sol.status == "FEASIBLE"
        assert sol.bound <= exact + 1e-6 * abs(exact)
        shares[rounds] = np.maximum.reduceat(sol.x, enlarged.cand_indptr[:-1])[whales]
    assert np.any(shares[0] < 1 - 1e-6)  # without pinning the LP splits a whale
    np.testing.assert_allclose(shares[4], 1.0, atol=1e-6)


def test_capacity_is_tight_within_35_percent_of_the_least_workload():
    from dataclasses import replace

    _, problem, _ = _instance()
    assert not align.capacity_tight(problem)  # three reps without a capacity
    least = problem.pair_workload_h.sum()  # one candidate per unit: its workload is least
    assert align.capacity_tight(replace(problem, capacity_h=np.full(4, 0.33 * least)))
    assert not align.capacity_tight(replace(problem, capacity_h=np.full(4, 0.34 * least)))


def test_group_master_keeps_the_last_solved_slack_when_an_lp_stops(monkeypatch):
    """An LP stopped by its time limit has no solution (x = 0, so no slack either): the
    group master must report the last solved round's slack, not a slack-free solution it
    never found (at 100,000 x 300 with drift this sent an infeasible start into sifting)."""
    import solvers.colgen as colgen

    space, problem, _ = _instance(0)
    real = colgen._elastic_solve
    calls = []

    def stub(*args, **kwargs):
        res, y, slack = real(*args, **kwargs)
        calls.append(slack)
        if len(calls) == 1:
            return res, y, 0.5  # as if the first master needed slack
        return replace(res, status="UNKNOWN", x=np.zeros_like(res.x)), y, 0.0

    monkeypatch.setattr(colgen, "_elastic_solve", stub)
    gr = colgen._Groups(space, problem, np.arange(problem.num_units) // 4)
    stats: dict = {}
    _, x, _, slack = colgen._group_master(
        problem,
        space,
        gr,
        lambda: 10.0,
        stats,
        init_k=1,
        per_group=2,
        max_rounds=5,
        settle=0.0,
    )
    assert len(calls) == 2 and stats["group_master"][-1]["status"] == "UNKNOWN"
    assert slack == 0.5 and x is not None


@pytest.mark.parametrize("seed", [1, 2, 4])
def test_a_big_book_pins_its_big_units_before_the_relaxation_and_keeps_a_valid_bound(seed):
    """A book above ``prepin_from`` units pins every unit above ``pin_share`` of the band's
    half-width to its best rep under the smoothed dual before the guided LP: none of them
    ends split though no pin round follows, and the bound (priced over the unpinned
    problem) stays below the LP optimum over every pair. Below ``prepin_from`` the same
    relaxation splits some of them on these seeds."""
    space, problem, full = _instance(seed, whales=6)
    exact = solve_relaxation(full).objective
    half = 0.5 * (problem.measure_hi - problem.measure_lo).min()
    big = np.flatnonzero(problem.unit_measure[:, 0] > half)
    dual = DualSettings(sample_share=0.5, min_sample_units=0)
    shares = {}
    for prepin_from in (0, 10**9):
        enlarged, sol = solve_relaxation_priced(
            problem,
            space,
            time_limit_s=30,
            pin_rounds=0,
            pin_share=1.0,
            dual_settings=dual,
            prepin_from=prepin_from,
        )
        assert sol.status == "FEASIBLE"
        assert sol.bound <= exact + 1e-6 * abs(exact)
        assert sol.objective >= sol.bound - 1e-6 * abs(sol.bound)
        shares[prepin_from] = np.maximum.reduceat(sol.x, enlarged.cand_indptr[:-1])[big]
        if prepin_from == 0:
            assert sol.stats["prepinned"] == big.size
    np.testing.assert_allclose(shares[0], 1.0, atol=1e-6)
    assert np.any(shares[10**9] < 1 - 1e-6)

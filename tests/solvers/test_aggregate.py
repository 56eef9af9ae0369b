"""The staged relaxation for large problems, its bounds, and pricing over every pair.

Instances come from the ``random_problem`` factory of ``tests/conftest.py`` (units and
bases in the unit square, nearest reps as candidates, bands around a planted plan), and
from a tiny geographic :class:`PairSpace` of six accounts around two reps in Georgia.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

import solvers.align as align
from solvers.aggregate import (
    lagrangian_bound,
    solve_relaxation_at_scale,
    spatial_groups,
)
from solvers.check import check_plan
from solvers.colgen import solve_relaxation_priced
from solvers.lp import _arrays, solve_relaxation
from solvers.mathopt_lp import solve_lp
from solvers.pairspace import PairSpace, haversine_km, with_pairs
from solvers.problem import AlignmentProblem
from solvers.settings import SolveSettings


def test_lp_duals_are_duals_not_row_activities():
    """min x00 + 3 x01 + 2 x10 + x11, each unit once, rep 0 takes exactly both units.

    The only plan costs 3; its duals must price every column at >= 0 reduced cost once the
    variable bounds are accounted for, and reproduce the objective (strong duality).
    """
    a = sp.csr_matrix(np.array([[1, 1, 0, 0], [0, 0, 1, 1], [1, 0, 1, 0.0]]))
    res = solve_lp(
        np.array([1, 3, 2, 1.0]),
        a,
        np.array([1, 1, 2.0]),
        np.array([1, 1, 2.0]),
        np.zeros(4),
        np.ones(4),
    )
    assert res.status == "OPTIMAL"
    np.testing.assert_allclose(res.x, [1, 0, 1, 0], atol=1e-9)
    # Lagrangian with the band dual alone: sum of per-unit minima + dual x limit = 3.
    band = res.y[2]
    rc = np.array([1, 3, 2, 1.0]) - band * np.array([1, 0, 1, 0])
    assert rc[:2].min() + rc[2:].min() + 2 * band == pytest.approx(3.0)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_any_duals_give_a_valid_bound(random_problem, brute_force, seed):
    """Weak duality: whatever the duals, the Lagrangian bound never exceeds the optimum."""
    problem, _ = random_problem(9, 3, seed)
    best, _ = brute_force(problem)
    side_rows = _arrays(problem)[0].shape[0] - problem.num_units
    rng = np.random.default_rng(seed)
    for _ in range(20):
        y = rng.normal(0, 5, side_rows)
        assert lagrangian_bound(problem, y) <= best + 1e-6


def test_spatial_groups_keep_locked_units_alone():
    xy = np.array([[0, 0], [0.1, 0], [5, 5], [5.1, 5], [0.05, 0]])
    movable = np.array([True, True, True, True, False])
    g = spatial_groups(xy, movable, 2)
    assert g[0] == g[1] and g[2] == g[3] and g[0] != g[2]
    assert np.sum(g == g[4]) == 1


@pytest.mark.parametrize("seed", [4, 5])
def test_staged_relaxation_is_feasible_and_brackets_the_exact_lp(random_problem, seed):
    """Its x satisfies every row of the relaxation; exact LP value lies in [bound, objective]."""
    problem, _ = random_problem(600, 12, seed, num_candidates=4, tolerance=0.08)
    exact = solve_relaxation(problem)
    assert exact.status == "OPTIMAL"
    rng = np.random.default_rng(seed)
    sol = solve_relaxation_at_scale(problem, unit_xy=rng.random((600, 2)), group_size=6)
    assert sol.status == "FEASIBLE"
    a, lo, hi, var_lo = _arrays(problem)
    act = a @ sol.x
    scale = np.maximum(1.0, np.abs(np.where(np.isfinite(hi), hi, lo)))
    assert np.all(act >= lo - 1e-6 * scale) and np.all(act <= hi + 1e-6 * scale)
    assert np.all(sol.x >= var_lo - 1e-9) and np.all(sol.x <= 1 + 1e-9)
    assert sol.bound <= exact.objective * (1 + 1e-7)
    assert sol.objective >= exact.objective * (1 - 1e-7)
    # Nearly integral: rounding then leaves few units to repair.
    assert sol.split_units(problem).size <= 3 * problem.num_reps


def test_staged_relaxation_keeps_the_group_solution_when_no_refinement_finishes(
    random_problem,
):
    """With no refinement (as when the first one outlasts the limit at 1,000,000 units),
    the group LP's slack-free solution is still a solution of the unit LP: the status is
    FEASIBLE, every row holds, and bound <= exact LP <= objective."""
    problem, _ = random_problem(600, 12, 4, num_candidates=4, tolerance=0.08)
    exact = solve_relaxation(problem)
    rng = np.random.default_rng(4)
    sol = solve_relaxation_at_scale(
        problem, unit_xy=rng.random((600, 2)), group_size=6, max_refinements=0
    )
    assert sol.status == "FEASIBLE" and sol.stats["group_solution_kept"]
    a, lo, hi, var_lo = _arrays(problem)
    act = a @ sol.x
    scale = np.maximum(1.0, np.abs(np.where(np.isfinite(hi), hi, lo)))
    assert np.all(act >= lo - 1e-6 * scale) and np.all(act <= hi + 1e-6 * scale)
    assert sol.bound <= exact.objective * (1 + 1e-7) <= sol.objective * (1 + 2e-7)


def test_engine_uses_the_staged_relaxation_for_large_problems(random_problem, monkeypatch):
    problem, _ = random_problem(500, 10, 6, num_candidates=4, tolerance=0.1)
    monkeypatch.setattr(align, "LARGE_UNITS", 100)
    rng = np.random.default_rng(0)
    res = align.solve(problem, SolveSettings(time_limit_s=20, seed=1), unit_xy=rng.random((500, 2)))
    assert res.stats["lp_solver"] == "highs-aggregate"
    assert res.has_plan
    report = check_plan(problem, res.assignment)
    assert report.ok
    exact = solve_relaxation(problem)
    assert res.bound <= exact.objective * (1 + 1e-7)
    assert report.objective == pytest.approx(res.objective)


def _tiny_space() -> tuple[PairSpace, AlignmentProblem]:
    """Six accounts near Atlanta and Macon, two reps; each account's only candidate is the
    *farther* rep, so pricing over every pair must find the near ones.

    Bands are wide (any split of 3 + 3 potential-units of 1 works), no capacity limit.
    """
    alat = np.array([33.75, 33.76, 33.74, 32.84, 32.85, 32.83])
    alon = np.array([-84.39, -84.38, -84.40, -83.63, -83.62, -83.64])
    rlat, rlon = np.array([33.75, 32.84]), np.array([-84.39, -83.63])
    pot = np.ones(6)
    space = PairSpace(
        unit_lat=alat,
        unit_lon=alon,
        rep_lat=rlat,
        rep_lon=rlon,
        cost_per_km=pot,
        hours_fixed=np.ones(6),
        hours_per_km=np.full(6, 0.01),
        unit_pool=np.zeros(6),
        rep_pool=np.zeros(2),
    )
    far = np.array([1, 1, 1, 0, 0, 0])
    cost, work = space.pair_values(np.arange(6), far)
    problem = AlignmentProblem(
        cand_indptr=np.arange(7),
        cand_rep=far,
        pair_cost=cost,
        pair_workload_h=work,
        unit_measure=pot,
        measure_lo=np.array([2.0, 2.0]),
        measure_hi=np.array([4.0, 4.0]),
        measure_target=np.array([3.0, 3.0]),
        capacity_h=np.array([np.inf, np.inf]),
        fixed_rep=np.full(6, -1),
        current_rep=np.full(6, -1),
    )
    return space, problem


def test_pricing_finds_the_pairs_the_candidates_missed():
    space, problem = _tiny_space()
    bigger, sol = solve_relaxation_priced(
        problem, space, time_limit_s=20, group_size=1, margin=0.0, capacity_margin=0.0
    )
    assert sol.status == "FEASIBLE"
    # Everyone ends with the near rep, a few km away instead of ~120 km.
    plan = sol.rounded(bigger)
    np.testing.assert_array_equal(plan, [0, 0, 0, 1, 1, 1])
    near_km = haversine_km(space.unit_lat, space.unit_lon, space.rep_lat[plan], space.rep_lon[plan])
    assert check_plan(bigger, plan).objective == pytest.approx(near_km.sum())
    # The bound is over every pair, so it is below the true optimum and near it.
    assert sol.bound <= near_km.sum() + 1e-9
    assert sol.bound >= near_km.sum() - 1e-6


def test_with_pairs_keeps_candidates_sorted_and_unique():
    space, problem = _tiny_space()
    bigger = with_pairs(problem, space, np.array([0, 0, 5]), np.array([0, 1, 1]))
    assert bigger.num_pairs == 6 + 2
    np.testing.assert_array_equal(bigger.candidates(0), [0, 1])
    np.testing.assert_array_equal(bigger.candidates(5), [0, 1])
    assert space.eligible(np.array([0]), np.array([1]))[0]

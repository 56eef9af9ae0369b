"""Rooted contiguous unit alignment (solvers.contiguity) and its checker (solvers.check_units).

Units are numbered row by row on small grids drawn in the docstrings; costs are whole
numbers (weight x grid distance), weights are plain integers.
"""

from __future__ import annotations

import numpy as np
import pytest

from solvers.check_units import check_unit_problem_plan, check_units
from solvers.contiguity import (
    ContiguitySettings,
    UnitInputError,
    UnitProblem,
    balance_territories,
    grow_territories,
    precheck,
    solve_units,
)


def _grid_edges(width: int, height: int) -> list[tuple[int, int]]:
    edges = [(y * width + x, y * width + x + 1) for y in range(height) for x in range(width - 1)]
    edges += [(y * width + x, (y + 1) * width + x) for y in range(height - 1) for x in range(width)]
    return edges


def _grid_problem(width, height, roots, weight=None, tol=0.2, cost=None, **kw) -> UnitProblem:
    n = width * height
    w = np.ones(n, dtype=np.int64) * 10 if weight is None else np.asarray(weight)
    k = len(roots)
    if cost is None:
        xy = np.c_[np.arange(n) % width, np.arange(n) // width]
        d = np.abs(xy[:, None, :] - xy[np.asarray(roots)][None, :, :]).sum(axis=2)
        cost = w[:, None] * d
    target = w.sum() / k
    lo = np.full(k, int(np.ceil((1 - tol) * target)))
    up = np.full(k, int(np.floor((1 + tol) * target)))
    return UnitProblem.build(_grid_edges(width, height), w, roots, lo, up, cost, **kw)


def test_checker_accepts_a_contiguous_plan_and_rejects_a_split_one():
    """3x3 grid, roots 0 (territory 0) and 8 (territory 1)::

        6 7 8
        3 4 5
        0 1 2

    Contiguous: {0, 1, 2, 3} and {4, 5, 6, 7, 8}.
    Split: territory 0 = {0, 1, 3, 5}: unit 5 touches only 2, 4 and 8, all in territory 1.
    """
    p = _grid_problem(3, 3, [0, 8], tol=0.5)
    good = np.array([0, 0, 0, 0, 1, 1, 1, 1, 1])
    report = check_unit_problem_plan(p, good)
    assert report.ok, report.violations
    assert report.num_pieces.tolist() == [1, 1]
    split = np.array([0, 0, 1, 0, 1, 0, 1, 1, 1])
    report = check_unit_problem_plan(p, split)
    assert not report.ok
    assert any("territory 0 is split into 2 pieces" in v for v in report.violations)


def test_checker_reports_bands_roots_and_objective():
    p = _grid_problem(3, 3, [0, 8], tol=0.2)  # 45 per territory, band 36..54
    plan = np.array([0, 0, 0, 0, 0, 1, 0, 1, 1])  # 6 units of 10 against 3
    report = check_unit_problem_plan(p, plan, expected_objective=1)
    text = "\n".join(report.violations)
    assert "territory 0 holds 60 > upper 54 (over by 6)" in text
    assert "territory 1 holds 30 < lower 36 (short by 6)" in text
    assert "reported objective 1" in text
    report = check_units(
        [1, 1], [(0, 1)], [0], [0], [5], [0], [0, 1], [0, 0], [0, 0], [0, 0]
    )  # one territory on two units, fine
    assert report.ok and report.objective == 0


def test_model_joins_a_unit_that_the_unconstrained_optimum_would_split_off():
    """A path of five units, roots at 0 (A) and 2 (B)::

        0 - 1 - 2 - 3 - 4
        A       B

    Unit 4 costs nothing in A and much in B, so without contiguity it would join A across
    B's units. Every contiguous plan puts 4 (and 3) in B.
    """
    edges = [(0, 1), (1, 2), (2, 3), (3, 4)]
    w = np.array([10, 10, 10, 10, 10])
    cost = np.array([[0, 50], [0, 50], [50, 0], [50, 1], [0, 100]])
    p = UnitProblem.build(edges, w, [0, 2], [10, 10], [40, 40], cost)
    unconstrained = np.argmin(np.where(np.isfinite(cost), cost, np.inf), axis=1)
    assert not check_unit_problem_plan(p, unconstrained).ok  # the optimum without it is split
    for contiguity in ("flow", "cuts"):
        settings = ContiguitySettings(time_limit_s=10, contiguity=contiguity, strategy="full")
        r = solve_units(p, settings)
        assert r.status == "OPTIMAL"
        report = check_unit_problem_plan(p, r.assignment, r.objective)
        assert report.ok, report.violations
        assert r.assignment.tolist() == [0, 0, 1, 1, 1]
        assert r.objective == 101 and r.bound == 101


def test_flow_and_cuts_prove_the_same_optimum_and_the_lns_reaches_it_checked():
    """5x5 grid, weights 1..25 shuffled, three roots in three corners, band +-15 %."""
    w = np.random.default_rng(3).permutation(np.arange(1, 26)) * 10
    p = _grid_problem(5, 5, [0, 4, 24], weight=w, tol=0.15)
    objectives = {}
    for contiguity in ("flow", "cuts"):
        s = ContiguitySettings(
            time_limit_s=20, contiguity=contiguity, strategy="full", relative_gap=0.0
        )
        r = solve_units(p, s)
        assert r.status == "OPTIMAL"
        assert check_unit_problem_plan(p, r.assignment, r.objective).ok
        objectives[contiguity] = r.objective
    assert objectives["flow"] == objectives["cuts"]
    lns = solve_units(p, ContiguitySettings(time_limit_s=10, strategy="lns", window=2))
    report = check_unit_problem_plan(p, lns.assignment, lns.objective)
    assert report.ok, report.violations
    assert lns.bound <= objectives["cuts"] <= lns.objective


def test_construction_keeps_every_territory_connected():
    """8x8 grid, four roots; region growing alone already gives connected territories."""
    p = _grid_problem(8, 8, [0, 7, 56, 63], tol=0.3)
    plan = grow_territories(p)
    assert np.all(plan >= 0)
    assert check_unit_problem_plan(p, plan).num_pieces.tolist() == [1, 1, 1, 1]


def test_balancing_passes_surplus_along_a_chain_of_territories():
    """2x6 grid, weights 10, band 36..44; territory 0 (root 0) is not adjacent to 2 (root 5)::

        6  7  8  9 10 11        start: 0 0 0 1 1 2      (0 = 50, 1 = 40, 2 = 30)
        0  1  2  3  4  5               0 0 1 1 2 2

    The surplus of 0 can reach 2 only through 1, which is already in its band.
    """
    p = _grid_problem(6, 2, [0, 2, 5], tol=0.1)
    start = np.array([0, 0, 1, 1, 2, 2, 0, 0, 0, 1, 1, 2])
    assert not check_unit_problem_plan(p, start).ok  # 0 over, 2 under its band
    assert check_unit_problem_plan(p, start).num_pieces.tolist() == [1, 1, 1]
    plan, stats = balance_territories(p, start)
    report = check_unit_problem_plan(p, plan)
    assert report.ok, report.violations
    assert report.loads.tolist() == [40, 40, 40]
    assert stats["balance_violation"] == 0 and stats["balance_start_violation"] == 12


def test_balancing_moves_a_branch_that_hangs_on_a_border_unit():
    """Units 0-1-2-3 on a path, 3 touches 5 (root of territory 1) and 4 hangs on 3 alone::

        0 - 1 - 2 - 3 - 5      start: territory 0 = {0, 1, 2, 3, 4} (50), 1 = {5} (10)
                    |          band 27..33
                    4

    Unit 3 is territory 0's only border unit and a cut vertex (4 would be cut off), so no
    single move helps; 3 moves together with 4.
    """
    edges = [(0, 1), (1, 2), (2, 3), (3, 5), (3, 4)]
    p = UnitProblem.build(edges, [10] * 6, [0, 5], [27, 27], [33, 33], np.ones((6, 2)))
    plan, stats = balance_territories(p, np.array([0, 0, 0, 0, 0, 1]))
    assert plan.tolist() == [0, 0, 0, 1, 1, 1]
    assert check_unit_problem_plan(p, plan).ok
    assert stats["balance_moves"] == 2


def test_hanging_weight_is_what_a_territory_loses_besides_the_unit():
    """7x7 grid, three roots, weights 1..49; for every non-root unit, the low-point pass
    must give the weight cut off from the root when the unit leaves (checked by BFS)."""
    from collections import deque

    from solvers.contiguity_balance import _hanging_weight

    w = np.arange(1, 50)
    p = _grid_problem(7, 7, [0, 24, 48], weight=w, tol=0.9)
    plan = grow_territories(p)
    nbrs = [p.neighbours(u).tolist() for u in range(49)]
    hang = _hanging_weight(nbrs, w.tolist(), plan, p.root.tolist())
    for u in range(49):
        t = int(plan[u])
        if u == p.root[t]:
            continue
        seen, queue = {int(p.root[t]), u}, deque([int(p.root[t])])
        while queue:
            a = queue.popleft()
            for b in nbrs[a]:
                if b not in seen and plan[b] == t:
                    seen.add(b)
                    queue.append(b)
        lost = sum(int(w[v]) for v in np.flatnonzero(plan == t) if v not in seen)
        assert hang[u] == lost, u


def test_construction_balances_a_large_grid_checked():
    """30x30 grid, random weights 50..149, 20 random roots, band +-5 %: region growing and
    balancing alone (no CP-SAT window gets time) give a checked plan."""
    rng = np.random.default_rng(11)
    w = rng.integers(50, 150, 900)
    roots = rng.choice(900, 20, replace=False)
    p = _grid_problem(30, 30, roots.tolist(), weight=w, tol=0.05, num_candidates=8)
    r = solve_units(p, ContiguitySettings(time_limit_s=2, strategy="lns"))
    report = check_unit_problem_plan(p, r.assignment, r.objective)
    assert report.ok, report.violations
    assert r.stats["balance_violation"] == 0 and r.stats["heuristic_s"] < 2
    assert r.bound <= r.objective


def test_same_seed_same_plan():
    w = np.random.default_rng(0).integers(5, 15, 36)
    p = _grid_problem(6, 6, [0, 5, 30, 35], weight=w, tol=0.1)
    s = ContiguitySettings(time_limit_s=20, strategy="lns", seed=7, num_workers=2)
    a, b = solve_units(p, s), solve_units(p, s)
    assert a.has_plan and a.assignment.tolist() == b.assignment.tolist()
    assert a.objective == b.objective


def test_impossible_bands_are_explained_with_the_arithmetic():
    """Two units of 10 and one of 100 on a path; bands of 50..60 cannot hold the 100."""
    p = UnitProblem.build(
        [(0, 1), (1, 2)], [10, 100, 10], [0, 2], [50, 50], [60, 60], np.ones((3, 2))
    )
    reasons = precheck(p)
    assert any("exceeds the sum of the upper band limits 120 (over by 0" not in r for r in reasons)
    r = solve_units(p, ContiguitySettings(time_limit_s=5))
    assert r.status == "INFEASIBLE" and not r.has_plan
    assert r.stats["infeasibility"]


def test_bad_instances_list_every_problem():
    with pytest.raises(UnitInputError, match="roots must be distinct"):
        UnitProblem.build([(0, 1)], [1, 1], [0, 0], [0, 0], [2, 2], np.ones((2, 2)))
    with pytest.raises(UnitInputError, match=r"cost has shape \(2, 1\), expected \(2, 2\)"):
        UnitProblem.build([(0, 1)], [1, 1], [0, 1], [0, 0], [2, 2], np.ones((2, 1)))
    with pytest.raises(UnitInputError, match="weight must hold whole numbers"):
        UnitProblem.build([(0, 1)], [1.5, 1], [0, 1], [0, 0], [2, 2], np.ones((2, 2)))
    with pytest.raises(ValueError, match="contiguity must be 'flow' or 'cuts'"):
        ContiguitySettings(contiguity="shir")

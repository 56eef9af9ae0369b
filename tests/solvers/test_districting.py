"""Tests for the free-centre contiguous districting engine and its independent checker.

All graphs are tiny and drawn in the docstrings; expected optima come from a brute-force
enumeration of set partitions written here, independently of the solver.
"""

from __future__ import annotations

import itertools
from collections import deque

import numpy as np
import pytest

from solvers.check_districting import check_problem_plan
from solvers.districting import (
    DistrictingInputError,
    DistrictingProblem,
    DistrictingSettings,
    solve_districting,
)

FAST = DistrictingSettings(time_limit_s=20, seed=0, num_workers=1)


def grid_edges(rows: int, cols: int) -> list[tuple[int, int]]:
    """Edges of a rows x cols grid, units numbered row by row."""
    edges = []
    for r, c in itertools.product(range(rows), range(cols)):
        u = r * cols + c
        if c + 1 < cols:
            edges.append((u, u + 1))
        if r + 1 < rows:
            edges.append((u, u + cols))
    return edges


def hops_from(n: int, edges: list[tuple[int, int]], source: int) -> list[int]:
    adj = [[] for _ in range(n)]
    for u, v in edges:
        adj[u].append(v)
        adj[v].append(u)
    dist = [-1] * n
    dist[source] = 0
    queue = deque([source])
    while queue:
        u = queue.popleft()
        for v in adj[u]:
            if dist[v] < 0:
                dist[v] = dist[u] + 1
                queue.append(v)
    return dist


def brute_force(n, edges, pop, k, lower, upper) -> int | None:
    """Optimal objective by enumerating every partition into k connected blocks."""
    adj = [set() for _ in range(n)]
    for u, v in edges:
        adj[u].add(v)
        adj[v].add(u)
    hops = [hops_from(n, edges, s) for s in range(n)]

    def connected(block):
        seen, queue = {block[0]}, deque([block[0]])
        while queue:
            u = queue.popleft()
            for v in adj[u] & set(block) - seen:
                seen.add(v)
                queue.append(v)
        return len(seen) == len(block)

    def block_cost(block):
        return min(sum(pop[i] * hops[c][i] for i in block) for c in block)

    best = None

    def extend(unit, blocks):
        nonlocal best
        if unit == n:
            if len(blocks) == k and all(
                lower <= sum(pop[i] for i in b) <= upper and connected(b) for b in blocks
            ):
                cost = sum(block_cost(b) for b in blocks)
                best = cost if best is None else min(best, cost)
            return
        for b in blocks:
            if sum(pop[i] for i in b) + pop[unit] <= upper:
                b.append(unit)
                extend(unit + 1, blocks)
                b.pop()
        if len(blocks) < k:
            blocks.append([unit])
            extend(unit + 1, blocks)
            blocks.pop()

    extend(0, [])
    return best


def check(problem: DistrictingProblem, centre_of, expected_objective=None):
    return check_problem_plan(problem, centre_of, expected_objective)


# ------------------------------------------------------------------------------------------
# Solver
# ------------------------------------------------------------------------------------------


def test_grid_3x3_matches_brute_force():
    """3x3 grid, k=3, populations (persons) in the cells::

        0 - 1 - 2        4   1   2
        |   |   |
        3 - 4 - 5        1   3   2
        |   |   |
        6 - 7 - 8        2   1   4

    Total 20, bounds [6, 8].
    """
    edges = grid_edges(3, 3)
    pop = [4, 1, 2, 1, 3, 2, 2, 1, 4]
    problem = DistrictingProblem.from_edges(9, edges, pop, k=3, lower=6, upper=8)
    expected = brute_force(9, edges, pop, 3, 6, 8)

    result = solve_districting(problem, FAST)

    assert result.status == "OPTIMAL"
    assert result.objective == expected
    assert result.bound == expected and result.gap == 0.0
    report = check(problem, result.centre_of, result.objective)
    assert report.ok, report.violations
    assert report.objective == expected
    assert len(result.centres) == 3


def test_path_has_a_single_balanced_split():
    """Path 0 - 1 - 2 - 3 - 4 - 5 with populations 2 1 2 3 1 1, k=2, bounds [5, 5].

    Only {0,1,2} | {3,4,5} balances; best centres 1 (cost 2+2) and 3 (cost 1+2): 7.
    """
    edges = [(i, i + 1) for i in range(5)]
    problem = DistrictingProblem.from_edges(6, edges, [2, 1, 2, 3, 1, 1], 2, 5, 5)

    result = solve_districting(problem, FAST)

    assert result.status == "OPTIMAL"
    assert result.centre_of.tolist() == [1, 1, 1, 3, 3, 3]
    assert result.objective == 7


def test_optimum_needs_a_district_that_is_not_shortest_path_closed():
    """Wheel: hub 7 joined to every unit of the rim cycle 0 - 1 - ... - 6 - 0.

    Hub population 7, rim units 1 each, k=2, bounds [7, 7]: the only plan is {hub} | rim.
    Rim units three steps round the rim are two hops away through the hub, so no rim centre
    has a shortest path inside its district to every member: a model that demands one (the
    shortest-path rule) is infeasible here, while the true optimum is 2 x 1 + 4 x 2 = 10.
    """
    rim = [(i, (i + 1) % 7) for i in range(7)]
    spokes = [(7, i) for i in range(7)]
    problem = DistrictingProblem.from_edges(8, rim + spokes, [1] * 7 + [7], 2, 7, 7)

    result = solve_districting(problem, FAST)

    assert result.status == "OPTIMAL"
    assert result.objective == 10
    assert result.centre_of[7] == 7
    assert check(problem, result.centre_of, 10).ok


def test_random_grids_match_brute_force():
    """2x5 grids (10 units), k=3, random populations 1..9 and bounds +-25 % of the mean::

        0 - 1 - 2 - 3 - 4
        |   |   |   |   |
        5 - 6 - 7 - 8 - 9

    Exercises the separator-cut rounds: capacitated p-median optima are often disconnected.
    """
    edges = grid_edges(2, 5)
    rng = np.random.default_rng(7)
    for _ in range(4):
        pop = rng.integers(1, 10, size=10).tolist()
        total = sum(pop)
        lower, upper = int(np.ceil(0.75 * total / 3)), int(1.25 * total / 3)
        expected = brute_force(10, edges, pop, 3, lower, upper)
        problem = DistrictingProblem.from_edges(10, edges, pop, 3, lower, upper)

        result = solve_districting(problem, FAST)

        if expected is None:
            assert result.status == "INFEASIBLE"
        else:
            assert result.status == "OPTIMAL"
            assert result.objective == expected
            assert check(problem, result.centre_of, expected).ok


@pytest.mark.parametrize(("rows", "cols", "k", "seed"), [(3, 4, 3, 53), (2, 6, 4, 38)])
def test_separator_rounds_match_brute_force(rows, cols, k, seed):
    """Grids whose first relaxation optimum has a stray piece (a disconnected district)::

        3x4:  0 - 1 - 2 - 3        2x6:  0 - 1 - 2 - 3 - 4 - 5
              |   |   |   |              |   |   |   |   |   |
              4 - 5 - 6 - 7              6 - 7 - 8 - 9 -10 -11
              |   |   |   |
              8 - 9 -10 -11

    Random populations 1..29, bounds +-10 % of the mean. The separator cut rounds must end at
    the brute-force optimum (3x4) or prove that no connected plan exists (2x6, k=4).
    """
    edges = grid_edges(rows, cols)
    n = rows * cols
    pop = np.random.default_rng(seed).integers(1, 30, size=n).tolist()
    total = sum(pop)
    lower, upper = int(np.ceil(0.9 * total / k)), int(1.1 * total / k)
    problem = DistrictingProblem.from_edges(n, edges, pop, k, lower, upper)
    expected = brute_force(n, edges, pop, k, lower, upper)

    result = solve_districting(problem, FAST)

    assert result.stats["rounds"][0][1] >= 1, "first relaxation was already connected"
    if expected is None:
        assert result.status == "INFEASIBLE"
    else:
        assert result.status == "OPTIMAL"
        assert result.objective == expected
        assert check(problem, result.centre_of, expected).ok


def test_infeasible_without_connected_split_is_reported_not_raised():
    """Path 0 - 1 - 2 - 3 - 4 - 5, populations 2 1 3 1 1 2, k=2, bounds [5, 5].

    Totals are fine (10 = 2 x 5) but no prefix of the path sums to 5, so every balanced split
    is disconnected; the separator rounds must prove infeasibility.
    """
    edges = [(i, i + 1) for i in range(5)]
    problem = DistrictingProblem.from_edges(6, edges, [2, 1, 3, 1, 1, 2], 2, 5, 5)

    result = solve_districting(problem, FAST)

    assert result.status == "INFEASIBLE"
    assert result.objective is None
    assert (result.centre_of == -1).all()


def test_cpsat_backend_agrees_with_highs():
    """3x4 grid, k=4, random populations 1..9 and bounds +-30 % of the mean::

    0 - 1 - 2 - 3
    |   |   |   |
    4 - 5 - 6 - 7
    |   |   |   |
    8 - 9 -10 -11
    """
    edges = grid_edges(3, 4)
    pop = np.random.default_rng(3).integers(1, 10, size=12)
    mean = pop.sum() / 4
    problem = DistrictingProblem.from_edges(
        12, edges, pop, 4, int(np.ceil(0.7 * mean)), int(1.3 * mean)
    )

    highs = solve_districting(problem, FAST)
    cpsat = solve_districting(problem, DistrictingSettings(time_limit_s=20, backend="cpsat"))

    assert highs.status == cpsat.status == "OPTIMAL"
    assert highs.objective == cpsat.objective
    assert check(problem, cpsat.centre_of, cpsat.objective).ok


@pytest.mark.parametrize("backend", ["highs", "cpsat"])
def test_same_seed_same_plan(backend):
    """4x4 grid, k=4, random populations 1..20, bounds +-15 % of the mean."""
    edges = grid_edges(4, 4)
    pop = np.random.default_rng(11).integers(1, 21, size=16)
    mean = pop.sum() / 4
    problem = DistrictingProblem.from_edges(
        16, edges, pop, 4, int(np.ceil(0.85 * mean)), int(1.15 * mean)
    )
    settings = DistrictingSettings(time_limit_s=20, seed=5, num_workers=2, backend=backend)

    first = solve_districting(problem, settings)
    second = solve_districting(problem, settings)

    assert first.status == "OPTIMAL"
    assert first.centre_of.tolist() == second.centre_of.tolist()


def test_progress_reports_incumbent_and_bound():
    edges = grid_edges(3, 3)
    problem = DistrictingProblem.from_edges(9, edges, [4, 1, 2, 1, 3, 2, 2, 1, 4], 3, 6, 8)
    calls = []

    result = solve_districting(problem, FAST, progress=lambda *a: calls.append(a))

    assert calls, "progress was never called"
    elapsed, objective, bound = calls[-1]
    assert objective == result.objective and bound == result.objective
    assert all(t >= 0 for t, _, _ in calls)


# ------------------------------------------------------------------------------------------
# Validation: predictable infeasibility is raised before solving, with the arithmetic
# ------------------------------------------------------------------------------------------


def test_lower_bound_too_high_raises_with_arithmetic():
    edges = [(0, 1), (1, 2)]
    with pytest.raises(DistrictingInputError, match=r"total population 9 < k x lower = 3 x 4 = 12"):
        DistrictingProblem.from_edges(3, edges, [3, 3, 3], k=3, lower=4, upper=5)


def test_upper_bound_too_low_raises_with_arithmetic():
    edges = [(0, 1), (1, 2)]
    with pytest.raises(DistrictingInputError, match=r"total population 9 > k x upper = 2 x 4 = 8"):
        DistrictingProblem.from_edges(3, edges, [3, 3, 3], k=2, lower=1, upper=4)


def test_every_problem_is_reported_at_once():
    """Two islands 0 - 1 and 2 - 3; unit 3 alone exceeds upper; k too large."""
    with pytest.raises(DistrictingInputError) as info:
        DistrictingProblem.from_edges(4, [(0, 1), (2, 3)], [1, 1, 1, 9], k=5, lower=1, upper=5)
    text = "\n".join(info.value.problems)
    assert "not connected" in text
    assert "k=5 districts is impossible with 4 units" in text
    assert "unit 3 with 9" in text


def test_bad_edges_raise():
    with pytest.raises(DistrictingInputError, match=r"outside \[0, 2\]"):
        DistrictingProblem.from_edges(3, [(0, 1), (1, 3)], [1, 1, 1], 1, 3, 3)
    with pytest.raises(DistrictingInputError, match="self-loops"):
        DistrictingProblem.from_edges(3, [(0, 1), (1, 1), (1, 2)], [1, 1, 1], 1, 3, 3)


def test_problem_arrays_are_frozen_and_csr_is_symmetric():
    problem = DistrictingProblem.from_edges(3, [(0, 1), (1, 2), (1, 0)], [1, 2, 3], 1, 6, 6)
    assert problem.adj_indptr.tolist() == [0, 1, 3, 4]
    assert problem.neighbours(1).tolist() == [0, 2]
    with pytest.raises(ValueError):
        problem.population[0] = 5


def test_settings_are_validated():
    with pytest.raises(ValueError, match="backend"):
        DistrictingSettings(backend="gurobi")
    with pytest.raises(ValueError, match="time_limit_s"):
        DistrictingSettings(time_limit_s=0)


# ------------------------------------------------------------------------------------------
# Checker: hand-made bad plans on the 3x3 grid
# ------------------------------------------------------------------------------------------


@pytest.fixture
def grid_problem() -> DistrictingProblem:
    """3x3 grid, populations all 2 (total 18), k=3, bounds [6, 6]::

    0 - 1 - 2
    |   |   |
    3 - 4 - 5
    |   |   |
    6 - 7 - 8
    """
    return DistrictingProblem.from_edges(9, grid_edges(3, 3), [2] * 9, 3, 6, 6)


def test_checker_accepts_rows_and_recomputes_objective(grid_problem):
    rows = [1, 1, 1, 4, 4, 4, 7, 7, 7]  # each row centred on its middle unit
    report = check(grid_problem, rows, expected_objective=12)
    assert report.ok, report.violations
    assert report.objective == 3 * 2 * 2 * 1
    assert report.district_population == {1: 6, 4: 6, 7: 6}


def test_checker_catches_disconnected_district(grid_problem):
    # District of centre 0 is {0, 2, 4}: units 2 and 4 touch neither 0 nor each other's path.
    plan = [0, 1, 0, 1, 0, 1, 6, 6, 6]
    report = check(grid_problem, plan)
    assert not report.ok
    assert any("district of centre 0 is not connected" in v for v in report.violations)


def test_checker_catches_wrong_number_of_districts(grid_problem):
    plan = [0, 0, 0, 0, 0, 0, 6, 6, 6]
    report = check(grid_problem, plan)
    assert any("2 districts, expected k=3" in v for v in report.violations)


def test_checker_catches_population_bounds(grid_problem):
    plan = [0, 0, 0, 0, 4, 4, 7, 7, 7]  # 8 | 4 | 6 persons
    report = check(grid_problem, plan)
    assert any("8 > upper 6" in v for v in report.violations)
    assert any("4 < lower 6" in v for v in report.violations)


def test_checker_catches_centre_not_self_assigned_and_objective_mismatch(grid_problem):
    plan = [1, 2, 1, 4, 4, 4, 7, 7, 7]  # unit 1 is a centre but assigned to 2
    report = check(grid_problem, plan)
    assert any("unit 1 is used as a centre" in v for v in report.violations)

    report = check(grid_problem, [1, 1, 1, 4, 4, 4, 7, 7, 7], expected_objective=9)
    assert any("reported objective 9 != recomputed 12" in v for v in report.violations)


def test_checker_rejects_out_of_range_centre(grid_problem):
    report = check(grid_problem, [1, 1, 1, 4, 4, 4, 7, 7, 9])
    assert not report.ok and report.objective is None

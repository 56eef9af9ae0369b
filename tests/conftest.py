"""Shared fixtures: tiny hand-drawn problems, a brute-force oracle and a small synthetic book.

Everything here is cheap: the hand-drawn problems have at most nine units, the random ones a
few hundred, and the synthetic book (4,000 accounts x 20 reps, the smallest known-good size)
is generated once per session.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from solvers.problem import AlignmentProblem
from solvers.settings import SolveSettings
from territory_opt.config import PlanConfig

INF = float("inf")


def problem_from_lists(
    candidates: list[list[int]],
    cost: list[float],
    workload_h: list[float],
    measure: list[float],
    lo: list[float],
    hi: list[float],
    capacity_h: list[float],
    *,
    fixed: list[int] | None = None,
    target: list[float] | None = None,
) -> AlignmentProblem:
    """An :class:`AlignmentProblem` from per-unit candidate lists and per-pair values."""
    n = len(candidates)
    indptr = np.r_[0, np.cumsum([len(c) for c in candidates])]
    lo_a, hi_a = np.asarray(lo, float), np.asarray(hi, float)
    tgt = np.asarray(target, float) if target is not None else 0.5 * (lo_a + hi_a)
    return AlignmentProblem(
        cand_indptr=indptr,
        cand_rep=np.concatenate([np.asarray(c, dtype=np.int64) for c in candidates]),
        pair_cost=cost,
        pair_workload_h=workload_h,
        unit_measure=measure,
        measure_lo=lo_a,
        measure_hi=hi_a,
        measure_target=tgt,
        capacity_h=capacity_h,
        fixed_rep=fixed if fixed is not None else [-1] * n,
        current_rep=[-1] * n,
    )


@pytest.fixture
def tiny_problem() -> AlignmentProblem:
    """Four units, two reps; every figure below is used by hand in the tests::

        unit  potential  candidates (pair: cost, workload_h)
        u0    10         rep0 (p0: 1, 10)   rep1 (p1: 4, 20)    locked to rep0
        u1    20         rep0 (p2: 2, 10)
        u2    30         rep0 (p3: 3, 10)   rep1 (p4: 1, 30)
        u3    40                            rep1 (p5: 5, 10)

        rep   band (potential)   target   capacity_h
        rep0  [35, 65]           50       40
        rep1  [35, 75]           55       40

    The only plan that keeps every rule is [0, 0, 0, 1]: potential (60, 40), workload
    (30, 10) h, cost 1 + 2 + 3 + 5 = 11.
    """
    return problem_from_lists(
        candidates=[[0, 1], [0], [0, 1], [1]],
        cost=[1, 4, 2, 3, 1, 5],
        workload_h=[10, 20, 10, 10, 30, 10],
        measure=[10, 20, 30, 40],
        lo=[35, 35],
        hi=[65, 75],
        capacity_h=[40, 40],
        fixed=[0, -1, -1, -1],
        target=[50, 55],
    )


@pytest.fixture
def grid_problem() -> AlignmentProblem:
    """A 3x3 grid of units and three reps; cost = potential x grid distance to the base::

        potential            rep bases
        5   3   4            R0  .   R1
        2   9   2            .   .   .
        4   6   1            .   R2  .

    Every unit may go to every rep. Total potential 36, target 12 per rep, band +-25 %
    ([9, 15]); workload 1 h + 1 h per grid step, capacity 10 h per rep; the centre (9) is
    locked to R2. Sending each unit to its nearest base breaks the bands, so the optimum
    (found by brute force over the 3**9 plans) trades distance for balance.
    """
    rows, cols = np.divmod(np.arange(9), 3)
    bases = np.array([[0, 0], [0, 2], [2, 1]])
    potential = np.array([5, 3, 4, 2, 9, 2, 4, 6, 1], dtype=float)
    dist = np.hypot(rows[:, None] - bases[None, :, 0], cols[:, None] - bases[None, :, 1])
    fixed = np.full(9, -1)
    fixed[4] = 2
    return problem_from_lists(
        candidates=[[0, 1, 2]] * 9,
        cost=(potential[:, None] * dist).ravel().tolist(),
        workload_h=(1.0 + dist).ravel().tolist(),
        measure=potential.tolist(),
        lo=[9.0] * 3,
        hi=[15.0] * 3,
        capacity_h=[10.0] * 3,
        fixed=fixed.tolist(),
        target=[12.0] * 3,
    )


def _random_problem(
    num_units: int,
    num_reps: int,
    seed: int,
    *,
    num_candidates: int = 3,
    tolerance: float = 0.1,
    capacity_slack: float = 1.5,
) -> tuple[AlignmentProblem, np.ndarray]:
    """Units and rep bases in the unit square; each unit may go to its nearest reps.

    A planted plan (each unit to a random candidate) sets the bands (its sums +- tolerance)
    and the capacities (its workload x ``capacity_slack``), so the problem is feasible and
    the planted plan, usually far from optimal, is a checked starting point. A rep the
    planted plan leaves empty gets the band [0, 0].
    """
    rng = np.random.default_rng(seed)
    units = rng.random((num_units, 2))
    bases = rng.random((num_reps, 2))
    dist = np.hypot(*(units[:, None, :] - bases[None, :, :]).transpose(2, 0, 1))
    k = min(num_candidates, num_reps)
    cand = np.sort(np.argsort(dist, axis=1)[:, :k], axis=1)
    planted = cand[np.arange(num_units), rng.integers(0, k, num_units)]
    potential = np.round(rng.lognormal(3.0, 0.6, num_units), 2)
    pair_unit = np.repeat(np.arange(num_units), k)
    pair_rep = cand.ravel()
    pair_dist = dist[pair_unit, pair_rep]
    workload = 1.0 + 10.0 * pair_dist
    sums = np.bincount(planted, weights=potential, minlength=num_reps)
    pair_of_plan = np.flatnonzero(pair_rep == planted[pair_unit])
    work = np.bincount(planted, weights=workload[pair_of_plan], minlength=num_reps)
    problem = AlignmentProblem(
        cand_indptr=np.arange(0, num_units * k + 1, k),
        cand_rep=pair_rep,
        pair_cost=potential[pair_unit] * pair_dist,
        pair_workload_h=workload,
        unit_measure=potential,
        measure_lo=sums * (1 - tolerance),
        measure_hi=sums * (1 + tolerance),
        measure_target=sums,
        capacity_h=work * capacity_slack,
        fixed_rep=np.full(num_units, -1),
        current_rep=planted,
    )
    return problem, planted


@pytest.fixture
def random_problem() -> Callable[..., tuple[AlignmentProblem, np.ndarray]]:
    """Factory ``(num_units, num_reps, seed, **options) -> (problem, planted feasible plan)``."""
    return _random_problem


def _brute_force(problem: AlignmentProblem) -> tuple[float, np.ndarray | None]:
    """Optimal objective and plan by enumerating every assignment (tiny problems only).

    Written from the problem's definition with plain loops over reps, independently of the
    checker, so the two can vouch for each other.
    """
    n, r = problem.num_units, problem.num_reps
    assert r**n <= 200_000, "brute force is for tiny problems"
    plans = np.array(list(itertools.product(range(r), repeat=n)), dtype=np.int64)
    cost_table = np.full((n, r), np.nan)
    work_table = np.full((n, r), np.nan)
    for u in range(n):
        for p in range(problem.cand_indptr[u], problem.cand_indptr[u + 1]):
            cost_table[u, problem.cand_rep[p]] = problem.pair_cost[p]
            work_table[u, problem.cand_rep[p]] = problem.pair_workload_h[p]
    units = np.arange(n)
    cost = cost_table[units, plans].sum(axis=1)  # NaN where a unit is off its candidates
    ok = np.isfinite(cost)
    fixed = problem.fixed_rep >= 0
    ok &= np.all(plans[:, fixed] == problem.fixed_rep[fixed], axis=1)
    work = work_table[units, plans]
    for rep in range(r):
        on = plans == rep
        ok &= np.nansum(np.where(on, work, 0.0), axis=1) <= problem.capacity_h[rep] + 1e-9
        for j in range(problem.num_measures):
            total = (on * problem.unit_measure[:, j]).sum(axis=1)
            ok &= total >= problem.measure_lo[rep, j] - 1e-9
            ok &= total <= problem.measure_hi[rep, j] + 1e-9
    if not ok.any():
        return INF, None
    best = int(np.flatnonzero(ok)[np.argmin(cost[ok])])
    return float(cost[best]), plans[best]


@pytest.fixture
def brute_force() -> Callable[[AlignmentProblem], tuple[float, np.ndarray | None]]:
    """The exhaustive oracle: ``problem -> (optimal objective, plan)``; ``(inf, None)`` if
    no plan exists."""
    return _brute_force


@pytest.fixture
def fast_settings() -> SolveSettings:
    """One worker, a short limit and a zero gap target (asks for a proven optimum)."""
    return SolveSettings(time_limit_s=10.0, num_workers=1, seed=3, relative_gap=0.0)


# --- the small synthetic book ------------------------------------------------------------


@pytest.fixture(scope="session")
def small_book():
    """4,000 accounts x 20 reps (16 commercial, 4 enterprise), seed 7; about a second."""
    # Imported here: the solver tests need no geography stack.
    from territory_opt.synthetic import generate_book

    return generate_book(4_000, 20, seed=7)


@pytest.fixture(scope="session")
def small_book_files(small_book, tmp_path_factory) -> dict[str, Path]:
    """The small book written as CSV: ``accounts``, ``reps``, ``history``, ``truth`` paths.

    Read-only for the tests: copy before changing a file.
    """
    return small_book.write(tmp_path_factory.mktemp("small_book"))


@pytest.fixture(scope="session")
def plan_config() -> PlanConfig:
    """Default plan settings with a small, single-worker, seeded solve."""
    return PlanConfig(solve=SolveSettings(time_limit_s=30.0, num_workers=1, seed=11))

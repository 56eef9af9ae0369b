"""Independent checker for free-centre contiguous districting plans.

Written from the problem definition only, deliberately sharing no code with the model in
``solvers.districting``: a plan is a vector ``centre_of`` (unit -> centre unit). The checker
verifies every hard constraint and recomputes the objective, sum over units of
population (persons) x unweighted hop distance (edges) from the unit to its centre, with its
own breadth-first searches on the CSR adjacency arrays.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Sequence

import numpy as np

__all__ = ["DistrictingCheck", "check_districting", "check_problem_plan"]


@dataclasses.dataclass(frozen=True)
class DistrictingCheck:
    """Outcome of :func:`check_districting`.

    Attributes:
        ok: True when the plan satisfies every hard constraint.
        violations: one human-readable line per violated constraint.
        objective: recomputed sum of population (persons) x hops to the centre; ``None`` when
            some unit has no valid centre, so hops cannot be measured.
        district_population: centre unit -> district population (persons).
    """

    ok: bool
    violations: list[str]
    objective: int | None
    district_population: dict[int, int]


def _bfs_hops(adj_indptr: np.ndarray, adj_indices: np.ndarray, source: int) -> np.ndarray:
    """Hops (edges) from ``source`` to every unit in the whole graph; -1 if unreachable."""
    n = adj_indptr.shape[0] - 1
    hops = np.full(n, -1, dtype=np.int64)
    hops[source] = 0
    queue = deque([source])
    while queue:
        u = queue.popleft()
        for v in adj_indices[adj_indptr[u] : adj_indptr[u + 1]]:
            if hops[v] < 0:
                hops[v] = hops[u] + 1
                queue.append(int(v))
    return hops


def _reachable_within(
    adj_indptr: np.ndarray, adj_indices: np.ndarray, source: int, members: np.ndarray
) -> np.ndarray:
    """Boolean mask of units reachable from ``source`` using only units where ``members``."""
    seen = np.zeros(members.shape[0], dtype=bool)
    seen[source] = True
    queue = deque([source])
    while queue:
        u = queue.popleft()
        for v in adj_indices[adj_indptr[u] : adj_indptr[u + 1]]:
            if members[v] and not seen[v]:
                seen[v] = True
                queue.append(int(v))
    return seen


def check_districting(
    population: Sequence[int] | np.ndarray,
    adj_indptr: Sequence[int] | np.ndarray,
    adj_indices: Sequence[int] | np.ndarray,
    k: int,
    lower: int,
    upper: int,
    centre_of: Sequence[int] | np.ndarray,
    expected_objective: int | None = None,
) -> DistrictingCheck:
    """Check a plan against the districting definition and recompute its objective.

    Args:
        population: persons per unit, shape (n,).
        adj_indptr, adj_indices: symmetric CSR adjacency of the unit graph.
        k: required number of districts.
        lower, upper: inclusive district population bounds (persons).
        centre_of: for every unit, the unit that is the centre of its district.
        expected_objective: if given, a mismatch with the recomputed objective is reported.

    Returns:
        A :class:`DistrictingCheck`; ``ok`` is True only if every unit is assigned to a
        centre that is assigned to itself, there are exactly ``k`` districts, every district
        population lies in ``[lower, upper]``, every district is connected, and the objective
        matches ``expected_objective`` when one is given.
    """
    pop = np.asarray(population, dtype=np.int64)
    indptr = np.asarray(adj_indptr, dtype=np.int64)
    indices = np.asarray(adj_indices, dtype=np.int64)
    plan = np.asarray(centre_of, dtype=np.int64)
    n = pop.shape[0]
    violations: list[str] = []

    if plan.shape != (n,):
        return DistrictingCheck(
            ok=False,
            violations=[f"plan has shape {plan.shape}, expected ({n},): one centre per unit"],
            objective=None,
            district_population={},
        )
    out_of_range = np.flatnonzero((plan < 0) | (plan >= n))
    if out_of_range.size:
        violations.append(
            f"{out_of_range.size} unit(s) have no valid centre, e.g. unit {out_of_range[0]} "
            f"-> {plan[out_of_range[0]]}"
        )
        return DistrictingCheck(False, violations, None, {})

    centres = np.unique(plan)
    for c in centres:
        if plan[c] != c:
            violations.append(
                f"unit {c} is used as a centre but is itself assigned to centre {plan[c]}"
            )
    if centres.size != k:
        violations.append(f"plan has {centres.size} districts, expected k={k}")

    district_population: dict[int, int] = {}
    for c in centres:
        members = plan == c
        district_pop = int(pop[members].sum())
        district_population[int(c)] = district_pop
        if district_pop < lower:
            violations.append(
                f"district of centre {c} has population {district_pop:,} < lower {lower:,} "
                f"(short by {lower - district_pop:,})"
            )
        if district_pop > upper:
            violations.append(
                f"district of centre {c} has population {district_pop:,} > upper {upper:,} "
                f"(over by {district_pop - upper:,})"
            )
        if members[c]:
            reached = _reachable_within(indptr, indices, int(c), members)
            cut_off = np.flatnonzero(members & ~reached)
            if cut_off.size:
                violations.append(
                    f"district of centre {c} is not connected: {cut_off.size} unit(s) cannot "
                    f"reach the centre inside the district, e.g. unit {cut_off[0]}"
                )

    objective = 0
    for c in centres:
        hops = _bfs_hops(indptr, indices, int(c))
        members = np.flatnonzero(plan == c)
        if (hops[members] < 0).any():
            violations.append(f"district of centre {c} contains units unreachable in the graph")
            return DistrictingCheck(False, violations, None, district_population)
        objective += int((pop[members] * hops[members]).sum())

    if expected_objective is not None and int(expected_objective) != objective:
        violations.append(
            f"reported objective {int(expected_objective):,} != recomputed {objective:,}"
        )
    return DistrictingCheck(not violations, violations, objective, district_population)


def check_problem_plan(
    problem, centre_of, expected_objective: int | None = None
) -> DistrictingCheck:
    """:func:`check_districting` with the instance's arrays read off ``problem``.

    ``problem`` is anything with ``population``, ``adj_indptr``, ``adj_indices``, ``k``,
    ``lower`` and ``upper`` (a ``DistrictingProblem``); nothing of the solver is used.
    """
    return check_districting(
        problem.population,
        problem.adj_indptr,
        problem.adj_indices,
        problem.k,
        problem.lower,
        problem.upper,
        centre_of,
        expected_objective=expected_objective,
    )

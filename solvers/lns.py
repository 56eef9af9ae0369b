"""Large-neighbourhood search over groups of neighbouring territories.

Each step frees the accounts of a few reps that share candidate accounts, keeps everyone
else fixed, and re-optimises the freed accounts exactly as a small sub-problem (the same
:class:`AlignmentProblem` shape, with the fixed accounts' loads taken off each band). A
move is kept only if it lowers the objective and the full plan still passes the checker.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import scipy.sparse as sp

from .check import check_plan
from .cpsat import solve_cpsat
from .lp import solve_mip
from .problem import AlignmentProblem
from .settings import SolveSettings

__all__ = [
    "LnsStats",
    "improve",
    "repair_by_neighbourhoods",
    "rep_neighbours",
    "restricted",
    "subproblem",
]

log = logging.getLogger(__name__)


@dataclass
class LnsStats:
    iterations: int = 0
    improvements: int = 0
    sub_time_limit_hits: int = 0
    passes: int = 0


def rep_neighbours(problem: AlignmentProblem) -> list[np.ndarray]:
    """Per rep, the other reps ordered by how many candidate accounts they share."""
    inc = sp.csr_matrix(
        (np.ones(problem.num_pairs), (problem.pair_unit, problem.cand_rep)),
        shape=(problem.num_units, problem.num_reps),
    )
    shared = (inc.T @ inc).toarray()
    np.fill_diagonal(shared, -1)
    out = []
    for r in range(problem.num_reps):
        order = np.argsort(-shared[r], kind="stable")
        out.append(order[shared[r, order] > 0])
    return out


def subproblem(
    problem: AlignmentProblem, plan: np.ndarray, group: np.ndarray
) -> tuple[AlignmentProblem, np.ndarray, np.ndarray] | None:
    """The accounts of ``group`` (sorted rep indices) that could move within it, as a
    problem of their own.

    Returns (sub-problem, the freed units, the sub pairs' indices in ``problem``), or
    ``None`` when nothing can move. The sub-problem's ``current_rep`` is the freed units'
    current rep (local index, -1 outside the group), and its transfer limits are the full
    ones less what the units that do not move already keep.
    """
    in_group = np.zeros(problem.num_reps, dtype=bool)
    in_group[group] = True
    pair_ok = in_group[problem.cand_rep] & in_group[plan[problem.pair_unit]]
    pair_ok &= problem.fixed_rep[problem.pair_unit] < 0
    options = np.bincount(problem.pair_unit[pair_ok], minlength=problem.num_units)
    free = np.flatnonzero(options >= 2)
    if free.size == 0:
        return None
    keep = pair_ok & (options[problem.pair_unit] >= 2)
    pairs = np.flatnonzero(keep)
    return restricted(problem, plan, free, pairs, group), free, pairs


def restricted(
    problem: AlignmentProblem,
    plan: np.ndarray,
    free: np.ndarray,
    pairs: np.ndarray,
    group: np.ndarray,
) -> AlignmentProblem:
    """The units ``free`` (sorted) over the candidate ``pairs`` (sorted, of free units to
    reps in ``group``, sorted rep indices) as a problem of their own; every other unit stays
    on its rep in ``plan`` (-1: nowhere).

    Reps are local (index into ``group``). Every band, target, capacity and transfer limit
    is the full one less what the units that stay already use or keep; ``current_rep`` and
    ``fixed_rep`` are local (-1 outside the group).
    """
    r = problem.num_reps
    local = np.full(r, -1, dtype=np.int64)
    local[group] = np.arange(group.size)
    in_group = local >= 0
    sub_unit = np.searchsorted(free, problem.pair_unit[pairs])
    indptr = np.r_[0, np.cumsum(np.bincount(sub_unit, minlength=free.size))]

    stay = np.ones(problem.num_units, dtype=bool)
    stay[free] = False
    stay &= (plan >= 0) & in_group[np.maximum(plan, 0)]
    stay_units = np.flatnonzero(stay)
    stay_pairs = problem.pair_index(stay_units, plan[stay_units])
    g = group.size
    at = local[plan[stay_units]]
    fixed_meas = np.stack(
        [
            np.bincount(at, weights=problem.unit_measure[stay_units, j], minlength=g)
            for j in range(problem.num_measures)
        ],
        axis=1,
    ).reshape(g, problem.num_measures)
    fixed_work = np.bincount(at, weights=problem.pair_workload_h[stay_pairs], minlength=g)
    # Transfer limits: what the units that do not move keep already counts toward them.
    outside = np.asarray(plan, dtype=np.int64).copy()
    outside[free] = -1
    kept, kept_total = problem.kept(outside)

    def to_local(reps: np.ndarray) -> np.ndarray:
        return np.where(reps >= 0, local[np.maximum(reps, 0)], -1)

    return AlignmentProblem(
        cand_indptr=indptr,
        cand_rep=local[problem.cand_rep[pairs]],
        pair_cost=problem.pair_cost[pairs],
        pair_workload_h=problem.pair_workload_h[pairs],
        unit_measure=problem.unit_measure[free],
        measure_lo=problem.measure_lo[group] - fixed_meas,
        measure_hi=problem.measure_hi[group] - fixed_meas,
        measure_target=problem.measure_target[group] - fixed_meas,
        # The checker allows rounding noise, so a full rep can show a hair below zero.
        capacity_h=np.maximum(problem.capacity_h[group] - fixed_work, 0.0),
        fixed_rep=to_local(problem.fixed_rep[free]),
        current_rep=to_local(problem.current_rep[free]),
        measure_names=problem.measure_names,
        keep_measure=problem.keep_measure[free],
        keep_min=np.maximum(problem.keep_min[group] - kept[group], 0.0),
        keep_min_total=np.maximum(problem.keep_min_total - kept_total, 0.0),
        keep_names=problem.keep_names,
    )


def improve(
    problem: AlignmentProblem,
    plan: np.ndarray,
    settings: SolveSettings,
    *,
    time_left: Callable[[], float],
    good_enough: Callable[[float], bool],
    on_improve: Callable[[np.ndarray, float], None] | None = None,
    group_size: int = 4,
    backend: str = "mip",
    max_passes: int = 3,
    sub_time_limit_s: float = 10.0,
) -> tuple[np.ndarray, LnsStats]:
    """Improve a checked ``plan`` until a pass brings nothing, the gap is good enough, or
    time runs out. Deterministic for a given seed when sub-problems solve within their
    limit (hits are counted in the statistics)."""
    stats = LnsStats()
    plan = np.asarray(plan, dtype=np.int64).copy()
    neighbours = rep_neighbours(problem)
    objective = check_plan(problem, plan).objective
    rng = np.random.default_rng(settings.seed)
    for _ in range(max_passes):
        stats.passes += 1
        improved_in_pass = False
        for seed_rep in rng.permutation(problem.num_reps):
            if time_left() <= 0 or good_enough(objective):
                return plan, stats
            group = np.sort(np.r_[seed_rep, neighbours[seed_rep][: group_size - 1]]).astype(
                np.int64
            )
            built = subproblem(problem, plan, group)
            if built is None:
                continue
            sub, free, _ = built
            stats.iterations += 1
            limit = min(sub_time_limit_s, max(0.1, time_left()))
            current = np.searchsorted(group, plan[free])
            if backend == "mip":
                sol = solve_mip(sub, time_limit_s=limit)
                if not sol.feasible:
                    continue
                stats.sub_time_limit_hits += sol.status != "OPTIMAL"
                chosen = sol.x > 0.5
                new_local = np.empty(free.size, dtype=np.int64)
                new_local[sub.pair_unit[chosen]] = sub.cand_rep[chosen]
            else:
                res = solve_cpsat(sub, settings, hint=current, time_limit_s=limit)
                if not res.has_plan:
                    continue
                stats.sub_time_limit_hits += res.status != "OPTIMAL"
                new_local = res.assignment
            candidate = plan.copy()
            candidate[free] = group[new_local]
            report = check_plan(problem, candidate)
            if report.ok and report.objective < objective * (1 - 1e-9):
                plan, objective = candidate, report.objective
                stats.improvements += 1
                improved_in_pass = True
                if on_improve is not None:
                    on_improve(plan, objective)
        if not improved_in_pass:
            break
    return plan, stats


def repair_by_neighbourhoods(
    problem: AlignmentProblem,
    plan: np.ndarray,
    *,
    time_left: Callable[[], float],
    settings: SolveSettings | None = None,
    sizes: tuple[int, ...] = (4, 8),
    sub_time_limit_s: float = 3.0,
) -> tuple[np.ndarray, dict]:
    """Clear the checker's per-rep violations one rep at a time: the accounts of a broken
    rep and its nearest neighbour reps (by shared candidates) are re-decided by CP-SAT,
    hinted with the current plan, with every limit of the group hard; the group grows
    through ``sizes`` while CP-SAT finds no plan. Returns the (possibly still broken) plan
    and statistics."""
    # One worker: the sub-models are small, and interleaved search with a hint has crashed
    # CP-SAT 9.15 here (a failed check in its fixed-search heuristics).
    settings = replace(settings or SolveSettings(), num_workers=1)
    plan = np.asarray(plan, dtype=np.int64).copy()
    neighbours = rep_neighbours(problem)
    stats = {"subproblems": 0, "fixed": 0, "left": 0}
    tried: set[int] = set()
    while time_left() > 0:
        report = check_plan(problem, plan)
        broken = sorted({v.rep for v in report.violations if v.rep >= 0} - tried)
        if not broken:
            stats["left"] = len({v.rep for v in report.violations if v.rep >= 0})
            break
        rep = broken[0]
        tried.add(rep)
        for size in sizes:
            if time_left() <= 0:
                break
            group = np.unique(np.r_[rep, neighbours[rep][: size - 1]]).astype(np.int64)
            built = subproblem(problem, plan, group)
            if built is None:
                break
            sub, free, _ = built
            stats["subproblems"] += 1
            res = solve_cpsat(
                sub,
                settings,
                hint=np.searchsorted(group, plan[free]),
                time_limit_s=min(sub_time_limit_s, max(0.1, time_left())),
            )
            if not res.has_plan:
                continue
            plan[free] = group[res.assignment]
            stats["fixed"] += 1
            break
    return plan, stats

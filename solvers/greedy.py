"""Construction heuristic: greedy assignment, then repair moves toward every band.

Fast (seconds for a million units) and usually feasible when bands are not tight; used as
CP-SAT's warm start and as the baseline the benchmarks compare against. It never claims a
bound: its result's status is ``HEURISTIC`` and the checker decides whether it is a plan.
"""

from __future__ import annotations

import logging
import time

import numpy as np

from .problem import AlignmentProblem
from .result import Result

__all__ = ["greedy_assign", "repair", "solve_greedy"]

log = logging.getLogger(__name__)


def _rep_pairs(problem: AlignmentProblem) -> list[np.ndarray]:
    """Candidate pair indices grouped by rep."""
    order = np.argsort(problem.cand_rep, kind="stable")
    splits = np.searchsorted(problem.cand_rep[order], np.arange(1, problem.num_reps))
    return np.split(order, splits)


def greedy_assign(problem: AlignmentProblem) -> np.ndarray:
    """Largest units first, each to its cheapest candidate with room in every band and capacity.

    A unit that fits nowhere goes to the candidate whose upper limits it breaks least; the
    repair step deals with it.
    """
    m = problem.num_measures
    a = problem.fixed_rep.astype(np.int64).copy()
    meas = problem.unit_measure
    load = np.zeros((problem.num_reps, m))
    work = np.zeros(problem.num_reps)
    fixed = np.flatnonzero(a >= 0)
    if fixed.size:
        for j in range(m):
            load[:, j] = np.bincount(a[fixed], weights=meas[fixed, j], minlength=problem.num_reps)
        fpair = problem.pair_index(fixed, a[fixed])
        work += np.bincount(
            a[fixed], weights=problem.pair_workload_h[fpair], minlength=problem.num_reps
        )
    hi = np.where(np.isfinite(problem.measure_hi), problem.measure_hi, np.inf)
    cap = problem.capacity_h
    free = np.flatnonzero(a < 0)
    # Big rocks first: the largest accounts are the hardest to place inside a band.
    free = free[np.argsort(-meas[free, 0], kind="stable")]
    indptr, cand = problem.cand_indptr, problem.cand_rep
    cost, wl = problem.pair_cost, problem.pair_workload_h
    for u in free:
        s, e = indptr[u], indptr[u + 1]
        reps = cand[s:e]
        new_load = load[reps] + meas[u]
        new_work = work[reps] + wl[s:e]
        fits = np.all(new_load <= hi[reps], axis=1) & (new_work <= cap[reps])
        if fits.any():
            k = np.flatnonzero(fits)[np.argmin(cost[s:e][fits])]
        else:
            with np.errstate(divide="ignore", invalid="ignore"):
                over = np.nanmax(
                    np.where(np.isfinite(hi[reps]), new_load / np.maximum(hi[reps], 1e-12), 0.0),
                    axis=1,
                )
                over = np.maximum(over, np.where(np.isfinite(cap[reps]), new_work / cap[reps], 0))
            k = int(np.argmin(over))
        r = reps[k]
        a[u] = r
        load[r] += meas[u]
        work[r] += wl[s + k]
    return a


def repair(
    problem: AlignmentProblem, assignment: np.ndarray, *, max_moves: int | None = None
) -> np.ndarray:
    """Move single units between candidate reps until every band and capacity holds.

    Each step takes the rep with the largest violation (relative to its limit) and makes the
    cheapest move that reduces it without creating a new violation. Stops when the plan is
    feasible or no such move exists (the result then still breaks some rule).
    """
    a = np.asarray(assignment, dtype=np.int64).copy()
    r, m = problem.num_reps, problem.num_measures
    meas = problem.unit_measure
    lo, hi, cap = problem.measure_lo, problem.measure_hi, problem.capacity_h
    pair_of_unit = problem.pair_index(np.arange(problem.num_units), a)
    load = np.zeros((r, m))
    for j in range(m):
        load[:, j] = np.bincount(a, weights=meas[:, j], minlength=r)
    work = np.bincount(a, weights=problem.pair_workload_h[pair_of_unit], minlength=r)
    by_rep = _rep_pairs(problem)
    pair_unit = problem.pair_unit
    movable = problem.fixed_rep < 0
    scale = np.maximum(np.abs(problem.measure_target), 1e-9)
    cap_scale = np.where(np.isfinite(cap) & (cap > 0), cap, 1.0)
    max_moves = max_moves if max_moves is not None else 4 * problem.num_units + 100

    def violations() -> np.ndarray:
        under = np.maximum(lo - load, 0) / scale
        over = np.maximum(load - hi, 0) / scale
        cap_over = np.maximum(work - cap, 0) / cap_scale
        return np.concatenate(
            [under.max(axis=1)[:, None], over.max(axis=1)[:, None], cap_over[:, None]], axis=1
        )

    moves = 0
    blocked: set[tuple[int, int]] = set()
    while moves < max_moves:
        v = violations()
        v_masked = v.copy()
        for rep, kind in blocked:
            v_masked[rep, kind] = 0
        if v_masked.max() <= 0:
            break
        rep, kind = np.unravel_index(int(np.argmax(v_masked)), v.shape)
        moved = _best_move(
            problem, a, pair_of_unit, load, work, by_rep, pair_unit, movable, int(rep), int(kind)
        )
        if moved is None:
            blocked.add((int(rep), int(kind)))
            continue
        u, p_new = moved
        p_old = pair_of_unit[u]
        r_old, r_new = a[u], problem.cand_rep[p_new]
        load[r_old] -= meas[u]
        load[r_new] += meas[u]
        work[r_old] -= problem.pair_workload_h[p_old]
        work[r_new] += problem.pair_workload_h[p_new]
        a[u] = r_new
        pair_of_unit[u] = p_new
        moves += 1
        blocked.clear()
    log.debug("repair made %d moves", moves)
    return a


def _best_move(problem, a, pair_of_unit, load, work, by_rep, pair_unit, movable, rep, kind):
    """Cheapest single-unit move that lowers violation ``kind`` of ``rep`` and breaks nothing.

    kind 0: rep is under a band, pull a unit in; 1: over a band, push one out; 2: over
    capacity, push one out.
    """
    meas = problem.unit_measure
    lo, hi, cap = problem.measure_lo, problem.measure_hi, problem.capacity_h
    wl, cost = problem.pair_workload_h, problem.pair_cost
    tol = 1e-9 * np.maximum(1.0, np.abs(problem.measure_target))
    if kind == 0:
        # Pull: pairs (u, rep) where u sits elsewhere and its donor stays in band.
        pairs = by_rep[rep]
        units = pair_unit[pairs]
        donors = a[units]
        ok = movable[units] & (donors != rep)
        pairs, units, donors = pairs[ok], units[ok], donors[ok]
        gain_meas = load[rep] + meas[units]
        ok = np.all(gain_meas <= hi[rep] + tol[rep], axis=1)
        ok &= np.all(load[donors] - meas[units] >= lo[donors] - tol[donors], axis=1)
        ok &= work[rep] + wl[pairs] <= cap[rep]
        under = lo[rep] > load[rep]
        ok &= np.any(meas[units][:, under] > 0, axis=1) if under.any() else ok
        if not ok.any():
            return None
        pairs, units = pairs[ok], units[ok]
        delta = cost[pairs] - cost[pair_of_unit[units]]
        amount = meas[units][:, under].sum(axis=1) if under.any() else np.ones(units.size)
        k = int(np.argmin(delta / np.maximum(amount, 1e-12)))
        return int(units[k]), int(pairs[k])
    # Push: units on rep moved to another candidate with room.
    units = np.flatnonzero((a == rep) & movable)
    if units.size == 0:
        return None
    starts, ends = problem.cand_indptr[units], problem.cand_indptr[units + 1]
    lens = ends - starts
    pairs = np.repeat(starts, lens) + (
        np.arange(lens.sum()) - np.repeat(np.cumsum(lens) - lens, lens)
    )
    cu = np.repeat(units, lens)
    to = problem.cand_rep[pairs]
    ok = to != rep
    pairs, cu, to = pairs[ok], cu[ok], to[ok]
    ok = np.all(load[to] + meas[cu] <= hi[to] + tol[to], axis=1)
    ok &= work[to] + wl[pairs] <= cap[to]
    ok &= np.all(load[rep] - meas[cu] >= lo[rep] - tol[rep], axis=1)
    if kind == 1:
        over = load[rep] > hi[rep]
        ok &= np.any(meas[cu][:, over] > 0, axis=1)
        amount = meas[cu][:, over].sum(axis=1)
    else:
        amount = wl[pair_of_unit[cu]]
    if not ok.any():
        return None
    pairs, cu, amount = pairs[ok], cu[ok], amount[ok]
    delta = cost[pairs] - cost[pair_of_unit[cu]]
    k = int(np.argmin(delta / np.maximum(amount, 1e-12)))
    return int(cu[k]), int(pairs[k])


def solve_greedy(problem: AlignmentProblem) -> Result:
    """Greedy construction plus repair; a baseline and a warm start. No bound is claimed."""
    t0 = time.perf_counter()
    a = greedy_assign(problem)
    t1 = time.perf_counter()
    a = repair(problem, a)
    t2 = time.perf_counter()
    pairs = problem.pair_index(np.arange(problem.num_units), a)
    objective = float(problem.pair_cost[pairs].sum())
    return Result(
        assignment=a,
        status="HEURISTIC",
        objective=objective,
        bound=float("-inf"),
        runtime_s=t2 - t0,
        stats={"solver": "greedy+repair", "greedy_s": t1 - t0, "repair_s": t2 - t1},
    )

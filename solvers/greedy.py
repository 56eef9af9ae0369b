"""Construction heuristic: greedy assignment, then repair moves toward every band.

Fast (seconds for a million units) and usually feasible when bands are not tight; used as
CP-SAT's warm start and as the baseline the benchmarks compare against. It never claims a
bound: its result's status is ``HEURISTIC`` and the checker decides whether it is a plan.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

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


def _keep_first(problem, a, load, work, hi, cap) -> None:
    """With transfer limits, first keep units with their current rep until each rep (and the
    total) keeps enough, cheapest to keep first (least extra cost over the unit's cheapest
    candidate), wherever the band maxima and capacity leave room. Updates in place."""
    cur = problem.current_rep.astype(np.int64)
    kept, total = problem.kept(a)
    need, need_total = problem.keep_min, problem.keep_min_total
    units = np.flatnonzero((a < 0) & (cur >= 0))
    pairs = problem.pair_index(units, cur[units])
    units, pairs = units[pairs >= 0], pairs[pairs >= 0]
    if units.size == 0:
        return
    cheapest = np.minimum.reduceat(problem.pair_cost, problem.cand_indptr[:-1])
    order = np.argsort(problem.pair_cost[pairs] - cheapest[units], kind="stable")
    meas, km = problem.unit_measure, problem.keep_measure
    for u, p in zip(units[order], pairs[order], strict=True):
        r = cur[u]
        wanted = km[u] > 0
        if not np.any(wanted & ((kept[r] < need[r]) | (total < need_total))):
            continue
        if np.any(load[r] + meas[u] > hi[r]) or work[r] + problem.pair_workload_h[p] > cap[r]:
            continue
        a[u] = r
        load[r] += meas[u]
        work[r] += problem.pair_workload_h[p]
        kept[r] += km[u]
        total += km[u]


def greedy_assign(problem: AlignmentProblem) -> np.ndarray:
    """Largest units first, each to its cheapest candidate with room in every band and capacity.

    With transfer limits, units first stay with their current rep as far as the limits
    need. A unit that fits nowhere goes to the candidate whose upper limits it breaks
    least; the repair step deals with it.
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
    if problem.num_keep:
        _keep_first(problem, a, load, work, hi, cap)
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
    problem: AlignmentProblem,
    assignment: np.ndarray,
    *,
    max_moves: int | None = None,
    time_left: Callable[[], float] | None = None,
    exchanges: bool = True,
) -> np.ndarray:
    """Move single units between candidate reps until every band and capacity holds.

    Each step takes the rep with the largest violation (relative to its limit) and makes the
    cheapest move that reduces it without creating a new violation. Once no single move
    helps, exchanges come in: one unit of the rep for one of a neighbour's, where neither
    rep's breaches grow (a rep short of potential with no hours to spare takes a rich,
    quick unit and gives back a poor, slow one). At 1,000,000 x 1,000 with capacity binding,
    single moves left 6 of 45 broken reps after rounding; 215 exchanges mended all of them
    in 24 s. ``exchanges`` false skips them (where CP-SAT re-decides the units in doubt
    next, it finds exchanges exactly and sooner). A transfer shortfall is
    repaired by moving a unit back to its current rep, and no move ever takes a unit from
    its current rep where that would break (or deepen the breach of) a transfer limit.
    Stops when the plan is feasible, no such move exists, or ``time_left`` (seconds, checked
    every 64 moves) runs out; the result may then still break some rule.
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
    kept, kept_total = problem.kept(a)
    keep = _Keep(problem, kept, kept_total)
    max_moves = max_moves if max_moves is not None else 4 * problem.num_units + 100

    def violations() -> np.ndarray:
        """(num_reps + 1, 4): under band, over band, over capacity, transfer shortfall; the
        last row holds only the overall transfer shortfall."""
        under = np.maximum(lo - load, 0) / scale
        over = np.maximum(load - hi, 0) / scale
        cap_over = np.maximum(work - cap, 0) / cap_scale
        out = np.zeros((r + 1, 4))
        out[:r, 0] = under.max(axis=1, initial=0.0)
        out[:r, 1] = over.max(axis=1, initial=0.0)
        out[:r, 2] = cap_over
        short_rep, short_total = keep.shortfall()
        out[:r, 3] = short_rep
        out[r, 3] = short_total
        return out

    moves = steps = 0
    blocked: set[tuple[int, int]] = set()
    # Exchanges cost far more to search than single moves: they come in only once single
    # moves have done all they can.
    swaps = False
    # Where no exchange helped, none is searched again until one helps elsewhere: each
    # search prices thousands of pairs of units, and single moves rarely open one up.
    no_swap: set[tuple[int, int]] = set()
    while moves < max_moves:
        if time_left is not None and steps % 64 == 0 and time_left() <= 0:
            break
        steps += 1
        v = violations()
        v_masked = v.copy()
        for rep, kind in blocked:
            v_masked[rep, kind] = 0
        if v_masked.max() <= 0:
            if swaps or not blocked or not exchanges:
                break
            swaps = True
            blocked.clear()
            continue
        rep, kind = np.unravel_index(int(np.argmax(v_masked)), v.shape)
        if kind == 3:
            moved = _move_back(
                problem, a, pair_of_unit, load, work, movable, keep, int(rep) if rep < r else -1
            )
        else:
            moved = _best_move(
                problem,
                a,
                pair_of_unit,
                load,
                work,
                by_rep,
                pair_unit,
                movable,
                int(rep),
                int(kind),
                keep,
            )
        if moved is None and kind < 3 and swaps and (int(rep), int(kind)) not in no_swap:
            # No single move: a rep on its limits (a band short, no hours to spare) needs
            # an exchange with a neighbour instead.
            moved = _best_swap(
                problem, a, pair_of_unit, load, work, by_rep, movable, int(rep), keep
            )
            if moved is None:
                no_swap.add((int(rep), int(kind)))
            else:
                no_swap.clear()
        if moved is None:
            blocked.add((int(rep), int(kind)))
            continue
        for u, p_new in [moved] if isinstance(moved, tuple) else moved:
            p_old = pair_of_unit[u]
            r_old, r_new = a[u], problem.cand_rep[p_new]
            load[r_old] -= meas[u]
            load[r_new] += meas[u]
            work[r_old] -= problem.pair_workload_h[p_old]
            work[r_new] += problem.pair_workload_h[p_new]
            keep.move(u, r_old, r_new)
            a[u] = r_new
            pair_of_unit[u] = p_new
        moves += 1
        blocked.clear()
    log.debug("repair made %d moves", moves)
    return a


class _Keep:
    """Transfer-limit bookkeeping for repair: what each rep keeps of its current book."""

    def __init__(self, problem: AlignmentProblem, kept: np.ndarray, total: np.ndarray) -> None:
        self.p = problem
        self.kept, self.total = kept, total
        self.need, self.need_total = problem.keep_min, problem.keep_min_total
        self.tol = 1e-9 * np.maximum(1.0, self.need)
        self.tol_total = 1e-9 * np.maximum(1.0, self.need_total)
        self.scale = np.maximum(self.need, 1e-9)
        self.scale_total = np.maximum(self.need_total, 1e-9)

    def shortfall(self) -> tuple[np.ndarray, float]:
        """Per rep and overall, the largest shortfall relative to its minimum."""
        rep = np.maximum(self.need - self.tol - self.kept, 0) / self.scale
        total = np.maximum(self.need_total - self.tol_total - self.total, 0) / self.scale_total
        return rep.max(axis=1, initial=0.0), float(total.max(initial=0.0))

    def can_leave(self, units: np.ndarray, from_rep: np.ndarray) -> np.ndarray:
        """Whether moving each unit off ``from_rep`` keeps every transfer limit it touches."""
        ok = np.ones(units.size, dtype=bool)
        if self.p.num_keep == 0 or units.size == 0:
            return ok
        leaving = self.p.current_rep[units] == from_rep
        km = self.p.keep_measure[units]
        after = self.kept[from_rep] - km
        ok_rep = np.all((after >= self.need[from_rep] - self.tol[from_rep]) | (km <= 0), axis=1)
        after_total = self.total[None, :] - km
        ok_total = np.all((after_total >= self.need_total - self.tol_total) | (km <= 0), axis=1)
        return ~leaving | (ok_rep & ok_total)

    def move(self, u: int, r_old: int, r_new: int) -> None:
        cur = self.p.current_rep[u]
        if self.p.num_keep == 0 or cur < 0:
            return
        km = self.p.keep_measure[u]
        if r_old == cur:
            self.kept[r_old] -= km
            self.total -= km
        if r_new == cur:
            self.kept[r_new] += km
            self.total += km


def _move_back(problem, a, pair_of_unit, load, work, movable, keep, rep):
    """Cheapest move of a unit back to its current rep that lowers ``rep``'s transfer
    shortfall (``rep`` -1: the overall one) and breaks no band or capacity."""
    cur = problem.current_rep.astype(np.int64)
    sel = (cur == rep) if rep >= 0 else (cur >= 0)
    units = np.flatnonzero(sel & (a != cur) & movable)
    if units.size == 0:
        return None
    pairs = problem.pair_index(units, cur[units])
    units, pairs = units[pairs >= 0], pairs[pairs >= 0]
    to, donors = cur[units], a[units]
    meas, wl = problem.unit_measure, problem.pair_workload_h
    lo, hi, cap = problem.measure_lo, problem.measure_hi, problem.capacity_h
    tol = 1e-9 * np.maximum(1.0, np.abs(problem.measure_target))
    ok = np.all(load[to] + meas[units] <= hi[to] + tol[to], axis=1)
    ok &= work[to] + wl[pairs] <= cap[to]
    ok &= np.all(load[donors] - meas[units] >= lo[donors] - tol[donors], axis=1)
    if rep >= 0:
        short = keep.kept[rep] < keep.need[rep] - keep.tol[rep]
    else:
        short = keep.total < keep.need_total - keep.tol_total
    amount = problem.keep_measure[units][:, short].sum(axis=1)
    ok &= amount > 0
    if not ok.any():
        return None
    units, pairs, amount = units[ok], pairs[ok], amount[ok]
    delta = problem.pair_cost[pairs] - problem.pair_cost[pair_of_unit[units]]
    k = int(np.argmin(delta / amount))
    return int(units[k]), int(pairs[k])


def _pairs_of(problem: AlignmentProblem, units: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every candidate pair of ``units``, and the unit of each."""
    starts, ends = problem.cand_indptr[units], problem.cand_indptr[units + 1]
    lens = ends - starts
    pairs = np.repeat(starts, lens) + (
        np.arange(lens.sum()) - np.repeat(np.cumsum(lens) - lens, lens)
    )
    return pairs, np.repeat(units, lens)


def _best_move(problem, a, pair_of_unit, load, work, by_rep, pair_unit, movable, rep, kind, keep):
    """Cheapest single-unit move that lowers violation ``kind`` of ``rep`` and breaks nothing.

    kind 0: rep is under a band, pull a unit in; 1: over a band, push one out; 2: over
    capacity, push one out. No move breaks a transfer limit (``keep``).
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
        ok &= keep.can_leave(units, donors)
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
    pairs, cu = _pairs_of(problem, units)
    to = problem.cand_rep[pairs]
    ok = to != rep
    pairs, cu, to = pairs[ok], cu[ok], to[ok]
    ok = np.all(load[to] + meas[cu] <= hi[to] + tol[to], axis=1)
    ok &= work[to] + wl[pairs] <= cap[to]
    ok &= np.all(load[rep] - meas[cu] >= lo[rep] - tol[rep], axis=1)
    ok &= keep.can_leave(cu, np.full(cu.size, rep))
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


def _excess(problem, load, work, reps):
    """Per row of ``load`` (measures) and ``work`` (hours), for the rep in ``reps``: how far
    it is below each band, above each band and above its capacity, relative to the target
    (or capacity); zeros where it keeps a limit."""
    lo, hi, cap = problem.measure_lo[reps], problem.measure_hi[reps], problem.capacity_h[reps]
    scale = np.maximum(np.abs(problem.measure_target[reps]), 1e-9)
    tol = 1e-9 * np.maximum(1.0, np.abs(problem.measure_target[reps]))
    cap_scale = np.where(np.isfinite(cap) & (cap > 0), cap, 1.0)
    under = np.maximum(lo - tol - load, 0) / scale
    over = np.maximum(load - hi - tol, 0) / scale
    cap_over = np.maximum(work - cap - 1e-9 * cap_scale, 0) / cap_scale
    return np.concatenate([under, over, cap_over[:, None]], axis=1)


def _best_swap(problem, a, pair_of_unit, load, work, by_rep, movable, rep, keep, per_side=64):
    """Cheapest exchange of one unit of ``rep`` for one unit of a neighbouring rep that
    lowers ``rep``'s total breach, raises none of its breaches and none of the neighbour's
    (per unit of breach removed), as two ``(unit, new pair)`` moves; or ``None``.

    At 1,000,000 x 1,000 with capacity binding, rounding left reps short of potential with
    every hour in use, next to reps on their own lower band: no single move helps them.
    """
    meas, wl, cost = problem.unit_measure, problem.pair_workload_h, problem.pair_cost
    # Incoming: (v, rep) pairs of units held elsewhere; v's donor is s.
    p_in = by_rep[rep]
    v = problem.pair_unit[p_in]
    ok = movable[v] & (a[v] != rep)
    p_in, v = p_in[ok], v[ok]
    p_in, v = p_in[keep.can_leave(v, a[v])], v[keep.can_leave(v, a[v])]
    # Outgoing: (u, s) pairs of units on rep.
    units = np.flatnonzero((a == rep) & movable)
    units = units[keep.can_leave(units, np.full(units.size, rep))]
    if p_in.size == 0 or units.size == 0:
        return None
    p_out, u = _pairs_of(problem, units)
    s_out = problem.cand_rep[p_out]
    s_in = a[v]
    shared = np.intersect1d(s_in, s_out[s_out != rep])
    if shared.size == 0:
        return None
    before_rep = _excess(problem, load[[rep]], work[[rep]], [rep])[0]
    best, best_score = None, np.inf
    for s in shared:
        # The cheapest ``per_side`` each way: the product grows with their square.
        i = np.flatnonzero(s_in == s)
        i = i[np.argsort(cost[p_in[i]] - cost[pair_of_unit[v[i]]], kind="stable")[:per_side]]
        o = np.flatnonzero(s_out == s)
        o = o[np.argsort(cost[p_out[o]] - cost[pair_of_unit[u[o]]], kind="stable")[:per_side]]
        ii, oo = np.repeat(i, o.size), np.tile(o, i.size)
        vi, ui = v[ii], u[oo]
        d_meas = meas[vi] - meas[ui]
        d_rep = wl[p_in[ii]] - wl[pair_of_unit[ui]]
        d_s = wl[p_out[oo]] - wl[pair_of_unit[vi]]
        after_rep = _excess(problem, load[rep] + d_meas, work[rep] + d_rep, np.full(ii.size, rep))
        s_idx = np.full(ii.size, s)
        before_s = _excess(problem, load[[s]], work[[s]], [s])[0]
        after_s = _excess(problem, load[s] - d_meas, work[s] + d_s, s_idx)
        gain = before_rep.sum() - after_rep.sum(axis=1)
        good = (gain > 1e-12) & np.all(after_rep <= before_rep + 1e-15, axis=1)
        good &= np.all(after_s <= before_s + 1e-15, axis=1)
        if not good.any():
            continue
        delta = cost[p_in[ii]] + cost[p_out[oo]] - cost[pair_of_unit[vi]] - cost[pair_of_unit[ui]]
        score = np.where(good, delta / np.maximum(gain, 1e-12), np.inf)
        k = int(np.argmin(score))
        if score[k] < best_score:
            best_score = score[k]
            best = [(int(vi[k]), int(p_in[ii[k]])), (int(ui[k]), int(p_out[oo[k]]))]
    return best


def solve_greedy(
    problem: AlignmentProblem, *, time_left: Callable[[], float] | None = None
) -> Result:
    """Greedy construction plus repair (stopped when ``time_left`` runs out); a baseline and
    a warm start. No bound is claimed."""
    t0 = time.perf_counter()
    a = greedy_assign(problem)
    t1 = time.perf_counter()
    a = repair(problem, a, time_left=time_left)
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

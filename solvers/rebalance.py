"""Least-disruption realignment: a lower bound on what must move, region sub-problems and a
lexicographic solve (disruption, then balance, then travel).

A rebalance starts from a current alignment (``problem.current_rep``; ``-1`` marks an
orphan, an account whose rep is gone, which must move). Disruption is the potential
(measure 0) of the accounts that end on a rep other than their current one, orphans
included.

- :func:`disruption_bound` is a lower bound on the disruption of *any* plan of the
  problem: the optimum of a transshipment LP whose flows are potential moved from one
  rep's book to another rep. A flow from book ``s`` to rep ``r`` is at most the potential
  of ``s``'s unlocked accounts that have ``r`` as a candidate; each rep's potential after
  the flows lies in its band; each rep keeps its potential transfer minimum, and overall
  the potential transfer minimum stays. Every plan induces such flows with the same total,
  so the LP optimum is a valid bound (capacity, other measures and indivisibility are
  dropped, so it can only be lower). The arithmetic bound -- what the reps' bands force
  into or out of them, ``max(sum of required inflow, orphans + sum of required outflow)``
  -- is reported beside it; the LP is never below it.
- :func:`region_subproblem` frees only the accounts of a group of reps (and the orphans)
  and fixes everyone else on their current rep, as an :class:`AlignmentProblem` of its
  own with the fixed loads taken off each limit.
- :func:`solve_lexicographic` solves a region in stages, each by the LP relaxation,
  rounding and focused CP-SAT repair: least moved potential; then, with moved potential
  at most ``(1 + slack)`` times that, the narrowest potential band (worst deviation from
  target); then, inside that band, least travel cost (``pair_cost``). A list of narrowing
  bands gives a frontier from least disruption to best balance.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
import scipy.sparse as sp

from .align import _relax
from .align import _round_and_repair as round_and_repair
from .check import check_plan
from .cpsat import solve_cpsat
from .greedy import repair, solve_greedy
from .lns import rep_neighbours, restricted, subproblem
from .lp import _arrays, _keep_rows, solve_relaxation
from .mathopt_lp import solve_lp
from .problem import AlignmentProblem
from .result import Result
from .settings import SolveSettings

__all__ = [
    "DisruptionBound",
    "disruption_bound",
    "region_dual_bound",
    "least_disruption",
    "moved_potential",
    "region_subproblem",
    "Stage",
    "LexResult",
    "solve_lexicographic",
]

log = logging.getLogger(__name__)


def moved_potential(problem: AlignmentProblem, assignment: np.ndarray) -> tuple[int, float]:
    """Number of accounts and potential (measure 0) on a rep other than their current one
    (orphans, whose current rep is -1, always count)."""
    moved = np.asarray(assignment) != problem.current_rep
    return int(moved.sum()), float(problem.unit_measure[moved, 0].sum())


@dataclass(frozen=True)
class DisruptionBound:
    """``lp``: the transshipment LP bound (``nan`` when the LP was not solved to
    optimality; ``inf`` when it is infeasible: no plan exists), or a stronger LP bound
    (``method`` says which); ``arithmetic``: what the bands force in or out; ``bound``: the
    larger valid one. ``required_in`` and ``required_out`` are per rep."""

    lp: float
    arithmetic: float
    status: str
    runtime_s: float
    required_in: np.ndarray
    required_out: np.ndarray
    orphan_potential: float
    method: str = "transshipment LP over all reps"
    raised_s: float = 0.0  # seconds spent raising it after the plan (a stronger LP)

    @property
    def bound(self) -> float:
        if self.status == "INFEASIBLE":
            return float("inf")
        if np.isfinite(self.lp):
            return max(self.lp, self.arithmetic)
        return self.arithmetic


def _potential_keep(problem: AlignmentProblem) -> int:
    """Index of the keep measure named ``potential``, or -1."""
    return problem.keep_names.index("potential") if "potential" in problem.keep_names else -1


def disruption_bound(
    problem: AlignmentProblem, *, reps: np.ndarray | None = None, time_limit_s: float = 30.0
) -> DisruptionBound:
    """Lower bound on the moved potential of any plan (see the module docstring).

    With ``reps`` (a boolean mask), flows run only among those reps (everyone else keeps
    its book): a bound for plans that move accounts only within that group, and a quick
    necessary condition for the group's sub-problem to be feasible.
    """
    t0 = time.perf_counter()
    r = problem.num_reps
    pot = problem.unit_measure[:, 0]
    cur = problem.current_rep.astype(np.int64)
    orphan = cur < 0
    src = np.where(orphan, r, cur)  # source node r holds every orphan
    book = np.bincount(src, weights=pot, minlength=r + 1)
    lo, hi = problem.measure_lo[:, 0], problem.measure_hi[:, 0]
    has_book = book[:r]
    required_in = np.maximum(np.where(np.isfinite(lo), lo, 0) - has_book, 0)
    required_out = np.maximum(has_book - np.where(np.isfinite(hi), hi, np.inf), 0)
    orphan_pot = float(book[r])
    arithmetic = max(float(required_in.sum()), orphan_pot + float(required_out.sum()))

    # Flow capacity A[s, d]: potential of s's unlocked accounts that may go to d != s.
    pu = problem.pair_unit
    movable = (problem.fixed_rep[pu] < 0) & (problem.cand_rep != cur[pu])
    if reps is not None:
        inside = np.r_[np.asarray(reps, bool), True]
        movable &= inside[src[pu]] & inside[problem.cand_rep]
    key = src[pu[movable]] * r + problem.cand_rep[movable]
    ukey, inv = np.unique(key, return_inverse=True)
    cap = np.bincount(inv, weights=pot[pu[movable]])
    s_of, d_of = ukey // r, ukey % r
    free_book = np.bincount(
        src[problem.fixed_rep < 0], weights=pot[problem.fixed_rep < 0], minlength=r + 1
    )
    nv = ukey.size
    rows, cols, vals, rlo, rhi = [], [], [], [], []
    nrow = 0
    # Band of every rep: book - out + in within [lo, hi].
    rows += [d_of, s_of[s_of < r]]
    cols += [np.arange(nv), np.flatnonzero(s_of < r)]
    vals += [np.ones(nv), -np.ones(int((s_of < r).sum()))]
    rlo.append(lo - has_book)
    rhi.append(hi - has_book)
    nrow += r
    # Out of each book at most its unlocked part; the orphans all leave.
    rows.append(nrow + s_of)
    cols.append(np.arange(nv))
    vals.append(np.ones(nv))
    out_hi = free_book.copy()
    out_lo = np.zeros(r + 1)
    out_lo[r] = orphan_pot
    t = _potential_keep(problem)
    if t >= 0:
        # Transfer minimum in potential: book - out >= keep_min (kept counts only stayers).
        kbook = np.bincount(cur[~orphan], weights=problem.keep_measure[~orphan, t], minlength=r)
        out_hi[:r] = np.minimum(out_hi[:r], np.maximum(kbook - problem.keep_min[:, t], 0) + 1e-9)
    rlo.append(out_lo)
    rhi.append(out_hi)
    nrow += r + 1
    if t >= 0 and problem.keep_min_total[t] > 0:
        kbook = float(problem.keep_measure[~orphan, t].sum())
        real = np.flatnonzero(s_of < r)
        rows.append(np.full(real.size, nrow))
        cols.append(real)
        vals.append(np.ones(real.size))
        rlo.append(np.array([-np.inf]))
        rhi.append(np.array([kbook - problem.keep_min_total[t] + 1e-9]))
        nrow += 1
    matrix = sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(nrow, nv)
    )
    row_lo = np.concatenate(rlo)
    row_hi = np.concatenate(rhi)
    if reps is not None:
        # Reps outside the group keep their book: their band rows do not bind.
        out_of = np.flatnonzero(~np.asarray(reps, bool))
        row_lo[out_of], row_hi[out_of] = -np.inf, np.inf
    res = solve_lp(
        np.ones(nv), matrix, row_lo, row_hi, np.zeros(nv), cap, time_limit_s=time_limit_s
    )
    if res.status == "OPTIMAL":
        lp = float(res.x.sum())
    elif res.status == "INFEASIBLE":
        lp = float("inf")
    else:
        lp = float("nan")
    return DisruptionBound(
        lp=lp,
        arithmetic=arithmetic,
        status=res.status,
        runtime_s=time.perf_counter() - t0,
        required_in=required_in,
        required_out=required_out,
        orphan_potential=orphan_pot,
    )


def region_dual_bound(
    problem: AlignmentProblem, reps: np.ndarray, *, time_limit_s: float = 10.0
) -> tuple[float, float]:
    """A lower bound on the moved potential of *any* plan of the whole problem, counting
    every rule (capacity included), from the LP duals of one region's sub-problem.

    The LP relaxation of least disruption on the region of ``reps`` (a mask) gives a
    multiplier for each band, capacity and transfer row of the region's reps. Extended by
    zero to every other rep, the multipliers price every pair of the *whole* problem; each
    account then takes its cheapest pair, and by weak duality (valid for any multipliers,
    each paired with the limit its sign makes binding) the sum plus the priced limits is a
    lower bound. It equals the region's LP optimum less what accounts gain by leaving the
    region across its edge, so a region one hop wider than the plan's, whose outer reps
    have little to trade, gives a bound close to the whole LP's: a few seconds where the
    whole LP (at 100,000 accounts) takes about 16.

    Returns ``(bound, seconds)``; the bound is ``-inf`` when the region has no LP solution.
    """
    t0 = time.perf_counter()
    r, nm = problem.num_reps, problem.num_measures
    pot = problem.unit_measure[:, 0]
    cur = problem.current_rep
    pu = problem.pair_unit
    moves = problem.cand_rep != cur[pu]
    built = region_subproblem(problem, reps)
    if built is None:
        return float("-inf"), time.perf_counter() - t0
    sub, free, group, pairs = built
    sub_cost = pot[free][sub.pair_unit] * (sub.cand_rep != sub.current_rep[sub.pair_unit])
    a, lo, hi, var_lo = _arrays(sub)
    res = solve_lp(sub_cost, a, lo, hi, var_lo, np.ones(sub.num_pairs), time_limit_s=time_limit_s)
    if res.status not in ("OPTIMAL", "FEASIBLE"):
        return float("-inf"), time.perf_counter() - t0
    # The sub-problem's rows in the layout of :func:`solvers.lp._arrays`, onto full reps.
    y = res.y
    row = sub.num_units
    y_band = np.zeros((r, nm))
    for j in range(nm):
        idx = np.flatnonzero(np.isfinite(sub.measure_lo[:, j]) | np.isfinite(sub.measure_hi[:, j]))
        y_band[group[idx], j] = y[row : row + idx.size]
        row += idx.size
    idx = np.flatnonzero(np.isfinite(sub.capacity_h))
    y_cap = np.zeros(r)
    y_cap[group[idx]] = y[row : row + idx.size]
    row += idx.size
    y_keep = np.zeros((r, problem.num_keep))
    y_total = np.zeros(problem.num_keep)
    for k, (rep, t) in enumerate(_keep_rows(sub)[2]):
        if rep >= 0:
            y_keep[group[rep], t] = y[row + k]
        else:
            y_total[t] = y[row + k]
    # Each multiplier must face a limit of the whole problem on its side: y > 0 a lower
    # limit, y < 0 an upper one (capacity has no lower, transfer rows no upper limit).
    lo_f, hi_f = problem.measure_lo, problem.measure_hi
    y_band = np.where((y_band > 0) & ~np.isfinite(lo_f), 0.0, y_band)
    y_band = np.where((y_band < 0) & ~np.isfinite(hi_f), 0.0, y_band)
    y_cap = np.where((y_cap < 0) & np.isfinite(problem.capacity_h), y_cap, 0.0)
    y_keep, y_total = np.maximum(y_keep, 0.0), np.maximum(y_total, 0.0)
    # The limit each multiplier faces (finite wherever the multiplier is non-zero).
    limit = np.where(y_band > 0, lo_f, np.where(y_band < 0, hi_f, 0.0))
    const = float((y_band * limit).sum())
    const += float((y_cap * np.where(y_cap < 0, problem.capacity_h, 0.0)).sum())
    const += float((y_keep * problem.keep_min).sum() + (y_total * problem.keep_min_total).sum())
    # Reduced cost of every pair of the whole problem: cost - y . (its column).
    c = problem.cand_rep
    rc = pot[pu] * moves
    rc = rc - (y_band[c] * problem.unit_measure[pu]).sum(axis=1)
    rc = rc - y_cap[c] * problem.pair_workload_h
    if problem.num_keep:
        stay = ~moves
        rc = rc - stay * ((y_keep[c] + y_total) * problem.keep_measure[pu]).sum(axis=1)
    best = np.minimum.reduceat(rc, problem.cand_indptr[:-1])
    fixed = np.flatnonzero(problem.fixed_rep >= 0)
    if fixed.size:
        best[fixed] = rc[problem.pair_index(fixed, problem.fixed_rep[fixed])]
    return float(best.sum() + const), time.perf_counter() - t0


def region_subproblem(
    problem: AlignmentProblem, reps: np.ndarray
) -> tuple[AlignmentProblem, np.ndarray, np.ndarray, np.ndarray] | None:
    """The accounts of the reps in ``reps`` (a boolean mask) and every orphan, free to move
    among those reps; everyone else fixed on their current rep.

    Returns ``(sub, free units, group, sub pairs' indices in problem)``; ``group`` holds
    the sub-problem's reps (full indices). ``None`` when an orphan has no candidate in the
    group (the group is too small). The sub-problem's bands, capacity and transfer limits
    are the full ones less the fixed accounts' loads; its ``current_rep`` is local (-1 for
    orphans) and its ``measure_target`` the full target less the fixed load.
    """
    reps = np.asarray(reps, bool)
    group = np.flatnonzero(reps)
    cur = problem.current_rep.astype(np.int64)
    pu = problem.pair_unit
    orphan = cur < 0
    free_unit = (orphan | reps[np.maximum(cur, 0)] & ~orphan) & (problem.fixed_rep < 0)
    pair_ok = free_unit[pu] & reps[problem.cand_rep]
    options = np.bincount(pu[pair_ok], minlength=problem.num_units)
    if np.any(orphan & (options == 0)):
        return None
    free = np.flatnonzero(free_unit & (options >= 1))
    pairs = np.flatnonzero(pair_ok & (options[pu] >= 1))
    return restricted(problem, cur, free, pairs, group), free, group, pairs


@dataclass(frozen=True)
class Stage:
    """One lexicographic stage: its name, CP-SAT status, objective and CP-SAT bound (in
    the stage's own units: potential, relative deviation, or pair cost), and seconds."""

    name: str
    status: str
    objective: float
    bound: float
    runtime_s: float


@dataclass(frozen=True, eq=False)
class LexResult:
    """``assignment`` (rep index per unit of the whole problem, -1 without a plan), the
    stages run, ``band``: the half-width (share of target) of the potential band the plan
    keeps, and for a frontier one assignment per band in ``frontier_bands`` (an empty array
    where that band found no plan in its time)."""

    assignment: np.ndarray
    status: str
    stages: tuple[Stage, ...]
    band: float = float("nan")
    frontier: tuple[np.ndarray, ...] = ()
    frontier_bands: tuple[float, ...] = ()
    stats: dict = field(default_factory=dict)

    @property
    def has_plan(self) -> bool:
        return bool(self.assignment.size) and bool(np.all(self.assignment >= 0))


MIN_STAGE_S = 0.5  # a stage after the first runs only with at least this many seconds left
BAND_STEP = 0.0025  # the balance stage's bisection stops within this share of the target
MAX_BAND_TRIES = 6


def _solve_by_lp(
    problem: AlignmentProblem,
    settings: SolveSettings,
    limit_s: float,
    dlimit: float,
    *,
    focus: bool = True,
) -> Result:
    """One stage on a problem whose pair costs are the stage's (disruption in stage 1): the
    LP relaxation (bound and a nearly integral start), rounding and single-move repair;
    where reps still break a limit (and ``focus``), CP-SAT re-solves only the reps in
    trouble and their closest neighbours (the rest fixed), widening the group twice, then
    the whole problem from the start."""
    t0 = time.perf_counter()

    def left() -> float:
        return limit_s - (time.perf_counter() - t0)

    lp = solve_relaxation(problem, time_limit_s=max(0.1, 0.5 * left()))
    stats: dict = {"lp_status": lp.status, "lp_s": lp.runtime_s}
    if lp.status == "INFEASIBLE":
        return Result(np.full(problem.num_units, -1), "INFEASIBLE", np.nan, np.inf, 0.0, stats)
    bound = lp.bound if lp.feasible else -np.inf
    found: list[np.ndarray] = []

    def consider(plan: np.ndarray, phase: str) -> bool:
        ok = check_plan(problem, plan).ok
        if ok and not found:
            found.append(plan.copy())
        return ok

    if lp.feasible:
        # The engine's rounding: where rounding breaks a rep's limit, tighten that limit
        # by what it broke it by and solve the relaxation again (a few rounds).
        stats["rounding"], _ = round_and_repair(
            problem,
            lp,
            consider,
            lambda: 0.6 * left(),
            lambda tightened, limit, previous: _relax(tightened, limit, None),
            max_rounds=8,
        )
        if found:
            report = check_plan(problem, found[0])
            return Result(
                found[0], "FEASIBLE", report.objective, bound, time.perf_counter() - t0, stats
            )
        start = repair(problem, lp.rounded(problem), exchanges=False)
    else:
        start = solve_greedy(problem).assignment
    report = check_plan(problem, start)
    stats["start_violations"] = len(report.violations)
    if report.ok:
        return Result(start, "FEASIBLE", report.objective, bound, time.perf_counter() - t0, stats)
    if not focus:
        return Result(np.full(problem.num_units, -1), "UNKNOWN", np.nan, bound, 0.0, stats)
    neighbours = rep_neighbours(problem)
    split = lp.split_units(problem) if lp.feasible else np.zeros(0, dtype=np.int64)
    trouble = {v.rep for v in report.violations if v.rep >= 0}
    trouble |= set(problem.cand_rep[np.isin(problem.pair_unit, split) & (lp.x > 1e-6)].tolist())
    focus = np.array(sorted(trouble), dtype=np.int64)
    for width in (2, 4, None):
        if left() <= 0.2:
            break
        if width is None:
            group = np.arange(problem.num_reps)
        else:
            near = [neighbours[r][:width] for r in focus]
            group = np.unique(np.concatenate([focus, *near]).astype(np.int64))
        built = subproblem(problem, start, group)
        if built is None:
            continue
        sub, free, _ = built
        local = np.full(problem.num_reps, -1, dtype=np.int64)
        local[group] = np.arange(group.size)
        share = 0.4 if width is not None else 1.0
        res = solve_cpsat(
            sub,
            replace(settings, deterministic_time=max(0.05, share * dlimit)),
            hint=local[start[free]],
            time_limit_s=max(0.1, share * left()),
        )
        stats.setdefault("focus", []).append(
            {"reps": int(group.size), "free": int(free.size), "status": res.status}
        )
        if res.has_plan:
            plan = start.copy()
            plan[free] = group[res.assignment]
            report = check_plan(problem, plan)
            if report.ok:
                return Result(
                    plan, "FEASIBLE", report.objective, bound, time.perf_counter() - t0, stats
                )
    return Result(np.full(problem.num_units, -1), "UNKNOWN", np.nan, bound, 0.0, stats)


def _disruption_costs(problem: AlignmentProblem) -> AlignmentProblem:
    """Stage 1's problem: a pair costs the account's potential when it moves, plus a hair
    of travel to break ties."""
    pot = problem.unit_measure[:, 0]
    pu = problem.pair_unit
    moves = problem.cand_rep != problem.current_rep[pu]
    tie = 1e-4 * float(pot.sum()) / max(float(problem.pair_cost.sum()), 1e-300)
    return replace(problem, pair_cost=pot[pu] * moves + tie * problem.pair_cost)


def least_disruption(
    problem: AlignmentProblem, settings: SolveSettings, time_limit_s: float
) -> tuple[float, Result]:
    """Stage 1 of :func:`solve_lexicographic` alone on a region's sub-problem, to compare
    regions: the potential its first checked plan moves (``inf`` without one) and the
    stage's result (its ``bound`` is the LP bound; pass it on as ``first``). Uses the
    deterministic time stage 1 gets there."""
    first = _solve_by_lp(
        _disruption_costs(problem),
        settings,
        max(time_limit_s, 0.1),
        0.5 * settings.effective_deterministic_time,
    )
    if not first.has_plan:
        return float("inf"), first
    return moved_potential(problem, np.asarray(first.assignment))[1], first


def tighten_band(
    problem: AlignmentProblem, share: float, reps: np.ndarray | None = None
) -> AlignmentProblem:
    """The problem with the potential (measure 0) band of every rep in ``reps`` (a mask;
    all by default) narrowed to ``+-share`` of its target, never looser than its own band.

    Unlike the rebalance's own bands, a rep out of the narrower band must come into it
    (it may not stay as far out as its current book): that is what better balance buys,
    and the LP says whether the budgets allow it."""
    mask = np.ones(problem.num_reps, bool) if reps is None else np.asarray(reps, bool)
    target = problem.measure_target[:, 0]
    lo, hi = problem.measure_lo.copy(), problem.measure_hi.copy()
    lo[mask, 0] = np.maximum(lo[mask, 0], target[mask] * (1 - share))
    hi[mask, 0] = np.minimum(hi[mask, 0], target[mask] * (1 + share))
    # Every rep's own band contains its target, so the intersection is never empty; the
    # guard only absorbs rounding.
    lo[:, 0] = np.minimum(lo[:, 0], hi[:, 0])
    return replace(problem, measure_lo=lo, measure_hi=hi)


def cap_disruption(problem: AlignmentProblem, cap: float) -> AlignmentProblem:
    """The problem with moved potential (orphans included) at most ``cap``, written as the
    overall transfer limit on potential that every solver and the checker already keep:
    what stays with its current rep >= the current books' potential - (cap - orphans)."""
    pot = problem.unit_measure[:, 0]
    cur = problem.current_rep
    need = float(pot[cur >= 0].sum()) - (cap - float(pot[cur < 0].sum()))
    t = _potential_keep(problem)
    if t < 0:
        problem = replace(
            problem,
            keep_measure=np.column_stack([problem.keep_measure, pot]),
            keep_min=np.column_stack([problem.keep_min, np.zeros(problem.num_reps)]),
            keep_min_total=np.r_[problem.keep_min_total, 0.0],
            keep_names=(*problem.keep_names, "potential"),
        )
        t = problem.num_keep - 1
    total = problem.keep_min_total.copy()
    total[t] = max(total[t], need)
    return replace(problem, keep_min_total=total)


def worst_deviation(problem: AlignmentProblem, assignment: np.ndarray, reps: np.ndarray) -> float:
    """Largest ``|potential / target - 1|`` over ``reps`` (a mask) with a positive target."""
    load = np.bincount(assignment, weights=problem.unit_measure[:, 0], minlength=problem.num_reps)
    target = problem.measure_target[:, 0]
    ok = np.asarray(reps, bool) & (target > 0)
    if not ok.any():
        return 0.0
    return float(np.abs(load[ok] / target[ok] - 1).max())


def solve_lexicographic(
    problem: AlignmentProblem,
    settings: SolveSettings,
    *,
    region: np.ndarray | None = None,
    tightest: float = 0.0,
    slack: float = 0.02,
    frontier: int = 0,
    time_limit_s: float | None = None,
    hold_back: Callable[[float], float] | None = None,
    first: Result | None = None,
) -> LexResult:
    """Least disruption, then balance, then travel, on the accounts of ``region`` (a mask
    of reps; all by default) with everyone else kept where they are.

    1. **Disruption**: least moved potential (``first``, stage 1 on the region's
       sub-problem from :func:`least_disruption`, if the caller has it).
    2. **Balance**: the narrowest potential band (:func:`tighten_band`, down to
       ``tightest``) whose least-disruption plan moves at most ``(1 + slack)`` x stage 1,
       found by bisection; balance is the worst deviation a planner reads.
    3. **Travel**: least travel (``pair_cost``) within that band and that disruption cap
       (:func:`cap_disruption`), kept only if it travels less.

    Every stage is the same LP relaxation, rounding and focused CP-SAT repair
    (:func:`_solve_by_lp`) with the stage's costs and limits: on a rebalance's region
    (thousands of accounts) it returns a checked plan in about a second, where a CP-SAT
    model of the whole region spent its time in presolve and never improved its hint.
    With ``frontier = N >= 2``, N plans follow, from this plan's band down to ``tightest``
    evenly, each the least-disruption plan inside its band. ``hold_back`` (stage 1's moved
    potential in, seconds out) keeps time back from the later stages for the caller.
    """
    t0 = time.perf_counter()
    limit = settings.time_limit_s if time_limit_s is None else time_limit_s
    dlimit = settings.effective_deterministic_time
    r = problem.num_reps
    region = np.ones(r, bool) if region is None else np.asarray(region, bool)
    empty = np.full(problem.num_units, -1, dtype=np.int64)
    stats: dict = {"num_pairs": problem.num_pairs}
    stages: list[Stage] = []

    def left() -> float:
        return limit - (time.perf_counter() - t0)

    built = region_subproblem(problem, region)
    if built is None:
        stages.append(Stage("disruption", "INFEASIBLE", np.nan, np.inf, 0.0))
        return LexResult(empty, "INFEASIBLE", tuple(stages), stats=stats)

    def whole(free: np.ndarray, group: np.ndarray, a) -> np.ndarray:
        full = problem.current_rep.astype(np.int64).copy()
        full[free] = group[np.asarray(a)]
        return full

    def solve(
        p: AlignmentProblem, costs: str, share: float, focus: bool = True
    ) -> tuple[np.ndarray | None, str]:
        """One stage on the region of ``p`` (a narrowed or capped copy of the problem):
        its plan on the whole problem if it passes ``p``'s check (else ``None``), and the
        stage's status (``INFEASIBLE`` is the LP's proof)."""
        sub_built = region_subproblem(p, region)
        if sub_built is None:
            return None, "INFEASIBLE"
        if left() < MIN_STAGE_S:
            return None, "SKIPPED (no time left)"
        sub, free, group, _ = sub_built
        staged = _disruption_costs(sub) if costs == "disruption" else sub
        wall = max(0.1, share * left())
        ts = time.perf_counter()
        res = _solve_by_lp(staged, settings, wall, max(0.05, share * dlimit), focus=focus)
        took = time.perf_counter() - ts
        if took >= 0.9 * wall:
            # Stopped by the wall clock, not by a plan or a proof: not reproducible.
            stats["clock_stops"] = stats.get("clock_stops", 0) + 1
        log.debug(
            "rebalance %s stage: %s in %.1f s of %.1f s (%s)",
            costs,
            res.status,
            took,
            wall,
            {k: v for k, v in res.stats.items() if k in ("lp_status", "lp_s", "focus")},
        )
        if not res.has_plan:
            return None, res.status
        plan = whole(free, group, res.assignment)
        if not check_plan(p, plan).ok:
            return None, "FAILED THE CHECK"
        return plan, "FEASIBLE"

    def lp_feasible(p: AlignmentProblem, limit_s: float) -> bool:
        """Whether the region's LP relaxation of ``p`` has a solution (a necessary
        condition for a plan: about half a second on a region of 7,000 accounts)."""
        sub_built = region_subproblem(p, region)
        if sub_built is None:
            return False
        lp = solve_relaxation(sub_built[0], time_limit_s=max(0.1, limit_s))
        if lp.status not in ("OPTIMAL", "INFEASIBLE"):
            # Undecided on the clock: counted as feasible, and the run as not reproducible.
            stats["clock_stops"] = stats.get("clock_stops", 0) + 1
        return lp.status != "INFEASIBLE"

    def narrowest(p: AlignmentProblem, lo: float, hi: float, budget: float) -> float:
        """The narrowest band in ``[lo, hi]`` (``hi`` admits a plan) whose LP relaxation is
        feasible, by bisection to ``BAND_STEP``, within ``budget`` seconds (an LP is
        started only with half a second of the budget and of the limit left)."""
        end = time.perf_counter() + budget

        def room() -> float:
            return min(end - time.perf_counter(), left())

        if room() < MIN_STAGE_S:
            return hi
        if lp_feasible(tighten_band(p, lo, region), room()):
            return lo
        while hi - lo > BAND_STEP and room() >= MIN_STAGE_S:
            mid = 0.5 * (lo + hi)
            if lp_feasible(tighten_band(p, mid, region), room()):
                hi = mid
            else:
                lo = mid
        return hi

    ts = time.perf_counter()
    if first is None:
        sub, free, group, _ = built
        first = _solve_by_lp(_disruption_costs(sub), settings, max(left(), 1.0), 0.5 * dlimit)
    else:
        ts -= first.runtime_s  # the caller ran stage 1: its time still counts as stage 1's
    stats["disruption"] = {k: v for k, v in first.stats.items() if k != "polish"}
    if not first.has_plan:
        stages.append(
            Stage("disruption", first.status, float("nan"), first.bound, time.perf_counter() - ts)
        )
        return LexResult(empty, first.status, tuple(stages), stats=stats)
    _, free, group, _ = built
    plan = whole(free, group, first.assignment)
    _, moved1 = moved_potential(problem, plan)
    stages.append(Stage("disruption", first.status, moved1, first.bound, time.perf_counter() - ts))
    if hold_back is not None:
        limit -= max(0.0, hold_back(moved1))
    band = worst_deviation(problem, plan, region)
    cap = moved1 * (1 + slack)
    capped = cap_disruption(problem, cap)

    # Balance: the narrowest band whose LP admits the disruption cap (bisection on LPs
    # alone), then plans by rounding from that band outwards until one passes. Near the
    # LP's edge rounding rarely fits, and CP-SAT repair there spent 10-20 s a try for
    # nothing on the demo book: the tries here go without it.
    ts = time.perf_counter()
    budget = (0.6 if frontier < 2 else 0.3) * max(left(), 0.0)
    tries = 0
    if band - tightest > BAND_STEP and left() > MIN_STAGE_S:
        edge = narrowest(capped, tightest, band, 0.4 * budget)
        ladder = [s for s in edge + (band - edge) * np.array([0.0, 0.1, 0.25, 0.5]) if s < band]
        for k, share in enumerate(ladder):
            spent = time.perf_counter() - ts
            if budget - spent < MIN_STAGE_S or left() < MIN_STAGE_S:
                break
            tries += 1
            part = (budget - spent) / max(left(), 1e-9) / (len(ladder) - k)
            found, _ = solve(tighten_band(capped, share, region), "disruption", part, focus=False)
            log.debug("balance: band %.4f %s", share, "kept" if found is not None else "no plan")
            if found is not None:
                plan, band = found, float(share)
                break
        stats["balance_lp_edge"] = edge
    stages.append(Stage("balance", "FEASIBLE", band, tightest, time.perf_counter() - ts))
    stats["balance_tries"] = tries

    # Travel, within the band and the disruption cap.
    def travel(a: np.ndarray) -> float:
        return float(problem.pair_cost[problem.pair_index(np.arange(problem.num_units), a)].sum())

    ts = time.perf_counter()
    cost = travel(plan)
    status = "SKIPPED (no time left)"
    if left() > MIN_STAGE_S:
        status = "NO BETTER PLAN"
        # Rounding only: the least-disruption plans already break ties by travel, so
        # this stage earns little and must not spend the frontier's time on repair.
        found, _ = solve(
            tighten_band(capped, band + 1e-9, region), "travel", 1.0 if frontier < 2 else 0.3, False
        )
        if found is not None and travel(found) < cost:
            plan, cost, status = found, travel(found), "FEASIBLE"
    stages.append(Stage("travel", status, cost, np.nan, time.perf_counter() - ts))

    fronts: list[np.ndarray] = []
    bands: list[float] = []
    if frontier >= 2:
        # From this plan's band to the narrowest band the budgets and the region allow
        # (by the LP), evenly; each plan the least-disruption one inside its band, by
        # rounding alone (at the LP's edge CP-SAT repair ate 100 s of the demo's 120 s),
        # and where that fails, once more halfway back to the previous band. Half of the
        # time left is the frontier's: the rest raises the disruption bound.
        fronts.append(plan)
        bands.append(band)
        end = time.perf_counter() + 0.5 * max(left(), 0.0)
        far = narrowest(problem, min(band, tightest), band, 0.2 * max(left(), 0.0))
        steps = np.linspace(band, far, frontier)
        for k in range(1, frontier):
            ts = time.perf_counter()
            found, got = None, "SKIPPED (no time left)"
            for share in (steps[k], 0.5 * (steps[k] + bands[-1])):
                part = (end - time.perf_counter()) / max(left(), 1e-9) / (frontier - k)
                if part * left() < MIN_STAGE_S:
                    break
                found, got = solve(tighten_band(problem, share, region), "disruption", part, False)
                if found is not None:
                    break
            fronts.append(found if found is not None else empty)
            bands.append(float(share))
            obj = moved_potential(problem, found)[1] if found is not None else np.nan
            stages.append(Stage(f"frontier@{k}", got, obj, np.nan, time.perf_counter() - ts))
    stats["stages_s"] = time.perf_counter() - t0
    return LexResult(plan, "FEASIBLE", tuple(stages), band, tuple(fronts), tuple(bands), stats)

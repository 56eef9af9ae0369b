"""The alignment engine: LP relaxation, rounding, CP-SAT repair, CP-SAT polish.

1. The LP relaxation (HiGHS) gives a proven lower bound and a nearly integral plan.
2. Rounding sends each unit to the rep with its largest share; only the few split units
   can break a band. Single-unit moves repair what they can; CP-SAT then re-decides the
   units in doubt (split or nearly tied) exactly (:mod:`solvers.rounding`). Failing that,
   reps that rounding broke get tighter limits and the LP is solved again (a few rounds).
3. Large-neighbourhood search re-optimises groups of neighbouring territories exactly
   (small MIPs) while the gap to the bound exceeds the target and time remains.
4. If rounding found no plan at all, CP-SAT solves the whole model from the rounded start.
Every candidate plan goes through the independent checker; the best checked plan wins.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import replace

import numpy as np

from .aggregate import solve_relaxation_at_scale
from .check import check_plan
from .colgen import PREPIN_UNITS, resolve_tightened, solve_relaxation_priced
from .cpsat import solve_cpsat
from .greedy import repair, solve_greedy
from .lagrange import DualSettings
from .lns import improve, repair_by_neighbourhoods
from .lp import LpSolution, solve_relaxation
from .pairspace import PairSpace
from .problem import AlignmentProblem
from .result import ProgressEvent, Result, relative_gap
from .rounding import round_by_cpsat
from .settings import SolveSettings

__all__ = ["solve"]

log = logging.getLogger(__name__)


# From this many units on, the relaxation is solved by aggregation and reduced-cost fixing
# (solvers.aggregate): the exact LP takes HiGHS tens of seconds at 100,000 units.
LARGE_UNITS = 50_000


def _relax(problem: AlignmentProblem, time_limit_s: float, unit_xy) -> LpSolution:
    """The relaxation: exact below :data:`LARGE_UNITS`, staged above it. Where the staged
    method finds no slack-free solution, the exact LP decides (and can prove infeasibility)."""
    if problem.num_units >= LARGE_UNITS:
        t0 = time.perf_counter()
        lp = solve_relaxation_at_scale(problem, unit_xy=unit_xy, time_limit_s=time_limit_s)
        if lp.status == "FEASIBLE":
            return lp
        log.info("staged relaxation needed slack; solving the exact relaxation")
        time_limit_s -= time.perf_counter() - t0
    return solve_relaxation(problem, time_limit_s=max(0.1, time_limit_s))


def _gap_target_objective(bound: float, gap: float) -> float:
    """The largest objective whose :func:`~solvers.result.relative_gap` to ``bound`` is at
    most ``gap`` (``-inf`` without a bound)."""
    if not np.isfinite(bound):
        return -np.inf
    return bound / (1 - gap) if gap < 1 else np.inf


def capacity_tight(problem: AlignmentProblem, ratio: float = 1.35) -> bool:
    """Whether the reps' summed capacity is below ``ratio`` times the least workload the
    book can need (every unit at its cheapest candidate, hours). Then the relaxation sends
    work beyond the nearest reps, and candidate lists built from distance fall short."""
    cap = problem.capacity_h
    if problem.num_units == 0 or not np.all(np.isfinite(cap)):
        return False
    least = np.minimum.reduceat(problem.pair_workload_h, problem.cand_indptr[:-1]).sum()
    return bool(cap.sum() < ratio * least)


def _round_and_repair(
    problem: AlignmentProblem,
    first: LpSolution,
    consider: Callable[[np.ndarray, str], bool],
    left: Callable[[], float],
    relax: Callable[[AlignmentProblem, float, LpSolution], LpSolution],
    max_rounds: int = 6,
    rescue: Callable[[LpSolution, np.ndarray], bool] | None = None,
    exchanges: bool = False,
) -> tuple[dict, np.ndarray]:
    """Round the relaxation; where rounding breaks a rep's band, capacity or transfer limit,
    tighten that limit by what it broke it by, re-solve, and round again.

    An LP vertex puts most reps exactly on a limit, so rounding its few split units tips
    some over and leaves nobody slack to give a unit back. Tightening only the reps that
    broke costs far less objective than a uniform margin. Single-unit repair moves finish
    what is left. Returns statistics per round and the last repaired plan (checked or not).

    ``rescue`` (the relaxation and its repaired rounding in, whether a checked plan came
    out) is tried after the first rounding, before any re-solve: the first relaxation is
    the best one, and each tightened re-solve pays objective and time and can break more
    reps than it mends (at 100,000 x 300 with capacity binding: 11 broken limits after
    the first rounding, 49 to 214 after each of five re-solves).

    ``exchanges``: whether repair may exchange units between reps (see
    :func:`~solvers.greedy.repair`).
    """
    lo, hi = problem.measure_lo.copy(), problem.measure_hi.copy()
    cap = problem.capacity_h.copy()
    keep_min, keep_total = problem.keep_min.copy(), problem.keep_min_total.copy()
    lp = first
    rounds = []
    for _ in range(max_rounds):
        plan = lp.rounded(problem)
        before = check_plan(problem, plan)
        # Exchanges only on large books, where CP-SAT cannot re-decide the units in doubt
        # in time (on the demo book they cost 12 s and mended nothing CP-SAT rounding did
        # not; at 100,000 x 300 with one pin round they mended 37 broken limits at once).
        repaired = repair(problem, plan, time_left=left, exchanges=exchanges)
        last = repaired
        ok = consider(repaired, "round")
        rounds.append(
            {
                "violations_rounded": len(before.violations),
                "feasible": ok,
                "lp_s": round(lp.runtime_s, 3),
            }
        )
        if not ok and rescue is not None and len(rounds) == 1 and left() > 0:
            ok = rescue(lp, repaired)
            rounds[-1]["rescued"] = ok
        log.info("rounding %d: %s", len(rounds), rounds[-1])
        if ok or left() <= 0:
            break
        # Push each broken limit inward by 1.5x its breach (at least 0.1 % of the target).
        meas, work = before.rep_measure, before.rep_workload_h
        pad = 1e-3 * np.abs(problem.measure_target)
        over = np.maximum(meas - hi, 0)
        under = np.maximum(lo - meas, 0)
        hi = np.where(over > 0, hi - 1.5 * over - pad, hi)
        lo = np.where(under > 0, lo + 1.5 * under + pad, lo)
        mid = 0.5 * (problem.measure_lo + problem.measure_hi)
        hi, lo = np.maximum(hi, mid), np.minimum(lo, mid)
        finite = np.isfinite(cap)
        cap_over = np.where(finite, np.maximum(work - np.where(finite, cap, 0), 0), 0)
        cap = np.where(cap_over > 0, cap - 1.5 * cap_over - 1e-3 * np.where(finite, cap, 0), cap)
        # Transfer limits: a rep (or the book) that kept too little of its current book
        # must keep more, up to the whole book.
        if problem.num_keep:
            book = problem.current_book()
            short = np.maximum(keep_min - before.rep_kept, 0)
            keep_min = np.where(
                short > 0, np.minimum(keep_min + 1.5 * short + 1e-3 * book, book), keep_min
            )
            short_total = np.maximum(keep_total - before.kept_total, 0)
            keep_total = np.where(
                short_total > 0,
                np.minimum(
                    keep_total + 1.5 * short_total + 1e-3 * book.sum(axis=0), book.sum(axis=0)
                ),
                keep_total,
            )
        tightened = replace(
            problem,
            measure_lo=lo,
            measure_hi=hi,
            capacity_h=cap,
            keep_min=keep_min,
            keep_min_total=keep_total,
        )
        nxt = relax(tightened, max(0.1, left()), lp)
        if not nxt.feasible:
            rounds.append({"tightened_lp": nxt.status})
            break
        lp = nxt
    return {"rounds": rounds}, last


def solve(
    problem: AlignmentProblem,
    settings: SolveSettings | None = None,
    *,
    progress: Callable[[ProgressEvent], None] | None = None,
    unit_xy: np.ndarray | None = None,
    space: PairSpace | None = None,
    price_if_infeasible: bool = True,
) -> Result:
    """Best checked plan within ``settings.time_limit_s``, with a proven bound and gap.

    The result's status is ``OPTIMAL`` when the plan is proven optimal, ``FEASIBLE`` for a
    checked plan (its gap says how far from optimal it can be at most), ``INFEASIBLE``
    when the relaxation or CP-SAT proves no plan exists, ``UNKNOWN`` otherwise.

    ``unit_xy`` (``(num_units, 2)``, e.g. lon/lat degrees) lets large problems group
    neighbouring units in the relaxation; it never changes which plans are allowed.

    ``space`` (every eligible pair, priced on demand) lets problems of
    :data:`LARGE_UNITS` units and more, and every problem whose capacity is tight
    (:func:`capacity_tight`), solve the relaxation over all eligible pairs by column
    generation (:mod:`solvers.colgen`): the plan may then use pairs that are not
    among ``problem``'s candidates, and the result's ``problem`` is the enlarged problem
    the plan and its check refer to. The bound is valid over the whole space. With
    ``price_if_infeasible`` false, a candidate relaxation of fewer than :data:`LARGE_UNITS`
    units that is infeasible is reported as such (for a caller that widens candidates first
    and prices only on its last attempt).
    """
    settings = settings or SolveSettings()
    t0 = time.perf_counter()
    phases: dict[str, float] = {}
    stats: dict = {}

    def left() -> float:
        return settings.time_limit_s - (time.perf_counter() - t0)

    def emit(objective: float, bound: float, phase: str) -> None:
        if progress is not None:
            progress(ProgressEvent(time.perf_counter() - t0, objective, bound, phase))

    def forward(phase: str, bound: float):
        def fn(ev: ProgressEvent) -> None:
            emit(ev.objective, max(bound, ev.bound), phase)

        return fn

    def relax(tightened, limit, previous):
        return _relax(tightened, limit, unit_xy)

    bound_scope = "candidate pairs"
    tight = capacity_tight(problem)
    stats["capacity_tight"] = tight
    large = problem.num_units >= LARGE_UNITS
    if space is not None and tight:
        lp = None  # the candidates will not do: price every pair below
    elif space is not None and large:
        # The staged relaxation over the candidates is fast when they suffice.
        lp = solve_relaxation_at_scale(
            problem, unit_xy=unit_xy, time_limit_s=0.25 * settings.time_limit_s
        )
        if lp.status == "FEASIBLE":
            # Tightened re-solves stay staged: the exact LP at this size outlasts any limit.
            def relax(tightened, limit, previous):
                return solve_relaxation_at_scale(tightened, unit_xy=unit_xy, time_limit_s=limit)
        else:
            stats["staged_relaxation"] = getattr(lp, "stats", None)
    else:
        lp = _relax(problem, 0.5 * settings.time_limit_s, unit_xy)
    narrow = lp is not None and lp.status not in ("FEASIBLE", "OPTIMAL")
    if space is not None and (lp is None or (narrow and (price_if_infeasible or large))):
        # Capacity is tight, or the candidates leave the relaxation infeasible (or needing
        # slack): column generation over every eligible pair decides, so "infeasible" is
        # never said where a pair outside the candidates would have helped.
        log.info("candidates too narrow for the relaxation: pricing every eligible pair")
        # Where the relaxation pins the big units first (too big a book for pin rounds),
        # rounding and repair take a few seconds (1,000,000 x 1,000 with capacity
        # binding: 5 broken limits, mended in 2 s), so the relaxation gets more time.
        big = int((problem.fixed_rep < 0).sum()) > PREPIN_UNITS
        problem, lp = solve_relaxation_priced(
            problem,
            space,
            time_limit_s=(0.9 if big else 0.75) * left(),
            # With exchanges in repair (large books), one pin round does: at 100,000 x 300
            # with capacity binding, 1 round took 31.9 s to a gap of 0.765 %, 2 rounds
            # 35.2 s and 0.822 %, 4 rounds 40.5 s and 0.862 % (each round re-solves the
            # LP around its pins, a little dearer each time, and rounding needs them less).
            pin_rounds=1 if large else 4,
            # The smoothed dual pays where capacity binds and the group master needs many
            # rounds; elsewhere it settles at once.
            dual_settings=DualSettings() if tight else None,
        )
        bound_scope = "all eligible pairs"

        margins = {k: lp.stats[k] for k in ("margin", "capacity_margin")}

        def relax(tightened, limit, previous):
            return resolve_tightened(tightened, space, previous, time_limit_s=limit, **margins)

    stats["bound_scope"] = bound_scope

    phases["lp_s"] = time.perf_counter() - t0
    stats.update(lp_status=lp.status, lp_solver=lp.solver, phases=phases)
    if getattr(lp, "stats", None):
        stats["relaxation"] = lp.stats
    if lp.status == "INFEASIBLE":
        return Result(
            np.full(problem.num_units, -1),
            "INFEASIBLE",
            float("nan"),
            float("inf"),
            time.perf_counter() - t0,
            stats | {"stop_reason": "LP relaxation infeasible"},
        )
    bound = lp.bound if lp.feasible else float("-inf")
    emit(float("inf"), bound, "lp")

    best: np.ndarray | None = None
    best_obj = float("inf")

    def consider(plan: np.ndarray, phase: str) -> bool:
        nonlocal best, best_obj
        report = check_plan(problem, plan)
        if report.ok and report.objective < best_obj - 1e-9:
            best, best_obj = plan.copy(), report.objective
            emit(best_obj, bound, phase)
        return report.ok

    def neighbourhood_repair(plan: np.ndarray) -> None:
        ts = time.perf_counter()
        fixed, stats["neighbourhood_repair"] = repair_by_neighbourhoods(
            problem, plan, settings=settings, time_left=lambda: left() - 0.5
        )
        consider(fixed, "repair")
        phases["neighbourhood_repair_s"] = time.perf_counter() - ts

    def round_exactly(relaxed: LpSolution, plan: np.ndarray) -> bool:
        # CP-SAT over the units in doubt, within half the time left and at most 4 s (it
        # succeeds within a second or fails: at 1,000,000 x 1,000 it ran 31 s without a
        # plan, at 100,000 x 300 its widest share ran out its 10 s three times in three
        # failures): the tightened re-solves (about 3 s each at 100,000 x 300) and
        # neighbourhood repair still get their turn.
        ts = time.perf_counter()
        fixed, stats["cpsat_rounding"] = round_by_cpsat(
            problem,
            relaxed,
            plan,
            settings,
            time_limit_s=min(4.0, 0.5 * left()),
            # A plan within the gap target ends the solve: no need to polish it here.
            target=_gap_target_objective(bound, settings.relative_gap),
        )
        phases["cpsat_rounding_s"] = time.perf_counter() - ts
        return fixed is not None and consider(fixed, "round")

    status_hint = None
    start = None
    try:
        if lp.feasible:
            start = lp.rounded(problem)
            split = lp.split_units(problem)
            stats["lp_split_units"] = int(split.size)
            ts = time.perf_counter()
            stats["rounding"], last = _round_and_repair(
                problem,
                lp,
                consider,
                left,
                relax,
                rescue=round_exactly,
                exchanges=large,
            )
            phases["round_s"] = time.perf_counter() - ts
            if best is None and left() > 1:
                # Rounding left a few reps broken: re-decide each with its neighbours.
                neighbourhood_repair(last)
        else:
            # No relaxation in time: fall back to the greedy warm start.
            g = solve_greedy(problem, time_left=lambda: left() - 1.0)
            phases["greedy_s"] = g.runtime_s
            start = g.assignment
            consider(start, "greedy")

        if (
            best is not None
            and relative_gap(best_obj, bound) > settings.relative_gap
            and left() > 1
        ):
            ts = time.perf_counter()
            _, lns_stats = improve(
                problem,
                best,
                settings,
                time_left=left,
                good_enough=lambda obj: relative_gap(obj, bound) <= settings.relative_gap,
                on_improve=lambda plan, obj: consider(plan, "lns"),
            )
            phases["lns_s"] = time.perf_counter() - ts
            stats["lns"] = vars(lns_stats)
            if left() <= 0:
                stats["stop_reason"] = "wall-clock limit"
        elif best is None and left() > 1.0 and large and start is not None:
            # No plan yet on a large book: the whole CP-SAT model would take longer to build
            # than the time left (and overrun the limit), so repair the start plan rep by rep
            # with its neighbours instead, within the limit.
            neighbourhood_repair(start)
        elif best is None and left() > 1.0:
            # Rounding found no plan: CP-SAT on the whole model, warm-started.
            ts = time.perf_counter()
            res = solve_cpsat(
                problem,
                settings,
                hint=start,
                time_limit_s=left(),
                progress=forward("cp-sat", bound),
            )
            phases["cpsat_s"] = time.perf_counter() - ts
            stats["cpsat"] = res.stats
            if res.has_plan:
                consider(res.assignment, "cp-sat")
            bound = max(bound, res.bound)
            status_hint = res.status
            stats["stop_reason"] = res.stats.get("stop_reason")
    except KeyboardInterrupt:
        # Ctrl-C: keep the best checked plan so far; with none, there is nothing to keep.
        if best is None:
            raise
        log.warning("interrupted: returning the best checked plan so far")
        stats["stop_reason"] = "interrupted"
    runtime = time.perf_counter() - t0
    if best is None:
        status = "INFEASIBLE" if status_hint == "INFEASIBLE" else "UNKNOWN"
        stats.setdefault("stop_reason", "no plan found")
        return Result(
            np.full(problem.num_units, -1), status, float("nan"), bound, runtime, stats, problem
        )
    gap = relative_gap(best_obj, bound)
    stats.setdefault("stop_reason", "gap limit reached")
    # OPTIMAL only when proven so; a plan within the gap target is FEASIBLE with a bound.
    status = "OPTIMAL" if gap <= 1e-9 else "FEASIBLE"
    return Result(best, status, best_obj, min(bound, best_obj), runtime, stats, problem)

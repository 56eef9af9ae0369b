"""Rounding the relaxation exactly where it is in doubt: CP-SAT over the split units and
the units whose best rep is nearly tied, every other unit where the relaxation has it.

At an LP vertex only a few hundred units are split, but with capacity binding and a +-2 %
band almost every rep sits on a limit, so sending each split unit to its larger share
breaks a handful of reps, and single moves cannot mend them: a rep short of potential with
no hours to spare needs an exchange (take a high potential-per-hour account, give back a
low one), often through a neighbour. CP-SAT over the units in doubt finds such exchanges
at once: every rep's limits are the real ones less what the fixed units use, and the
travel objective keeps the plan as cheap as the relaxation. At 100,000 x 300 with capacity
binding this is about 3,000 free units, solved in under a second to a first plan and a few
seconds to one within 0.8 % of the all-pairs bound, where re-solving tightened
relaxations took minutes and broke more reps than it mended.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace

import numpy as np

from .aggregate import _best_two, _reduced, _side_rows
from .check import check_plan
from .cpsat import solve_cpsat
from .lns import restricted
from .lp import LpSolution
from .problem import AlignmentProblem
from .settings import SolveSettings

__all__ = ["round_by_cpsat"]

log = logging.getLogger(__name__)


def _free_units(problem, lp: LpSolution, plan, share):
    """Units in doubt and their pairs: split units, the ``share`` of units with the
    narrowest reduced-cost margin under the relaxation's duals (when it has them), and,
    without duals, every unit on a rep that ``plan`` breaks. Each keeps its pairs the
    relaxation uses, its pair in ``plan`` and its ``4`` cheapest by reduced cost.

    (Adding each broken rep's 50 narrowest units to the dual case was tried at 1,000,000
    x 1,000: 6,293 free units ran 31 s without a plan, where without them CP-SAT proved
    the sub-problem infeasible in 1.7 s and the caller moved on.)"""
    movable = problem.fixed_rep < 0
    free = np.zeros(problem.num_units, bool)
    free[lp.split_units(problem)] = True
    duals = getattr(lp, "duals", None)
    if duals is not None:
        side = _side_rows(problem)[0]
        rc = _reduced(problem, side, duals)
        _, _, margin = _best_two(problem, rc)
        finite = np.isfinite(margin) & movable
        if finite.any():
            free |= finite & (margin <= np.quantile(margin[finite], share))
    else:
        rc = problem.pair_cost
        broken = {v.rep for v in check_plan(problem, plan).violations if v.rep >= 0}
        free |= np.isin(plan, sorted(broken))
    free &= movable
    units = np.flatnonzero(free)
    pu = problem.pair_unit
    cand = np.flatnonzero(free[pu])
    cand = cand[np.lexsort((rc[cand], pu[cand]))]
    first = np.r_[True, pu[cand][1:] != pu[cand][:-1]]
    pos = np.arange(cand.size)
    rank = pos - np.maximum.accumulate(np.where(first, pos, 0))
    keep = (rank < 4) | (lp.x[cand] > 1e-9) | (problem.cand_rep[cand] == plan[pu[cand]])
    return units, np.sort(cand[keep])


def round_by_cpsat(
    problem: AlignmentProblem,
    lp: LpSolution,
    plan: np.ndarray,
    settings: SolveSettings,
    *,
    time_limit_s: float,
    shares: tuple[float, ...] = (0.005, 0.02, 0.08),
    target: float = -np.inf,
    max_free_units: int = 30_000,
) -> tuple[np.ndarray | None, dict]:
    """A checked plan from the relaxation ``lp`` and its rounding ``plan`` (a rep per unit,
    which may break limits), or ``None``: CP-SAT re-decides the units in doubt, hinted with
    ``plan``, over a growing share of nearly tied units (``shares``) until one gives a
    plan. CP-SAT stops at the first plan whose whole objective is at most ``target``.
    A share that frees more than ``max_free_units`` units is not tried: at 1,000,000 x
    1,000, 80,000 free units ran 28 s without a plan, where a tightened re-solve of the
    relaxation mends the rounding in less. Returns the plan with statistics per attempt."""
    t0 = time.perf_counter()
    # One worker: interleaved multi-worker search with a hint crashes CP-SAT 9.15 (a
    # failed check in its fixed-search heuristics; seen in the rebalance notebook), and
    # the sub-problem is small (at 100,000 x 300: first plan in 0.55 s with one worker).
    settings = replace(settings, num_workers=1)
    stats: dict = {"attempts": []}
    group = np.arange(problem.num_reps)
    for share in shares:
        left = time_limit_s - (time.perf_counter() - t0)
        if left <= 0.1:
            break
        free, pairs = _free_units(problem, lp, plan, share)
        if free.size == 0 or free.size > max_free_units:
            break
        sub = restricted(problem, plan, free, pairs, group)
        fixed = np.ones(problem.num_units, bool)
        fixed[free] = False
        rest = np.flatnonzero(fixed)
        fixed_cost = float(problem.pair_cost[problem.pair_index(rest, plan[rest])].sum())
        res = solve_cpsat(
            sub, settings, hint=plan[free], time_limit_s=left, stop_at=target - fixed_cost
        )
        info = {
            "share": share,
            "free_units": int(free.size),
            "status": res.status,
            "stop": res.stats.get("stop_reason"),
        }
        info["s"] = round(time.perf_counter() - t0, 3)
        stats["attempts"].append(info)
        log.info("rounding by CP-SAT: %s", info)
        if res.has_plan:
            out = np.asarray(plan, dtype=np.int64).copy()
            out[free] = res.assignment
            if check_plan(problem, out).ok:
                return out, stats
    return None, stats

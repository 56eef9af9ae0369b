"""The relaxation over *every* eligible pair, by column generation, for books where
capacity binds.

With workload capacity near the mean workload, the relaxation's optimum sends some units
to their 40th or 100th nearest rep: remote reps must shed travel-heavy accounts, and the
work flows across the map in chains. No fixed candidate list anticipates that, and the
exact LP over every pair (100,000 units x 300 reps: 30M columns) is far too big. This
module solves it in stages, pricing every eligible pair against duals
(:class:`~solvers.pairspace.PairSpace`) rather than storing them:

0. **Smoothed dual** (books of 20,000 movable units and more;
   :mod:`solvers.lagrange`). Near-optimal duals of the rep rows in seconds: priced over
   every pair they give the all-pairs bound at once (sifting's own pricing passes reach it
   only after many LPs), and the group master starts from the columns they favour.
1. **Guided LP** (after a smoothed dual; :mod:`solvers.guided`). The dual's reduced costs
   fix every unit whose best rep wins by a clear margin, and the LP over the rest gives a
   slack-free start near the optimum (100,000 x 300 with capacity binding: 24,000 units
   free, 4.4 s, where the group master took 29 s). A margin that would free more than
   ``max_guided_units`` is halved first, and slack is mended by local rounds around the
   reps that need it; where none of that ends slack-free, the group master runs instead.
   The pin rounds below re-solve with it too (on books above ``max_guided_units`` units,
   only around the reps the pins moved load between). Sifting is skipped when less time
   is left than four passes of pricing every pair.
1b. **Group master.** Units are grouped (about ten neighbours of one pool, along a Morton
   curve); a group moves as one. The group LP starts from each group's nearest reps and
   grows by column generation: after each solve every (group, rep) column of the whole map
   is priced at once, from the group's centroid (a dense ``groups x reps`` array), and the
   most negative columns join. Elastic slack with a large penalty keeps every restricted
   master solvable (phase one): its duals price the columns that reduce infeasibility.
   It stops once it needs no slack and few columns price out (``settle``), or, after a
   smoothed dual, at its first slack-free solution: the group LP is far from the unit
   optimum anyway (groups blur potential per hour), and sifting closes that gap at a
   fraction of the cost of more group rounds. Its solution is a feasible fractional plan over the
   real units (a group's share is its members' share).
2. **Unit sifting.** Groups cost objective (members differ in potential per hour, which is
   what a capacity-bound rep must pick by), so the unit LP is then solved by sifting: the
   units whose assignment is in doubt (split, narrow reduced-cost margin, or priced
   elsewhere) are freed over their few best candidates, the rest stay as they are and
   shift the limits; after each LP every pair of every unit is priced against its duals,
   and the pairs that beat a unit's candidates join. The final pricing pass gives the
   Lagrangian bound over all eligible pairs: ``sum_u min_r rc(u, r) + sum_rows y *
   limit``, valid for every plan whatever the duals (weak duality).

Pricing from centroids in stage 1 is approximate (a member is at most the group's radius
from its centroid); it only decides which columns to try. Every column that enters an LP
carries its members' exact costs and workloads, and the bound is priced exactly per unit.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace

import numpy as np
import scipy.sparse as sp

from .aggregate import (
    _best_two,
    _clip_duals,
    _duals_by_rep,
    _elastic_solve,
    _reduced,
    _refine_lp,
    _row_weight,
    _rows_term,
    _side_rows,
    spatial_groups,
)
from .guided import guided_relaxation
from .lagrange import DualSettings, smoothed_duals
from .lp import LpSolution
from .pairspace import PairSpace, haversine_km, with_pairs
from .problem import AlignmentProblem

__all__ = ["PREPIN_UNITS", "resolve_tightened", "solve_relaxation_priced"]

log = logging.getLogger(__name__)

# Books with more movable units than this pin their biggest units before the relaxation
# rather than after it (see :func:`_prepinned`).
PREPIN_UNITS = 100_000

_CHUNK = 4_000_000  # dense pricing cells per chunk (32 MB of float64)


def pooled_groups(
    space: PairSpace, movable: np.ndarray, size: int, current: np.ndarray | None = None
) -> np.ndarray:
    """Group id per unit: runs of ``size`` movable units along a Morton curve, never across
    eligibility pools nor (given ``current``, a rep per unit or -1) current reps; every
    locked unit alone.

    A group moves as one, so a group that mixed two reps' current accounts could keep
    neither rep's share whole: transfer limits would read as infeasible at group level."""
    group = np.full(space.num_units, -1, dtype=np.int64)
    xy = np.c_[space.unit_lon, space.unit_lat]
    key = space.unit_pool.astype(np.int64)
    if current is not None and np.any(current >= 0):
        key = key * (int(current.max()) + 2) + (np.asarray(current, np.int64) + 1)
    start = 0
    for k in np.unique(key):
        idx = np.flatnonzero((key == k) & movable)
        if idx.size == 0:
            continue
        g = spatial_groups(xy[idx], np.ones(idx.size, bool), size)
        group[idx] = g + start
        start += int(g.max()) + 1
    rest = np.flatnonzero(group < 0)
    group[rest] = start + np.arange(rest.size)
    return group


class _Groups:
    """Members, centroids and summed coefficients of each group."""

    def __init__(self, space: PairSpace, problem: AlignmentProblem, group: np.ndarray):
        self.group = group
        self.order = np.argsort(group, kind="stable")
        self.size = np.bincount(group)
        self.start = np.r_[0, np.cumsum(self.size)[:-1]]
        self.num = int(self.size.size)
        first = self.order[self.start]
        self.pool = space.unit_pool[first]
        self.locked = problem.fixed_rep[first] >= 0
        s = self.size
        self.lat = np.bincount(group, space.unit_lat) / s
        self.lon = np.bincount(group, space.unit_lon) / s
        self.cost_per_km = np.bincount(group, space.cost_per_km)
        self.hours_fixed = np.bincount(group, space.hours_fixed)
        self.hours_per_km = np.bincount(group, space.hours_per_km)
        self.measure = np.stack(
            [np.bincount(group, problem.unit_measure[:, j]) for j in range(problem.num_measures)],
            axis=1,
        )

    def members(self, groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(unit, position)`` of every member of ``groups`` (position: index into
        ``groups``)."""
        cnt = self.size[groups]
        pos = np.repeat(np.arange(groups.size), cnt)
        off = np.arange(cnt.sum()) - np.repeat(np.cumsum(cnt) - cnt, cnt)
        return self.order[self.start[groups][pos] + off], pos


def _price_groups(gr: _Groups, space, band, cap_dual, u, have, per_group, tol):
    """The ``per_group`` most negative new columns of every movable group, priced from its
    centroid: ``cost - band . measure - cap_dual * workload - u``, those below ``-tol``.
    Returns (groups, reps)."""
    out_g, out_r = [], []
    for pool in np.unique(space.rep_pool):
        reps = np.flatnonzero(space.rep_pool == pool)
        gs = np.flatnonzero((gr.pool == pool) & ~gr.locked)
        if gs.size == 0 or reps.size == 0:
            continue
        step = max(1, _CHUNK // reps.size)
        k = min(per_group, reps.size)
        for s in range(0, gs.size, step):
            g = gs[s : s + step]
            km = haversine_km(
                gr.lat[g, None],
                gr.lon[g, None],
                space.rep_lat[None, reps],
                space.rep_lon[None, reps],
            )
            rc = (
                gr.cost_per_km[g, None] * km
                - gr.measure[g] @ band[reps].T
                - cap_dual[None, reps] * (gr.hours_fixed[g, None] + gr.hours_per_km[g, None] * km)
                - u[g, None]
            )
            rc[km > space.max_km] = np.nan
            rc[have(g, reps)] = np.nan
            rc = np.where(np.isnan(rc), np.inf, rc)
            idx = np.argpartition(rc, k - 1, axis=1)[:, :k]
            vals = np.take_along_axis(rc, idx, axis=1)
            ok = (vals < -tol[g, None]) & np.isfinite(vals)
            out_g.append(np.broadcast_to(g[:, None], idx.shape)[ok])
            out_r.append(reps[idx[ok]])
    if not out_g:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(out_g), np.concatenate(out_r)


def _initial_columns(problem, space, gr: _Groups, init_k: int, start_duals=None) -> np.ndarray:
    """Each group's ``init_k`` nearest eligible reps (and, given ``start_duals``, side-row
    duals, its ``init_k`` cheapest by reduced cost under them), locked units' reps and the
    current reps of members, as ``group * num_reps + rep`` codes."""
    r = problem.num_reps
    none = lambda g, reps: np.zeros((g.size, reps.size), bool)  # noqa: E731
    duals = [(np.zeros((r, problem.num_measures)), np.zeros(r))]
    if start_duals is not None:
        duals.append(_duals_by_rep(problem, start_duals))
    codes = np.zeros(0, np.int64)
    for band, cap in duals:
        cols_g, cols_r = _price_groups(
            gr, space, band, cap, np.zeros(gr.num), none, init_k, np.full(gr.num, -np.inf)
        )
        codes = np.union1d(codes, cols_g.astype(np.int64) * r + cols_r)
    lk = np.flatnonzero(gr.locked)
    lk_unit = gr.order[gr.start[lk]]
    codes = np.union1d(codes, lk * r + problem.fixed_rep[lk_unit].astype(np.int64))
    has_cur = problem.current_rep >= 0
    codes = np.union1d(codes, gr.group[has_cur] * r + problem.current_rep[has_cur].astype(np.int64))
    return _eligible_columns(gr, space, codes, r)


def _group_master(
    problem,
    space,
    gr: _Groups,
    left,
    stats,
    *,
    init_k,
    per_group,
    max_rounds,
    settle,
    start_duals=None,
):
    """Stage 1: column generation on the group LP. Returns the enlarged problem, the pair
    values of the group solution, its side-row duals, and the slack it needed."""
    side_w = None
    r = problem.num_reps
    codes = _initial_columns(problem, space, gr, init_k, start_duals)
    bare = np.setdiff1d(np.arange(gr.num), codes // r)
    if bare.size:
        # A group whose members share no eligible rep (a Morton run can jump across the
        # map) falls apart into single units.
        group = gr.group.copy()
        split = np.isin(group, bare)
        group[split] = group.max() + 1 + np.arange(int(split.sum()))
        gr = _Groups(space, problem, np.unique(group, return_inverse=True)[1])
        codes = _initial_columns(problem, space, gr, init_k, start_duals)
        stats["groups_split"] = int(bare.size)
    rounds = []
    x_pairs = y = x_problem = None
    slack = np.inf
    for _ in range(max_rounds):
        if left() <= 0:
            break
        tr = time.perf_counter()
        cg, cr = codes // r, codes % r
        units, pos = gr.members(cg)
        reps = cr[pos]
        problem = with_pairs(problem, space, units, reps)
        pairs = problem.pair_index(units, reps)
        side, lo, hi, var_lo = _side_rows(problem)
        if side_w is None:
            side_w = _row_weight(lo, hi)
        p, nc = problem.num_pairs, codes.size
        agg = sp.csr_matrix((np.ones(pairs.size), (pairs, pos)), shape=(p, nc))
        g_side = (side @ agg).tocsr()
        g_cost = agg.T @ problem.pair_cost
        g_assign = sp.csr_matrix((np.ones(nc), (cg, np.arange(nc))), shape=(gr.num, nc))
        g_var_lo = (agg.T @ var_lo) / gr.size[cg]
        res, yv, lp_slack = _elastic_solve(
            g_cost, g_side, lo, hi, g_var_lo, np.ones(nc), g_assign, side_w, max(0.1, left())
        )
        if res.status not in ("OPTIMAL", "FEASIBLE"):
            # An LP stopped without a solution reports no slack (x = 0): the last solved
            # round's slack and solution stand.
            rounds.append({"columns": int(nc), "status": res.status})
            log.info("group master round %d: %s", len(rounds), rounds[-1])
            break
        slack = lp_slack
        scale = float(np.mean(g_cost[g_cost > 0])) if np.any(g_cost > 0) else 1.0
        u = res.y[: gr.num] * scale
        y = _clip_duals(yv, lo, hi)
        x_pairs, x_problem = agg @ res.x[:nc], problem
        band, cap = _duals_by_rep(problem, y)
        have_set = codes

        def have(g, reps, have_set=have_set):
            c = g[:, None] * r + reps[None, :]
            return np.isin(c, have_set)

        tol = 1e-7 * np.maximum(np.abs(u), 1.0)
        ng, nr_ = _price_groups(gr, space, band, cap, u, have, per_group, tol)
        new = _eligible_columns(gr, space, np.unique(ng * r + nr_), r)
        rounds.append(
            {
                "columns": int(nc),
                "lp_s": round(res.runtime_s, 3),
                "slack": slack,
                "objective": float(g_cost @ res.x[:nc]),
                "new_columns": int(new.size),
                "round_s": round(time.perf_counter() - tr, 3),
            }
        )
        log.info("group master round %d: %s", len(rounds), rounds[-1])
        # Centroid pricing tails off (a column can price out from the centroid and not for
        # its members), and the group optimum is not the unit one: once the master is
        # feasible and fewer than ``settle`` columns per group price out, the unit sifting
        # that follows does the rest far cheaper.
        if new.size == 0 or (slack <= 1e-7 and new.size < settle * gr.num):
            break
        codes = np.union1d(codes, new)
    stats["group_master"] = rounds
    stats["groups"] = gr.num
    if x_pairs is not None and x_problem is not problem:
        x_pairs = _carry(x_problem, problem, x_pairs)
    return problem, x_pairs, y, slack


def _eligible_columns(gr: _Groups, space: PairSpace, codes: np.ndarray, r: int) -> np.ndarray:
    """The columns whose rep every member of the group may take."""
    if codes.size == 0:
        return codes
    cg, cr = codes // r, codes % r
    units, pos = gr.members(cg)
    ok = space.eligible(units, cr[pos])
    bad = np.zeros(codes.size, bool)
    bad[pos[~ok]] = True
    return codes[~bad]


def _sift(
    problem,
    space,
    x,
    y,
    movable,
    left,
    stats,
    bound,
    limits,
    *,
    free_share,
    keep_k,
    gap_target,
    max_rounds,
    per_unit,
    add_pairs=True,
    pin_after=0,
    pin_above=None,
    stall=0.0,
    locks=None,
    penalty=1.0,
):
    """Stage 2: sifting over the unit LP with full pricing after each solve. ``limits`` are
    the side rows' true ``(lo, hi)`` the bound is stated against (the LP may use tighter
    ones). ``penalty`` multiplies the price of the LPs' slack.

    With ``pin_after`` > 0, after that many rounds every movable unit whose measure exceeds
    ``pin_above`` (per rep and measure, for the rep holding its larger share) is pinned
    whole there, and sifting goes on around the pins: the remaining rounds rebalance what
    pinning shifted. The bound is still priced against the real locks, so it stays valid
    for the unpinned problem (``locks``, default: ``problem``'s own ``fixed_rep``). If no
    slack-free LP follows the pins in time, the last solution before them is returned.
    The returned problem carries the pins in ``fixed_rep``."""
    share = free_share
    status = "UNKNOWN"
    best_y, bound_all = y, bound
    rounds = []
    fixed = problem.fixed_rep if locks is None else locks  # the real locks, before any pins
    before_pins = None
    cost_scale = np.maximum.reduceat(np.abs(problem.pair_cost), problem.cand_indptr[:-1])
    previous = np.inf
    for _ in range(max_rounds):
        if left() <= 0:
            break
        tr = time.perf_counter()
        side, lo, hi, var_lo = _side_rows(problem)
        weight = _row_weight(lo, hi)
        res, y2, slack, x_fix, pairs, num_free = _refine_lp(
            problem,
            side,
            lo,
            hi,
            var_lo,
            weight,
            x,
            y,
            movable,
            share,
            keep_k,
            max(0.1, left()),
            penalty,
        )
        info = {
            "free_units": num_free,
            "pairs": int(pairs.size),
            "lp_s": round(res.runtime_s, 3),
            "slack": slack,
        }
        if res.status not in ("OPTIMAL", "FEASIBLE"):
            info["status"] = res.status
            rounds.append(info)
            break
        if slack > 1e-7:
            # The fixed units crowd out a plan: free more and keep the last good duals.
            share = min(1.0, 2 * share)
            rounds.append(info)
            log.info("sifting round %d needed slack: %s", len(rounds), info)
            continue
        x = x_fix
        x[pairs] = res.x[: pairs.size]
        y = _clip_duals(y2, lo, hi)
        status = "FEASIBLE"
        objective = float(problem.pair_cost @ x)
        # Price every eligible pair: the all-pairs bound, and the pairs worth adding.
        tp = time.perf_counter()
        units, reps, b = _price_all(problem, space, side, y, limits, per_unit, cost_scale, fixed)
        if b > bound_all:
            bound_all, best_y = b, y
        info.update(
            objective=objective,
            bound=b,
            added_pairs=int(units.size),
            pricing_s=round(time.perf_counter() - tp, 3),
            round_s=round(time.perf_counter() - tr, 3),
        )
        rounds.append(info)
        log.info("sifting round %d: %s", len(rounds), info)
        if objective - bound_all <= gap_target * abs(bound_all):
            break
        if previous - objective < stall * abs(objective):
            # Sifting has stalled: the rounds left would each buy less than ``stall``.
            info["stalled"] = True
            break
        previous = objective
        if units.size and add_pairs:
            # New pairs enter with value 0: the current x stays a solution.
            old = problem
            problem = with_pairs(problem, space, units, reps)
            x = _carry(old, problem, x)
        share = free_share
        if pin_after and len(rounds) == pin_after and before_pins is None:
            rounded = LpSolution("FEASIBLE", x, 0.0, 0.0, 0.0, "").rounded(problem)
            big = np.flatnonzero(_above(problem, rounded, pin_above) & movable)
            if big.size:
                before_pins = (problem, x, y)
                pins = problem.fixed_rep.copy()
                pins[big] = rounded[big]
                x = _pin(problem, x, big, rounded)
                problem = replace(problem, fixed_rep=pins)
                movable = movable & (pins < 0)
                status = "UNKNOWN"
                stats["pinned_in_sifting"] = int(big.size)
    stats["sifting"] = rounds
    if status != "FEASIBLE" and before_pins is not None:
        problem, x, y = before_pins
        status = "FEASIBLE"
        stats["pinned_in_sifting"] = 0
    return problem, x, best_y, y, bound_all, status


def _price_all(
    problem, space, side, y, limits, per_unit, cost_scale=None, fixed=None, best_only=True
):
    """Price every eligible pair against side-row duals ``y``: up to ``per_unit`` pairs per
    unit that beat its best candidate (with ``best_only`` false: its ``per_unit`` cheapest,
    whether candidates or not), and the Lagrangian bound over every eligible pair against
    ``limits`` (the side rows' true ``(lo, hi)``), valid whatever ``y`` is.

    ``fixed`` are the real locks (default: the problem's): a unit pinned only to help
    rounding must still count its cheapest pair, or the bound holds for the pinned
    problem alone."""
    if cost_scale is None:
        cost_scale = np.maximum.reduceat(np.abs(problem.pair_cost), problem.cand_indptr[:-1])
    if fixed is None:
        fixed = problem.fixed_rep
    rc = _reduced(problem, side, y)
    locked = fixed >= 0
    cand_best = np.minimum.reduceat(rc, problem.cand_indptr[:-1])
    if locked.any():
        lu = np.flatnonzero(locked)
        cand_best[lu] = rc[problem.pair_index(lu, fixed[lu])]
    band, cap = _duals_by_rep(problem, y)
    units, reps, least = space.price(
        problem.unit_measure,
        band,
        cap,
        # A pair must beat the unit's best candidate by more than rounding noise, which
        # scales with the pair's cost (an LP's basic pairs price at zero).
        np.where(
            locked,
            -np.inf,
            cand_best - 1e-9 * (np.abs(cand_best) + cost_scale) if best_only else np.inf,
        ),
        per_unit=per_unit,
    )
    least = np.where(locked, cand_best, np.minimum(least, cand_best))
    return units, reps, float(least.sum()) + _rows_term(_clip_duals(y, *limits), *limits)


def _carry(old: AlignmentProblem, new: AlignmentProblem, x: np.ndarray) -> np.ndarray:
    """Pair values of ``old`` moved onto ``new``'s pairs (a superset)."""
    nz = np.flatnonzero(x)
    out = np.zeros(new.num_pairs)
    out[new.pair_index(old.pair_unit[nz], old.cand_rep[nz])] = x[nz]
    return out


def _above(problem: AlignmentProblem, rounded: np.ndarray, limit: np.ndarray) -> np.ndarray:
    """Per unit: whether any of its measures exceeds ``limit`` (``(reps, measures)``) of the
    rep it is rounded to."""
    return np.any(problem.unit_measure > limit[rounded], axis=1)


def _pin(problem: AlignmentProblem, x: np.ndarray, units: np.ndarray, reps: np.ndarray):
    """``x`` with each of ``units`` moved whole onto its rep in ``reps`` (indexed by unit)."""
    keep = ~(np.isin(problem.pair_unit, units) & (problem.cand_rep != reps[problem.pair_unit]))
    out = np.where(keep, x, 0.0)
    out[problem.pair_index(units, reps[units])] = 1.0
    return out


def _prepinned(problem: AlignmentProblem, y: np.ndarray, limit: np.ndarray):
    """``problem`` with every movable unit above ``limit`` (``(reps, measures)``, of its
    best rep) pinned to its best pair under the side-row duals ``y``, and how many.

    On a book too big for pin rounds (each re-solves an LP over hundreds of thousands of
    units) the relaxation must not split the units rounding cannot move whole. Near-optimal
    duals already settle most of them; where they are nearly tied, the tie costs little.
    At 1,000,000 x 1,000 with capacity binding, pinning the 17,600 units above a quarter of
    the half-band left no split unit that size and 2 to 5 broken limits after rounding,
    which repair mended in 1 to 2 s (35 to 45 s of guided LP, 0.46 % above the bound);
    pinning only the 850 above the half-band left 45, which took repair 215 exchanges and
    24 s."""
    side = _side_rows(problem)[0]
    best = _best_two(problem, _reduced(problem, side, y))[0]
    reps = problem.cand_rep[best]
    big = np.flatnonzero(_above(problem, reps, limit) & (problem.fixed_rep < 0))
    pins = problem.fixed_rep.copy()
    pins[big] = reps[big]
    return replace(problem, fixed_rep=pins), big.size


def _pulled_in(problem: AlignmentProblem, margin: float, capacity_margin: float):
    """The problem with every two-sided band narrowed by ``margin`` of its half-width on
    each side and every finite capacity lowered by ``capacity_margin``: a relaxation solved
    there rounds to a plan that rarely breaks the real limits."""
    lo, hi = problem.measure_lo, problem.measure_hi
    both = np.isfinite(lo) & np.isfinite(hi)
    pad = np.where(both, margin * 0.5 * (hi - lo), 0.0)
    cap = problem.capacity_h
    return replace(
        problem,
        measure_lo=np.where(both, lo + pad, lo),
        measure_hi=np.where(both, hi - pad, hi),
        capacity_h=np.where(np.isfinite(cap), cap * (1 - capacity_margin), cap),
    )


def solve_relaxation_priced(
    problem: AlignmentProblem,
    space: PairSpace,
    *,
    time_limit_s: float = 60.0,
    margin: float = 0.15,
    # Capacity pulled in by 0.2 %, not 0.5 %: where capacity binds, every hour pulled in
    # sends work further (100,000 x 300: LP 0.3 % dearer, plan gap 0.88 % against 0.61 %),
    # and repair's exchanges mend the extra limits rounding breaks (65 against 45).
    capacity_margin: float = 0.002,
    group_size: int = 10,
    init_k: int = 8,
    per_group: int = 6,
    max_group_rounds: int = 20,
    settle: float = 0.01,
    free_share: float = 0.15,
    keep_k: int = 4,
    per_unit: int = 2,
    max_sift_rounds: int = 12,
    gap_target: float = 0.005,
    pin_rounds: int = 4,
    pin_share: float = 0.25,
    pin_whole_share: float = 1.0,
    pin_free_share: float = 0.3,
    pin_min: int = 10,
    pin_whole_after: int = 0,
    pin_sift_rounds: int = 4,
    dual_settings: DualSettings | None = DualSettings(),
    max_guided_units: int = 100_000,
    guided_per_unit: int = 4,
    stall: float = 1e-3,
    prepin_from: int = PREPIN_UNITS,
    sift_guided_above: float = 0.015,
) -> tuple[AlignmentProblem, LpSolution]:
    """The relaxation over every eligible pair of ``space``: an almost integral plan and a
    lower bound valid for every plan over the whole space.

    The LPs are solved with limits pulled inward (``margin`` of each band's half-width,
    ``capacity_margin`` of each capacity; see :func:`_pulled_in`) so that rounding their
    few split units rarely breaks a real limit; the bound is stated against the real
    limits, so it stays valid. Where the pulled-in limits leave no plan, the real ones
    are used.

    Returns the enlarged problem (the input's candidates plus every pair generated; units,
    reps and limits unchanged) and its relaxed solution. The solution's ``bound`` is the
    best all-pairs Lagrangian bound (currency*km for the default cost); its status is
    ``FEASIBLE`` when a slack-free solution was found, ``INFEASIBLE`` when even the group
    master with the real limits over every priced column needed slack (no plan exists over
    the space, up to the grouping: the caller should confirm with an exact model), else
    ``UNKNOWN``.

    ``dual_settings`` tune the smoothed dual that starts books of
    ``dual_settings.min_sample_units`` movable units and more; ``None`` skips it (where
    capacity does not bind the group master settles in a round or two, and the dual's
    pricing over every pair would cost more than it saves: 34 s at 1,000,000 x 1,000).

    ``max_guided_units`` caps the units the guided LP (:mod:`solvers.guided`) may leave
    free, over each unit's candidates and its ``guided_per_unit`` cheapest pairs; ``stall``
    ends sifting once a round lowers the objective by less than that share. On books of
    more than ``prepin_from`` movable units, units above ``pin_share`` of a band's
    half-width are pinned to their best rep under the smoothed dual before the guided LP
    (:func:`_prepinned`), which then has the whole time left. Sifting follows a
    successful guided LP only where its objective is more than ``sift_guided_above``
    (a share) above the smoothed dual's bound.
    """
    t0 = time.perf_counter()

    def left() -> float:
        return time_limit_s - (time.perf_counter() - t0)

    stats: dict = {"margin": margin, "capacity_margin": capacity_margin}
    movable = problem.fixed_rep < 0
    half = 0.5 * (problem.measure_hi - problem.measure_lo)
    side_true, lo_true, hi_true, _ = _side_rows(problem)
    pulled = _pulled_in(problem, margin, capacity_margin) if margin or capacity_margin else None
    start_duals, smooth_bound = None, -np.inf
    if dual_settings is not None and int(movable.sum()) >= dual_settings.min_sample_units:
        # Near-optimal duals from the smoothed Lagrangian: a bound over every pair at once,
        # and the group master starts from the columns they favour instead of growing
        # towards them over many rounds.
        ts = time.perf_counter()
        # Two fifths of the time: the guided LP below is only as good as these duals (at
        # 1,000,000 x 1,000 a dual cut short before the whole book's climb left 729 reps
        # needing slack in it; a 60 s one left 12, which local rounds mended).
        start_duals = smoothed_duals(problem, space, dual_settings, time_limit_s=0.4 * time_limit_s)
        # One pass over every pair gives the bound and each unit's cheapest pairs, which
        # the guided LP below chooses among.
        tp = time.perf_counter()
        priced_u, priced_r, smooth_bound = _price_all(
            problem,
            space,
            side_true,
            start_duals,
            (lo_true, hi_true),
            guided_per_unit,
            best_only=False,
        )
        price_s = time.perf_counter() - tp
        stats["smoothed_dual"] = {
            "bound": smooth_bound,
            "s": round(time.perf_counter() - ts, 3),
            "pricing_s": round(price_s, 3),
        }
        log.info("smoothed dual: %s", stats["smoothed_dual"])
    # Coarse groups can make a feasible book look infeasible (a group's members cannot be
    # picked apart): with slack left, the groups shrink, down to single units; pulled-in
    # limits fall back to the real ones first.
    work, size = problem, group_size
    attempts = [(pulled, group_size)] if pulled is not None else []
    while True:
        attempts.append((None, size))
        if size == 1:
            break
        size = max(1, size // 3)
    x = None
    from_guided = False
    if start_duals is not None:
        # Near-optimal duals settle most units' choice: the LP over the rest is the
        # relaxation at a fraction of the group master's and sifting's cost.
        ts = time.perf_counter()
        base = with_pairs(problem, space, priced_u, priced_r)
        target = _pulled_in(base, margin, capacity_margin) if pulled is not None else base
        prepin = int(movable.sum()) > prepin_from
        if prepin:
            # Too big for pin rounds after the LP: the units rounding cannot move whole
            # are pinned before it.
            target, prepinned = _prepinned(target, start_duals, pin_share * half)
            stats["prepinned"] = int(prepinned)
        # The group master after a failed guided LP needs time of its own, except on books
        # this big: at 1,000,000 x 1,000 it has never found a solution within the limit.
        budget = left() if prepin else 0.6 * left()
        guided = guided_relaxation(
            target,
            start_duals,
            time_left=lambda: budget - (time.perf_counter() - ts),
            max_free_units=max_guided_units,
            stats=stats,
        )
        if guided is not None:
            work, (x, y), slack = target, guided, 0.0
            from_guided = True
            attempts, size = [], 0
            stats["attempts"] = [{"guided": True, "pulled_in": pulled is not None}]
        else:
            stats.pop("prepinned", None)  # the group master below starts unpinned
    for limits, size in attempts:
        current = problem.current_rep if problem.num_keep else None
        gr = _Groups(space, problem, pooled_groups(space, movable, size, current))
        start = work if limits is None else limits
        if limits is None:
            start = replace(
                work,
                measure_lo=problem.measure_lo,
                measure_hi=problem.measure_hi,
                capacity_h=problem.capacity_h,
            )
        budget = 0.6 * left()
        t1 = time.perf_counter()
        work, x, y, slack = _group_master(
            start,
            space,
            gr,
            lambda t1=t1, budget=budget: budget - (time.perf_counter() - t1),
            stats,
            init_k=init_k,
            per_group=per_group,
            max_rounds=max_group_rounds,
            # With the smoothed dual's bound in hand the group master need only give
            # sifting a feasible start: its first slack-free solution will do.
            settle=settle if start_duals is None else np.inf,
            start_duals=start_duals,
        )
        stats.setdefault("attempts", []).append(
            {"group_size": size, "pulled_in": limits is not None, "slack": slack}
        )
        if x is None or slack <= 1e-7 or left() <= 0:
            break
        log.info("group master needed slack (group size %d): trying finer", size)
    exact_groups = size == 1
    stats["group_master_s"] = round(time.perf_counter() - t0, 3)

    def out(status, x, bound, y=None):
        final = replace(
            work,
            measure_lo=problem.measure_lo,
            measure_hi=problem.measure_hi,
            capacity_h=problem.capacity_h,
        )
        x = np.zeros(final.num_pairs) if x is None else x
        objective = float(final.pair_cost @ x) if status == "FEASIBLE" else np.nan
        stats.update(bound=bound, objective=objective, pairs=final.num_pairs)
        sol = LpSolution(status, x, objective, bound, time.perf_counter() - t0, "highs-colgen")
        object.__setattr__(sol, "stats", stats)
        object.__setattr__(sol, "duals", y)
        return final, sol

    if x is None:
        return out("UNKNOWN", None, -np.inf)
    if slack > 1e-7:
        last = stats["group_master"][-1]
        proof = exact_groups and last.get("new_columns") == 0
        return out("INFEASIBLE" if proof else "UNKNOWN", None, -np.inf)
    sift_rounds = max_sift_rounds
    above = float(work.pair_cost @ x) - smooth_bound
    if from_guided and above <= sift_guided_above * abs(smooth_bound):
        # A guided LP this close to the smoothed dual's bound gains little from sifting: at
        # 100,000 x 300 with capacity binding (0.97 % above it) two rounds took 4.7 s,
        # lowered its objective by 0.05 % and raised the bound by 0.01 %. The pulled-in
        # limits alone cost most of that distance, and sifting cannot win it back. Seed 2
        # of that book left a guided LP 4 % above: sifting brought it to about 1 %.
        sift_rounds = 0
        stats["sifting_skipped"] = "guided"
    elif start_duals is not None and left() < 4 * price_s:
        # Each round prices every pair again: with less time than a few of those left,
        # rounding and repair need it more (1,000,000 x 1,000: 15 s a pass, and the first
        # round's LP alone outlasted the 18 s that were left).
        sift_rounds = 0
        stats["sifting_skipped"] = round(left(), 3)
    work, x, best_y, last_y, bound, _ = _sift(
        work,
        space,
        x,
        y,
        work.fixed_rep < 0,
        left,
        stats,
        smooth_bound,
        (lo_true, hi_true),
        free_share=free_share,
        keep_k=keep_k,
        gap_target=gap_target,
        max_rounds=sift_rounds,
        per_unit=per_unit,
        pin_after=pin_whole_after if pin_rounds else 0,
        pin_above=pin_whole_share * half,
        stall=stall,
        locks=problem.fixed_rep,
        # The start is slack-free, so each round's LP has a solution without slack; at the
        # usual price, slack was cheaper than the chains of moves that capacity binding
        # in one region needs (seed 2 of 100,000 x 300: three rounds bought slack of 0.04 of
        # the rows' scale, freeing up to 61,000 units and 35 s; at 100 times, none).
        penalty=100.0,
    )
    if start_duals is not None and bound <= smooth_bound:
        best_y = start_duals  # no sifting round beat the smoothed dual's bound
    pins = work.fixed_rep.copy()
    work = replace(work, fixed_rep=problem.fixed_rep)
    # Units too big to round (their measure exceeds the pulled-in margin of a band, such
    # as split whales) are pinned whole to the rep holding their larger share, and the
    # unit LP is solved again around them; pinning restricts the problem, so the bound
    # found before stays valid and is kept. Pins accumulate: a unit pinned in one round
    # stays pinned in the next, or the next LP would split it again.
    for _ in range(pin_rounds):
        if left() <= 1:
            break
        lp = LpSolution("FEASIBLE", x, 0.0, bound, 0.0, "")
        split = lp.split_units(work)
        rounded = lp.rounded(work)
        big = split[_above(work, rounded, pin_share * half)[split]]
        pinned_before = stats.get("pinned") or stats.get("prepinned")
        if not pinned_before and not stats.get("pinned_in_sifting"):
            # The very largest units are pinned whole at once, split or not: otherwise each
            # re-solve splits another of them.
            whole = np.flatnonzero(
                _above(work, rounded, pin_whole_share * half) & (work.fixed_rep < 0)
            )
            big = np.union1d(big, whole)
        # A handful of split units is cheaper to round and repair than another LP.
        if big.size < (1 if not pinned_before else pin_min):
            break
        stats.setdefault("pinned", []).append(int(big.size))
        pins[big] = rounded[big]
        pinned = replace(work, fixed_rep=pins.copy())
        sub_stats: dict = {}
        # The last LP's duals settle most units around the pins: the LP over the rest
        # rebalances what pinning shifted (sifting from the pinned solution, below, needed
        # 30 % to every unit free and 35 s at 100,000 x 300 with capacity binding).
        region = None
        if work.num_units > max_guided_units:
            # A big book: re-solve only around the reps the pins moved load between (an
            # anchored LP over the whole book freed 80,000 units at 1,000,000 x 1,000, and
            # its slack needed more local rounds than the time left).
            region = np.zeros(work.num_reps, bool)
            region[rounded[big]] = True
            region[work.cand_rep[np.isin(work.pair_unit, big) & (x > 1e-9)]] = True
        guided = guided_relaxation(
            pinned,
            last_y,
            time_left=left,
            max_free_units=max_guided_units,
            stats=sub_stats,
            start=_pin(work, x, big, rounded),
            region=region,
        )
        if guided is not None:
            x_new, last_y = guided
            stats.setdefault("pin_guided", []).append(sub_stats.get("guided"))
            work, x = replace(pinned, fixed_rep=problem.fixed_rep), x_new
            continue
        pinned, x_new, _, _, _, status = _sift(
            pinned,
            space,
            _pin(work, x, big, rounded),
            best_y,
            pinned.fixed_rep < 0,
            left,
            sub_stats,
            -np.inf,
            (lo_true, hi_true),
            # Pinning shifts whole units' worth of load between reps, and rebalancing
            # that needs chains of moves: a narrow free set leaves slack.
            free_share=pin_free_share,
            keep_k=keep_k,
            # The first slack-free LP is enough: its bound is for the pinned problem only.
            gap_target=np.inf,
            max_rounds=pin_sift_rounds,
            per_unit=per_unit,
        )
        stats.setdefault("pin_sifting", []).append(sub_stats.get("sifting"))
        if status != "FEASIBLE":
            break
        work = replace(pinned, fixed_rep=problem.fixed_rep)
        x = x_new
    # The duals of the LP that gave x: its near-ties are the units rounding may re-decide.
    return out("FEASIBLE", x, bound, last_y)


def resolve_tightened(
    problem: AlignmentProblem,
    space: PairSpace,
    previous: LpSolution,
    *,
    time_limit_s: float,
    free_share: float = 0.3,
    max_rounds: int = 3,
    margin: float = 0.0,
    capacity_margin: float = 0.0,
    pin_share: float = 0.25,
    max_guided_units: int = 100_000,
) -> LpSolution:
    """The relaxation of ``problem`` (the enlarged problem of
    :func:`solve_relaxation_priced` with some limits tightened) from the ``previous``
    solution, over the same pairs. Its ``bound`` is for the tightened problem only, so
    callers keep the earlier one.

    First the guided LP anchored at ``previous`` (units stay where it has them whole unless
    its duals leave them in doubt), with every limit also pulled in by ``margin`` and
    ``capacity_margin`` as the relaxation was: only the reps around the tightened ones
    change, so a rounding that broke a few reps is mended there and nowhere else; its
    margin is halved while it would free more than ``max_guided_units`` units. Failing
    that, sifting with a ``free_share`` of units free."""
    t0 = time.perf_counter()
    stats: dict = {}
    if getattr(previous, "duals", None) is not None and (margin or capacity_margin):
        pulled = _pulled_in(problem, margin, capacity_margin)
        # Units the solution holds whole and that are big against their rep's band stay
        # put (as the pin rounds had them), or the LP splits them again.
        prev = LpSolution("FEASIBLE", previous.x, 0.0, 0.0, 0.0, "")
        rounded = prev.rounded(problem)
        half = 0.5 * (problem.measure_hi - problem.measure_lo)
        split = np.zeros(problem.num_units, bool)
        split[prev.split_units(problem)] = True
        big = _above(problem, rounded, pin_share * half) & ~split & (problem.fixed_rep < 0)
        pins = problem.fixed_rep.copy()
        pins[big] = rounded[big]
        target = replace(
            problem,
            fixed_rep=pins,
            measure_lo=np.maximum(problem.measure_lo, pulled.measure_lo),
            measure_hi=np.minimum(problem.measure_hi, pulled.measure_hi),
            capacity_h=np.minimum(problem.capacity_h, pulled.capacity_h),
        )
        guided = guided_relaxation(
            target,
            previous.duals,
            time_left=lambda: time_limit_s - (time.perf_counter() - t0),
            max_free_units=max_guided_units,
            stats=stats,
            start=previous.x,
        )
        if guided is not None:
            return _tightened_solution(problem, "FEASIBLE", *guided, t0, stats, "highs-guided")
    _, lo, hi, _ = _side_rows(problem)
    _, x, _, y, _, status = _sift(
        problem,
        space,
        previous.x,
        previous.duals,
        problem.fixed_rep < 0,
        lambda: time_limit_s - (time.perf_counter() - t0),
        stats,
        -np.inf,
        (lo, hi),
        free_share=free_share,
        keep_k=4,
        gap_target=1.0,
        max_rounds=max_rounds,
        per_unit=1,
        add_pairs=False,
    )
    return _tightened_solution(problem, status, x, y, t0, stats, "highs-colgen")


def _tightened_solution(problem, status, x, y, t0, stats, solver) -> LpSolution:
    """A re-solve's result: no bound of its own (the tightened problem's would not hold
    for the real one), its duals and statistics attached."""
    sol = LpSolution(
        status, x, float(problem.pair_cost @ x), -np.inf, time.perf_counter() - t0, solver
    )
    object.__setattr__(sol, "stats", stats)
    object.__setattr__(sol, "duals", y)
    return sol

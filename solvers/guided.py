"""The relaxation from near-optimal duals: fix every unit whose choice they settle, solve
the LP over the rest.

At an optimal dual, complementary slackness lets the LP use only the pairs of least reduced
cost, so a unit whose best pair beats its second by a wide margin sits there in every
optimal solution. Near-optimal duals (the smoothed Lagrangian of :mod:`solvers.lagrange`)
blur that margin a little, so units within a margin of a share ``d`` of their own nearest
cost (the natural scale of their reduced costs) stay free, over the pairs within ``3 d``
of their best; the rest are fixed at their best pair and shift every limit by what they
use. The LP is elastic: where it still needs slack, local rounds free the units around
the reps that needed it (their rivals for units, one hop further each round) and keep the
rest where the last LP had them; failing those, ``d`` grows.

At 1,000,000 x 1,000 with capacity binding (duals from a 60 s smoothed dual), ``d`` = 0.2
would free 262,000 units (129 s of LP); ``d`` = 0.05 frees 73,600 (5 s) and leaves slack
at 12 reps, and one local round over 296 reps' units (297,000 free, 25 s) ends slack-free,
0.41 % above the all-pairs bound. With the big units pinned first (as
:mod:`solvers.colgen` does on books that size), 78 to 104 reps need slack and one local
round over about 420 reps' units (400,000 free) takes 35 to 50 s; HiGHS's interior point
with crossover took 61 s over that round where its default simplex took 37 s.

Measured on 100,000 units x 300 reps with capacity at 1.15 x the mean workload: at ``d``
= 0.4, 41,600 units stay free and HiGHS solves their LP in 9 to 12 s without slack, within
0.1 % of the all-pairs bound; the group master and unit sifting it replaces took 70 s to a
solution 0.06 % dearer (pulled-in limits).
"""

from __future__ import annotations

import logging
import time

import numpy as np
import scipy.sparse as sp

from .aggregate import (
    _best_two,
    _clip_duals,
    _free_lp,
    _reduced,
    _row_weight,
    _side_rows,
)
from .problem import AlignmentProblem

__all__ = ["guided_relaxation"]

log = logging.getLogger(__name__)


def _unit_scale(problem: AlignmentProblem) -> np.ndarray:
    """Per unit: its cheapest positive pair cost (currency*km), floored at a thousandth of
    the mean so that units at distance zero still get a margin."""
    cost = np.where(problem.pair_cost > 0, problem.pair_cost, np.inf)
    near = np.minimum.reduceat(cost, problem.cand_indptr[:-1])
    finite = np.isfinite(near)
    mean = float(near[finite].mean()) if finite.any() else 1.0
    return np.maximum(np.where(finite, near, mean), 1e-3 * mean)


def _row_reps(problem: AlignmentProblem, side: sp.csr_matrix) -> np.ndarray:
    """The rep of each side row (a book-wide transfer row: the rep of its first pair)."""
    coo = side.tocoo()
    rep = np.full(side.shape[0], -1, np.int64)
    rep[coo.row[::-1]] = problem.cand_rep[coo.col[::-1]]
    return rep


def _rivals(problem: AlignmentProblem, near: np.ndarray) -> sp.csr_matrix:
    """Reps x reps: whether some unit has ``near`` pairs to both (they compete for it)."""
    pairs = np.flatnonzero(near)
    inc = sp.csr_matrix(
        (np.ones(pairs.size), (problem.pair_unit[pairs], problem.cand_rep[pairs])),
        shape=(problem.num_units, problem.num_reps),
    )
    return (inc.T @ inc).tocsr()


def guided_relaxation(
    problem: AlignmentProblem,
    y: np.ndarray,
    *,
    time_left,
    # 0.1 first: at 100,000 x 300 with capacity binding it frees 13,500 units where 0.2
    # freed 24,400, and its LP takes 1 s instead of 3.9 s; a local round mends its slack.
    margins: tuple[float, ...] = (0.1, 0.2, 0.4, 0.8),
    max_free_units: int | None = None,
    min_margin: float = 0.025,
    local_rounds: int = 8,
    max_local_margin: float = 3.2,
    stats: dict | None = None,
    start: np.ndarray | None = None,
    region: np.ndarray | None = None,
):
    """A slack-free solution of ``problem``'s relaxation over its candidates, near the
    optimum when ``y`` (side-row duals) is near-optimal, or ``None``.

    Tries each margin of ``margins`` in turn (a share of each unit's nearest cost) until
    the LP needs no slack; a margin that would free more than ``max_free_units`` is halved
    (down to ``min_margin``) until it does not. Where an LP needs slack, up to
    ``local_rounds`` local rounds try to mend it before the next margin: the units around
    the reps that needed slack (their rivals, one hop further each round) are freed with
    their margins doubled (up to ``max_local_margin``) and the rest keep the last LP's
    values, so each round is a small LP. Stops early when ``time_left()`` runs out.

    Given ``start`` and ``region`` (a flag per rep), only local rounds run, seeded with
    those reps: ``start`` is the solution in hand with a few units moved (pins), which
    leaves the reps they moved between off their limits.

    Returns ``(x, duals)``: the value of every pair and side-row duals (the last LP's, or
    ``y`` after local rounds: their LP saw one region only).
    """
    stats = {} if stats is None else stats
    side, lo, hi, var_lo = _side_rows(problem)
    weight = _row_weight(lo, hi)
    rc = _reduced(problem, side, y)
    best, best_rc, margin = _best_two(problem, rc)
    scale = _unit_scale(problem)
    movable = problem.fixed_rep < 0
    pu = problem.pair_unit
    tries = stats.setdefault("guided", [])
    if start is not None:
        # A solution in hand (pins moved a few units whole): units stay where it has them
        # whole, and the ones it splits or that ``y`` would price elsewhere are free too.
        whole = start >= 1 - 1e-6
        held = np.full(problem.num_units, -1, np.int64)
        held[pu[whole]] = np.flatnonzero(whole)
        doubt = held < 0
        doubt |= held != best

    def free_at(d: float) -> np.ndarray:
        free = (margin < d * scale) & movable
        if start is not None:
            free |= doubt & movable
        return free

    def solve(pairs, x_fixed, info):
        ts = time.perf_counter()
        res, duals, slack, num_free = _free_lp(
            problem, side, lo, hi, var_lo, weight, pairs, side @ x_fixed, max(0.1, time_left())
        )
        ok = res.status in ("OPTIMAL", "FEASIBLE")
        info.update(
            free_units=num_free,
            pairs=int(pairs.size),
            status=res.status,
            slack=slack if ok else None,
            s=round(time.perf_counter() - ts, 3),
        )
        tries.append(info)
        log.info("guided relaxation: %s", info)
        if not ok:
            return None
        x = x_fixed.copy()
        x[pairs] = res.x[: pairs.size]
        nr = side.shape[0]
        rows = res.x[pairs.size :]
        return x, duals, slack, np.flatnonzero(rows[:nr] + rows[nr:] > 1e-7)

    graph = _rivals(problem, rc <= best_rc[pu] + scale[pu])
    reps_of_row = _row_reps(problem, side)
    best_rep = problem.cand_rep[best]

    def local(x, seed, d):
        """Local rounds from ``x``: free the units around the ``seed`` reps (one hop of
        rivals further each round, around the reps that still need slack) with their
        margins doubled; the rest keep their values in ``x``."""
        unit_d = np.full(problem.num_units, d)
        for hops in range(1, local_rounds + 1):
            if time_left() <= 0 or not seed.any():
                break
            region = seed.copy()
            for _ in range(hops):
                region |= graph @ region.astype(float) > 0
            on = x > 1e-9
            free = np.zeros(problem.num_units, bool)
            free[pu[on & region[problem.cand_rep]]] = True
            free |= region[best_rep]
            free &= movable
            unit_d[free] = np.minimum(2 * unit_d[free], max_local_margin)
            x_fixed = np.where(free[pu], 0.0, x)
            near = rc <= best_rc[pu] + 3 * unit_d[pu] * scale[pu]
            info = {
                "margin": d,
                "local_round": hops,
                "seed_reps": int(seed.sum()),
                "region_reps": int(region.sum()),
            }
            # The last solution's pairs stay in: its slack can only shrink.
            got = solve(np.flatnonzero(free[pu] & (near | on)), x_fixed, info)
            if got is None:
                break
            x, _, slack, bad = got
            if slack <= 1e-7:
                info["objective"] = float(problem.pair_cost @ x)
                log.info("guided relaxation: objective %.6g", info["objective"])
                return x, _clip_duals(y, lo, hi)
            seed = np.zeros(problem.num_reps, bool)
            seed[reps_of_row[bad]] = True
        return None

    if region is not None and start is not None:
        return local(start.copy(), np.asarray(region, bool), margins[0])
    for i, d in enumerate(margins):
        if time_left() <= 0:
            break
        free = free_at(d)
        if max_free_units is not None and i == 0:
            while int(free.sum()) > max_free_units and d / 2 >= min_margin:
                d /= 2
                free = free_at(d)
        if max_free_units is not None and int(free.sum()) > max_free_units:
            tries.append({"margin": d, "free_units": int(free.sum()), "skipped": "too many"})
            break
        x = np.zeros(problem.num_pairs)
        if start is None:
            x[best[~free[pu[best]]]] = 1.0
        else:
            x[held[~free & (held >= 0)]] = 1.0
        near = rc <= best_rc[pu] + 3 * d * scale[pu]
        if start is not None:
            near |= start > 1e-9  # the solution in hand stays feasible for the LP
        got = solve(np.flatnonzero(free[pu] & near), x, {"margin": d})
        if got is None:
            break
        x, duals, slack, bad = got
        if slack <= 1e-7:
            tries[-1]["objective"] = float(problem.pair_cost @ x)
            log.info("guided relaxation: objective %.6g", tries[-1]["objective"])
            return x, _clip_duals(duals, lo, hi)
        # Local rounds: widen only around the reps that needed slack.
        seed = np.zeros(problem.num_reps, bool)
        seed[reps_of_row[bad]] = True
        got = local(x, seed, d)
        if got is not None:
            return got
    return None

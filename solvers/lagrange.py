"""Near-optimal duals of the relaxation's rep rows in seconds: the smoothed Lagrangian dual.

Relaxing every rep row (bands, capacity, transfer limits) with multipliers leaves each unit
to pick its cheapest rep by reduced cost, so the dual function is a sum of per-unit minima
over a few hundred multipliers. Replacing each minimum by a soft minimum (log-sum-exp at a
temperature proportional to the unit's own cost scale) makes it smooth and concave, and
L-BFGS-B climbs it over the unit's ``k`` nearest eligible reps. The soft minimum lies below
the minimum, so every value it reports is itself a lower bound; the caller prices the
duals over every eligible pair for the bound it states.

Two levels keep it fast. A random sample of the movable units, each standing for
``1 / sample_share`` of them, with limits widened a little (a sample's granularity could
otherwise make it infeasible and its dual unbounded), is annealed from a high temperature
down; the whole book then starts from the sample's duals at a low temperature. The
sample is statistically the book (same mix of potential per hour, same geography), which a
spatial aggregate is not: groups of neighbours blur exactly the potential-per-hour contrast
capacity-bound reps choose by.

The duals come back in the row layout of :func:`solvers.aggregate._side_rows` (bands per
measure, capacity, transfer rows), ready for the column generation of
:mod:`solvers.colgen`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize
from scipy.spatial import cKDTree

from .lp import _keep_rows
from .pairspace import EARTH_RADIUS_KM, PairSpace, unit_vectors
from .problem import AlignmentProblem

__all__ = ["DualSettings", "smoothed_duals"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DualSettings:
    """How the smoothed dual is climbed.

    ``sample_share`` of the movable units form the first level (none below
    ``min_sample_units`` books); ``widen`` widens its bands by that share of each target and
    its capacity by half that; ``sample_taus`` / ``book_taus`` are the temperatures (a share
    of each unit's cost scale) and ``sample_iters`` / ``book_iters`` the L-BFGS-B
    iterations at each; ``k_sample`` / ``k_book`` the nearest eligible reps per unit.
    """

    sample_share: float = 0.1
    min_sample_units: int = 20_000
    widen: float = 0.06
    sample_taus: tuple[float, ...] = (0.3, 0.1, 0.03, 0.01)
    book_taus: tuple[float, ...] = (0.01, 0.003)
    sample_iters: int = 150
    book_iters: int = 50
    k_sample: int = 48
    k_book: int = 32
    seed: int = 0


class _Level:
    """Units (a sample, or the book) with their ``k`` nearest eligible reps, dense
    ``(units, k + 1)``: the last column is the unit's current rep (the only pair transfer
    limits reward), ``+inf`` cost where a pair is missing or not eligible."""

    def __init__(self, problem, space, units, weight, k, reps_tree):
        r = problem.num_reps
        self.units = units
        nbr = np.zeros((units.size, k + 1), np.int64)
        km = np.full((units.size, k + 1), np.inf)
        xyz = unit_vectors(space.unit_lat[units], space.unit_lon[units])
        for pool, (tree, reps) in reps_tree.items():
            sel = np.flatnonzero(space.unit_pool[units] == pool)
            if sel.size == 0:
                continue
            kk = min(k, reps.size)
            chord, idx = tree.query(xyz[sel], k=kk)
            idx = np.asarray(idx).reshape(sel.size, kk)
            chord = np.asarray(chord).reshape(sel.size, kk)
            nbr[sel, :kk] = reps[idx]
            km[sel, :kk] = 2 * np.arcsin(np.minimum(chord / 2, 1.0)) * EARTH_RADIUS_KM
        cur = problem.current_rep[units].astype(np.int64)
        has = cur >= 0
        # The current rep gets its own column; a duplicate among the nearest is switched off.
        dup = (nbr[:, :k] == cur[:, None]) & has[:, None]
        km[:, :k][dup] = np.inf
        nbr[has, k] = cur[has]
        km[has, k] = space.km(units[has], cur[has])
        far = km > space.max_km
        if space.forbidden.size:
            far |= np.isin(units[:, None] * r + nbr, space.forbidden)
        km[far] = np.inf
        self.nbr = nbr
        self.flat = nbr.ravel()
        self.off = ~np.isfinite(km)
        km = np.where(self.off, 0.0, km)
        # float32: the soft minimum needs no more, and it halves the time of every pass.
        f32 = np.float32
        self.cost = (weight * space.cost_per_km[units, None] * km).astype(f32)
        self.work = (
            weight * (space.hours_fixed[units, None] + space.hours_per_km[units, None] * km)
        ).astype(f32)
        self.measure = (weight * problem.unit_measure[units]).astype(f32)
        self.keep = weight * problem.keep_measure[units]
        self.stay = has
        self.cur = np.where(has, cur, 0)
        near = np.where(self.off, np.inf, self.cost).min(axis=1).astype(np.float64)
        self.scale = np.maximum(np.where(np.isfinite(near), near, 0.0), 1e-9 * weight)
        self.scale += 1e-6 * max(float(np.mean(self.scale)), 1e-9)


class _Dual:
    """The dual variables as one non-negative vector: band lower and upper multipliers per
    (rep, measure) row, capacity multipliers, transfer-row multipliers."""

    def __init__(self, problem: AlignmentProblem, locked_use):
        m = problem.num_measures
        self.r, self.m = problem.num_reps, m
        lo, hi = problem.measure_lo, problem.measure_hi
        use_m, use_h, self.keep_use, self.keep_tot_use = locked_use
        self.band_rows = np.isfinite(lo) | np.isfinite(hi)
        self.lo = np.where(np.isfinite(lo), lo - use_m, 0.0)
        self.hi = np.where(np.isfinite(hi), hi - use_m, 0.0)
        self.has_lo, self.has_hi = np.isfinite(lo), np.isfinite(hi)
        self.has_cap = np.isfinite(problem.capacity_h)
        self.cap = np.where(self.has_cap, problem.capacity_h - use_h, 0.0)
        self.keep_min = problem.keep_min - self.keep_use
        self.keep_tot = problem.keep_min_total - self.keep_tot_use
        self.has_keep = problem.keep_min > 0
        self.has_keep_tot = problem.keep_min_total > 0
        rm = self.r * m
        self.sizes = (rm, rm, self.r, self.keep_min.size, self.keep_tot.size)
        self.n = sum(self.sizes)

    def split(self, z):
        a, b, c, d, e = np.split(z, np.cumsum(self.sizes)[:-1])
        return (
            a.reshape(self.r, self.m),
            b.reshape(self.r, self.m),
            c,
            d.reshape(self.keep_min.shape),
            e,
        )

    def bounds(self):
        """Multipliers of rows that do not exist stay at zero."""
        on = np.r_[
            self.has_lo.ravel(),
            self.has_hi.ravel(),
            self.has_cap,
            self.has_keep.ravel(),
            self.has_keep_tot,
        ]
        return [(0.0, None if o else 0.0) for o in on]


def _value_and_grad(z, lv: _Level, dual: _Dual, scales, tau, limits):
    """Minus the smoothed dual and its gradient."""
    lo, hi, cap, keep_min, keep_tot = limits
    a, b, mu, nu, nu_t = dual.split(z * scales)
    lam = a - b  # (r, m)
    f32 = np.float32
    rc = lv.cost + mu.astype(f32)[lv.nbr] * lv.work
    for j in range(dual.m):
        rc -= lam[:, j].astype(f32)[lv.nbr] * lv.measure[:, j, None]
    if nu.size:
        bonus = np.einsum("ut,ut->u", nu[lv.cur] + nu_t[None, :], lv.keep)
        rc[:, -1] -= np.where(lv.stay, bonus, 0.0).astype(f32)
    rc[lv.off] = np.inf
    ts = (tau * lv.scale).astype(f32)[:, None]
    least = rc.min(axis=1, keepdims=True)
    rc -= least
    rc /= -ts
    e = np.exp(rc, out=rc)
    s = e.sum(axis=1, keepdims=True, dtype=np.float64)
    soft = least[:, 0].astype(np.float64) - ts[:, 0] * np.log(s[:, 0])
    e /= s.astype(f32)
    r = dual.r
    load = np.stack(
        [
            np.bincount(lv.flat, (e * lv.measure[:, j, None]).ravel(), minlength=r)
            for j in range(dual.m)
        ],
        axis=1,
    )
    hours = np.bincount(lv.flat, (e * lv.work).ravel(), minlength=r)
    value = soft.sum() + np.sum(a * lo) - np.sum(b * hi) - mu @ cap
    g_nu = np.zeros_like(nu)
    g_nu_t = np.zeros_like(nu_t)
    if nu.size:
        stay_share = np.where(lv.stay, e[:, -1], 0.0)
        for t in range(nu.shape[1]):
            kept = np.bincount(lv.cur, stay_share * lv.keep[:, t], minlength=r)
            g_nu[:, t] = keep_min[:, t] - kept
            g_nu_t[t] = keep_tot[t] - kept.sum()
        value += np.sum(nu * keep_min) + nu_t @ keep_tot
    grad = np.r_[(lo - load).ravel(), (load - hi).ravel(), hours - cap, g_nu.ravel(), g_nu_t]
    return -value, -grad * scales


def _locked_use(problem: AlignmentProblem):
    """What locked units already put on each rep's rows (they never move)."""
    r = problem.num_reps
    lk = np.flatnonzero(problem.fixed_rep >= 0)
    rep = problem.fixed_rep[lk].astype(np.int64)
    use_m = np.zeros((r, problem.num_measures))
    for j in range(problem.num_measures):
        use_m[:, j] = np.bincount(rep, problem.unit_measure[lk, j], minlength=r)
    pairs = problem.pair_index(lk, rep)
    use_h = np.bincount(rep, problem.pair_workload_h[pairs], minlength=r)
    keep = np.zeros_like(problem.keep_min)
    stays = problem.current_rep[lk] == rep
    for t in range(problem.num_keep):
        keep[:, t] = np.bincount(rep[stays], problem.keep_measure[lk[stays], t], minlength=r)
    return use_m, use_h, keep, keep.sum(axis=0)


def _climb(z, lv, dual, scales, taus, iters, limits, deadline):
    for tau in taus:
        if time.perf_counter() >= deadline:
            break
        res = minimize(
            _value_and_grad,
            z,
            args=(lv, dual, scales, tau, limits),
            jac=True,
            method="L-BFGS-B",
            bounds=dual.bounds(),
            options={"maxiter": iters, "maxcor": 20},
        )
        z = res.x
        log.debug(
            "smoothed dual: %d units, tau %g, %d iterations, %.6g",
            lv.units.size,
            tau,
            res.nit,
            -res.fun,
        )
    return z


def smoothed_duals(
    problem: AlignmentProblem,
    space: PairSpace,
    settings: DualSettings | None = None,
    *,
    time_limit_s: float = 30.0,
) -> np.ndarray:
    """Duals of the relaxation's side rows (layout of :func:`solvers.aggregate._side_rows`:
    bands, capacity, transfer rows), near the optimum of the Lagrangian dual.

    Any duals give a valid bound when priced over every pair; these are meant as a start
    for column generation, so the first restricted LPs are already close to the optimum.
    """
    settings = settings or DualSettings()
    t0 = time.perf_counter()
    deadline = t0 + time_limit_s
    r = problem.num_reps
    locked = problem.fixed_rep >= 0
    movable = np.flatnonzero(~locked)
    dual = _Dual(problem, _locked_use(problem))
    reps_tree = {}
    for pool in np.unique(space.rep_pool):
        reps = np.flatnonzero(space.rep_pool == pool)
        reps_tree[int(pool)] = (
            cKDTree(unit_vectors(space.rep_lat[reps], space.rep_lon[reps])),
            reps,
        )
    # Scale the multipliers so that a unit step in each is worth about as much objective:
    # km for bands (per unit of measure), currency*km per hour for capacity.
    near = space.cost_per_km[movable].sum() * 10.0 + 1e-9
    m_tot = np.maximum(np.abs(problem.unit_measure[movable]).sum(axis=0), 1e-9)
    h_tot = (space.hours_fixed[movable] + 10.0 * space.hours_per_km[movable]).sum() + 1e-9
    k_tot = np.maximum(problem.keep_measure[movable].sum(axis=0), 1e-9)
    band_s = np.tile(near / m_tot, (r, 1)).ravel()
    keep_s = np.tile(near / k_tot, (r, 1)).ravel()
    scales = np.r_[band_s, band_s, np.full(r, near / h_tot), keep_s, near / k_tot]
    exact = (dual.lo, dual.hi, dual.cap, dual.keep_min, dual.keep_tot)
    z = np.zeros(dual.n)
    taus = settings.book_taus
    if movable.size >= settings.min_sample_units and settings.sample_share < 1:
        rng = np.random.default_rng(settings.seed)
        pick = movable[rng.random(movable.size) < settings.sample_share]
        weight = movable.size / max(pick.size, 1)
        lv = _Level(problem, space, pick, weight, settings.k_sample, reps_tree)
        half = 0.5 * (problem.measure_hi - problem.measure_lo)
        mid = np.where(np.isfinite(half), 0.5 * (problem.measure_hi + problem.measure_lo), 0)
        pad = settings.widen * np.abs(
            np.where(np.isfinite(problem.measure_target), problem.measure_target, mid)
        )
        wide = (
            dual.lo - pad,
            dual.hi + pad,
            dual.cap * (1 + 0.5 * settings.widen),
            dual.keep_min * (1 - settings.widen),
            dual.keep_tot * (1 - settings.widen),
        )
        z = _climb(z, lv, dual, scales, settings.sample_taus, settings.sample_iters, wide, deadline)
    else:
        taus = tuple(settings.sample_taus[:-1]) + tuple(settings.book_taus)
    lv = _Level(problem, space, movable, 1.0, settings.k_book, reps_tree)
    z = _climb(z, lv, dual, scales, taus, settings.book_iters, exact, deadline)
    a, b, mu, nu, nu_t = dual.split(z * scales)
    lam = a - b
    out = []
    for j in range(problem.num_measures):
        out.append(lam[dual.band_rows[:, j], j])
    out.append(-mu[dual.has_cap])
    _, _, who = _keep_rows(problem)
    out.append(np.array([nu[i, t] if i >= 0 else nu_t[t] for i, t in who], float))
    log.info("smoothed duals in %.2f s", time.perf_counter() - t0)
    return np.concatenate(out)

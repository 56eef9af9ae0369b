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

At low temperatures a unit's soft minimum puts no weight beyond its few cheapest reps, so
each chunk of iterations runs over those only (:meth:`_Level.narrowed`); the whole level
confirms each chunk's climb. At 1,000,000 x 1,000 this cut the sample level from 69 s to
20 s, and a 60 s dual reached a bound 2.8 % higher than the old code's 53 s one.

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
    Iterations run in chunks of ``chunk_iters`` over each unit's entries within ``window``
    temperatures plus ``window_pad`` of its cost scale of its least reduced cost; a
    temperature ends early once a chunk gains less than ``stall`` of the dual's value.
    """

    sample_share: float = 0.1
    min_sample_units: int = 20_000
    widen: float = 0.06
    sample_taus: tuple[float, ...] = (0.3, 0.1, 0.03, 0.01)
    book_taus: tuple[float, ...] = (0.01, 0.003)
    sample_iters: int = 150
    book_iters: int = 150
    k_sample: int = 48
    k_book: int = 32
    window: float = 20.0
    window_pad: float = 1.0
    chunk_iters: int = 25
    # At 100,000 x 300 with capacity binding the chunks below 1e-4 gained 0.01 % each and
    # took 3 s in all; the guided LP from the duals they left cost 0.06 % more.
    stall: float = 1e-4
    seed: int = 0


class _Level:
    """Units (a sample, or the book) with their ``k`` nearest eligible reps and their
    current rep (the only pair transfer limits reward), as a flat list of entries grouped
    by unit (``indptr``): pairs that are missing or not eligible are left out.

    :meth:`narrowed` keeps only the entries near each unit's least reduced cost: at a low
    temperature the soft minimum gives the others no weight, and dropping them makes each
    pass several times cheaper (1,000,000 x 1,000: 33 entries per unit, about 2 within
    0.3 of a unit's cost scale under near-optimal duals)."""

    def __init__(self, problem, space, units, weight, k, reps_tree):
        r = problem.num_reps
        nbr = np.zeros((units.size, k + 1), np.int64)
        km = np.full((units.size, k + 1), np.inf)
        xyz = unit_vectors(space.unit_lat[units], space.unit_lon[units])
        for pool, (tree, reps) in reps_tree.items():
            sel = np.flatnonzero(space.unit_pool[units] == pool)
            if sel.size == 0:
                continue
            kk = min(k, reps.size)
            chord, idx = tree.query(xyz[sel], k=kk, workers=-1)
            idx = np.asarray(idx).reshape(sel.size, kk)
            chord = np.asarray(chord).reshape(sel.size, kk)
            nbr[sel, :kk] = reps[idx]
            km[sel, :kk] = 2 * np.arcsin(np.minimum(chord / 2, 1.0)) * EARTH_RADIUS_KM
        cur = problem.current_rep[units].astype(np.int64)
        has = cur >= 0
        # The current rep gets its own entry; a duplicate among the nearest is switched off.
        dup = (nbr[:, :k] == cur[:, None]) & has[:, None]
        km[:, :k][dup] = np.inf
        nbr[has, k] = cur[has]
        km[has, k] = space.km(units[has], cur[has])
        far = km > space.max_km
        if space.forbidden.size:
            far |= np.isin(units[:, None] * r + nbr, space.forbidden)
        km[far] = np.inf
        on = np.isfinite(km)
        count = on.sum(axis=1)
        # A unit without an eligible pair among these cannot be priced here; it is left out
        # (the bound priced over every pair afterwards still counts it).
        keep_unit = count > 0
        on &= keep_unit[:, None]
        units, count, cur, has = units[keep_unit], count[keep_unit], cur[keep_unit], has[keep_unit]
        self.units = units
        self.indptr = np.r_[0, np.cumsum(count)]
        self.row = np.repeat(np.arange(units.size), count)
        self.flat = nbr[on]
        self.is_cur = np.broadcast_to(np.arange(k + 1) == k, on.shape)[on]
        km = km[on]
        # float32: the soft minimum needs no more, and it halves the time of every pass.
        f32 = np.float32
        self.cost = (weight * space.cost_per_km[units][self.row] * km).astype(f32)
        self.work = (
            weight * (space.hours_fixed[units][self.row] + space.hours_per_km[units][self.row] * km)
        ).astype(f32)
        self.measure = (weight * problem.unit_measure[units]).astype(f32)[self.row]
        self.keep = weight * problem.keep_measure[units]
        self.stay = has
        self.cur = np.where(has, cur, 0)
        near = np.minimum.reduceat(self.cost, self.indptr[:-1]).astype(np.float64)
        self.scale = np.maximum(near, 1e-9 * weight)
        self.scale += 1e-6 * max(float(np.mean(self.scale)), 1e-9)

    @property
    def num_units(self) -> int:
        return int(self.units.size)

    def narrowed(self, rc: np.ndarray, window: np.ndarray) -> _Level:
        """The level with only the entries whose reduced cost ``rc`` is within ``window``
        (per unit) of the unit's least."""
        least = np.minimum.reduceat(rc, self.indptr[:-1])
        on = rc - least[self.row] <= window[self.row]
        out = object.__new__(_Level)
        out.__dict__.update(self.__dict__)
        count = np.bincount(self.row[on], minlength=self.num_units)
        out.indptr = np.r_[0, np.cumsum(count)]
        for name in ("row", "flat", "is_cur", "cost", "work", "measure"):
            setattr(out, name, getattr(self, name)[on])
        return out


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


def _reduced_costs(z, lv: _Level, dual: _Dual, scales) -> np.ndarray:
    """Reduced cost of every entry of ``lv`` under the duals ``z`` (float32)."""
    a, b, mu, nu, nu_t = dual.split(z * scales)
    lam = a - b  # (r, m)
    f32 = np.float32
    rc = lv.cost + mu.astype(f32)[lv.flat] * lv.work
    for j in range(dual.m):
        rc -= lam[:, j].astype(f32)[lv.flat] * lv.measure[:, j]
    if nu.size:
        bonus = np.einsum("ut,ut->u", nu[lv.cur] + nu_t[None, :], lv.keep)
        rc[lv.is_cur] -= bonus[lv.row[lv.is_cur]].astype(f32)
    return rc


def _value_and_grad(z, lv: _Level, dual: _Dual, scales, tau, limits):
    """Minus the smoothed dual and its gradient."""
    lo, hi, cap, keep_min, keep_tot = limits
    a, b, mu, nu, nu_t = dual.split(z * scales)
    rc = _reduced_costs(z, lv, dual, scales)
    starts = lv.indptr[:-1]
    ts = (tau * lv.scale).astype(np.float32)
    least = np.minimum.reduceat(rc, starts)
    rc -= least[lv.row]
    rc /= -ts[lv.row]
    e = np.exp(rc, out=rc)
    s = np.add.reduceat(e, starts, dtype=np.float64)
    soft = least.astype(np.float64) - ts * np.log(s)
    e /= s.astype(np.float32)[lv.row]
    r = dual.r
    load = np.stack(
        [np.bincount(lv.flat, e * lv.measure[:, j], minlength=r) for j in range(dual.m)],
        axis=1,
    )
    hours = np.bincount(lv.flat, e * lv.work, minlength=r)
    value = soft.sum() + np.sum(a * lo) - np.sum(b * hi) - mu @ cap
    g_nu = np.zeros_like(nu)
    g_nu_t = np.zeros_like(nu_t)
    if nu.size:
        stay_share = np.zeros(lv.num_units)
        stay_share[lv.row[lv.is_cur]] = e[lv.is_cur]
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


def _climb(z, lv, dual, scales, taus, iters, limits, deadline, settings: DualSettings):
    """L-BFGS-B at each temperature of ``taus`` in turn, at most ``iters`` iterations each.

    The iterations run in chunks of ``settings.chunk_iters`` over the level narrowed to the
    entries within ``settings.window`` temperatures plus ``settings.window_pad`` cost
    scales of each unit's least reduced cost, re-narrowed between chunks as the duals move.
    A narrowed level can overstate the dual (a rep that few entries reach looks free to
    raise its multipliers), so a chunk counts only if the whole level confirms that it
    climbed; otherwise the window widens and the chunk is run again."""
    for tau in taus:
        if time.perf_counter() >= deadline:
            break
        pad = settings.window_pad
        f_old = _value_and_grad(z, lv, dual, scales, tau, limits)[0]
        done, last = 0, 0.0
        # A chunk starts only if one as long as the last still ends before the deadline.
        while done < iters and time.perf_counter() + last < deadline:
            tc = time.perf_counter()
            rc = _reduced_costs(z, lv, dual, scales)
            sub = lv.narrowed(rc, (settings.window * tau + pad) * lv.scale)
            n = min(settings.chunk_iters, iters - done)
            res = minimize(
                _value_and_grad,
                z,
                args=(sub, dual, scales, tau, limits),
                jac=True,
                method="L-BFGS-B",
                bounds=dual.bounds(),
                options={"maxiter": n, "maxcor": 20},
            )
            f_new = _value_and_grad(res.x, lv, dual, scales, tau, limits)[0]
            last = time.perf_counter() - tc
            log.debug(
                "smoothed dual: %d units, %d entries of %d, tau %g, %d iterations, %.6g -> %.6g",
                lv.num_units,
                sub.flat.size,
                lv.flat.size,
                tau,
                res.nit,
                -f_old,
                -f_new,
            )
            if f_new > f_old and sub.flat.size < lv.flat.size:
                pad = max(4 * pad, 0.1)  # the narrowed level misled the climb: widen, retry
                continue
            done += max(int(res.nit), 1)
            # A widened window served its chunk; the next one narrows again (a window
            # left wide cost 1.3 s a chunk where the narrow one took 0.6 s at 100,000
            # units, for the same dual).
            pad = max(settings.window_pad, pad / 2)
            gain = f_old - f_new
            z, f_old = res.x, min(f_old, f_new)
            if res.nit < n or gain < settings.stall * abs(f_old):
                break  # converged at this temperature
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
        taus_s, iters_s = settings.sample_taus, settings.sample_iters
        z = _climb(z, lv, dual, scales, taus_s, iters_s, wide, deadline, settings)
    else:
        taus = tuple(settings.sample_taus[:-1]) + tuple(settings.book_taus)
    lv = _Level(problem, space, movable, 1.0, settings.k_book, reps_tree)
    z = _climb(z, lv, dual, scales, taus, settings.book_iters, exact, deadline, settings)
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

"""Where reps should sit: a capacitated p-median MIP over aggregated demand, with bands.

Arrays in, arrays out (no pandas): demand points (aggregated accounts) and candidate sites.
Some sites are open already (existing reps, fixed); the model opens ``num_open`` of the
others and assigns demand to open sites fractionally, which is the LP relaxation of the
alignment on the aggregated book, so the bases are chosen jointly with it:

    minimise    sum_ij potential_i * km_ij * x_ij  +  penalty * sum_i potential_i * u_i
    subject to  sum_j x_ij + u_i = 1                      every demand point i
                x_ij <= y_j                               every link i-j
                sum_i hours_ij * x_ij <= U * cap_j * y_j  every site j (capacity)
                sum_i potential_i * x_ij within (1 +- tol) * w_j * covered potential
                                                          every open site j (band)
                sum_{j optional} y_j = num_open,  y_j = 1 for fixed sites
                u_i = 0 for must-cover demand points

``u_i`` is the share of demand point ``i`` left uncovered; its penalty exceeds any travel,
so the model first covers as much potential as capacity and bands allow, then minimises
potential x km. ``hours_ij = visits_i * (minutes per visit / 60 + 2 * km_ij * circuity /
speed)``, the same workload as :mod:`territory_opt.workload`. ``w_j`` is site ``j``'s share of
the open capacity: its capacity over the expected total (fixed capacity plus ``num_open``
times the optional sites' mean capacity), exact when every optional site has the same
capacity. Each demand point links to its ``num_links`` nearest fixed sites and its
``num_links`` nearest optional sites only.

Solved with SCIP (bundled in OR-Tools) through ``model_builder``; single-threaded, so the
same inputs give the same bases when the MIP ends on its gap rather than its clock. When the
MIP finds no solution in time, the sites its LP relaxation (HiGHS) opens most are opened and
the LP with them fixed assigns the demand (status ``LP_ROUNDED``; the gap is then against the
relaxation's optimum). (On the
demo's enterprise book HiGHS found no solution to the 4-new-rep model in 20 s; SCIP proves
optimality in about 5 s.)
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from ortools.linear_solver.python import model_builder as mb

__all__ = ["Placement", "aggregate_points", "place_sites"]


@dataclass(frozen=True, eq=False)
class Placement:
    """The MIP's answer.

    ``open`` marks the open sites (fixed ones included); ``covered_share`` is the covered
    share of the demand's potential; ``travel`` is potential x km of the covered demand
    (currency*km); ``gap`` is the proven relative gap on the model's whole objective (travel
    plus the uncovered penalty); ``status`` is the solver's word, or ``LP_ROUNDED``.
    """

    open: np.ndarray
    covered_share: float
    travel: float
    gap: float
    status: str
    runtime_s: float
    num_links: int


def aggregate_points(x_km: np.ndarray, y_km: np.ndarray, max_points: int) -> np.ndarray:
    """Group points into at most ``max_points`` square cells; returns each point's cell.

    Cells are squares on a local plane (km); their side is the smallest (found by bisection,
    to 1 %) that leaves at most ``max_points`` non-empty cells. Deterministic: no random
    start. Cells are numbered in the order of their grid position.
    """
    if max_points < 1:
        raise ValueError(f"max_points must be >= 1, got {max_points}")
    x = np.asarray(x_km, float) - np.min(x_km)
    y = np.asarray(y_km, float) - np.min(y_km)
    span = max(float(x.max()), float(y.max()), 1e-6)

    def cells(size: float) -> np.ndarray:
        cx = np.floor(x / size).astype(np.int64)
        cy = np.floor(y / size).astype(np.int64)
        return np.unique(cx * (int(span / size) + 2) + cy, return_inverse=True)[1].ravel()

    lo, hi = span / 4096, 2.0 * span  # one cell at the top
    if cells(lo).max() + 1 <= max_points:
        return cells(lo)
    while hi / lo > 1.01:
        mid = np.sqrt(lo * hi)
        if cells(mid).max() + 1 <= max_points:
            hi = mid
        else:
            lo = mid
    return cells(hi)


def place_sites(
    demand_km: np.ndarray,
    demand_potential: np.ndarray,
    demand_visits: np.ndarray,
    demand_must: np.ndarray,
    site_capacity_h: np.ndarray,
    site_fixed: np.ndarray,
    num_open: int,
    *,
    minutes_per_visit: float,
    circuity: float,
    speed_kmh: float,
    tolerance: float,
    utilisation: float = 1.0,
    num_links: int = 12,
    time_limit_s: float = 20.0,
    relative_gap: float = 1e-3,
) -> Placement:
    """Open ``num_open`` of the sites not ``site_fixed``; see the module docstring.

    ``demand_km`` is ``(num_points, num_sites)`` great-circle km. Raises ``ValueError`` on
    inconsistent sizes or when fewer optional sites exist than must be opened.
    """
    d = np.asarray(demand_km, float)
    n, s = d.shape
    pot = np.asarray(demand_potential, float)
    visits = np.asarray(demand_visits, float)
    must = np.asarray(demand_must, bool)
    cap = np.asarray(site_capacity_h, float)
    fixed = np.asarray(site_fixed, bool)
    optional = np.flatnonzero(~fixed)
    if pot.shape != (n,) or visits.shape != (n,) or must.shape != (n,):
        raise ValueError("demand arrays must have one value per demand point")
    if cap.shape != (s,) or fixed.shape != (s,):
        raise ValueError("site arrays must have one value per site")
    if not 0 <= num_open <= optional.size:
        raise ValueError(f"cannot open {num_open} site(s): {optional.size} optional site(s) given")
    t0 = time.perf_counter()
    total_p = float(pot.sum()) or 1.0
    p = pot / total_p  # shares keep the MIP well scaled
    # Links: each demand point's nearest fixed sites and nearest optional sites.
    groups = [g for g in (np.flatnonzero(fixed), optional) if g.size]
    near = np.hstack(
        [g[np.argsort(d[:, g], axis=1, kind="stable")[:, : min(num_links, g.size)]] for g in groups]
    )
    links = near.shape[1]
    li = np.repeat(np.arange(n), links)
    lj = near.ravel()
    km = d[li, lj]
    hours = visits[li] * (minutes_per_visit / 60.0 + 2.0 * km * circuity / speed_kmh)
    scale_km = max(float(km.max()), 1.0)
    total_cap = cap[fixed].sum() + num_open * (cap[optional].mean() if optional.size else 0.0)
    w = cap / total_cap if total_cap > 0 else np.zeros(s)

    num_x = nl = li.size
    # Variables: x (links), u (demand points), y (sites).
    ix, iu, iy = 0, num_x, num_x + n
    num_vars = num_x + n + s
    lower = np.zeros(num_vars)
    upper = np.ones(num_vars)
    upper[iu : iu + n] = np.where(must, 0.0, 1.0)
    lower[iy + np.flatnonzero(fixed)] = 1.0
    penalty = 10.0  # per unit of potential share: above any p * km / scale_km (<= 1)
    cost = np.concatenate([p[li] * km / scale_km, penalty * p, np.zeros(s)])

    rows, cols, vals, lo, hi = [], [], [], [], []
    r = 0
    # (1) each demand point covered once, or left uncovered
    rows += [li, np.arange(n)]
    cols += [ix + np.arange(nl), iu + np.arange(n)]
    vals += [np.ones(nl), np.ones(n)]
    lo.append(np.ones(n))
    hi.append(np.ones(n))
    r += n
    # (2) x_ij <= y_j
    rows += [r + np.arange(nl), r + np.arange(nl)]
    cols += [ix + np.arange(nl), iy + lj]
    vals += [np.ones(nl), -np.ones(nl)]
    lo.append(np.full(nl, -np.inf))
    hi.append(np.zeros(nl))
    r += nl
    # (3) capacity: sum_i hours x_ij - U cap_j y_j <= 0
    rows += [r + lj, r + np.arange(s)]
    cols += [ix + np.arange(nl), iy + np.arange(s)]
    vals += [hours / max(cap.max(), 1.0), -utilisation * cap / max(cap.max(), 1.0)]
    lo.append(np.full(s, -np.inf))
    hi.append(np.zeros(s))
    r += s
    # (4) band maximum: sum_i p_i x_ij + (1 + tol) w_j sum_i p_i u_i <= (1 + tol) w_j
    up = 1.0 + tolerance
    rows += [r + lj, np.repeat(r + np.arange(s), n)]
    cols += [ix + np.arange(nl), np.tile(iu + np.arange(n), s)]
    vals += [p[li], np.repeat(up * w, n) * np.tile(p, s)]
    lo.append(np.full(s, -np.inf))
    hi.append(up * w)
    r += s
    # (5) band minimum when open:
    #     sum_i p_i x_ij + (1 - tol) w_j sum_i p_i u_i - (1 - tol) w_j y_j >= 0
    dn = 1.0 - tolerance
    rows += [r + lj, np.repeat(r + np.arange(s), n), r + np.arange(s)]
    cols += [ix + np.arange(nl), np.tile(iu + np.arange(n), s), iy + np.arange(s)]
    vals += [p[li], np.repeat(dn * w, n) * np.tile(p, s), -dn * w]
    lo.append(np.zeros(s))
    hi.append(np.full(s, np.inf))
    r += s
    # (6) open exactly num_open optional sites
    rows.append(np.full(optional.size, r))
    cols.append(iy + optional)
    vals.append(np.ones(optional.size))
    lo.append(np.array([float(num_open)]))
    hi.append(np.array([float(num_open)]))
    r += 1

    a = sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
        shape=(r, num_vars),
    )
    row_lo, row_hi = np.concatenate(lo), np.concatenate(hi)

    def solve(var_lo, var_hi, integral, limit):
        model = mb.Model()
        model.helper.fill_model_from_sparse_data(var_lo, var_hi, cost, row_lo, row_hi, a)
        if integral:
            for j in range(s):
                model.helper.set_var_integrality(iy + j, True)
        solver = mb.Solver("scip" if integral else "highs")
        solver.enable_output(False)
        if integral:
            solver.set_solver_specific_parameters(f"limits/gap = {relative_gap}")
        else:
            solver.set_solver_specific_parameters("output_flag=false\nlog_to_console=false")
        solver.set_time_limit_in_seconds(max(0.1, limit))
        status = solver.solve(model).name
        if status not in ("OPTIMAL", "FEASIBLE"):
            return status, None, float("nan"), float("-inf")
        v = solver.values(model.get_variables()).to_numpy()
        return status, v, float(solver.objective_value), float(solver.best_objective_bound)

    status, v, obj, bound = solve(lower, upper, True, time_limit_s)
    if v is None:
        # No MIP solution in time: open the optional sites the LP relaxation opens most
        # (ties by index), then the LP with those sites fixed assigns the demand.
        left = max(1.0, time_limit_s - (time.perf_counter() - t0))
        _, v_lp, lp_obj, _ = solve(lower, upper, False, left)
        if v_lp is None:
            runtime = time.perf_counter() - t0
            return Placement(fixed.copy(), 0.0, float("nan"), float("inf"), status, runtime, links)
        pick = optional[np.lexsort((optional, -v_lp[iy + optional]))[:num_open]]
        upper_r = upper.copy()
        upper_r[iy + optional] = 0.0
        upper_r[iy + pick] = 1.0
        lower_r = lower.copy()
        lower_r[iy + pick] = 1.0
        _, v, obj, _ = solve(lower_r, upper_r, False, left)
        if v is None:
            runtime = time.perf_counter() - t0
            return Placement(fixed.copy(), 0.0, float("nan"), float("inf"), status, runtime, links)
        status, bound = "LP_ROUNDED", lp_obj
    runtime = time.perf_counter() - t0
    is_open = v[iy : iy + s] > 0.5
    u = v[iu : iu + n]
    x = v[ix : ix + num_x]
    travel = float((p[li] * km) @ x) * total_p
    gap = max(0.0, (obj - bound) / max(abs(obj), 1e-12))
    return Placement(is_open, float(1.0 - p @ u), travel, gap, status, runtime, links)

"""Baselines for the scale benchmark: what a user would write instead of our engine.

Not part of the product. Three methods, each measured by ``scale_bench.py``:

- :func:`full_problem` and :func:`solve_naive_cpsat`: the naive CP-SAT model over every
  account-rep pair (n x r Booleans), built with progress reported so that a run that dies
  while building says how far it got;
- :func:`local_search`: greedy-then-local-search, shift and swap moves between candidate reps,
  first improvement, keeping bands, capacity and transfer limits, capped in time;
- :func:`score_plan`: one independent scoring of any plan against the book itself (not a
  candidate list), so plans from different models are compared on the same figures.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from solvers.problem import AlignmentProblem

__all__ = ["Book", "full_problem", "score_plan", "solve_naive_cpsat", "local_search"]


@dataclass(frozen=True, eq=False)
class Book:
    """A book as arrays: what every method's plan is scored against.

    ``target`` is each rep's potential target (its share of capacity times the total
    potential, as ``territory_opt.problem.build_problem`` sets it); the band is
    ``target x (1 +- tolerance)``. ``current`` is -1 without a current alignment.
    """

    lat: np.ndarray
    lon: np.ndarray
    potential: np.ndarray
    visits: np.ndarray
    rep_lat: np.ndarray
    rep_lon: np.ndarray
    capacity_h: np.ndarray
    current: np.ndarray
    tolerance: float
    transfer_share: float | None = None

    @property
    def target(self) -> np.ndarray:
        return self.potential.sum() * self.capacity_h / self.capacity_h.sum()

    @property
    def num_units(self) -> int:
        return int(self.potential.size)

    @property
    def num_reps(self) -> int:
        return int(self.capacity_h.size)


def _haversine_km(lat1, lon1, lat2, lon2) -> np.ndarray:
    from territory_opt.geo import haversine_km

    return haversine_km(lat1, lon1, lat2, lon2)


def _workload_h(visits, km) -> np.ndarray:
    from territory_opt.config import WorkloadSettings
    from territory_opt.workload import workload_h

    return workload_h(visits, km, WorkloadSettings())


def score_plan(book: Book, plan: np.ndarray) -> dict:
    """Figures of a plan recomputed from the book: every rule and the objective.

    Returns ``assigned`` (every account has a rep), ``ok`` (bands, capacity and, when the
    book has one, the transfer limit all hold, up to 1e-9 relative), ``worst_dev_pct``
    (largest |potential - target| / target), ``worst_util`` (largest workload / capacity),
    ``objective`` (sum of potential x great-circle km, currency*km), and with a current
    alignment ``max_moved_pct`` (largest share of a rep's current accounts or potential that
    leaves it).
    """
    plan = np.asarray(plan, dtype=np.int64)
    r = book.num_reps
    out = {
        "assigned": bool(plan.shape == book.potential.shape and np.all((plan >= 0) & (plan < r)))
    }
    if not out["assigned"]:
        return out | {"ok": False}
    km = _haversine_km(book.lat, book.lon, book.rep_lat[plan], book.rep_lon[plan])
    load = np.bincount(plan, weights=book.potential, minlength=r)
    work = np.bincount(plan, weights=_workload_h(book.visits, km), minlength=r)
    target = book.target
    dev = np.abs(load / target - 1)
    tol = 1e-9
    ok = bool(np.all(dev <= book.tolerance + tol) and np.all(work <= book.capacity_h * (1 + tol)))
    out |= {
        "worst_dev_pct": float(100 * dev.max()),
        "worst_util": float(np.max(work / book.capacity_h)),
        "objective": float(np.sum(book.potential * km)),
    }
    if np.all(book.current >= 0):
        moved = plan != book.current
        cnt = np.bincount(book.current, minlength=r)
        pot = np.bincount(book.current, weights=book.potential, minlength=r)
        out_cnt = np.bincount(book.current[moved], minlength=r)
        out_pot = np.bincount(book.current[moved], weights=book.potential[moved], minlength=r)
        with np.errstate(divide="ignore", invalid="ignore"):
            share = np.nanmax(np.r_[out_cnt / cnt, out_pot / pot])
        out["max_moved_pct"] = float(100 * share)
        if book.transfer_share is not None:
            ok = ok and share <= book.transfer_share + tol
    return out | {"ok": ok}


def full_problem(book: Book, *, max_pairs: int | None = None) -> AlignmentProblem:
    """The alignment over every account-rep pair (n x r pairs), as the naive model sees it."""
    n, r = book.num_units, book.num_reps
    if max_pairs is not None and n * r > max_pairs:
        raise MemoryError(f"{n * r:,} pairs exceed the limit of {max_pairs:,}")
    unit = np.repeat(np.arange(n), r)
    rep = np.tile(np.arange(r), n)
    km = _haversine_km(book.lat[unit], book.lon[unit], book.rep_lat[rep], book.rep_lon[rep])
    target = book.target
    return AlignmentProblem(
        cand_indptr=np.arange(0, n * r + 1, r),
        cand_rep=rep,
        pair_cost=book.potential[unit] * km,
        pair_workload_h=_workload_h(book.visits[unit], km),
        unit_measure=book.potential[:, None],
        measure_lo=(target * (1 - book.tolerance))[:, None],
        measure_hi=(target * (1 + book.tolerance))[:, None],
        measure_target=target[:, None],
        capacity_h=book.capacity_h,
        fixed_rep=np.full(n, -1),
        current_rep=book.current,
    )


# --- naive CP-SAT over every pair ------------------------------------------------------------


def solve_naive_cpsat(
    book: Book,
    *,
    time_limit_s: float,
    num_workers: int = 2,
    progress: Callable[[str, int], None] | None = None,
) -> dict:
    """The model a user writes first: one Boolean per account-rep pair, all n x r of them.

    Same rules as ours: exactly one rep per account, every rep's potential in its band,
    workload within capacity (travel from each rep's base), and with ``transfer_share`` at
    least ``1 - transfer_share`` of each rep's current accounts and potential kept. Data are
    scaled to integers with the product's quanta (limits tightened by the worst rounding).
    ``progress(phase, pairs_built)`` is called after each rep's column. Returns the CP-SAT
    status, the plan (or None), CP-SAT's bound in currency*km, build and solve seconds.
    """
    from ortools.sat.python import cp_model

    from solvers.cpsat.scaling import quantise, scaled_lower, scaled_upper

    t0 = time.perf_counter()
    n, r = book.num_units, book.num_reps
    report = progress or (lambda phase, pairs: None)
    report("building", 0)
    target = book.target
    q_pot = quantise("potential", book.potential)
    pot_int = [int(c) for c in q_pot.to_int(book.potential)]
    # Quanta need the maxima over all pairs: the farthest pair bounds cost and workload.
    far_km = 20_038.0  # half the Earth's circumference, a safe upper bound on any distance
    q_cost = quantise("pair_cost", np.array([book.potential.max() * far_km]))
    q_work = quantise("workload_h", _workload_h(np.array([book.visits.max()]), np.array([far_km])))
    model = cp_model.CpModel()
    cols: list[list] = []
    obj_vars: list = []
    obj_coef: list[int] = []
    has_cur = np.all(book.current >= 0) and book.transfer_share is not None
    for j in range(r):
        km = _haversine_km(book.lat, book.lon, book.rep_lat[j], book.rep_lon[j])
        xs = [model.new_bool_var(f"x{j}_{u}") for u in range(n)]
        lo = scaled_lower(q_pot, float(target[j] * (1 - book.tolerance)), n)
        hi = scaled_upper(q_pot, float(target[j] * (1 + book.tolerance)), n, float(target[j]))
        model.add_linear_constraint(cp_model.LinearExpr.weighted_sum(xs, pot_int), lo, hi)
        wl = [int(c) for c in q_work.to_int(_workload_h(book.visits, km))]
        cap = scaled_upper(q_work, float(book.capacity_h[j]), n, float(book.capacity_h[j]))
        model.add(cp_model.LinearExpr.weighted_sum(xs, wl) <= cap)
        if has_cur:
            mine = np.flatnonzero(book.current == j)
            keep = 1 - book.transfer_share
            mine_x = [xs[u] for u in mine]
            model.add(sum(mine_x) >= int(np.ceil(keep * mine.size - 1e-9)))
            need = scaled_lower(q_pot, float(keep * book.potential[mine].sum()), mine.size)
            model.add(cp_model.LinearExpr.weighted_sum(mine_x, [pot_int[u] for u in mine]) >= need)
        obj_vars.extend(xs)
        obj_coef.extend(int(c) for c in q_cost.to_int(book.potential * km))
        cols.append(xs)
        report("building", (j + 1) * n)
    for u in range(n):
        model.add_exactly_one([cols[j][u] for j in range(r)])
    model.minimize(cp_model.LinearExpr.weighted_sum(obj_vars, obj_coef))
    built = time.perf_counter() - t0
    report("solving", n * r)
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = max(1.0, time_limit_s - built)
    solver.parameters.num_workers = num_workers
    status = solver.solve(model)
    name = solver.status_name(status)
    plan = None
    if status in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        plan = np.empty(n, dtype=np.int64)
        for j in range(r):
            vals = np.array([solver.boolean_value(v) for v in cols[j]])
            plan[vals] = j
    bound = float(solver.best_objective_bound) * q_cost.q if plan is not None else float("nan")
    return {
        "status": name,
        "plan": plan,
        "bound": bound,
        "build_s": built,
        "solve_s": time.perf_counter() - t0 - built,
    }


# --- greedy, then local search ---------------------------------------------------------------


class _State:
    """Loads of a plan on a sparse problem, updated move by move."""

    def __init__(self, problem: AlignmentProblem, plan: np.ndarray, keep_min: np.ndarray | None):
        p = problem
        self.p = p
        self.a = np.asarray(plan, dtype=np.int64).copy()
        self.pair = p.pair_index(np.arange(p.num_units), self.a)
        if np.any(self.pair < 0):
            raise ValueError("start plan uses a rep that is not a candidate")
        r = p.num_reps
        self.pot = p.unit_measure[:, 0]
        self.load = np.bincount(self.a, weights=self.pot, minlength=r)
        self.work = np.bincount(self.a, weights=p.pair_workload_h[self.pair], minlength=r)
        self.cur = p.current_rep.astype(np.int64)
        self.keep_min = keep_min  # (r, 2): accounts and potential that must stay, or None
        stay = (self.cur >= 0) & (self.a == self.cur)
        self.kept = np.c_[
            np.bincount(self.a[stay], minlength=r),
            np.bincount(self.a[stay], weights=self.pot[stay], minlength=r),
        ].astype(float)
        self.lo, self.hi = p.measure_lo[:, 0], p.measure_hi[:, 0]
        self.cap = p.capacity_h
        self.scale = np.maximum(p.measure_target[:, 0], 1e-9)

    def violation(self, load, work, kept, reps) -> np.ndarray:
        """Scaled violation of reps ``reps`` with the given loads (vectorised)."""
        v = (np.maximum(self.lo[reps] - load, 0) + np.maximum(load - self.hi[reps], 0)) / (
            self.scale[reps]
        )
        v += np.maximum(work - self.cap[reps], 0) / self.cap[reps]
        if self.keep_min is not None:
            short = np.maximum(self.keep_min[reps] - kept, 0)
            v += (
                short[:, 0] / np.maximum(self.keep_min[reps, 0], 1) + short[:, 1] / self.scale[reps]
            )
        return v

    def total_violation(self) -> float:
        reps = np.arange(self.p.num_reps)
        return float(self.violation(self.load, self.work, self.kept, reps).sum())

    def apply(self, u: int, p_new: int) -> None:
        p = self.p
        frm, to = int(self.a[u]), int(p.cand_rep[p_new])
        self.load[frm] -= self.pot[u]
        self.load[to] += self.pot[u]
        self.work[frm] -= p.pair_workload_h[self.pair[u]]
        self.work[to] += p.pair_workload_h[p_new]
        if self.cur[u] == frm:
            self.kept[frm] -= (1.0, self.pot[u])
        if self.cur[u] == to:
            self.kept[to] += (1.0, self.pot[u])
        self.a[u] = to
        self.pair[u] = p_new


def _shift_round(s: _State, *, repair: bool, batch: int) -> int:
    """One batch of shift moves; returns how many were made.

    Every candidate pair is a move of its unit to that rep. With ``repair`` a move must
    lower the total violation; otherwise it must lower the cost and break nothing. The
    improving moves are taken best first, at most one per rep per batch (so that the loads
    each was judged on still hold).
    """
    p = s.p
    units = p.pair_unit
    frm = s.a[units]
    to = p.cand_rep.astype(np.int64)
    ok = (to != frm) & (p.fixed_rep[units] < 0)
    idx = np.flatnonzero(ok)
    u, f, t = units[idx], frm[idx], to[idx]
    pot = s.pot[u]
    wl_old = p.pair_workload_h[s.pair[u]]
    wl_new = p.pair_workload_h[idx]
    kf = s.kept[f] - np.where(s.cur[u] == f, 1, 0)[:, None] * np.c_[np.ones_like(pot), pot]
    kt = s.kept[t] + np.where(s.cur[u] == t, 1, 0)[:, None] * np.c_[np.ones_like(pot), pot]
    lf, lt = s.load[f] - pot, s.load[t] + pot
    wf, wt = s.work[f] - wl_old, s.work[t] + wl_new
    dcost = p.pair_cost[idx] - p.pair_cost[s.pair[u]]
    before = s.violation(s.load[f], s.work[f], s.kept[f], f) + s.violation(
        s.load[t], s.work[t], s.kept[t], t
    )
    after = s.violation(lf, wf, kf, f) + s.violation(lt, wt, kt, t)
    if repair:
        good = after < before - 1e-12
        key = (after - before) * 1e6 + dcost / max(float(np.abs(dcost).max()), 1e-9)
    else:
        good = (after <= 1e-12) & (dcost < 0)
        key = dcost
    cand = np.flatnonzero(good)
    if cand.size == 0:
        return 0
    cand = cand[np.argsort(key[cand], kind="stable")][: batch * 4]
    used = np.zeros(p.num_reps, dtype=bool)
    made = 0
    for c in cand:
        if used[f[c]] or used[t[c]]:
            continue
        used[f[c]] = used[t[c]] = True
        s.apply(int(u[c]), int(idx[c]))
        made += 1
        if made >= batch:
            break
    return made


def _swap_round(s: _State, by_rep: list[np.ndarray], deadline: float, tries: int) -> int:
    """Swap moves: unit u on r1 goes to r2 and unit v on r2 to r1, when the pair of moves
    lowers the cost and breaks nothing (where a single shift would break a band)."""
    p = s.p
    units = p.pair_unit
    frm = s.a[units]
    idx = np.flatnonzero((p.cand_rep != frm) & (p.fixed_rep[units] < 0))
    dcost = p.pair_cost[idx] - p.pair_cost[s.pair[units[idx]]]
    idx = idx[np.argsort(dcost, kind="stable")][:tries]
    made = 0
    for pu in idx:
        if time.perf_counter() > deadline:
            break
        u = int(units[pu])
        r1, r2 = int(s.a[u]), int(p.cand_rep[pu])
        if r1 == r2:
            continue
        d_u = p.pair_cost[pu] - p.pair_cost[s.pair[u]]
        if d_u >= 0:
            break
        back = by_rep[r1]  # pairs (v, r1)
        v = units[back]
        sel = (s.a[v] == r2) & (p.fixed_rep[v] < 0)
        if not sel.any():
            continue
        pv, v = back[sel], v[sel]
        d = d_u + p.pair_cost[pv] - p.pair_cost[s.pair[v]]
        pot_u, pot_v = s.pot[u], s.pot[v]
        l1 = s.load[r1] - pot_u + pot_v
        l2 = s.load[r2] + pot_u - pot_v
        w1 = s.work[r1] - p.pair_workload_h[s.pair[u]] + p.pair_workload_h[pv]
        w2 = s.work[r2] + p.pair_workload_h[pu] - p.pair_workload_h[s.pair[v]]
        ok = (d < 0) & (l1 >= s.lo[r1]) & (l1 <= s.hi[r1]) & (l2 >= s.lo[r2]) & (l2 <= s.hi[r2])
        ok &= (w1 <= s.cap[r1]) & (w2 <= s.cap[r2])
        if s.keep_min is not None:
            k1 = s.kept[r1] - (s.cur[u] == r1) * np.array([1.0, pot_u])
            k2 = s.kept[r2] + (s.cur[u] == r2) * np.array([1.0, pot_u])
            k1 = k1[None, :] + (s.cur[v] == r1)[:, None] * np.c_[np.ones_like(pot_v), pot_v]
            k2 = k2[None, :] - (s.cur[v] == r2)[:, None] * np.c_[np.ones_like(pot_v), pot_v]
            ok &= np.all(k1 >= s.keep_min[r1], axis=1) & np.all(k2 >= s.keep_min[r2], axis=1)
        if not ok.any():
            continue
        k = int(np.flatnonzero(ok)[np.argmin(d[ok])])
        s.apply(u, int(pu))
        s.apply(int(v[k]), int(pv[k]))
        made += 1
    return made


def local_search(
    problem: AlignmentProblem,
    start: np.ndarray,
    *,
    time_limit_s: float,
    keep_share: float | None = None,
) -> tuple[np.ndarray, dict]:
    """Shift and swap moves between candidate reps from ``start``, until no move helps or
    time runs out.

    Phase 1 (only while ``start`` breaks a rule) takes shift moves that lower the total
    scaled violation. Phase 2 takes moves that lower the travel objective and keep every
    band, capacity and, with ``keep_share``, every rep keeping that share of its current
    accounts and potential. Returns the plan and statistics.
    """
    deadline = time.perf_counter() + time_limit_s
    keep_min = None
    if keep_share is not None and np.all(problem.current_rep >= 0):
        cur = problem.current_rep
        r = problem.num_reps
        pot = problem.unit_measure[:, 0]
        keep_min = keep_share * np.c_[
            np.bincount(cur, minlength=r), np.bincount(cur, weights=pot, minlength=r)
        ].astype(float)
        keep_min[:, 0] = np.ceil(keep_min[:, 0] - 1e-9)
    s = _State(problem, start, keep_min)
    stats = {"repair_moves": 0, "shift_moves": 0, "swap_moves": 0}
    batch = max(1, problem.num_reps // 2)
    while s.total_violation() > 1e-12 and time.perf_counter() < deadline:
        made = _shift_round(s, repair=True, batch=batch)
        stats["repair_moves"] += made
        if made == 0:
            break
    stats["start_feasible"] = stats["repair_moves"] == 0 and s.total_violation() <= 1e-12
    order = np.argsort(problem.cand_rep, kind="stable")
    splits = np.searchsorted(problem.cand_rep[order], np.arange(1, problem.num_reps))
    by_rep = np.split(order, splits)
    if s.total_violation() <= 1e-12:
        while time.perf_counter() < deadline:
            made = _shift_round(s, repair=False, batch=batch)
            stats["shift_moves"] += made
            if made:
                continue
            made = _swap_round(s, by_rep, deadline, tries=20 * problem.num_reps)
            stats["swap_moves"] += made
            if made == 0:
                break
    stats["stopped_by_clock"] = time.perf_counter() >= deadline
    stats["violation_left"] = s.total_violation()
    return s.a.copy(), stats

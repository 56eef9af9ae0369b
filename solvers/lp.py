"""The linear relaxation of the alignment, solved with an LP/MIP solver bundled in OR-Tools.

Assignment with per-rep bands is transportation-like: at an optimal vertex only a handful of
units per binding constraint are split between reps, so the relaxation gives both a proven
lower bound and an almost integral plan in seconds. The same arrays, with integrality, are
the MIP baseline.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
from ortools.linear_solver.python import model_builder as mb

from .problem import AlignmentProblem

__all__ = ["LpSolution", "Relaxation", "solve_relaxation", "solve_mip", "solve_elastic"]


@dataclass(frozen=True, eq=False)
class LpSolution:
    """Outcome of the relaxation (or of the MIP when ``integral``).

    ``x`` is the value of every candidate pair; ``bound`` a proven lower bound on the
    objective of any integral plan over the same candidates (currency*km); ``status`` the
    solver's word (``OPTIMAL``, ``INFEASIBLE``, ``FEASIBLE``, ...).
    """

    status: str
    x: np.ndarray
    objective: float
    bound: float
    runtime_s: float
    solver: str

    @property
    def feasible(self) -> bool:
        return self.status in ("OPTIMAL", "FEASIBLE")

    def split_units(self, problem: AlignmentProblem, tol: float = 1e-6) -> np.ndarray:
        """Units whose value is shared between several reps."""
        frac = (self.x > tol) & (self.x < 1 - tol)
        return np.unique(problem.pair_unit[frac])

    def rounded(self, problem: AlignmentProblem) -> np.ndarray:
        """Each unit to the rep holding its largest share (locked units to their rep)."""
        n = problem.num_units
        order = np.lexsort((-self.x, problem.pair_unit))
        first = np.r_[True, problem.pair_unit[order][1:] != problem.pair_unit[order][:-1]]
        best = order[first]
        out = np.empty(n, dtype=np.int64)
        out[problem.pair_unit[best]] = problem.cand_rep[best]
        locked = problem.fixed_rep >= 0
        out[locked] = problem.fixed_rep[locked]
        return out


def _keep_rows(problem: AlignmentProblem):
    """Transfer-limit rows over the stay pairs: per keep measure, one row per rep with a
    positive ``keep_min``, then one overall row when ``keep_min_total`` is positive.

    Returns the block, its lower limits, and per row ``(rep or -1, keep measure)``.
    """
    p, r = problem.num_pairs, problem.num_reps
    stay = problem.stay_pairs
    units = problem.pair_unit[stay]
    blocks, lo, who = [], [], []
    for t in range(problem.num_keep):
        vals = problem.keep_measure[units, t]
        reps = np.flatnonzero(problem.keep_min[:, t] > 0)
        per_rep = sp.csr_matrix((vals, (problem.cand_rep[stay], stay)), shape=(r, p))
        blocks.append(per_rep[reps])
        lo.append(problem.keep_min[reps, t])
        who += [(int(i), t) for i in reps]
        if problem.keep_min_total[t] > 0:
            blocks.append(sp.csr_matrix((vals, (np.zeros(stay.size, int), stay)), shape=(1, p)))
            lo.append(problem.keep_min_total[t : t + 1])
            who.append((-1, t))
    if not blocks:
        return sp.csr_matrix((0, p)), np.zeros(0), []
    return sp.vstack(blocks).tocsr(), np.concatenate(lo), who


def _arrays(problem: AlignmentProblem):
    """Constraint matrix rows: assign-once, finite band rows, finite capacity rows, then
    the transfer-limit rows (:func:`_keep_rows`)."""
    n, r, p = problem.num_units, problem.num_reps, problem.num_pairs
    cols = np.arange(p)
    blocks = [sp.csr_matrix((np.ones(p), (problem.pair_unit, cols)), shape=(n, p))]
    lo = [np.ones(n)]
    hi = [np.ones(n)]
    for j in range(problem.num_measures):
        keep = np.isfinite(problem.measure_lo[:, j]) | np.isfinite(problem.measure_hi[:, j])
        block = sp.csr_matrix(
            (problem.unit_measure[problem.pair_unit, j], (problem.cand_rep, cols)), shape=(r, p)
        )
        blocks.append(block[keep])
        lo.append(problem.measure_lo[keep, j])
        hi.append(problem.measure_hi[keep, j])
    keep = np.isfinite(problem.capacity_h)
    block = sp.csr_matrix((problem.pair_workload_h, (problem.cand_rep, cols)), shape=(r, p))
    blocks.append(block[keep])
    lo.append(np.full(int(keep.sum()), -np.inf))
    hi.append(problem.capacity_h[keep])
    block, keep_lo, _ = _keep_rows(problem)
    blocks.append(block)
    lo.append(keep_lo)
    hi.append(np.full(keep_lo.size, np.inf))
    var_lo = np.zeros(p)
    locked = np.flatnonzero(problem.fixed_rep >= 0)
    if locked.size:
        var_lo[problem.pair_index(locked, problem.fixed_rep[locked])] = 1.0
    return sp.vstack(blocks).tocsr(), np.concatenate(lo), np.concatenate(hi), var_lo


def _solve(problem, integral, backend, time_limit_s) -> LpSolution:
    t0 = time.perf_counter()
    a, lo, hi, var_lo = _arrays(problem)
    # Costs in currency*km reach 1e10 and beyond; dividing by the mean keeps the solver's
    # tolerances meaningful.
    scale = float(problem.pair_cost.mean()) or 1.0
    model = mb.Model()
    model.helper.fill_model_from_sparse_data(
        var_lo, np.ones(problem.num_pairs), problem.pair_cost / scale, lo, hi, a
    )
    if integral:
        for i in range(problem.num_pairs):
            model.helper.set_var_integrality(i, True)
        # No warm start: in OR-Tools 9.15 a hint passed to HiGHS through model_builder
        # crashes the process (segmentation fault), so none is given.
    solver = mb.Solver(backend)
    if not solver.solver_is_supported():
        raise RuntimeError(f"LP/MIP backend {backend!r} is not available in this OR-Tools build")
    solver.enable_output(False)
    if backend == "highs":
        solver.set_solver_specific_parameters("output_flag=false\nlog_to_console=false")
    solver.set_time_limit_in_seconds(max(0.1, time_limit_s))
    status = solver.solve(model)
    name = status.name
    if name in ("OPTIMAL", "FEASIBLE"):
        x = solver.values(model.get_variables()).to_numpy()
        objective = float(problem.pair_cost @ x)
        if integral:
            bound = float(solver.best_objective_bound) * scale
        else:
            bound = objective if name == "OPTIMAL" else float("-inf")
    else:
        x = np.zeros(problem.num_pairs)
        objective, bound = float("nan"), float("-inf")
    return LpSolution(name, x, objective, bound, time.perf_counter() - t0, backend)


def solve_relaxation(
    problem: AlignmentProblem, *, time_limit_s: float = 60.0, backend: str = "highs"
) -> LpSolution:
    """Solve the linear relaxation; its optimum is a proven lower bound for the plan."""
    return _solve(problem, False, backend, time_limit_s)


def solve_mip(
    problem: AlignmentProblem,
    *,
    time_limit_s: float = 60.0,
    backend: str = "highs",
) -> LpSolution:
    """The same sparse model as a MIP (HiGHS or SCIP): the LNS sub-solver and the
    benchmarks' MIP baseline."""
    return _solve(problem, True, backend, time_limit_s)


@dataclass(frozen=True, eq=False)
class Relaxation:
    """The least relaxation that makes the relaxation feasible (an elastic LP).

    ``band_short[r, j]``: how far rep ``r``'s measure ``j`` must be allowed below its band
    minimum; ``band_over[r, j]``: above its maximum; ``capacity_over[r]``: hours above
    capacity; ``keep_short[r, t]``: how much less of rep ``r``'s current book than
    ``keep_min`` must be allowed to stay (transfer limit); ``keep_total_short[t]``: the same
    for the overall limit. All zero when the problem is feasible as it stands. Each amount
    is in the measure's own units; the LP minimises their sum relative to each target,
    capacity or transfer minimum.
    """

    status: str
    band_short: np.ndarray
    band_over: np.ndarray
    capacity_over: np.ndarray
    keep_short: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    keep_total_short: np.ndarray = field(default_factory=lambda: np.zeros(0))


def solve_elastic(
    problem: AlignmentProblem, *, time_limit_s: float = 60.0, backend: str = "highs"
) -> Relaxation:
    """Which limits must give, and by how much, for the relaxation to become feasible."""
    a, lo, hi, var_lo = _arrays(problem)
    r, m = problem.num_reps, problem.num_measures
    # Row layout of _arrays: one assign row per unit, then per measure the rows of reps
    # with a finite band, then the rows of reps with a finite capacity, then the transfer
    # rows.
    rows_band = []
    for j in range(m):
        keep = np.isfinite(problem.measure_lo[:, j]) | np.isfinite(problem.measure_hi[:, j])
        rows_band.append((j, np.flatnonzero(keep)))
    cap_reps = np.flatnonzero(np.isfinite(problem.capacity_h))
    k_band = sum(reps.size for _, reps in rows_band)
    k_cap = cap_reps.size
    band_rows = problem.num_units + np.arange(k_band)
    cap_rows = problem.num_units + k_band + np.arange(k_cap)
    # Slacks are measured in units of each target (or capacity), so every slack costs 1
    # and the LP stays well scaled whatever the currency.
    scale_band = np.concatenate(
        [np.zeros(0)]
        + [np.maximum(np.abs(problem.measure_target[reps, j]), 1e-9) for j, reps in rows_band]
    )
    scale_cap = np.maximum(problem.capacity_h[cap_reps], 1e-9)
    nrows = a.shape[0]
    short = sp.csr_matrix((scale_band, (band_rows, np.arange(k_band))), shape=(nrows, k_band))
    over = sp.csr_matrix((-scale_band, (band_rows, np.arange(k_band))), shape=(nrows, k_band))
    cap = sp.csr_matrix((-scale_cap, (cap_rows, np.arange(k_cap))), shape=(nrows, k_cap))
    _, keep_lo, keep_who = _keep_rows(problem)
    k_keep = keep_lo.size
    keep_rows = problem.num_units + k_band + k_cap + np.arange(k_keep)
    scale_keep = np.maximum(keep_lo, 1e-9)
    keep = sp.csr_matrix((scale_keep, (keep_rows, np.arange(k_keep))), shape=(nrows, k_keep))
    full = sp.hstack([a, short, over, cap, keep]).tocsr()
    num_slack = 2 * k_band + k_cap + k_keep
    cost = np.concatenate([np.zeros(problem.num_pairs), np.ones(num_slack)])
    upper = np.concatenate([np.ones(problem.num_pairs), np.full(num_slack, np.inf)])
    lower = np.concatenate([var_lo, np.zeros(num_slack)])
    model = mb.Model()
    model.helper.fill_model_from_sparse_data(lower, upper, cost, lo, hi, full)
    solver = mb.Solver(backend)
    solver.enable_output(False)
    if backend == "highs":
        # Zero pair costs make this LP massively degenerate; simplex stalls on it, the
        # interior-point method does not.
        solver.set_solver_specific_parameters("output_flag=false\nlog_to_console=false\nsolver=ipm")
    solver.set_time_limit_in_seconds(max(0.1, time_limit_s))
    status = solver.solve(model).name
    band_short = np.zeros((r, m))
    band_over = np.zeros((r, m))
    cap_over = np.zeros(r)
    keep_short = np.zeros((r, problem.num_keep))
    keep_total_short = np.zeros(problem.num_keep)
    if status in ("OPTIMAL", "FEASIBLE"):
        x = solver.values(model.get_variables()).to_numpy()[problem.num_pairs :]
        s_short = x[:k_band] * scale_band
        s_over = x[k_band : 2 * k_band] * scale_band
        offset = 0
        for j, reps in rows_band:
            band_short[reps, j] = s_short[offset : offset + reps.size]
            band_over[reps, j] = s_over[offset : offset + reps.size]
            offset += reps.size
        cap_over[cap_reps] = x[2 * k_band : 2 * k_band + k_cap] * scale_cap
        s_keep = x[2 * k_band + k_cap :] * scale_keep
        for (i, t), amount in zip(keep_who, s_keep, strict=True):
            if i >= 0:
                keep_short[i, t] = amount
            else:
                keep_total_short[t] = amount
    return Relaxation(status, band_short, band_over, cap_over, keep_short, keep_total_short)

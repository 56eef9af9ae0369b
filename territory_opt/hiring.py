"""A hiring plan over the plan year: ramp to productivity, expected attrition, least hires.

Months are numbered from the plan year's first month (0 .. 11); hiring may start
``lead_months`` earlier (negative months). With the monthly hazard
``h = 1 - (1 - annual_attrition) ** (1 / 12)`` and the ramp ``ramp(n) = min(1, (n - 1/2) / R)``
for the n-th month of tenure (n = 1 is the start month; ``R = ramp_months``; 0 before it).
Productivity rises linearly over the ramp and each month counts at its midpoint: the same
convention as the rebalance's ramp factor (:func:`territory_opt.changes.ramp_factor`) and
the quotas' (:func:`territory_opt.quota_algorithms.ramp_factor`), so one 6-month ramp means
0.75 of a year's output in every module.

* an existing rep of ``fte`` who started in month ``m0`` gives, in month ``t``,
  ``fte * (1 - h) ** (t - t_first) * ramp(t - m0 + 1)`` effective FTE (``t_first`` is the
  first month of the timeline; a rep without a start date is fully productive);
* a hire in month ``s`` gives ``new_fte * (1 - h) ** (t - s) * ramp(t - s + 1)`` for t >= s.

These are expected values (a cohort shrinks by the hazard each month). The plan is a small
MIP (HiGHS, bundled in OR-Tools): integer hires per month minimising, first, the effective
FTE-months below the requirement in the plan year and, second, the payroll months of the
hires up to the year's end.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from ortools.linear_solver.python import model_builder as mb

__all__ = ["HiringPlan", "ramp", "hiring_plan"]

# Weight of one FTE-month of shortfall against one payroll month: shortfall comes first.
_SHORTFALL_WEIGHT = 1000.0


def ramp(tenure_month: np.ndarray, ramp_months: float) -> np.ndarray:
    """Productivity in the n-th month of tenure (share of a full month's output): 0 for
    n <= 0, else ``min(1, (n - 1/2) / ramp_months)``, a linear ramp at the month's midpoint."""
    n = np.asarray(tenure_month, float)
    if ramp_months <= 0:
        return np.where(n >= 1, 1.0, 0.0)
    return np.where(n >= 1, np.minimum(1.0, (n - 0.5) / ramp_months), 0.0)


@dataclass(frozen=True, eq=False)
class HiringPlan:
    """``table``: one row per month (``month``, ``in_plan_year``, ``hires``,
    ``headcount_fte``, ``leavers_fte``, ``effective_fte``, ``required_fte``,
    ``shortfall_fte``); ``status`` is the MIP's word; ``total_hires`` the sum of hires."""

    table: pd.DataFrame
    status: str
    total_hires: int


def hiring_plan(
    existing_fte: np.ndarray,
    existing_start: pd.Series | np.ndarray,
    required_fte: float,
    *,
    plan_start: pd.Period,
    ramp_months: int,
    monthly_hazard: float,
    lead_months: int,
    new_fte: float = 1.0,
    max_hires_per_month: int | None = None,
) -> HiringPlan:
    """Least hires per month keeping effective FTE >= ``required_fte`` in every plan month.

    ``existing_start`` holds each current rep's start date (``NaT``: fully productive).
    """
    fte = np.asarray(existing_fte, float)
    start = pd.to_datetime(pd.Series(existing_start), errors="coerce")
    months = np.arange(-lead_months, 12)
    t_first = months[0]
    period0 = pd.Period(plan_start, freq="M")
    # Tenure month of each existing rep in each timeline month (start month = 1).
    start_idx = np.array(
        [np.inf if pd.isna(d) else (pd.Period(d, freq="M") - period0).n for d in start],
        dtype=float,
    )
    tenure = months[None, :] - start_idx[:, None] + 1
    tenure = np.where(np.isfinite(start_idx)[:, None], tenure, np.inf)
    survive = (1.0 - monthly_hazard) ** (months - t_first)
    base_eff = (fte[:, None] * ramp(tenure, ramp_months)).sum(axis=0) * survive
    base_head = fte.sum() * survive
    # contrib[s, t]: effective FTE in month t of one hire in month s.
    lag = months[None, :] - months[:, None]
    contrib = np.where(
        lag >= 0,
        new_fte * (1.0 - monthly_hazard) ** np.maximum(lag, 0) * ramp(lag + 1, ramp_months),
        0.0,
    )
    head = np.where(lag >= 0, new_fte * (1.0 - monthly_hazard) ** np.maximum(lag, 0), 0.0)
    plan_months = np.flatnonzero(months >= 0)
    num_s, num_t = months.size, plan_months.size
    # Variables: hires per timeline month, then shortfall per plan month.
    upper_h = float(max_hires_per_month) if max_hires_per_month is not None else 1e4
    lower = np.zeros(num_s + num_t)
    upper = np.r_[np.full(num_s, upper_h), np.full(num_t, np.inf)]
    payroll = (11 - months + 1) / 12.0  # payroll years to the plan year's end
    cost = np.r_[payroll, np.full(num_t, _SHORTFALL_WEIGHT)]
    # Rows: sum_s hires_s contrib[s, t] + short_t >= required - base_eff[t]
    a = np.hstack([contrib[:, plan_months].T, np.eye(num_t)])
    lo = required_fte - base_eff[plan_months]
    model = mb.Model()
    model.helper.fill_model_from_sparse_data(
        lower, upper, cost, lo, np.full(num_t, np.inf), _csr(a)
    )
    for s in range(num_s):
        model.helper.set_var_integrality(s, True)
    solver = mb.Solver("highs")
    solver.enable_output(False)
    solver.set_solver_specific_parameters(
        "output_flag=false\nlog_to_console=false\nthreads=1\nmip_rel_gap=0"
    )
    solver.set_time_limit_in_seconds(10.0)
    status = solver.solve(model).name
    if status not in ("OPTIMAL", "FEASIBLE"):
        raise RuntimeError(f"the hiring plan's MIP ended {status}")
    hires = np.round(solver.values(model.get_variables()).to_numpy()[:num_s]).astype(int)
    effective = base_eff + hires @ contrib
    headcount = base_head + hires @ head
    table = pd.DataFrame(
        {
            "month": [str(period0 + int(m)) for m in months],
            "in_plan_year": months >= 0,
            "hires": hires,
            "headcount_fte": headcount,
            "leavers_fte": headcount * monthly_hazard,
            "effective_fte": effective,
            "required_fte": np.where(months >= 0, required_fte, np.nan),
            "shortfall_fte": np.where(
                months >= 0, np.maximum(required_fte - effective, 0.0), np.nan
            ),
        }
    )
    return HiringPlan(table, status, int(hires.sum()))


def _csr(a: np.ndarray):
    import scipy.sparse as sp

    return sp.csr_matrix(a)

"""Recompute every figure of the written tables from the inputs, independently of the solver.

The solver-level checker verifies the arrays; this verifies what the user reads: each
account exactly once, distances and hours recomputed from coordinates and settings, every
territory figure re-added, quotas summing to the total.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .config import PlanConfig
from .geo import haversine_km
from .workload import capacity_h, visits_per_year, workload_h

__all__ = ["verify_tables"]


def verify_tables(
    assignments: pd.DataFrame,
    territories: pd.DataFrame,
    accounts: pd.DataFrame,
    reps: pd.DataFrame,
    config: PlanConfig,
    quota_total: float,
) -> list[str]:
    """Every disagreement between the tables and a recomputation from the inputs."""
    errors: list[str] = []
    ids = assignments["account_id"]
    if ids.duplicated().any():
        errors.append(f"{int(ids.duplicated().sum())} account(s) assigned more than once")
    missing = set(accounts["account_id"]) - set(ids)
    if missing:
        errors.append(f"{len(missing)} account(s) not assigned, e.g. {sorted(missing)[:3]}")
    unknown = set(assignments["rep_id"]) - set(reps["rep_id"])
    if unknown:
        errors.append(f"assigned to unknown rep(s) {sorted(unknown)[:3]}")
    if errors:
        return errors
    acc = accounts.set_index("account_id").loc[ids]
    rep = reps.set_index("rep_id").loc[assignments["rep_id"]]
    km = haversine_km(
        acc["lat"].to_numpy(), acc["lon"].to_numpy(), rep["lat"].to_numpy(), rep["lon"].to_numpy()
    )
    hours = workload_h(visits_per_year(acc, config.workload), km, config.workload)
    for name, mine in (("travel_km", km), ("workload_h", hours)):
        if not np.allclose(assignments[name].to_numpy(float), mine, rtol=1e-6, atol=1e-6):
            errors.append(f"assignments.{name} disagrees with a recomputation from coordinates")
    grouped = assignments.assign(_h=hours, _km=km).groupby("rep_id")
    terr = territories.set_index("rep_id")
    checks = {
        "accounts": grouped.size(),
        "potential": grouped["potential"].sum(),
        "workload_h": grouped["_h"].sum(),
        "travel_km_mean": grouped["_km"].mean(),
    }
    for col, values in checks.items():
        mine = values.reindex(terr.index).fillna(0).to_numpy(float)
        if not np.allclose(terr[col].to_numpy(float), mine, rtol=1e-6, atol=1e-6):
            errors.append(f"territories.{col} disagrees with the assignments")
    cap = pd.Series(capacity_h(reps, config.workload), index=reps["rep_id"]).reindex(terr.index)
    if not np.allclose(terr["capacity_h"], cap):
        errors.append("territories.capacity_h disagrees with the reps file and settings")
    if abs(terr["quota"].sum() - quota_total) > 0.005 * len(terr):
        errors.append(f"quotas sum to {terr['quota'].sum():,.2f}, not {quota_total:,.2f}")
    exact = quota_total * terr["potential"] / terr["potential"].sum()
    # Quotas are rounded to cents (largest remainder): each is within one cent of exact.
    if np.any(np.abs(terr["quota"] - exact) > 0.01 + 1e-9 * abs(quota_total)):
        errors.append("quotas are not proportional to territory potential")
    return errors

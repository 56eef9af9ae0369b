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

__all__ = ["after_solve_s", "verify_tables"]


def after_solve_s(num_accounts: int) -> float:
    """Seconds to keep back from a solve for what follows it (the plan check, the tables
    and their verification, the manifest), so that the whole run honours its time limit:
    measured 4.2 to 4.7 s at 1,000,000 accounts and about 0.8 s at 100,000."""
    return 0.3 + 5e-6 * num_accounts


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
    errors += _verify_balance(assignments, terr, acc, accounts, reps, config)
    errors += _verify_kept(assignments, terr, accounts, config)
    return errors


def _verify_balance(assignments, terr, acc, accounts, reps, config) -> list[str]:
    """Each extra balance measure's value, target and deviation, recomputed from the
    accounts, the reps' target weights (or capacity) and the segment pools."""
    from .report import balance_column  # the column naming rule only

    errors = []
    if not config.balance:
        return errors
    weight = (
        reps["target_weight"].to_numpy(float)
        if "target_weight" in reps and reps["target_weight"].notna().any()
        else capacity_h(reps, config.workload)
    )
    segmented = "segment" in reps and reps["segment"].notna().any()
    rep_pool = reps["segment"].astype(str).to_numpy() if segmented else np.full(len(reps), "")
    acc_pool = (
        accounts["segment"].astype(str).to_numpy() if segmented else np.full(len(accounts), "")
    )
    for name in config.balance:
        if name == "account_count":
            per_acc, all_acc = np.ones(len(acc)), np.ones(len(accounts))
        elif name == "workload_h":
            minutes = config.workload.minutes_per_visit / 60.0
            per_acc = visits_per_year(acc, config.workload) * minutes
            all_acc = visits_per_year(accounts, config.workload) * minutes
        else:
            per_acc = pd.to_numeric(acc[name]).to_numpy(float)
            all_acc = pd.to_numeric(accounts[name]).to_numpy(float)
        col = balance_column(name)
        if col not in terr:
            errors.append(f"territories.{col} is missing (balance measure '{name}')")
            continue
        value = pd.Series(per_acc).groupby(assignments["rep_id"].to_numpy()).sum()
        value = value.reindex(terr.index).fillna(0.0).to_numpy()
        target = np.zeros(len(reps))
        for pool in np.unique(rep_pool):
            mine = rep_pool == pool
            w = weight[mine]
            share = w / w.sum() if w.sum() > 0 else np.full(w.size, 1 / w.size)
            target[mine] = all_acc[acc_pool == pool].sum() * share
        target = pd.Series(target, index=reps["rep_id"].to_numpy()).reindex(terr.index).to_numpy()
        dev = 100 * (value - target) / np.where(target > 0, target, 1)
        for what, mine in ((col, value), (f"target_{col}", target), (f"{col}_dev_pct", dev)):
            if not np.allclose(terr[what].to_numpy(float), mine, rtol=1e-6, atol=1e-6):
                errors.append(f"territories.{what} disagrees with a recomputation from the inputs")
    return errors


def _verify_kept(assignments, terr, accounts, config) -> list[str]:
    """Kept shares of each rep's current book, recomputed from the accounts' current reps."""
    if not config.transfer.active:
        return []
    errors = []
    prev = accounts.set_index("account_id")["current_rep_id"].reindex(assignments["account_id"])
    prev = prev.to_numpy(object)
    rep = assignments["rep_id"].to_numpy(object)
    pot = assignments["potential"].to_numpy(float)
    for what, weights in (("accounts", np.ones(len(rep))), ("potential", pot)):
        col = f"kept_{what}_share"
        if col not in terr:
            errors.append(f"territories.{col} is missing (transfer limits are set)")
            continue
        has = pd.notna(prev)
        book = pd.Series(weights[has]).groupby(prev[has]).sum().reindex(terr.index)
        stay = has & (prev == rep)
        kept = pd.Series(weights[stay]).groupby(rep[stay]).sum().reindex(terr.index)
        mine = (kept.fillna(0.0) / book).to_numpy(float)  # NaN where a rep has no book
        if not np.allclose(terr[col].to_numpy(float), mine, rtol=1e-6, atol=1e-9, equal_nan=True):
            errors.append(f"territories.{col} disagrees with the accounts' current reps")
    return errors

"""Workload: hours per account per year for a given rep (visits plus travel)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .config import WorkloadSettings

__all__ = ["visits_per_year", "workload_h", "capacity_h"]


def visits_per_year(accounts: pd.DataFrame, settings: WorkloadSettings) -> np.ndarray:
    """Visits per year per account, from its ``tier`` (default when no tier is known)."""
    if "tier" not in accounts:
        return np.full(len(accounts), settings.default_visits_per_year)
    tiers = accounts["tier"].astype(str)
    return (
        tiers.map(settings.visits_per_year)
        .fillna(settings.default_visits_per_year)
        .to_numpy(dtype=float)
    )


def workload_h(visits: np.ndarray, travel_km: np.ndarray, settings: WorkloadSettings):
    """Hours per year: visits x (minutes per visit / 60 + round-trip road hours per visit).

    ``travel_km`` is the great-circle distance from the rep's base; roads are longer by the
    circuity factor.
    """
    road_h = 2.0 * np.asarray(travel_km) * settings.circuity / settings.speed_kmh
    return np.asarray(visits) * (settings.minutes_per_visit / 60.0 + road_h)


def capacity_h(reps: pd.DataFrame, settings: WorkloadSettings) -> np.ndarray:
    """Productive hours per year per rep: ``capacity_h`` when given, else fte x hours per fte."""
    default = reps["fte"].to_numpy(dtype=float) * settings.hours_per_fte
    if "capacity_h" not in reps:
        return default
    given = reps["capacity_h"].to_numpy(dtype=float)
    return np.where(np.isnan(given), default, given)

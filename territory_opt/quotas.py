"""Quotas that follow the assignment: each rep's share of the total is its share of potential."""

from __future__ import annotations

import numpy as np

__all__ = ["potential_quotas", "headcount_quotas", "exact_split"]


def exact_split(total: float, weights: np.ndarray, decimals: int = 2) -> np.ndarray:
    """Split ``total`` in proportion to ``weights``, rounded to cents, summing exactly.

    Largest-remainder rounding: floor every share, then give the leftover cents to the
    largest remainders.
    """
    weights = np.asarray(weights, dtype=float)
    if weights.sum() <= 0:
        raise ValueError("cannot split a total by weights that sum to zero")
    unit = 10.0**-decimals
    cents_total = int(round(total / unit))
    exact = cents_total * weights / weights.sum()
    floor = np.floor(exact).astype(np.int64)
    left = cents_total - int(floor.sum())
    order = np.argsort(-(exact - floor), kind="stable")
    floor[order[:left]] += 1
    return floor * unit


def potential_quotas(total: float, territory_potential: np.ndarray) -> np.ndarray:
    """Quota per rep = total x territory potential / total potential (currency)."""
    return exact_split(total, territory_potential)


def headcount_quotas(total: float, num_reps: int) -> np.ndarray:
    """The status quo: the total split equally by head (currency)."""
    return exact_split(total, np.ones(num_reps))

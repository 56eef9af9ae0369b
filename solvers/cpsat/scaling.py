"""Scaling float data to the integers CP-SAT needs, on purpose and on record.

Each quantity is divided by a quantum ``q`` chosen so its largest value maps to
``2**RESOLUTION_BITS``. Limits are tightened by the worst rounding error a rep could
accumulate over all its candidate units, so any plan feasible for the scaled model is
feasible for the float data the checker sees.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np

__all__ = ["Quantum", "quantise", "scaled_lower", "scaled_upper", "ScalingWarning"]

RESOLUTION_BITS = 24


class ScalingWarning(UserWarning):
    """Rounding to integers lost enough precision to matter (limits tightened noticeably)."""


@dataclass(frozen=True)
class Quantum:
    """How one quantity was scaled: ``float ~= q * int``."""

    name: str
    q: float

    def to_int(self, values: np.ndarray) -> np.ndarray:
        return np.rint(np.asarray(values, dtype=np.float64) / self.q).astype(np.int64)


def quantise(name: str, values: np.ndarray) -> Quantum:
    """Quantum for ``values`` so that the largest maps to 2**RESOLUTION_BITS."""
    vmax = float(np.max(np.abs(values), initial=0.0))
    q = vmax / 2**RESOLUTION_BITS if vmax > 0 else 1.0
    return Quantum(name, q)


def scaled_lower(quantum: Quantum, limit: float, terms: int) -> int | None:
    """Smallest integer sum that guarantees the float sum is at least ``limit``."""
    if not math.isfinite(limit):
        return None
    slack = 0.5 * quantum.q * terms
    return math.ceil((limit + slack) / quantum.q - 1e-9)


def scaled_upper(quantum: Quantum, limit: float, terms: int, reference: float) -> int | None:
    """Largest integer sum that guarantees the float sum is at most ``limit``.

    Warns when the tightening exceeds 0.1 % of ``reference`` (the band's target or the
    capacity), which would mean the data's range is too wide for the chosen resolution.
    """
    if not math.isfinite(limit):
        return None
    slack = 0.5 * quantum.q * terms
    if reference > 0 and slack > 1e-3 * reference:
        warnings.warn(
            f"integer scaling of {quantum.name} tightens a limit by {slack:,.4g} "
            f"({100 * slack / reference:.3f} % of {reference:,.4g})",
            ScalingWarning,
            stacklevel=3,
        )
    return math.floor((limit - slack) / quantum.q + 1e-9)

"""What a solver returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["Result", "ProgressEvent", "relative_gap"]


def relative_gap(objective: float, bound: float) -> float:
    """(objective - bound) / max(|objective|, tiny); 0 when both are 0."""
    if not np.isfinite(objective) or not np.isfinite(bound):
        return float("inf")
    denom = max(abs(objective), 1e-9)
    return max(0.0, (objective - bound) / denom)


@dataclass(frozen=True)
class ProgressEvent:
    """A solver's progress report: elapsed seconds, best objective and proven bound."""

    elapsed_s: float
    objective: float
    bound: float
    phase: str

    @property
    def gap(self) -> float:
        return relative_gap(self.objective, self.bound)


@dataclass(frozen=True, eq=False)
class Result:
    """An alignment and how good it is.

    Attributes
    ----------
    assignment:
        ``(num_units,)`` rep index per unit, or -1 where no plan was found.
    status:
        ``OPTIMAL`` (proven within ``relative_gap``), ``FEASIBLE`` (a plan, not proven),
        ``INFEASIBLE`` (proven that no plan exists), ``UNKNOWN`` (no plan, no proof),
        ``HEURISTIC`` (a heuristic plan that may violate bands; see the checker).
    objective:
        Objective of ``assignment`` in problem units (currency*km for the default cost).
    bound:
        Proven lower bound on the objective of any feasible plan (``-inf`` if none).
    stats:
        Solver statistics (names of phases, times, sizes, scaling factors, stop reason).
    problem:
        The problem the plan refers to, when the solver enlarged the input's candidate
        pairs (column generation over every eligible pair); ``None`` or the input otherwise.
        Check the plan against this one.
    """

    assignment: np.ndarray
    status: str
    objective: float
    bound: float
    runtime_s: float
    stats: dict[str, Any] = field(default_factory=dict)
    problem: Any = None

    @property
    def gap(self) -> float:
        return relative_gap(self.objective, self.bound)

    @property
    def has_plan(self) -> bool:
        return bool(self.assignment.size) and bool(np.all(self.assignment >= 0))

    def summary(self) -> str:
        lines = [
            f"status     {self.status}",
            f"objective  {self.objective:,.1f}",
            f"bound      {self.bound:,.1f}",
            f"gap        {100 * self.gap:.3f} %",
            f"runtime    {self.runtime_s:.2f} s",
        ]
        if "stop_reason" in self.stats:
            lines.append(f"stopped    {self.stats['stop_reason']}")
        return "\n".join(lines)

"""Rule: each rep's workload stays within its capacity (hours per year)."""

from __future__ import annotations

import numpy as np
from ortools.sat.python import cp_model

from ..problem import AlignmentProblem
from .scaling import Quantum, quantise, scaled_upper
from .variables import PairVars


def add_capacity(
    model: cp_model.CpModel,
    problem: AlignmentProblem,
    v: PairVars,
    enforce: dict[int, cp_model.IntVar] | None = None,
) -> Quantum:
    q = quantise("workload_h", problem.pair_workload_h)
    coef = q.to_int(problem.pair_workload_h)
    for r in range(problem.num_reps):
        cap = float(problem.capacity_h[r])
        if not np.isfinite(cap):
            continue
        pairs = v.by_rep[r]
        hi = scaled_upper(q, cap, int(pairs.size), cap)
        expr = cp_model.LinearExpr.weighted_sum(
            [v.x[p] for p in pairs], [int(c) for c in coef[pairs]]
        )
        ct = model.add(expr <= hi)
        if enforce is not None:
            ct.only_enforce_if(enforce[r])
    return q

"""Rule: each rep's sum of every balance measure lies inside its band."""

from __future__ import annotations

import numpy as np
from ortools.sat.python import cp_model

from ..problem import AlignmentProblem
from .scaling import Quantum, quantise, scaled_lower, scaled_upper
from .variables import PairVars


def add_bands(
    model: cp_model.CpModel,
    problem: AlignmentProblem,
    v: PairVars,
    enforce: dict[tuple[str, int, int], cp_model.IntVar] | None = None,
) -> list[Quantum]:
    """Add ``lo <= sum(measure * x) <= hi`` per rep and measure; returns the quanta used.

    With ``enforce``, the lower and upper side of each band is a separate constraint that
    holds only when its literal ``enforce[("lo"|"hi", rep, measure)]`` is true, so that an
    infeasible model can name the bands responsible.
    """
    quanta = []
    pair_unit = problem.pair_unit
    for j in range(problem.num_measures):
        q = quantise(f"measure {problem.measure_names[j]}", problem.unit_measure[:, j])
        quanta.append(q)
        coef = q.to_int(problem.unit_measure[pair_unit, j])
        for r in range(problem.num_reps):
            pairs = v.by_rep[r]
            terms = int(pairs.size)
            lo = scaled_lower(q, float(problem.measure_lo[r, j]), terms)
            hi = scaled_upper(
                q, float(problem.measure_hi[r, j]), terms, float(problem.measure_target[r, j])
            )
            if lo is None and hi is None:
                continue
            expr = cp_model.LinearExpr.weighted_sum(
                [v.x[p] for p in pairs], [int(c) for c in coef[pairs]]
            )
            if enforce is None:
                model.add_linear_constraint(
                    expr, lo if lo is not None else -(2**62), hi if hi is not None else 2**62
                )
                continue
            if lo is not None:
                model.add(expr >= lo).only_enforce_if(enforce[("lo", r, j)])
            if hi is not None:
                model.add(expr <= hi).only_enforce_if(enforce[("hi", r, j)])
    return quanta


def band_keys(problem: AlignmentProblem) -> list[tuple[str, int, int]]:
    """Keys of every finite band side, for enforcement literals."""
    keys = []
    for j in range(problem.num_measures):
        for r in range(problem.num_reps):
            if np.isfinite(problem.measure_lo[r, j]):
                keys.append(("lo", r, j))
            if np.isfinite(problem.measure_hi[r, j]):
                keys.append(("hi", r, j))
    return keys

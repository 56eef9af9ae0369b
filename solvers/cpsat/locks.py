"""Rule: locked units stay with their rep."""

from __future__ import annotations

import numpy as np
from ortools.sat.python import cp_model

from ..problem import AlignmentProblem
from .variables import PairVars


def add_locks(
    model: cp_model.CpModel,
    problem: AlignmentProblem,
    v: PairVars,
    enforce: cp_model.IntVar | None = None,
) -> int:
    """Fix the locked pairs to true; returns how many units are locked."""
    locked = np.flatnonzero(problem.fixed_rep >= 0)
    pairs = problem.pair_index(locked, problem.fixed_rep[locked])
    for p in pairs:
        ct = model.add(v.x[int(p)] == 1)
        if enforce is not None:
            ct.only_enforce_if(enforce)
    return int(locked.size)

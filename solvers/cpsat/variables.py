"""The model's decision variables: one Boolean per candidate (unit, rep) pair."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ortools.sat.python import cp_model

from ..problem import AlignmentProblem

__all__ = ["PairVars", "new_pair_vars"]


@dataclass(frozen=True, eq=False)
class PairVars:
    """``x[p]`` is true when unit ``pair_unit[p]`` goes to rep ``cand_rep[p]``."""

    x: list[cp_model.IntVar]
    by_rep: list[np.ndarray]

    def rep_vars(self, rep: int) -> list[cp_model.IntVar]:
        return [self.x[p] for p in self.by_rep[rep]]


def new_pair_vars(model: cp_model.CpModel, problem: AlignmentProblem) -> PairVars:
    x = [model.new_bool_var(f"x{p}") for p in range(problem.num_pairs)]
    order = np.argsort(problem.cand_rep, kind="stable")
    splits = np.searchsorted(problem.cand_rep[order], np.arange(1, problem.num_reps))
    return PairVars(x=x, by_rep=np.split(order, splits))

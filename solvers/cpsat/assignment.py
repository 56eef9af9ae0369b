"""Rule: every unit goes to exactly one of its candidate reps."""

from __future__ import annotations

from ortools.sat.python import cp_model

from ..problem import AlignmentProblem
from .variables import PairVars


def add_assign_once(model: cp_model.CpModel, problem: AlignmentProblem, v: PairVars) -> None:
    indptr = problem.cand_indptr
    for u in range(problem.num_units):
        model.add_exactly_one(v.x[indptr[u] : indptr[u + 1]])

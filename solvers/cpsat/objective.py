"""Objective: minimise the sum of pair costs (potential-weighted travel by default)."""

from __future__ import annotations

from ortools.sat.python import cp_model

from ..problem import AlignmentProblem
from .scaling import Quantum, quantise
from .variables import PairVars


def add_objective(model: cp_model.CpModel, problem: AlignmentProblem, v: PairVars) -> Quantum:
    q = quantise("pair_cost", problem.pair_cost)
    coef = q.to_int(problem.pair_cost)
    model.minimize(cp_model.LinearExpr.weighted_sum(v.x, [int(c) for c in coef]))
    return q

"""Sparse LPs through MathOpt's low-level interface: HiGHS, with primal values and duals.

The model is written straight into a ``ModelProto`` from numpy arrays, so building a model
with millions of nonzeros costs well under a second and no Python object per variable.
Duals matter here: the Lagrangian bound and the candidate pricing of :mod:`solvers.aggregate`
read them. (``model_builder``'s HiGHS wrapper in OR-Tools 9.15 returns row activities where
it should return duals, so it cannot serve.)
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from ortools.math_opt import (
    callback_pb2,
    model_parameters_pb2,
    model_pb2,
    parameters_pb2,
    result_pb2,
)
from ortools.math_opt.core.python import solver as core

__all__ = ["LpResult", "solve_lp"]

_OPTIMAL = result_pb2.TERMINATION_REASON_OPTIMAL
_INFEASIBLE = (
    result_pb2.TERMINATION_REASON_INFEASIBLE,
    result_pb2.TERMINATION_REASON_INFEASIBLE_OR_UNBOUNDED,
)


@dataclass(frozen=True, eq=False)
class LpResult:
    """``status`` is ``OPTIMAL``, ``INFEASIBLE``, ``FEASIBLE`` (a primal solution, not proven
    optimal: time limit) or ``UNKNOWN``; ``x`` the column values and ``y`` the row duals
    (zeros when absent). Sign convention for a minimisation: ``y > 0`` where a row's lower
    limit binds, ``y < 0`` where its upper limit binds."""

    status: str
    x: np.ndarray
    y: np.ndarray
    runtime_s: float


def solve_lp(
    cost: np.ndarray,
    matrix: sp.spmatrix,
    row_lo: np.ndarray,
    row_hi: np.ndarray,
    var_lo: np.ndarray,
    var_hi: np.ndarray,
    *,
    time_limit_s: float = 60.0,
) -> LpResult:
    """Minimise ``cost @ x`` subject to ``row_lo <= matrix @ x <= row_hi`` and
    ``var_lo <= x <= var_hi`` with HiGHS (simplex)."""
    t0 = time.perf_counter()
    csr = sp.csr_matrix(matrix)
    csr.sum_duplicates()  # also sorts: MathOpt wants strictly increasing columns per row
    csr.eliminate_zeros()
    a = csr.tocoo()
    nv, nr = int(cost.size), int(a.shape[0])
    m = model_pb2.ModelProto()
    m.variables.ids.extend(range(nv))
    m.variables.lower_bounds.extend(np.asarray(var_lo, float))
    m.variables.upper_bounds.extend(np.asarray(var_hi, float))
    m.variables.integers.extend(np.zeros(nv, bool))
    nz = np.flatnonzero(cost)
    m.objective.linear_coefficients.ids.extend(nz)
    m.objective.linear_coefficients.values.extend(np.asarray(cost, float)[nz])
    m.linear_constraints.ids.extend(range(nr))
    m.linear_constraints.lower_bounds.extend(np.asarray(row_lo, float))
    m.linear_constraints.upper_bounds.extend(np.asarray(row_hi, float))
    m.linear_constraint_matrix.row_ids.extend(a.row)
    m.linear_constraint_matrix.column_ids.extend(a.col)
    m.linear_constraint_matrix.coefficients.extend(a.data)
    params = parameters_pb2.SolveParametersProto(enable_output=False)
    params.time_limit.FromNanoseconds(int(max(0.05, time_limit_s) * 1e9))
    res = core.solve(
        m,
        parameters_pb2.SOLVER_TYPE_HIGHS,
        parameters_pb2.SolverInitializerProto(),
        params,
        model_parameters_pb2.ModelSolveParametersProto(),
        None,
        callback_pb2.CallbackRegistrationProto(),
        None,
        None,
    )
    x, y = np.zeros(nv), np.zeros(nr)
    reason = res.termination.reason
    if reason in _INFEASIBLE:
        status = "INFEASIBLE"
    elif not res.solutions or not res.solutions[0].HasField("primal_solution"):
        status = "UNKNOWN"
    else:
        status = "OPTIMAL" if reason == _OPTIMAL else "FEASIBLE"
        sol = res.solutions[0]
        pv = sol.primal_solution.variable_values
        x[np.asarray(pv.ids, dtype=np.int64)] = pv.values
        if sol.HasField("dual_solution"):
            dv = sol.dual_solution.dual_values
            y[np.asarray(dv.ids, dtype=np.int64)] = dv.values
    return LpResult(status, x, y, time.perf_counter() - t0)

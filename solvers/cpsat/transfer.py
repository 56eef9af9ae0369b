"""Rule: transfer limits against the current alignment.

Of each rep's current book at least ``keep_min`` of every keep measure stays with the rep,
and overall at least ``keep_min_total`` stays with its current rep. Only the stay pairs
(unit, its current rep) count.
"""

from __future__ import annotations

import math

import numpy as np
from ortools.sat.python import cp_model

from ..problem import AlignmentProblem
from .scaling import Quantum, quantise
from .variables import PairVars


def transfer_keys(problem: AlignmentProblem) -> list[tuple[int, int]]:
    """``(rep, keep measure)`` of every active limit; rep -1 is the overall limit."""
    keys = []
    for t in range(problem.num_keep):
        keys += [(int(r), t) for r in np.flatnonzero(problem.keep_min[:, t] > 0)]
        if problem.keep_min_total[t] > 0:
            keys.append((-1, t))
    return keys


def add_transfer(
    model: cp_model.CpModel,
    problem: AlignmentProblem,
    v: PairVars,
    enforce: dict[tuple[int, int], cp_model.IntVar] | None = None,
) -> list[Quantum]:
    """Add ``sum(keep_measure * x over stay pairs) >= keep_min`` per rep and overall.

    With ``enforce``, each limit holds only when its literal ``enforce[(rep, t)]`` is true
    (rep -1 for the overall limit), so an infeasible model can name them.
    """
    stay = problem.stay_pairs
    stay_rep = problem.cand_rep[stay]
    quanta = []
    for t in range(problem.num_keep):
        values = problem.keep_measure[problem.pair_unit[stay], t]
        q = quantise(f"keep {problem.keep_names[t]}", values)
        quanta.append(q)
        coef = q.to_int(values)
        # The limit is raised by the worst rounding error the kept units could add up to,
        # so a scaled-feasible plan keeps enough in floats. Account counts scale exactly
        # (error 0), so "keep 3 of 4 accounts" stays reachable.
        err = float(np.max(np.abs(coef * q.q - values), initial=0.0))
        for r, tt in transfer_keys(problem):
            if tt != t:
                continue
            sel = np.arange(stay.size) if r < 0 else np.flatnonzero(stay_rep == r)
            need = float(problem.keep_min_total[t] if r < 0 else problem.keep_min[r, t])
            lo = math.ceil((need + err * sel.size) / q.q - 1e-9)
            expr = cp_model.LinearExpr.weighted_sum(
                [v.x[int(p)] for p in stay[sel]], [int(c) for c in coef[sel]]
            )
            ct = model.add(expr >= lo)
            if enforce is not None:
                ct.only_enforce_if(enforce[(r, t)])
    return quanta

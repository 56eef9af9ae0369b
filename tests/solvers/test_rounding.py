"""Rounding by CP-SAT over the units in doubt (:mod:`solvers.rounding`).

The instance is ``test_colgen``'s (80 accounts, 4 reps at the corners of a 2 x 2 degree
box, rep 0's capacity binding, three whales of about four mean accounts each), every pair
a candidate, with the bands narrowed to +-3 %: sending each split unit of the relaxation
to its larger share then breaks a rep or two, which single moves need not mend.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from test_colgen import _instance

from solvers.check import check_plan
from solvers.colgen import solve_relaxation_priced
from solvers.lp import solve_relaxation
from solvers.rounding import round_by_cpsat
from solvers.settings import SolveSettings


def _narrow(problem, half_width=0.03):
    t = problem.measure_target
    return replace(problem, measure_lo=t * (1 - half_width), measure_hi=t * (1 + half_width))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_broken_rounding_becomes_a_checked_plan(seed):
    _, _, full = _instance(seed, whales=3)
    problem = _narrow(full)
    lp = solve_relaxation(problem)
    plan = lp.rounded(problem)
    assert not check_plan(problem, plan).ok  # the premise: plain rounding breaks a rep
    fixed, stats = round_by_cpsat(problem, lp, plan, SolveSettings(), time_limit_s=10)
    assert fixed is not None, stats
    report = check_plan(problem, fixed)
    assert report.ok
    assert report.objective >= lp.objective * (1 - 1e-9)


def test_with_duals_the_narrowest_margins_are_freed_and_the_target_stops_early():
    space, problem, _ = _instance(4, whales=3)
    work, lp = solve_relaxation_priced(_narrow(problem), space, time_limit_s=20)
    assert lp.duals is not None
    plan = lp.rounded(work)
    fixed, stats = round_by_cpsat(work, lp, plan, SolveSettings(), time_limit_s=10, target=np.inf)
    assert fixed is not None and check_plan(work, fixed).ok
    # Any plan meets an infinite target: CP-SAT stops at its first one.
    assert stats["attempts"][-1]["stop"] == "objective target reached"

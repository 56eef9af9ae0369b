"""Transfer ("keep") limits against the current alignment, in every solver and the checker.

The instance: six accounts of potential 10, two reps, every account a candidate of both::

    unit  current  cost on R0  cost on R1
    u0    R0       2           1.0
    u1    R0       2           1.1
    u2    R0       2           1.2
    u3    R0       2           1.3
    u4    R1       2           1
    u5    R1       2           1

    bands: potential in [20, 40] for each rep (target 30); no capacity limit.

Every account is cheaper on R1, so without transfer limits R1 fills its band: it keeps u4
and u5 and takes the two cheapest of R0's book, u0 and u1: plan [1, 1, 0, 0, 1, 1], cost
2 + 2 + 1.0 + 1.1 + 1 + 1 = 8.1, and R0 loses half its four accounts.

With "at most 25 % of a rep's accounts may leave" R0 must keep 0.75 x 4 = 3 accounts, so
only u0 moves: plan [1, 0, 0, 0, 1, 1], cost 2 x 3 + 1.0 + 1 + 1 = 9.0. Keep measures:
column 0 counts accounts (1 each), column 1 is potential.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from ortools.sat.python import cp_model

from solvers.align import solve
from solvers.check import check_plan
from solvers.cpsat import solve_cpsat
from solvers.cpsat.solve import Conflict, explain_infeasibility
from solvers.cpsat.transfer import add_transfer, transfer_keys
from solvers.cpsat.variables import new_pair_vars
from solvers.greedy import repair, solve_greedy
from solvers.lns import subproblem
from solvers.lp import solve_elastic, solve_mip, solve_relaxation
from solvers.problem import AlignmentProblem
from solvers.settings import SolveSettings

SETTINGS = SolveSettings(time_limit_s=10.0, num_workers=1, seed=5, relative_gap=0.0)
UNCONSTRAINED = np.array([1, 1, 0, 0, 1, 1])  # cost 8.1; R0 keeps 2 of 4 accounts
KEEP_THREE = np.array([1, 0, 0, 0, 1, 1])  # cost 9.0; R0 keeps 3 of 4


def six_accounts(
    keep_min: list[list[float]] | None = None, keep_min_total: list[float] | None = None
) -> AlignmentProblem:
    """The instance of the module docstring; ``keep_min`` is (reps x [accounts, potential])."""
    n = 6
    cost_r1 = [1.0, 1.1, 1.2, 1.3, 1.0, 1.0]
    pot = np.full(n, 10.0)
    return AlignmentProblem(
        cand_indptr=np.arange(0, 2 * n + 1, 2),
        cand_rep=np.tile([0, 1], n),
        pair_cost=np.ravel([[2.0, c] for c in cost_r1]),
        pair_workload_h=np.ones(2 * n),
        unit_measure=pot,
        measure_lo=[20.0, 20.0],
        measure_hi=[40.0, 40.0],
        measure_target=[30.0, 30.0],
        capacity_h=[np.inf, np.inf],
        fixed_rep=np.full(n, -1),
        current_rep=[0, 0, 0, 0, 1, 1],
        keep_measure=np.c_[np.ones(n), pot],
        keep_min=keep_min if keep_min is not None else np.zeros((2, 2)),
        keep_min_total=keep_min_total if keep_min_total is not None else [0.0, 0.0],
        keep_names=("accounts", "potential"),
    )


PER_REP = [[3.0, 0.0], [1.5, 0.0]]  # 25 % of accounts may leave each rep


def test_defaults_mean_no_transfer_limits(tiny_problem):
    assert tiny_problem.num_keep == 0
    assert tiny_problem.keep_min.shape == (2, 0)
    assert tiny_problem.keep_measure.shape == (4, 0)


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("keep_min", np.zeros((3, 2)), r"keep_min must have shape \(2, 2\)"),
        ("keep_measure", np.zeros((6, 1)), r"keep_measure must have shape \(6, 2\)"),
        ("keep_min_total", [-1.0, 0.0], "keep_min_total must be finite and non-negative"),
        ("current_rep", [0, 0, 0, 0, 1, 2], r"current_rep holds rep indices outside"),
    ],
)
def test_bad_transfer_arrays_are_rejected(field, value, match):
    with pytest.raises(ValueError, match=match):
        replace(six_accounts(), **{field: value})


def test_kept_amounts_by_hand():
    problem = six_accounts()
    per_rep, total = problem.kept(UNCONSTRAINED)
    # R0 keeps u2, u3; R1 keeps u4, u5.
    np.testing.assert_allclose(per_rep, [[2, 20], [2, 20]])
    np.testing.assert_allclose(total, [4, 40])
    np.testing.assert_allclose(problem.current_book(), [[4, 40], [2, 20]])


def test_checker_rejects_a_per_rep_breach_with_rep_measure_and_shortfall():
    report = check_plan(six_accounts(PER_REP), UNCONSTRAINED)
    assert not report.ok
    (v,) = report.violations
    assert (v.rule, v.rep, v.measure, v.amount) == ("transfer", 0, "accounts", 1.0)
    assert "keeps 2.00 of its current accounts, below the transfer minimum 3.00 by 1.00" in str(v)
    assert check_plan(six_accounts(PER_REP), KEEP_THREE).ok


def test_checker_rejects_an_overall_breach():
    # At most one account in six may move overall: 5 must stay; the plan keeps 4.
    problem = six_accounts(keep_min_total=[5.0, 0.0])
    report = check_plan(problem, UNCONSTRAINED)
    (v,) = report.violations
    assert (v.rule, v.rep, v.amount) == ("transfer", -1, 1.0)
    assert str(v).startswith("[transfer] overall: 4.00 of accounts stays")
    np.testing.assert_allclose(report.kept_total, [4, 40])
    assert check_plan(problem, KEEP_THREE).ok


def test_without_limits_the_optimum_moves_half_of_r0():
    res = solve(six_accounts(), SETTINGS)
    np.testing.assert_array_equal(res.assignment, UNCONSTRAINED)
    assert res.objective == pytest.approx(8.1)


@pytest.mark.parametrize(
    ("keep_min", "keep_min_total"),
    [(PER_REP, None), (None, [5.0, 0.0]), (None, [0.0, 50.0])],
    ids=["per-rep accounts", "total accounts", "total potential"],
)
def test_every_solver_honours_the_limits(keep_min, keep_min_total):
    problem = six_accounts(keep_min, keep_min_total)
    lp = solve_relaxation(problem)
    assert lp.bound == pytest.approx(9.0)
    mip = solve_mip(problem)
    assert mip.objective == pytest.approx(9.0)
    res = solve(problem, SETTINGS)
    np.testing.assert_array_equal(res.assignment, KEEP_THREE)
    assert res.status == "OPTIMAL" and res.objective == pytest.approx(9.0)
    cp = solve_cpsat(problem, SETTINGS)
    np.testing.assert_array_equal(cp.assignment, KEEP_THREE)
    greedy = solve_greedy(problem)
    assert check_plan(problem, greedy.assignment).ok


def test_repair_moves_accounts_back_and_never_breaks_a_limit():
    problem = six_accounts(PER_REP)
    repaired = repair(problem, UNCONSTRAINED)
    assert check_plan(problem, repaired).ok
    # From a plan that keeps exactly the minimum, repair of R1's band (here made to need
    # one more account) may not take another account from R0's book.
    tight = replace(six_accounts(PER_REP), measure_lo=[20.0, 40.0], measure_hi=[40.0, 40.0])
    out = repair(tight, KEEP_THREE)
    assert problem.kept(out)[0][0, 0] >= 3


def test_lns_subproblem_carries_the_limits_less_what_stays_outside():
    # u5 may only go to R1 (its current rep): it never moves, and already keeps one of the
    # 1.5 accounts R1 must keep; the sub-problem asks for the other 0.5.
    base = six_accounts(PER_REP)
    problem = replace(
        base,
        cand_indptr=np.r_[np.arange(0, 11, 2), 11],
        cand_rep=np.r_[np.tile([0, 1], 5), 1],
        pair_cost=base.pair_cost[:11],
        pair_workload_h=np.ones(11),
    )
    sub, free, _ = subproblem(problem, KEEP_THREE, np.array([0, 1]))
    np.testing.assert_array_equal(free, [0, 1, 2, 3, 4])
    np.testing.assert_array_equal(sub.current_rep, [0, 0, 0, 0, 1])
    np.testing.assert_allclose(sub.keep_min, [[3.0, 0.0], [0.5, 0.0]])
    assert check_plan(sub, KEEP_THREE[free]).ok
    assert not check_plan(sub, UNCONSTRAINED[free]).ok


def test_infeasible_limits_are_named_by_the_elastic_lp_and_by_cp_sat():
    # R0 must keep all its potential (40) but its band maximum is 35: 5 must give.
    problem = replace(six_accounts([[0.0, 40.0], [0.0, 0.0]]), measure_hi=[35.0, 40.0])
    assert solve_relaxation(problem).status == "INFEASIBLE"
    relax = solve_elastic(problem)
    # Giving 5 of the transfer minimum (5 / 40 = 12.5 %) is cheaper than 5 over a band of
    # target 30 (16.7 %).
    np.testing.assert_allclose(relax.keep_short, [[0.0, 5.0], [0.0, 0.0]], atol=1e-6)
    assert relax.band_over.max() == pytest.approx(0.0, abs=1e-6)
    core = explain_infeasibility(problem, SETTINGS)
    assert Conflict("transfer", rep=0, measure=1) in core
    assert Conflict("band-hi", rep=0, measure=0) in core


def test_same_seed_same_plan_with_limits():
    problem = six_accounts(PER_REP, [0.0, 45.0])
    plans = [solve(problem, SETTINGS).assignment for _ in range(2)]
    np.testing.assert_array_equal(plans[0], plans[1])


@pytest.mark.parametrize(("plan", "ok"), [(KEEP_THREE, True), (UNCONSTRAINED, False)])
def test_cpsat_transfer_rule_alone(plan, ok):
    problem = six_accounts(PER_REP)
    model = cp_model.CpModel()
    v = new_pair_vars(model, problem)
    add_transfer(model, problem, v)
    chosen = problem.cand_rep == np.asarray(plan)[problem.pair_unit]
    for x, value in zip(v.x, chosen, strict=True):
        model.add(x == int(value))
    status = cp_model.CpSolver().solve(model)
    assert (status == cp_model.OPTIMAL) is ok
    assert transfer_keys(problem) == [(0, 0), (1, 0)]


def test_rounding_tightens_a_broken_transfer_limit_and_solves_again(monkeypatch):
    """A relaxation that splits u1 0.4 / 0.6 between R0 and R1 rounds it onto R1, so R0
    keeps 2 of its 4 accounts where it must keep 3. The next LP sees R0's minimum raised
    past 3 (at most its whole book) and its rounding passes the checker."""
    import solvers.align as align
    from solvers.lp import LpSolution

    problem = six_accounts(keep_min=[[3, 0], [0, 0]])
    x = np.zeros(problem.num_pairs)
    x[problem.pair_index(np.array([0, 1, 1, 2, 3, 4, 5]), np.array([1, 0, 1, 0, 0, 1, 1]))] = [
        1.0,
        0.4,
        0.6,
        1.0,
        1.0,
        1.0,
        1.0,
    ]
    first = LpSolution("OPTIMAL", x, float(problem.pair_cost @ x), 0.0, 0.0, "test")
    assert not check_plan(problem, first.rounded(problem)).ok
    # Without single-unit repair, only the tightened re-solve can fix the plan.
    monkeypatch.setattr(align, "repair", lambda p, plan, **_: plan)
    seen = []

    def relax(tightened, limit, previous):
        seen.append(tightened)
        return solve_relaxation(tightened)

    ok = []
    stats, last = align._round_and_repair(
        problem,
        first,
        lambda plan, phase: ok.append(check_plan(problem, plan).ok) or ok[-1],
        lambda: 10.0,
        relax,
    )
    assert len(seen) >= 1
    assert 3 < seen[0].keep_min[0, 0] <= 4
    assert ok[-1] and check_plan(problem, last).ok


def test_repair_stops_when_its_time_runs_out():
    """Out of time before its first move, repair hands back the plan as it came; with time it
    fixes R0's transfer shortfall."""
    problem = six_accounts(keep_min=[[3, 0], [0, 0]])
    assert not check_plan(problem, UNCONSTRAINED).ok
    np.testing.assert_array_equal(
        repair(problem, UNCONSTRAINED, time_left=lambda: -1.0), UNCONSTRAINED
    )
    assert check_plan(problem, repair(problem, UNCONSTRAINED, time_left=lambda: 10.0)).ok

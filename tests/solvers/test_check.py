"""The independent checker on hand-made plans: one plan per broken rule, and a valid one.

All plans are for ``tiny_problem`` (drawn in ``tests/conftest.py``)::

    unit  potential  candidates (pair: cost, workload_h)
    u0    10         rep0 (p0: 1, 10)   rep1 (p1: 4, 20)    locked to rep0
    u1    20         rep0 (p2: 2, 10)
    u2    30         rep0 (p3: 3, 10)   rep1 (p4: 1, 30)
    u3    40                            rep1 (p5: 5, 10)

    bands: rep0 [35, 65] (target 50), rep1 [35, 75] (target 55); capacity 40 h each.

Every expected figure is worked out in the test from this table.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from solvers.check import PlanCheckError, check_plan

VALID = np.array([0, 0, 0, 1])


def _rules(report) -> list[str]:
    return [v.rule for v in report.violations]


def test_valid_plan_figures_by_hand(tiny_problem):
    report = check_plan(tiny_problem, VALID, reported_objective=11.0)
    assert report.ok
    assert report.violations == ()
    assert report.describe() == "plan passes every check"
    report.raise_if_failed()  # does not raise
    # cost p0 + p2 + p3 + p5 = 1 + 2 + 3 + 5
    assert report.objective == 11.0
    # rep0: u0 + u1 + u2 = 10 + 20 + 30; rep1: u3 = 40
    assert report.rep_measure.tolist() == [[60.0], [40.0]]
    # rep0: p0 + p2 + p3 = 10 + 10 + 10; rep1: p5 = 10
    assert report.rep_workload_h.tolist() == [30.0, 10.0]
    assert report.rep_units.tolist() == [3, 1]
    # |60 - 50| / 50 = 0.2 and |40 - 55| / 55 = 0.27; the worst is reported
    assert report.max_band_dev[0] == pytest.approx(15 / 55)


def test_unit_on_a_rep_that_is_not_a_candidate(tiny_problem):
    plan = np.array([0, 1, 0, 1])  # u1 can only go to rep0
    report = check_plan(tiny_problem, plan)
    assert _rules(report) == ["candidate"]
    v = report.violations[0]
    assert (v.unit, v.rep) == (1, 1)
    assert "unit 1 is on rep 1, not one of its candidates" in v.message
    # Measures still add up (rep0: 10 + 30, rep1: 20 + 40) ...
    assert report.rep_measure[:, 0].tolist() == [40.0, 60.0]
    # ... but the bad pair has no workload or cost, so the objective is undefined.
    assert report.rep_workload_h.tolist() == [20.0, 10.0]
    assert np.isnan(report.objective)


def test_locked_unit_moved(tiny_problem):
    plan = np.array([1, 0, 0, 1])  # u0 is locked to rep0
    report = check_plan(tiny_problem, plan)
    assert _rules(report) == ["locked"]
    v = report.violations[0]
    assert (v.unit, v.rep) == (0, 1)
    assert "unit 0 is locked to rep 0 but is on rep 1" in v.message
    # Every other rule holds: potential (50, 50), workload (20, 20 + 10) h, cost 4 + 2 + 3 + 5.
    assert report.rep_measure[:, 0].tolist() == [50.0, 50.0]
    assert report.rep_workload_h.tolist() == [20.0, 30.0]
    assert report.objective == 14.0


def test_band_under(tiny_problem):
    plan = np.array([0, 0, 1, 1])  # rep0 holds 10 + 20 = 30 < 35
    report = check_plan(tiny_problem, plan)
    assert _rules(report) == ["band"]
    v = report.violations[0]
    assert (v.rep, v.measure, v.amount) == (0, "potential", 5.0)
    assert "rep 0: potential 30.00 below band minimum 35.00 by 5.00" in v.message
    assert report.objective == 1 + 2 + 1 + 5


def test_band_over(tiny_problem):
    narrow = tiny_problem.with_bands(np.array([35.0, 35.0]), np.array([55.0, 75.0]))
    report = check_plan(narrow, VALID)  # rep0 holds 60 > 55
    assert _rules(report) == ["band"]
    v = report.violations[0]
    assert (v.rep, v.amount) == (0, 5.0)
    assert "rep 0: potential 60.00 above band maximum 55.00 by 5.00" in v.message


def test_capacity(tiny_problem):
    small = replace(tiny_problem, capacity_h=np.array([25.0, 40.0]))
    report = check_plan(small, VALID)  # rep0 works 30 h > 25 h
    assert _rules(report) == ["capacity"]
    v = report.violations[0]
    assert (v.rep, v.measure, v.amount) == (0, "workload_h", 5.0)
    assert "rep 0: workload 30.0 h above capacity 25.0 h by 5.0 h" in v.message


@pytest.mark.parametrize("plan", [np.array([0, 0, 0]), np.array([[0, 0, 0, 1]]), np.array([])])
def test_wrong_shape(tiny_problem, plan):
    report = check_plan(tiny_problem, plan)
    assert not report.ok
    assert _rules(report) == ["shape"]
    assert "expected one rep per unit (4,)" in report.violations[0].message
    assert np.isnan(report.objective)


@pytest.mark.parametrize("value", [-1, 2])
def test_unassigned_or_unknown_rep(tiny_problem, value):
    plan = np.array([0, value, 0, 1])
    report = check_plan(tiny_problem, plan)
    assert _rules(report) == ["assigned"]
    assert report.violations[0].unit == 1
    assert f"unit 1 has no rep (value {value})" in report.violations[0].message
    assert np.isnan(report.objective)


def test_objective_mismatch(tiny_problem):
    report = check_plan(tiny_problem, VALID, reported_objective=12.0)
    assert _rules(report) == ["objective"]
    assert (
        "reported objective 12.000 differs from recomputed 11.000" in report.violations[0].message
    )
    # A difference in the last bits of a float sum is not a mismatch.
    assert check_plan(tiny_problem, VALID, reported_objective=11.0 + 1e-9).ok


def test_every_broken_rule_is_listed_and_raised(tiny_problem):
    # rep1's minimum raised to 55. u0 moved off its lock to rep1: rep0 holds 20 + 30 = 50,
    # rep1 holds 10 + 40 = 50 < 55; a reported objective of 0 is wrong (4 + 2 + 3 + 5 = 14).
    strict = tiny_problem.with_bands(np.array([35.0, 55.0]), np.array([65.0, 75.0]))
    report = check_plan(strict, np.array([1, 0, 0, 1]), reported_objective=0.0)
    assert sorted(_rules(report)) == ["band", "locked", "objective"]
    with pytest.raises(PlanCheckError, match=r"3 violation\(s\)") as err:
        report.raise_if_failed()
    assert err.value.report is report
    assert "[locked] unit 0" in str(err.value)
    assert "[band] rep 1: potential 50.00 below band minimum 55.00" in str(err.value)


def test_limits_are_inclusive_up_to_float_rounding(tiny_problem):
    # rep0 sits exactly on its maximum, rep1 exactly on its minimum.
    exact = tiny_problem.with_bands(np.array([35.0, 40.0]), np.array([60.0, 75.0]))
    exact = replace(exact, capacity_h=np.array([30.0, 10.0]))
    assert check_plan(exact, VALID).ok
    # Below the checker's 1e-9 relative tolerance a breach is float rounding ...
    rounding = exact.with_bands(np.array([35.0, 40.0]), np.array([60.0 - 1e-8, 75.0]))
    assert check_plan(rounding, VALID).ok
    # ... above it, a breach (1e-6 / 60 is about 17 parts per billion).
    tighter = exact.with_bands(np.array([35.0, 40.0]), np.array([60.0 - 1e-6, 75.0]))
    assert _rules(check_plan(tighter, VALID)) == ["band"]


def test_infinite_limits_switch_a_rule_off(tiny_problem):
    loose = replace(
        tiny_problem.with_bands(np.full(2, -np.inf), np.full(2, np.inf)),
        capacity_h=np.full(2, np.inf),
    )
    report = check_plan(loose, np.array([0, 0, 1, 1]))
    assert report.ok
    assert report.rep_workload_h.tolist() == [20.0, 40.0]


def test_describe_truncates_long_lists(random_problem):
    problem, planted = random_problem(60, 6, seed=0)
    everyone_on_one_rep = np.zeros(problem.num_units, dtype=int)
    report = check_plan(problem, everyone_on_one_rep)
    assert len(report.violations) > 3
    text = report.describe(limit=3)
    assert text.splitlines()[-1] == f"... and {len(report.violations) - 3} more"

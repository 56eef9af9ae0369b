"""The CP-SAT model one rule at a time, in the cpsat-primer TDD style.

Each test builds a model holding only the rule under test, fixes every variable to a plan,
and asserts FEASIBLE or INFEASIBLE. The plans are the checker's hand-made plans on
``tiny_problem`` (see ``tests/conftest.py`` and ``test_check.py``)::

    unit  potential  candidates (pair: cost, workload_h)
    u0    10         rep0 (p0: 1, 10)   rep1 (p1: 4, 20)    locked to rep0
    u1    20         rep0 (p2: 2, 10)
    u2    30         rep0 (p3: 3, 10)   rep1 (p4: 1, 30)
    u3    40                            rep1 (p5: 5, 10)

    bands: rep0 [35, 65], rep1 [35, 75]; capacity 40 h each.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
from ortools.sat.python import cp_model

from solvers.check import check_plan
from solvers.cpsat.assignment import add_assign_once
from solvers.cpsat.bands import add_bands, band_keys
from solvers.cpsat.capacity import add_capacity
from solvers.cpsat.locks import add_locks
from solvers.cpsat.objective import add_objective
from solvers.cpsat.scaling import (
    Quantum,
    ScalingWarning,
    quantise,
    scaled_lower,
    scaled_upper,
)
from solvers.cpsat.solve import Conflict, build_model, explain_infeasibility, solve_cpsat
from solvers.cpsat.variables import PairVars, new_pair_vars
from solvers.greedy import solve_greedy
from solvers.settings import SolveSettings

VALID = [0, 0, 0, 1]
BAND_UNDER = [0, 0, 1, 1]  # rep0 holds 30 < 35
LOCK_MOVED = [1, 0, 0, 1]  # u0 leaves rep0
SETTINGS = SolveSettings(time_limit_s=5.0, num_workers=1, seed=1)


def _model(problem) -> tuple[cp_model.CpModel, PairVars]:
    model = cp_model.CpModel()
    return model, new_pair_vars(model, problem)


def _fix_pairs(model, v: PairVars, chosen) -> None:
    for x, value in zip(v.x, chosen, strict=True):
        model.add(x == int(value))


def _fix_plan(model, v: PairVars, problem, plan) -> None:
    """Fix the pair variables to ``plan`` (a candidate rep per unit)."""
    chosen = np.zeros(problem.num_pairs, dtype=bool)
    pairs = problem.pair_index(np.arange(problem.num_units), np.asarray(plan))
    assert np.all(pairs >= 0), "plans here use candidate pairs only"
    chosen[pairs] = True
    _fix_pairs(model, v, chosen)


def _status(model) -> str:
    solver = cp_model.CpSolver()
    solver.parameters.num_workers = 1
    solver.parameters.max_time_in_seconds = 5.0
    return solver.status_name(solver.solve(model))


def _feasible(model) -> bool:
    status = _status(model)
    assert status in ("OPTIMAL", "FEASIBLE", "INFEASIBLE"), status
    return status != "INFEASIBLE"


# --- variables -----------------------------------------------------------------------------


def test_pair_variables_grouped_by_rep(tiny_problem):
    model, v = _model(tiny_problem)
    assert len(v.x) == tiny_problem.num_pairs
    assert [pairs.tolist() for pairs in v.by_rep] == [[0, 2, 3], [1, 4, 5]]
    assert [x.name for x in v.rep_vars(1)] == ["x1", "x4", "x5"]


# --- assign once ---------------------------------------------------------------------------


def test_assign_once_accepts_one_rep_per_unit(tiny_problem):
    model, v = _model(tiny_problem)
    add_assign_once(model, tiny_problem, v)
    _fix_plan(model, v, tiny_problem, VALID)
    assert _feasible(model)


@pytest.mark.parametrize(
    "chosen",
    [
        [1, 1, 1, 1, 0, 1],  # u0 on both reps
        [1, 0, 1, 1, 0, 0],  # u3 on none
    ],
)
def test_assign_once_rejects_two_or_no_reps(tiny_problem, chosen):
    model, v = _model(tiny_problem)
    add_assign_once(model, tiny_problem, v)
    _fix_pairs(model, v, chosen)
    assert not _feasible(model)


# --- bands ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("plan", "ok"), [(VALID, True), (BAND_UNDER, False)])
def test_bands_alone(tiny_problem, plan, ok):
    model, v = _model(tiny_problem)
    add_bands(model, tiny_problem, v)
    _fix_plan(model, v, tiny_problem, plan)
    assert _feasible(model) is ok


def test_band_over_alone(tiny_problem):
    narrow = tiny_problem.with_bands(np.array([35.0, 35.0]), np.array([55.0, 75.0]))
    model, v = _model(narrow)
    add_bands(model, narrow, v)
    _fix_plan(model, v, narrow, VALID)  # rep0 holds 60 > 55
    assert not _feasible(model)


def test_band_side_switched_off_by_its_literal(tiny_problem):
    keys = band_keys(tiny_problem)
    assert keys == [("lo", 0, 0), ("hi", 0, 0), ("lo", 1, 0), ("hi", 1, 0)]
    for lo_on, expect in ((False, True), (True, False)):
        model, v = _model(tiny_problem)
        lits = {k: model.new_bool_var(str(k)) for k in keys}
        add_bands(model, tiny_problem, v, lits)
        for key, lit in lits.items():
            model.add(lit == (lo_on if key == ("lo", 0, 0) else 1))
        _fix_plan(model, v, tiny_problem, BAND_UNDER)
        assert _feasible(model) is expect


def test_infinite_band_sides_have_no_key(tiny_problem):
    open_ended = tiny_problem.with_bands(np.array([35.0, -np.inf]), np.array([np.inf, 75.0]))
    assert band_keys(open_ended) == [("lo", 0, 0), ("hi", 1, 0)]


# --- capacity ------------------------------------------------------------------------------


@pytest.mark.parametrize(("capacity_h", "ok"), [([40.0, 40.0], True), ([25.0, 40.0], False)])
def test_capacity_alone(tiny_problem, capacity_h, ok):
    problem = replace(tiny_problem, capacity_h=np.array(capacity_h))
    model, v = _model(problem)
    add_capacity(model, problem, v)
    _fix_plan(model, v, problem, VALID)  # rep0 works 30 h
    assert _feasible(model) is ok


def test_infinite_capacity_adds_no_constraint(tiny_problem):
    problem = replace(tiny_problem, capacity_h=np.array([np.inf, 1.0]))
    model, v = _model(problem)
    add_capacity(model, problem, v)
    assert len(model.proto.constraints) == 1  # rep1 only
    _fix_plan(model, v, problem, VALID)
    assert not _feasible(model)  # rep1 works 10 h > 1 h


def test_capacity_switched_off_by_its_literal(tiny_problem):
    problem = replace(tiny_problem, capacity_h=np.array([25.0, 40.0]))
    model, v = _model(problem)
    lits = {0: model.new_bool_var("cap0"), 1: model.new_bool_var("cap1")}
    add_capacity(model, problem, v, lits)
    model.add(lits[0] == 0)
    model.add(lits[1] == 1)
    _fix_plan(model, v, problem, VALID)
    assert _feasible(model)


# --- locks ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("plan", "ok"), [(VALID, True), (LOCK_MOVED, False)])
def test_locks_alone(tiny_problem, plan, ok):
    model, v = _model(tiny_problem)
    assert add_locks(model, tiny_problem, v) == 1
    _fix_plan(model, v, tiny_problem, plan)
    assert _feasible(model) is ok


def test_locks_switched_off_by_their_literal(tiny_problem):
    model, v = _model(tiny_problem)
    lit = model.new_bool_var("locks")
    add_locks(model, tiny_problem, v, lit)
    model.add(lit == 0)
    _fix_plan(model, v, tiny_problem, LOCK_MOVED)
    assert _feasible(model)


# --- objective -----------------------------------------------------------------------------


def test_objective_of_a_fixed_plan(tiny_problem):
    model, v = _model(tiny_problem)
    q = add_objective(model, tiny_problem, v)
    _fix_plan(model, v, tiny_problem, VALID)
    solver = cp_model.CpSolver()
    solver.parameters.num_workers = 1
    assert solver.solve(model) == cp_model.OPTIMAL
    # cost 1 + 2 + 3 + 5; four rounded pairs are off by at most q/2 each
    assert abs(solver.objective_value * q.q - 11.0) <= 4 * 0.5 * q.q
    assert q.q == pytest.approx(5.0 / 2**24)


# --- the whole model agrees with the checker -----------------------------------------------


@pytest.mark.parametrize("plan", [VALID, BAND_UNDER, LOCK_MOVED, [0, 0, 1, 1]])
@pytest.mark.parametrize("capacity_h", [[40.0, 40.0], [25.0, 40.0]])
def test_full_model_agrees_with_the_checker(tiny_problem, plan, capacity_h):
    problem = replace(tiny_problem, capacity_h=np.array(capacity_h))
    built = build_model(problem)
    _fix_plan(built.model, built.vars, problem, plan)
    assert _feasible(built.model) is check_plan(problem, np.array(plan)).ok


# --- hints ---------------------------------------------------------------------------------

FIX_TO_HINT = replace(SETTINGS, cp_sat={"fix_variables_to_their_hinted_value": True})


def test_checked_plan_as_hint_is_feasible(tiny_problem):
    res = solve_cpsat(tiny_problem, FIX_TO_HINT, hint=np.array(VALID))
    assert res.status in ("OPTIMAL", "FEASIBLE")
    assert res.assignment.tolist() == VALID
    assert res.objective == 11.0


@pytest.mark.parametrize("plan", [BAND_UNDER, LOCK_MOVED])
def test_broken_plan_as_hint_is_infeasible(tiny_problem, plan):
    res = solve_cpsat(tiny_problem, FIX_TO_HINT, hint=np.array(plan))
    assert res.status == "INFEASIBLE"
    assert not res.has_plan


def test_greedy_warm_start_is_a_feasible_hint(random_problem):
    problem, _ = random_problem(60, 6, seed=4, tolerance=0.2)
    greedy = solve_greedy(problem)
    assert check_plan(problem, greedy.assignment).ok, "a loose instance greedy can solve"
    res = solve_cpsat(problem, FIX_TO_HINT, hint=greedy.assignment)
    assert res.status in ("OPTIMAL", "FEASIBLE")
    np.testing.assert_array_equal(res.assignment, greedy.assignment)


# --- explaining infeasibility --------------------------------------------------------------


def test_explain_names_the_impossible_band_minimum(tiny_problem):
    # rep0 can hold at most 10 + 20 + 30 = 60, so a minimum of 70 cannot hold.
    impossible = tiny_problem.with_bands(np.array([70.0, 0.0]), np.array([100.0, 100.0]))
    assert explain_infeasibility(impossible, SETTINGS) == [Conflict("band-lo", rep=0, measure=0)]


def test_explain_names_the_impossible_band_maximum(tiny_problem):
    # u3 (40) can only go to rep1, so a maximum of 30 cannot hold.
    impossible = tiny_problem.with_bands(np.array([35.0, 0.0]), np.array([65.0, 30.0]))
    assert explain_infeasibility(impossible, SETTINGS) == [Conflict("band-hi", rep=1, measure=0)]


def test_explain_names_capacity_band_and_locks_together(tiny_problem):
    # To reach its minimum of 35, rep0 needs u2 besides u1 (20 + 30 = 50; u0 + u1 is only
    # 30); with the locked u0 it works 10 + 10 + 10 = 30 h > 25 h. Dropping any one of the
    # three groups (band minimum, capacity, locks) makes a plan possible.
    problem = replace(tiny_problem, capacity_h=np.array([25.0, 40.0]))
    conflicts = explain_infeasibility(problem, SETTINGS)
    assert sorted(conflicts, key=str) == sorted(
        [Conflict("band-lo", 0, 0), Conflict("capacity", 0), Conflict("locks")], key=str
    )


def test_explain_returns_none_when_a_plan_exists(tiny_problem):
    assert explain_infeasibility(tiny_problem, SETTINGS) is None


# --- scaling -------------------------------------------------------------------------------


def test_quantum_maps_the_largest_value_to_2_pow_24():
    q = quantise("x", np.array([0.5, -3.0, 2.0]))
    assert q.q == 3.0 / 2**24
    assert q.to_int(np.array([3.0, -3.0, 0.0])).tolist() == [2**24, -(2**24), 0]
    assert quantise("zeros", np.zeros(3)).q == 1.0


def test_scaling_tightens_in_the_safe_direction_by_hand():
    # With q = 1 these values round down by 0.49 each: ints 3 + 2 + 5 = 10, floats 11.47.
    q = Quantum("x", 1.0)
    values = np.array([3.49, 2.49, 5.49])
    ints = int(q.to_int(values).sum())
    assert ints == 10
    # An upper limit of 11 is broken by the floats; the scaled limit must reject ints = 10.
    assert ints > scaled_upper(q, 11.0, terms=3, reference=0.0)
    # Rounded up by 0.49 each (3.51 -> 4 ...): ints 4 + 3 + 6 = 13, floats 11.53 < 12.
    up = np.array([3.51, 2.51, 5.51])
    assert int(q.to_int(up).sum()) < scaled_lower(q, 12.0, terms=3)
    assert scaled_upper(q, math.inf, 3, 0.0) is None
    assert scaled_lower(q, -math.inf, 3) is None


def test_scaled_feasible_is_always_float_feasible():
    """Random values, subsets and limits near the subset's sum: whenever the integer sum
    meets the scaled limit, the float sum meets the float limit."""
    rng = np.random.default_rng(0)
    accepted = rejected_but_feasible = 0
    for _ in range(2_000):
        values = rng.lognormal(0.0, 2.0, size=int(rng.integers(1, 30)))
        q = quantise("x", values)
        terms = values.size
        pick = rng.random(terms) < 0.5
        total, ints = float(values[pick].sum()), int(q.to_int(values[pick]).sum())
        limit = total * (1 + rng.normal(0.0, 1e-6))
        hi = scaled_upper(q, limit, terms, reference=0.0)
        lo = scaled_lower(q, limit, terms)
        if ints <= hi:
            assert total <= limit * (1 + 1e-12)
            accepted += 1
        elif total <= limit:
            rejected_but_feasible += 1  # the price of safety: limits are tightened
        if ints >= lo:
            assert total >= limit * (1 - 1e-12)
    # Both outcomes occur, so the limits really are probed at the rounding scale.
    assert accepted > 100 and rejected_but_feasible > 100


def test_scaling_warns_when_the_range_is_too_wide():
    values = np.array([1e9, 1.0])  # q ~ 60: a limit of 1,000 loses far more than 0.1 %
    q = quantise("workload_h", values)
    with pytest.warns(ScalingWarning, match="integer scaling of workload_h tightens a limit"):
        scaled_upper(q, 1_000.0, terms=100, reference=1_000.0)


def test_cpsat_plans_pass_the_float_checker(random_problem):
    # Band limits with many decimals, tight (+-1 %): every CP-SAT plan must pass the checker.
    problem, _ = random_problem(40, 4, seed=6, tolerance=0.01)
    res = solve_cpsat(problem, replace(SETTINGS, relative_gap=0.0))
    assert res.has_plan
    report = check_plan(problem, res.assignment, reported_objective=res.objective)
    assert report.ok, report.describe()
    assert res.bound <= res.objective


def test_cpsat_bound_is_valid_for_a_plan_on_a_limit(tiny_problem, brute_force):
    # rep0's minimum lowered to 20 makes [0, 0, 1, 1] a plan: rep1 then works exactly
    # 30 + 10 = 40 h, its capacity; it costs 1 + 2 + 1 + 5 = 9 against 11 for [0, 0, 0, 1].
    problem = tiny_problem.with_bands(np.array([20.0, 35.0]), tiny_problem.measure_hi)
    optimum, plan = brute_force(problem)
    assert (optimum, plan.tolist()) == (9.0, [0, 0, 1, 1])
    assert check_plan(problem, plan).ok
    res = solve_cpsat(problem, replace(SETTINGS, relative_gap=0.0))
    assert res.bound <= optimum

"""The relaxation from near-optimal duals (:mod:`solvers.guided`): units the duals settle
are fixed, the LP over the rest gives a solution of the whole relaxation near its optimum.

The instance is the one of ``test_colgen``: 80 accounts, 4 reps, rep 0's capacity binding.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from test_colgen import _instance

from solvers.aggregate import _side_rows, lagrangian_bound
from solvers.colgen import _price_all
from solvers.guided import _unit_scale, guided_relaxation
from solvers.lagrange import smoothed_duals
from solvers.lp import solve_relaxation
from solvers.pairspace import with_pairs


def _assert_relaxed_solution(problem, x):
    """Every unit wholly assigned over its pairs, every side row within its limits,
    locked units on their rep."""
    per_unit = np.bincount(problem.pair_unit, x, minlength=problem.num_units)
    np.testing.assert_allclose(per_unit, 1.0, atol=1e-6)
    assert np.all(x >= -1e-9)
    side, lo, hi, _ = _side_rows(problem)
    use = side @ x
    scale = np.maximum(np.abs(np.where(np.isfinite(hi), hi, lo)), 1.0)
    assert np.all(use >= lo - 1e-6 * scale)
    assert np.all(use <= hi + 1e-6 * scale)
    locked = np.flatnonzero(problem.fixed_rep >= 0)
    if locked.size:
        pairs = problem.pair_index(locked, problem.fixed_rep[locked])
        np.testing.assert_allclose(x[pairs], 1.0, atol=1e-6)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_guided_solution_is_feasible_and_near_the_optimum(seed):
    space, _, full = _instance(seed)
    y = smoothed_duals(full, space)
    out = guided_relaxation(full, y, time_left=lambda: 30.0, margins=(0.2, 0.4, 0.8, 10.0))
    assert out is not None
    x, duals = out
    assert duals.shape == _side_rows(full)[1].shape
    _assert_relaxed_solution(full, x)
    lp = solve_relaxation(full)
    objective = float(full.pair_cost @ x)
    # A solution of the relaxation costs at least its optimum, and the duals' bound is
    # below both; fixing only the units the duals settle loses little.
    assert objective >= lp.objective * (1 - 1e-9)
    assert lagrangian_bound(full, y) <= objective
    assert objective <= lp.objective * 1.005


def test_priced_pairs_hold_each_units_best_pair():
    space, base, full = _instance(0)
    y = smoothed_duals(full, space)
    side, lo, hi, _ = _side_rows(full)
    base_side = _side_rows(base)[0]
    units, reps, bound = _price_all(base, space, base_side, y, (lo, hi), 2, best_only=False)
    problem = with_pairs(base, space, units, reps)
    assert problem.num_pairs > base.num_pairs
    # The same pass gives the bound over every pair.
    assert bound == pytest.approx(lagrangian_bound(full, y), rel=1e-9)
    # Every unit's pair of least reduced cost over all pairs is among the candidates now.
    rc = full.pair_cost - side.T @ y
    order = np.lexsort((rc, full.pair_unit))
    first = order[np.r_[True, full.pair_unit[order][1:] != full.pair_unit[order][:-1]]]
    best = full.cand_rep[first]
    assert np.all(problem.pair_index(np.arange(full.num_units), best) >= 0)


def test_guided_keeps_locked_units():
    space, _, full = _instance(0)
    locked = np.full(full.num_units, -1)
    locked[:5] = 3  # the far corner for some of them: their pair must stay whole
    problem = replace(full, fixed_rep=locked)
    y = smoothed_duals(problem, space)
    out = guided_relaxation(problem, y, time_left=lambda: 30.0, margins=(0.2, 0.4, 0.8, 10.0))
    assert out is not None
    _assert_relaxed_solution(problem, out[0])


def test_guided_gives_up_when_the_duals_settle_units_wrongly():
    # Zero duals send every unit to its nearest rep, which breaks rep 0's capacity; with a
    # margin too narrow to free anyone the LP needs slack, and no solution is claimed.
    _, _, full = _instance(0, cap_share=0.7)
    stats: dict = {}
    y0 = np.zeros(_side_rows(full)[1].shape)
    out = guided_relaxation(full, y0, time_left=lambda: 30.0, margins=(1e-9,), stats=stats)
    assert out is None
    assert stats["guided"][0]["slack"] > 0


def _one_split_unit_pinned(full):
    """The exact LP's solution with its first split unit moved whole to the rep rounding
    gives it (what the pin rounds hand over): the pinned problem, that start, and the reps
    the LP had the unit on."""
    lp = solve_relaxation(full)
    split = lp.split_units(full)
    assert split.size  # capacity binds: the vertex splits a unit
    rounded = lp.rounded(full)
    u = split[0]
    pins = full.fixed_rep.copy()
    pins[u] = rounded[u]
    start = lp.x.copy()
    region = np.zeros(full.num_reps, bool)
    region[full.cand_rep[(full.pair_unit == u) & (start > 1e-9)]] = True
    start[full.pair_unit == u] = 0.0
    start[full.pair_index(np.array([u]), rounded[[u]])] = 1.0
    return replace(full, fixed_rep=pins), start, region


@pytest.mark.parametrize("seed", [0, 1])
def test_anchored_guided_keeps_the_settled_units_and_never_costs_more(seed):
    """From a solution in hand (the exact LP's, with one split unit pinned whole: what
    the pin rounds hand over), units it holds whole on the duals' best rep stay there, and
    the LP over the rest is slack-free and no dearer than the start with its pin."""
    space, _, full = _instance(seed)
    side, lo, hi, _ = _side_rows(full)
    pinned, start, _ = _one_split_unit_pinned(full)
    y = smoothed_duals(full, space)
    out = guided_relaxation(pinned, y, time_left=lambda: 30.0, start=start, margins=(0.2,))
    assert out is not None
    x, _ = out
    _assert_relaxed_solution(pinned, x)
    # The pin shifts load the start cannot absorb, so the LP rebalances around it: at the
    # pinned relaxation's optimum or a little above (the settled units stay fixed).
    exact = solve_relaxation(pinned).objective
    objective = float(full.pair_cost @ x)
    assert exact * (1 - 1e-9) <= objective <= exact * 1.005
    # Settled units (whole in the start, on the duals' least reduced-cost pair) stay put.
    rc = full.pair_cost - side.T @ y
    order = np.lexsort((rc, full.pair_unit))
    first = order[np.r_[True, full.pair_unit[order][1:] != full.pair_unit[order][:-1]]]
    masked = rc.copy()
    masked[first] = np.inf
    second = np.minimum.reduceat(masked, full.cand_indptr[:-1])
    margin = second - rc[first]
    settled = (start[first] >= 1 - 1e-6) & (margin >= 0.2 * _unit_scale(full))
    assert settled.sum() > 0
    np.testing.assert_allclose(x[first[settled]], 1.0, atol=1e-9)


@pytest.mark.parametrize("seed", [0, 2])
def test_local_rounds_mend_the_slack_a_narrow_margin_leaves(seed):
    """Zero duals send every unit to its nearest rep and break rep 0's capacity; at margin
    0.05 the LP over the few free units needs slack. Without local rounds no solution is
    claimed; with them, the units around the reps needing slack are freed and the result
    is a solution of the whole relaxation."""
    _, _, full = _instance(seed, cap_share=0.7)
    y0 = np.zeros(_side_rows(full)[1].shape)
    stats: dict = {}
    none = guided_relaxation(full, y0, time_left=lambda: 30.0, margins=(0.05,), local_rounds=0)
    assert none is None
    out = guided_relaxation(full, y0, time_left=lambda: 30.0, margins=(0.05,), stats=stats)
    assert out is not None
    tries = stats["guided"]
    assert tries[0]["slack"] > 0 and tries[-1]["local_round"] >= 1
    _assert_relaxed_solution(full, out[0])
    assert float(full.pair_cost @ out[0]) >= solve_relaxation(full).objective * (1 - 1e-9)


def test_region_mode_rebalances_around_a_pin_only():
    """Given a start with one unit pinned whole and the reps it moved between, only local
    rounds run: the result is a solution of the pinned relaxation."""
    space, _, full = _instance(1)
    pinned, start, region = _one_split_unit_pinned(full)
    stats: dict = {}
    y = smoothed_duals(full, space)
    out = guided_relaxation(
        pinned, y, time_left=lambda: 30.0, start=start, region=region, stats=stats
    )
    assert out is not None
    assert all("local_round" in t for t in stats["guided"])
    _assert_relaxed_solution(pinned, out[0])
    assert float(full.pair_cost @ out[0]) >= solve_relaxation(pinned).objective * (1 - 1e-9)

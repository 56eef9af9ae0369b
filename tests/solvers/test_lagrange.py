"""The smoothed Lagrangian dual (:mod:`solvers.lagrange`): its duals, priced over every
pair, give a valid lower bound close to the relaxation's optimum.

The instance is the one of ``test_colgen``: 80 accounts in a 2 x 2 degree box, 4 reps at
its corners, rep 0's capacity binding. Variants add transfer limits and locked accounts,
so every row kind the dual carries (bands, capacity, keep rows) is exercised.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from test_colgen import _instance

from solvers.aggregate import _side_rows, lagrangian_bound
from solvers.colgen import _price_all
from solvers.lagrange import DualSettings, smoothed_duals
from solvers.lp import solve_relaxation


def _with_transfer(full, share: float = 0.5):
    """Current reps: the nearest; each rep keeps at least ``share`` of its book's potential."""
    n = full.num_units
    km_rank = np.argsort(full.pair_cost.reshape(n, 4) / full.unit_measure[:, :1], axis=1)
    cur = km_rank[:, 0]
    keep = full.unit_measure[:, :1].copy()
    book = np.bincount(cur, keep[:, 0], minlength=4)
    return replace(
        full,
        current_rep=cur,
        keep_measure=keep,
        keep_min=share * book[:, None],
        keep_min_total=np.zeros(1),
        keep_names=("potential",),
    )


@pytest.mark.parametrize(
    ("seed", "settings", "within"),
    [
        (0, None, 0.02),
        (1, None, 0.02),
        (2, None, 0.02),
        # The sample level: half the units, each standing for two, limits widened.
        (3, DualSettings(sample_share=0.5, min_sample_units=0, widen=0.1), 0.05),
    ],
)
def test_duals_bound_is_valid_and_close(seed, settings, within):
    space, _, full = _instance(seed)
    y = smoothed_duals(full, space, settings)
    assert y.shape == _side_rows(full)[1].shape
    lp = solve_relaxation(full)
    bound = lagrangian_bound(full, y)
    # Weak duality: never above the relaxation; annealed to a low temperature: close to it.
    assert bound <= lp.objective * (1 + 1e-9)
    assert bound >= lp.objective * (1 - within)


def test_transfer_rows_and_locks_are_carried():
    space, _, full = _instance(4)
    problem = _with_transfer(full)
    locked = np.full(problem.num_units, -1)
    locked[:3] = problem.current_rep[:3]
    problem = replace(problem, fixed_rep=locked)
    y = smoothed_duals(problem, space)
    side, lo, _, _ = _side_rows(problem)
    assert y.shape == lo.shape
    lp = solve_relaxation(problem)
    assert lp.status == "OPTIMAL"
    bound = lagrangian_bound(problem, y)
    assert bound <= lp.objective * (1 + 1e-9)
    assert bound >= lp.objective * (1 - 0.02)
    # The keep rows' multipliers are never negative (they are >= rows).
    n_keep = int((problem.keep_min > 0).sum())
    assert np.all(y[-n_keep:] >= 0)


def test_same_inputs_same_duals():
    space, _, full = _instance(5)
    settings = DualSettings(sample_share=0.5, min_sample_units=0)
    a = smoothed_duals(full, space, settings)
    b = smoothed_duals(full, space, settings)
    np.testing.assert_array_equal(a, b)


def test_a_pin_does_not_leak_into_the_all_pairs_bound():
    """Pins that only help rounding are not locks: priced with the real locks, the bound
    of a pinned problem equals the unpinned one, and it stays below the relaxation; priced
    with the pins as locks it may not."""
    space, problem, full = _instance(6)
    y = smoothed_duals(full, space)
    side, lo, hi, _ = _side_rows(problem)
    plain = _price_all(problem, space, side, y, (lo, hi), 1)[2]
    pins = problem.fixed_rep.copy()
    far = np.argsort(-space.km(np.arange(problem.num_units), problem.cand_rep))[:5]
    pins[far] = problem.cand_rep[far]  # each unit's only candidate: a valid pin
    pinned = replace(problem, fixed_rep=pins)
    real = _price_all(pinned, space, side, y, (lo, hi), 1, fixed=problem.fixed_rep)[2]
    assert real == pytest.approx(plain, rel=1e-12)
    assert real <= solve_relaxation(full).objective * (1 + 1e-9)


def test_a_level_narrowed_to_every_entry_prices_as_the_whole_level():
    from scipy.spatial import cKDTree

    from solvers import lagrange as L
    from solvers.pairspace import unit_vectors

    space, _, full = _instance(0)
    movable = np.flatnonzero(full.fixed_rep < 0)
    tree = {0: (cKDTree(unit_vectors(space.rep_lat, space.rep_lon)), np.arange(4))}
    lv = L._Level(full, space, movable, 1.0, 4, tree)
    dual = L._Dual(full, L._locked_use(full))
    z = np.random.default_rng(0).random(dual.n)
    scales = np.ones(dual.n)
    limits = (dual.lo, dual.hi, dual.cap, dual.keep_min, dual.keep_tot)
    rc = L._reduced_costs(z, lv, dual, scales)
    whole = lv.narrowed(rc, np.full(lv.num_units, np.inf))
    f, g = L._value_and_grad(z, lv, dual, scales, 0.01, limits)
    f2, g2 = L._value_and_grad(z, whole, dual, scales, 0.01, limits)
    assert f2 == pytest.approx(f) and np.allclose(g2, g)
    # A zero window keeps each unit's least entry only.
    least = lv.narrowed(rc, np.zeros(lv.num_units))
    assert least.flat.size == lv.num_units < lv.flat.size


@pytest.mark.parametrize("seed", [0, 1])
def test_a_window_too_narrow_is_widened_not_trusted(seed):
    """With each unit's least entry only, the narrowed dual is unbounded (a rep no entry
    reaches looks free to raise its multipliers): the whole level's check rejects such
    chunks and the window widens, so the bound still lands near the relaxation."""
    space, _, full = _instance(seed)
    y = smoothed_duals(full, space, DualSettings(window=0.0, window_pad=0.0))
    lp = solve_relaxation(full)
    bound = lagrangian_bound(full, y)
    assert lp.objective * (1 - 0.02) <= bound <= lp.objective * (1 + 1e-9)

"""AlignmentProblem: validated when built, frozen, varied with ``replace()``.

Every test starts from the four-unit ``tiny_problem`` (drawn in ``tests/conftest.py``) and
breaks one thing, so each message is checked against a known cause.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from solvers.problem import AlignmentProblem


def _arrays(problem: AlignmentProblem) -> dict:
    """The constructor arguments of ``problem`` as writable copies."""
    names = (
        "cand_indptr",
        "cand_rep",
        "pair_cost",
        "pair_workload_h",
        "unit_measure",
        "measure_lo",
        "measure_hi",
        "measure_target",
        "capacity_h",
        "fixed_rep",
        "current_rep",
    )
    return {name: getattr(problem, name).copy() for name in names} | {
        "measure_names": problem.measure_names
    }


def test_valid_problem_sizes_and_lookups(tiny_problem):
    p = tiny_problem
    assert (p.num_units, p.num_reps, p.num_pairs, p.num_measures) == (4, 2, 6, 1)
    assert p.pair_unit.tolist() == [0, 0, 1, 2, 2, 3]
    assert p.candidates(2).tolist() == [0, 1]
    assert p.pair_index(np.array([0, 0, 1, 1, 2, 3]), np.array([0, 1, 0, 1, 1, 0])).tolist() == [
        0,
        1,
        2,
        -1,
        4,
        -1,
    ]
    # 1-D bands and measures are stored as one measure column.
    assert p.unit_measure.shape == (4, 1)
    assert p.measure_lo.shape == p.measure_hi.shape == p.measure_target.shape == (2, 1)


def test_arrays_are_frozen(tiny_problem):
    with pytest.raises(ValueError, match="read-only"):
        tiny_problem.pair_cost[0] = 99.0
    with pytest.raises(AttributeError):
        tiny_problem.capacity_h = np.zeros(2)  # type: ignore[misc]


def test_replace_revalidates_and_keeps_the_original(tiny_problem):
    wider = tiny_problem.with_bands(np.array([0.0, 0.0]), np.array([100.0, 100.0]))
    assert wider.measure_hi[:, 0].tolist() == [100.0, 100.0]
    assert tiny_problem.measure_hi[:, 0].tolist() == [65.0, 75.0]
    with pytest.raises(ValueError, match="capacity_h must be non-negative"):
        replace(tiny_problem, capacity_h=np.array([40.0, -1.0]))


def test_unsorted_candidates(tiny_problem):
    args = _arrays(tiny_problem)
    args["cand_rep"] = np.array([1, 0, 0, 0, 1, 1])  # unit 0 lists rep 1 before rep 0
    with pytest.raises(ValueError, match="candidates of a unit must be sorted"):
        AlignmentProblem(**args)


def test_repeated_candidate(tiny_problem):
    args = _arrays(tiny_problem)
    args["cand_rep"] = np.array([0, 0, 0, 0, 1, 1])  # unit 0 lists rep 0 twice
    with pytest.raises(ValueError, match="candidates of a unit must be sorted"):
        AlignmentProblem(**args)


def test_fixed_rep_not_a_candidate(tiny_problem):
    args = _arrays(tiny_problem)
    args["fixed_rep"] = np.array([0, 1, -1, -1])  # unit 1 can only go to rep 0
    with pytest.raises(ValueError, match="a fixed unit's rep is not a candidate"):
        AlignmentProblem(**args)


def test_fixed_rep_out_of_range(tiny_problem):
    args = _arrays(tiny_problem)
    args["fixed_rep"] = np.array([0, -1, -1, 7])
    with pytest.raises(ValueError, match="a fixed unit's rep is not a candidate"):
        AlignmentProblem(**args)


def test_unit_with_no_candidate(tiny_problem):
    # Unit 1 loses its only pair: its CSR row is empty.
    args = _arrays(tiny_problem)
    keep = np.array([0, 1, 3, 4, 5])
    args["cand_indptr"] = np.array([0, 2, 2, 4, 5])
    for name in ("cand_rep", "pair_cost", "pair_workload_h"):
        args[name] = args[name][keep]
    with pytest.raises(ValueError, match=r"1 unit\(s\) have no candidate rep \(first: unit 1\)"):
        AlignmentProblem(**args)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("pair_cost", np.ones(5), r"pair_cost must have shape \(6,\), got \(5,\)"),
        ("pair_workload_h", np.ones((6, 2)), r"pair_workload_h must have shape \(6,\)"),
        ("pair_cost", np.array([1, 4, 2, 3, 1, np.nan]), "pair_cost must be finite"),
        ("pair_workload_h", -np.ones(6), "pair_workload_h must be finite and non-negative"),
        ("unit_measure", np.ones(3), "unit_measure must have 4 rows"),
        ("unit_measure", np.array([10, 20, -30, 40]), "unit_measure must be finite"),
        ("measure_lo", np.zeros(3), r"measure_lo must have shape \(2, 1\)"),
        ("measure_hi", np.ones((2, 2)), r"measure_hi must have shape \(2, 1\)"),
        ("measure_target", np.ones(1), r"measure_target must have shape \(2, 1\)"),
        ("fixed_rep", np.full(3, -1), r"fixed_rep and current_rep must have shape \(4,\)"),
        ("current_rep", np.full(5, -1), r"fixed_rep and current_rep must have shape \(4,\)"),
        ("capacity_h", np.array([40.0, np.nan]), "capacity_h must be non-negative"),
        ("cand_indptr", np.array([1, 2, 3, 5, 6]), "cand_indptr must start at 0 and end at"),
        ("cand_indptr", np.array([0, 2, 1, 5, 6]), "cand_indptr must be non-decreasing"),
        ("cand_rep", np.array([0, 1, 0, 0, 1, 2]), r"rep indices outside \[0, 2\)"),
        ("measure_names", ("potential", "revenue"), "measure_names must name 1 measures"),
    ],
)
def test_bad_arrays(tiny_problem, name, value, message):
    args = _arrays(tiny_problem) | {name: value}
    with pytest.raises(ValueError, match=r"invalid AlignmentProblem: .*" + message):
        AlignmentProblem(**args)


def test_every_shape_problem_in_one_message(tiny_problem):
    args = _arrays(tiny_problem) | {"pair_cost": np.ones(5), "capacity_h": np.array([-1.0, 1.0])}
    with pytest.raises(ValueError, match="pair_cost must have shape") as err:
        AlignmentProblem(**args)
    assert "capacity_h must be non-negative" in str(err.value)


def test_infinite_band_sides_and_capacity_are_allowed(tiny_problem):
    p = replace(
        tiny_problem,
        measure_lo=np.array([-np.inf, 0.0]),
        measure_hi=np.array([np.inf, np.inf]),
        capacity_h=np.array([np.inf, 40.0]),
    )
    assert np.isinf(p.measure_lo[0, 0]) and np.isinf(p.capacity_h[0])


def test_nan_band_is_rejected(tiny_problem):
    with pytest.raises(ValueError, match="measure_lo"):
        replace(tiny_problem, measure_lo=np.array([np.nan, 35.0]))

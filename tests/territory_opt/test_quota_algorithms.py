"""Quota algorithms on tiny books whose quotas can be worked out by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from territory_opt.quota_algorithms import (
    HeadcountQuota,
    PotentialQuota,
    QuotaAlgorithm,
    QuotaDataError,
    QuotaInfeasibleError,
    QuotaInputs,
    allocate_with_bounds,
    available_algorithms,
    parse_algorithm,
    parse_algorithms,
    ramp_factor,
    register_algorithm,
    to_cents,
)

ALL_SPECS = ["headcount", "headcount:fte", "history", "potential", "blended:0.3"]


def make_inputs(
    potential=(100.0, 300.0),
    last_year=(100.0, 300.0),
    fte=None,
    start=None,
    plan_year=2025,
    **reps_columns,
) -> QuotaInputs:
    """Reps R0, R1, ... with territory potential and last year's territory bookings."""
    n = len(potential)
    reps = pd.DataFrame(
        {
            "rep_id": [f"R{i}" for i in range(n)],
            "potential": potential,
            "fte": fte if fte is not None else [1.0] * n,
            "start_date": start if start is not None else [None] * n,
            **reps_columns,
        }
    )
    history = pd.DataFrame(
        {"rep_id": reps["rep_id"], "year": plan_year - 1, "bookings": list(last_year)}
    )
    return QuotaInputs(reps=reps, history=history, plan_year=plan_year)


def random_inputs(seed: int, n: int = 25) -> QuotaInputs:
    rng = np.random.default_rng(seed)
    return make_inputs(
        potential=rng.lognormal(12, 1, n),
        last_year=rng.lognormal(11, 1, n) * (rng.random(n) > 0.1),  # some new territories
        fte=rng.choice([0.5, 0.8, 1.0], n),
    )


@pytest.mark.parametrize("spec", ALL_SPECS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_quotas_sum_exactly_to_total_in_cents(spec, seed):
    inputs = random_inputs(seed)
    quotas = parse_algorithm(spec)(inputs, 12_345_678.91)
    assert to_cents(quotas).sum() == 1_234_567_891
    assert (quotas >= 0).all()
    assert list(quotas.index) == list(inputs.rep_ids)


def test_headcount_equal_split_gives_the_odd_cent_to_the_first_rep():
    inputs = make_inputs(potential=(1.0, 2.0, 3.0), last_year=(1.0, 1.0, 1.0))
    assert HeadcountQuota()(inputs, 100.0).tolist() == [33.34, 33.33, 33.33]


def test_headcount_fte_weighted():
    inputs = make_inputs(fte=[1.0, 0.5])
    assert parse_algorithm("headcount:fte")(inputs, 300.0).tolist() == [200.0, 100.0]
    assert parse_algorithm("headcount")(inputs, 300.0).tolist() == [150.0, 150.0]


def test_potential_history_and_blended_shares():
    # Potential shares 1/4, 3/4; history shares 1/2, 1/2.
    inputs = make_inputs(potential=(100.0, 300.0), last_year=(200.0, 200.0))
    assert parse_algorithm("potential")(inputs, 1000.0).tolist() == [250.0, 750.0]
    assert parse_algorithm("history")(inputs, 1000.0).tolist() == [500.0, 500.0]
    assert parse_algorithm("blended:0.5")(inputs, 1000.0).tolist() == [375.0, 625.0]


def test_history_scales_last_year_and_covers_new_territories():
    # R2 had no bookings: it gets the median bookings per FTE (200) x its FTE (1).
    inputs = make_inputs(
        potential=(1.0, 1.0, 1.0), last_year=(100.0, 300.0, 0.0), fte=[1.0, 1.0, 1.0]
    )
    quotas = parse_algorithm("history")(inputs, 1200.0)
    assert quotas.tolist() == [200.0, 600.0, 400.0]


def test_cap_clamps_and_redistributes():
    # Unconstrained potential split 50/50/200; R2 is capped at 120 and the rest is shared.
    inputs = make_inputs(potential=(1.0, 1.0, 4.0), last_year=(100.0, 100.0, 100.0))
    quotas = PotentialQuota(floor=-0.2, cap=0.2)(inputs, 300.0)
    assert quotas.tolist() == [90.0, 90.0, 120.0]


@pytest.mark.parametrize("seed", range(8))
def test_floor_and_cap_respected_and_match_exact_solution(seed):
    inputs = random_inputs(seed)
    total = float(inputs.last_year_bookings.sum()) * 1.05
    algo = PotentialQuota(floor=-0.1, cap=0.15)
    quotas = algo(inputs, total)
    ref = inputs.reference
    has = ref.notna()
    assert (quotas[has] >= 0.9 * ref[has] - 0.01).all()
    assert (quotas[has] <= 1.15 * ref[has] + 0.01).all()
    assert to_cents(quotas).sum() == round(total * 100)

    # The clamp-and-redistribute answer equals the exact one, s found by bisection on
    # sum(clip(s * w, lo, hi)) = total.
    w = inputs.reps["potential"].to_numpy()
    lo = np.where(has, 0.9 * ref.fillna(0), 0.0)
    hi = np.where(has, 1.15 * ref.fillna(0), np.inf)
    a, b = 0.0, 1.0
    while np.clip(b * w, lo, hi).sum() < total:
        b *= 2
    for _ in range(200):
        mid = (a + b) / 2
        a, b = (mid, b) if np.clip(mid * w, lo, hi).sum() < total else (a, mid)
    np.testing.assert_allclose(quotas.to_numpy(), np.clip(b * w, lo, hi), atol=0.011)


def test_allocation_clamps_on_both_sides():
    q = allocate_with_bounds(
        np.array([1.0, 1.0, 1.0, 5.0]),
        400.0,
        lower=np.array([90.0] * 4),
        upper=np.array([110.0] * 4),
    )
    np.testing.assert_allclose(q, [290 / 3, 290 / 3, 290 / 3, 110.0])


def test_floor_that_makes_total_impossible_reports_the_arithmetic():
    inputs = make_inputs(potential=(1.0, 1.0), last_year=(100.0, 300.0))
    with pytest.raises(
        QuotaInfeasibleError,
        match=r"floor \+0\.0% .* 1\.000 x 400\.00 = 400\.00, which exceeds the total "
        r"300\.00 by 100\.00; lower the floor to at most -25\.0%",
    ):
        PotentialQuota(floor=0.0)(inputs, 300.0)


def test_cap_that_makes_total_impossible_reports_the_arithmetic():
    inputs = make_inputs(potential=(1.0, 1.0), last_year=(100.0, 300.0))
    with pytest.raises(
        QuotaInfeasibleError,
        match=r"cap \+10\.0% .* at most 1\.100 x 400\.00 = 440\.00, which is 60\.00 short "
        r"of the total 500\.00; raise the cap to at least \+25\.0%",
    ):
        HeadcountQuota(cap=0.1)(inputs, 500.0)


def test_ramp_factor_known_cases():
    start = pd.Series(
        pd.to_datetime(["2025-07-01", "2025-01-01", "2024-10-01", None, "2026-02-01"])
    )
    factor = ramp_factor(start, np.array([0.0, 12.0, 6.0, 6.0, 0.0]), 2025)
    # Oct start, 6-month ramp: Jan-Mar at 3.5/6, 4.5/6, 5.5/6, then 9 full months.
    np.testing.assert_allclose(factor, [0.5, 0.5, 0.9375, 1.0, 0.0])


def test_ramp_prorates_new_rep_and_gives_the_rest_to_others():
    inputs = make_inputs(
        potential=(100.0, 100.0), last_year=(0.0, 0.0), start=["2010-01-01", "2025-07-01"]
    )
    assert PotentialQuota()(inputs, 300.0).tolist() == [200.0, 100.0]
    ramping = make_inputs(
        potential=(100.0, 100.0),
        last_year=(0.0, 0.0),
        start=["2010-01-01", "2025-01-01"],
        ramp_months=[0.0, 12.0],
    )
    assert HeadcountQuota()(ramping, 300.0).tolist() == [200.0, 100.0]


def test_parse_algorithms_spec_and_registry():
    algos = parse_algorithms("headcount, potential,blended:0.5", floor=-0.1, cap=0.2)
    assert [a.name for a in algos] == ["headcount", "potential", "blended:0.5"]
    assert all(a.floor == -0.1 and a.cap == 0.2 for a in algos)
    with pytest.raises(ValueError, match="unknown quota algorithm 'quadratic'; known: blended"):
        parse_algorithms("headcount,quadratic")
    with pytest.raises(ValueError, match="blended weight must be a number"):
        parse_algorithm("blended:half")
    with pytest.raises(ValueError, match=r"blended weight must be in \[0, 1\]"):
        parse_algorithm("blended:1.5")
    with pytest.raises(ValueError, match="listed twice"):
        parse_algorithms("potential,potential")
    with pytest.raises(ValueError, match="cap 0.1 is below floor 0.2"):
        PotentialQuota(floor=0.2, cap=0.1)


def test_register_custom_algorithm():
    class SquareRootQuota(QuotaAlgorithm):
        kind = "sqrt_potential"

        def weights(self, inputs):
            return np.sqrt(inputs.reps["potential"])

    register_algorithm("sqrt_potential", lambda arg, floor, cap: SquareRootQuota(floor, cap))
    assert "sqrt_potential" in available_algorithms()
    inputs = make_inputs(potential=(100.0, 400.0))
    assert parse_algorithm("sqrt_potential")(inputs, 300.0).tolist() == [100.0, 200.0]


def test_quota_inputs_report_every_problem_at_once():
    reps = pd.DataFrame({"rep_id": ["R0", "R1"], "potential": [1.0, -2.0], "fte": [1.0, 0.0]})
    history = pd.DataFrame(
        {"rep_id": ["R0", "R9", "R0"], "year": [2024, 2024, 2025], "bookings": [1.0, 2.0, -3.0]}
    )
    with pytest.raises(QuotaDataError, match="5 problem") as info:
        QuotaInputs(reps=reps, history=history, plan_year=2025)
    text = str(info.value)
    assert "potential must be finite and >= 0 for ['R1']" in text
    assert "fte must be finite and > 0 for ['R1']" in text
    assert "year(s) [2025] >= plan_year 2025" in text
    assert "bookings must be numbers >= 0" in text
    assert "rep_id(s) ['R9'] not in reps" in text


def test_zero_total_and_no_history_errors():
    inputs = make_inputs()
    assert PotentialQuota()(inputs, 0.0).tolist() == [0.0, 0.0]
    fresh = make_inputs(last_year=(0.0, 0.0))
    with pytest.raises(QuotaDataError, match="no territory has bookings in 2024"):
        parse_algorithm("history")(fresh, 100.0)

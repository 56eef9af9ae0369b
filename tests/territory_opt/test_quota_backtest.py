"""Backtest metrics, comp plan arithmetic and input validation on constructed books."""

from __future__ import annotations

import tomllib

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

from territory_opt.quota_algorithms import QuotaDataError
from territory_opt.quota_backtest import (
    CompPlan,
    QuotaBook,
    attainment_metrics,
    backtest_quotas,
    gini,
    spearman,
)


def one_account_per_rep_book(
    num_reps: int = 40, noise: float = 0.2, seed: int = 0, years=(2022, 2023, 2024)
) -> QuotaBook:
    """Rep i owns account Ai; potential grows with i (x1 to x10) and never moves.

    Bookings = 30% of potential x lognormal(0, ``noise``) per year, i.e. proportional to
    potential: potential-based quotas are fair by construction, headcount quotas are not.
    """
    rng = np.random.default_rng(seed)
    reps = pd.DataFrame({"rep_id": [f"R{i:02d}" for i in range(num_reps)], "fte": 1.0})
    potential = np.linspace(1e5, 1e6, num_reps)
    assignments = pd.DataFrame(
        {
            "account_id": [f"A{i:02d}" for i in range(num_reps)],
            "rep_id": reps["rep_id"],
            "potential": potential,
        }
    )
    history = pd.concat(
        [
            pd.DataFrame(
                {
                    "account_id": assignments["account_id"],
                    "year": y,
                    "rep_id": reps["rep_id"],
                    "bookings": 0.3 * potential * rng.lognormal(0, noise, num_reps),
                }
            )
            for y in years
        ],
        ignore_index=True,
    )
    return QuotaBook.from_frames(assignments, history, reps)


def metric(result, algorithm, name):
    m = result.metrics
    return m.loc[(m["algorithm"] == algorithm) & (m["metric"] == name), "value"].item()


def test_potential_quotas_are_fair_and_headcount_quotas_are_not():
    result = backtest_quotas(one_account_per_rep_book(), "headcount,potential")
    assert abs(metric(result, "potential", "fairness_corr_potential")) < 0.25
    assert metric(result, "headcount", "fairness_corr_potential") > 0.9
    assert metric(result, "headcount", "attainment_gini") > 2 * metric(
        result, "potential", "attainment_gini"
    )
    assert len(result.rep_years) == 2 * 2 * 40  # algorithms x backtest years x reps


def test_equal_attainment_has_zero_gini_and_no_forecast_bias():
    book = one_account_per_rep_book(noise=0.0)
    result = backtest_quotas(book, "potential,history", growth="actual")
    for algo in ("potential", "history"):
        assert metric(result, algo, "attainment_gini") == pytest.approx(0.0, abs=1e-6)
        assert metric(result, algo, "attainment_mean") == pytest.approx(1.0, abs=1e-6)
        assert metric(result, algo, "forecast_bias") == pytest.approx(0.0, abs=1e-9)
    assert gini(np.full(7, 0.83)) == pytest.approx(0.0, abs=1e-12)
    assert gini(np.array([0.0, 0.0, 0.0, 1.0])) == pytest.approx(0.75)


def test_total_follows_growth_and_quotas_only_use_earlier_years():
    book = one_account_per_rep_book()
    result = backtest_quotas(book, "history", growth=1.1)
    by_year = book.history.groupby("year")["bookings"].sum()
    np.testing.assert_allclose(result.totals["total"], 1.1 * by_year.loc[[2022, 2023]], rtol=1e-9)

    # Doubling 2024 bookings must not move the 2024 quotas (no look-ahead).
    changed = book.history.assign(
        bookings=np.where(book.history["year"] == 2024, 2, 1) * book.history["bookings"]
    )
    other = QuotaBook(accounts=book.accounts, history=changed, reps=book.reps)
    again = backtest_quotas(other, "history", growth=1.1)
    np.testing.assert_array_equal(result.rep_years["quota"], again.rep_years["quota"])


def test_payout_arithmetic_by_hand():
    plan = CompPlan(
        ote=100_000, base_share=0.5, threshold=0.5, decelerator=0.5, accelerator=2, payout_cap=2
    )
    attainment = np.array([0.4, 0.75, 1.0, 1.2, 1.8])
    # Variable multiples: 0.5 x 0.4 = 0.2; 0.25 + 0.25 x 1.5 = 0.625; 1; 1 + 2 x 0.2 = 1.4;
    # 1 + 2 x 0.8 = 2.6 capped at 2. Pay = 50,000 + 50,000 x multiple.
    np.testing.assert_allclose(plan.payout(attainment), [60_000, 81_250, 100_000, 120_000, 150_000])
    np.testing.assert_allclose(plan.payout(np.array([1.0]), fte=0.5), [50_000])


def test_comp_plan_from_toml():
    text = """
    [comp_plan]
    ote = 120000
    base_share = 0.7
    accelerator = 1.5
    """
    plan = CompPlan.from_dict(tomllib.loads(text))
    assert (plan.ote, plan.base_share, plan.accelerator, plan.threshold) == (
        120_000,
        0.7,
        1.5,
        0.5,
    )
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['bonus'\] in \[comp_plan\]"):
        CompPlan.from_dict({"bonus": 1})
    with pytest.raises(ValueError, match=r"threshold must be in \(0, 1\), got 1.5"):
        CompPlan(threshold=1.5)


def test_metrics_cost_of_sales_bias_and_bands():
    quota = np.array([100.0, 100.0, 100.0, 100.0])
    bookings = np.array([50.0, 95.0, 100.0, 150.0])
    potential = np.array([1.0, 2.0, 3.0, 4.0])
    payout = np.array([10.0, 20.0, 30.0, 40.0])
    values = dict(
        zip(
            [
                "mean",
                "std",
                "ge90",
                "ge100",
                "corr",
                "abs_corr",
                "gini",
                "payout",
                "cos",
                "bias",
            ],
            attainment_metrics(quota, bookings, potential, payout),
            strict=True,
        )
    )
    assert values["mean"] == pytest.approx(0.9875)
    assert values["ge90"] == 0.75 and values["ge100"] == 0.5
    assert values["corr"] == pytest.approx(1.0)
    assert values["payout"] == 100.0
    assert values["cos"] == pytest.approx(100 / 395)
    assert values["bias"] == pytest.approx(400 / 395 - 1)

    result = backtest_quotas(one_account_per_rep_book(), "headcount,potential")
    bands = result.bands
    assert bands.groupby("algorithm")["num_rep_years"].sum().tolist() == [80, 80]
    row = bands.iloc[0]
    assert row["cost_of_sales"] == pytest.approx(row["payout"] / row["bookings"])
    scored = result.rep_years
    assert set(scored["band"]) <= {"below", "at", "above"}


def test_weighted_metrics_equal_repeated_rows():
    rng = np.random.default_rng(3)
    x, y = rng.integers(0, 6, 30).astype(float), rng.normal(size=30)
    w = rng.integers(0, 4, 30)
    assert spearman(x, y) == pytest.approx(spearmanr(x, y).statistic)
    assert spearman(x, y, w) == pytest.approx(spearmanr(np.repeat(x, w), np.repeat(y, w)).statistic)
    assert gini(y**2, w) == pytest.approx(gini(np.repeat(y**2, w)))


def test_bad_history_lists_every_problem_with_file_row_column_and_fix():
    book = one_account_per_rep_book(num_reps=4)
    history = book.history.reset_index(drop=True).copy()
    history.loc[2, "bookings"] = -10.0
    history.loc[1, "account_id"] = "A99"
    history.loc[9, "rep_id"] = "R77"  # a 2024 row: line 7 once 2023 is dropped
    history = history[history["year"] != 2023].reset_index(drop=True)
    history.loc[len(history)] = ["A00", 2021, "R00", 1.0]  # years 2021, 2022, 2024: gap
    assignments = book.accounts.reset_index()
    reps = book.reps.reset_index()
    with pytest.raises(QuotaDataError, match="4 problem") as info:
        QuotaBook.from_frames(assignments, history, reps, sources={"history": "history.csv"})
    problems = info.value.problems
    assert problems[0] == (
        "history.csv line 4, column bookings: negative (-10.0); fix: bookings must be >= 0; "
        "net refunds into the same year or use 0"
    )
    assert problems[1].startswith("history.csv line 3, column account_id: account not in")
    assert "(A99); fix: add the account to assignments" in problems[1]
    assert problems[2].startswith("history.csv line 7, column rep_id: rep not in reps (R77)")
    assert "years 2021-2024 have no rows for [2023]" in problems[3]


def test_missing_columns_and_single_year_are_reported():
    with pytest.raises(QuotaDataError, match=r"history: missing column\(s\) \['rep_id'\]"):
        QuotaBook.from_frames(
            pd.DataFrame({"account_id": ["A"], "potential": [1.0]}),
            pd.DataFrame({"account_id": ["A"], "year": [2024], "bookings": [1.0]}),
            pd.DataFrame({"rep_id": ["R"], "fte": [1.0]}),
        )
    book = one_account_per_rep_book(num_reps=3, years=(2024,))
    with pytest.raises(QuotaDataError, match="needs at least 2 consecutive years"):
        backtest_quotas(book, "potential")


def test_owners_fill_years_without_bookings():
    """History is a ledger: no row means no bookings, not no owner.

    account  2022  2023  2024                plan owner
    A        R0    -     R0                  R0
    B        -     -     -   (whitespace)    R1 (hired 2024-06-01)
    C        -     R0    R0 10 + R1 30       R1
    """
    reps = pd.DataFrame(
        {"rep_id": ["R0", "R1"], "fte": 1.0, "start_date": ["2010-01-01", "2024-06-01"]}
    )
    assignments = pd.DataFrame(
        {"account_id": ["A", "B", "C"], "rep_id": ["R0", "R1", "R1"], "potential": 1.0}
    )
    history = pd.DataFrame(
        {
            "account_id": ["A", "A", "C", "C", "C"],
            "year": [2022, 2024, 2023, 2024, 2024],
            "rep_id": ["R0", "R0", "R0", "R0", "R1"],
            "bookings": [5.0, 5.0, 7.0, 10.0, 30.0],
        }
    )
    book = QuotaBook.from_frames(assignments, history, reps)
    assert book.owners(2023).sort_index().to_dict() == {"A": "R0", "C": "R0"}
    assert book.owners(2024).sort_index().to_dict() == {"A": "R0", "B": "R1", "C": "R1"}
    inputs, actual = book.year_inputs(2024)
    assert inputs.reps["potential"].to_dict() == {"R0": 1.0, "R1": 2.0}
    assert actual.to_dict() == {"R0": 15.0, "R1": 30.0}
    # R1's territory history is C's 2023 bookings, booked by R0 before R1 was hired.
    assert inputs.history.loc["R1", 2023] == 7.0

"""Sampled territory tests: verdicts, intervals, determinism, Dask, bad input, output."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from territory_opt.quota_algorithms import QuotaDataError, to_cents
from territory_opt.quota_tests import (
    PlanFrames,
    QuotaTestSettings,
    SampleSizeError,
    SampleSizeWarning,
    plan_from_current_alignment,
    run_quota_test,
    sample_territories,
    stratify_territories,
    synthetic_quota_frames,
)

# Small and quick: 40 territories, 2 backtest years, 200 resamples (5 draws per 95% tail).
FAST = dict(n_boot=200, n_perm=200, chunk_size=40, min_territories=10, num_size_bins=2)


@pytest.fixture(scope="module")
def book():
    return synthetic_quota_frames(num_reps=40, num_accounts=800, seed=5)


def run(book, algorithms="headcount,potential", **kwargs):
    options = {**FAST, "sample_frac": 0.5, "seed": 7, **kwargs}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SampleSizeWarning)
        return run_quota_test(
            {"assignments": book["assignments"]},
            book["history"],
            algorithms,
            reps=book["reps"],
            **options,
        )


def row(frame, **where):
    mask = np.logical_and.reduce([frame[k] == v for k, v in where.items()])
    return frame[mask].iloc[0]


def test_potential_is_fairer_than_headcount_with_intervals(book):
    result = run(book, "headcount,potential,blended:0.5")
    fair = row(result.effects, algorithm="potential", metric="fairness_abs_corr_potential")
    assert fair["ci_high"] < 0 and fair["p_value"] < 0.05
    head = row(result.metrics, algorithm="headcount", metric="fairness_corr_potential")
    assert head["ci_low"] > 0.5
    assert "**Yes: potential is fairer than headcount.**" in result.verdict
    assert result.verdict.index("potential fairer") < result.verdict.index("blended:0.5 fairer")
    assert list(result.metrics.columns[:5]) == ["algorithm", "metric", "value", "ci_low", "ci_high"]
    # Plan-year quotas: one column per algorithm, each summing to the same total in cents.
    cents = [to_cents(result.quotas[c]).sum() for c in ("headcount", "potential", "blended:0.5")]
    assert len(set(cents)) == 1
    assert result.sample["sampled"].sum() == 20


def test_bootstrap_interval_covers_the_known_book_effect(book):
    # The whole book is the population, so its new-minus-baseline difference is the
    # known effect; intervals from 50% samples should cover it in (nearly) every draw.
    covered = []
    for seed in range(12):
        result = run(book, seed=seed, n_perm=0)
        for metric in ("attainment_gini", "fairness_abs_corr_potential", "share_ge_90"):
            truth = (
                row(result.metrics, algorithm="potential", metric=metric)["book_value"]
                - row(result.metrics, algorithm="headcount", metric=metric)["book_value"]
            )
            effect = row(result.effects, algorithm="potential", metric=metric)
            covered.append(effect["ci_low"] <= truth <= effect["ci_high"])
    assert np.mean(covered) >= 0.85, np.mean(covered)


def test_same_seed_same_numbers_different_seed_different_sample(book):
    a, b, c = run(book), run(book), run(book, seed=8)
    pd.testing.assert_frame_equal(a.metrics, b.metrics)
    pd.testing.assert_frame_equal(a.effects, b.effects)
    pd.testing.assert_frame_equal(a.power, b.power)
    assert not a.sample["sampled"].equals(c.sample["sampled"])


def test_serial_and_local_dask_cluster_give_identical_numbers(book):
    serial = run(book, n_boot=200, n_perm=40, chunk_size=30)
    dask = run(book, n_boot=200, n_perm=40, chunk_size=30, backend="local")
    pd.testing.assert_frame_equal(serial.metrics, dask.metrics, check_exact=True)
    pd.testing.assert_frame_equal(serial.effects, dask.effects, check_exact=True)
    assert dask.settings["backend"] == "local"


def test_power_analysis_uses_normal_approximation(book):
    result = run(book, min_effect={"attainment_gini": 0.01})
    power = row(result.power, algorithm="potential", metric="attainment_gini")
    assert power["effect_source"] == "given" and power["effect"] == 0.01
    # n' = n ((z_0.975 + z_0.8) se / effect)^2
    expected = np.ceil(20 * ((1.959964 + 0.841621) * power["se"] / 0.01) ** 2)
    assert power["num_required"] == pytest.approx(max(expected, 6))
    assert power["reachable"] == (power["num_required"] <= 40)


def test_stratified_sample_is_proportional_and_deterministic(book):
    territories = (
        book["assignments"]
        .groupby("rep_id")["potential"]
        .sum()
        .reset_index()
        .merge(book["reps"], on="rep_id")
    )
    strata = stratify_territories(territories, region_grid=(2, 2), num_size_bins=3)
    assert strata["region"].nunique() == 4 and strata["size_bin"].nunique() == 3
    big = strata.groupby("size_bin")["potential"].median()
    assert big["size1"] < big["size2"] < big["size3"]
    a = sample_territories(strata, 0.25, seed=1)
    assert a["sampled"].sum() == 10
    assert a.equals(sample_territories(strata, 0.25, seed=1))
    # Every stratum of >= 4 territories gets at least one sampled territory.
    per = a.groupby("stratum")["sampled"].agg(["size", "sum"])
    assert (per.loc[per["size"] >= 4, "sum"] >= 1).all()
    kmeans = stratify_territories(territories, region_method="kmeans", num_regions=3, seed=2)
    assert kmeans["region"].nunique() == 3


def test_sample_too_small_for_confidence_is_an_error_with_numbers(book):
    with pytest.raises(
        SampleSizeError,
        match=r"sample of 4 territories \(sample_frac 0.1 of 40\) is too small for 95% "
        r"confidence: .* 2/2\^4 = 0.125 > alpha 0.05; sample at least 6 territories "
        r"\(sample_frac >= 0.15\)",
    ):
        run(book, sample_frac=0.1)
    with pytest.raises(SampleSizeError, match=r"100 bootstrap resamples leave 2.5 draws"):
        run(book, n_boot=100)
    with pytest.raises(SampleSizeError, match=r"cannot give a p-value below 1/11"):
        run(book, n_perm=10)


def test_small_sample_warns_with_numbers(book):
    with pytest.warns(SampleSizeWarning, match=r"only 12 sampled territories \(< 30\)"):
        run_quota_test(
            {"assignments": book["assignments"]},
            book["history"],
            "headcount,potential",
            reps=book["reps"],
            sample_frac=0.3,
            **{**FAST, "min_territories": 30, "region_grid": (1, 1)},
        )


def test_plan_folder_with_bad_history_raises_one_error(book, tmp_path):
    plan = tmp_path / "plan"
    plan.mkdir()
    book["assignments"].to_csv(plan / "assignments.csv", index=False)
    book["reps"].to_csv(plan / "reps.csv", index=False)  # found next to the plan
    history = book["history"].copy()
    history.loc[0, "bookings"] = -1.0
    history.loc[3, "account_id"] = "NOPE"
    history.loc[4, "rep_id"] = "GHOST"
    history = history[history["year"] != 2024]
    history.to_csv(tmp_path / "history.csv", index=False)
    with pytest.raises(QuotaDataError, match="4 problem") as info:
        run_quota_test(plan, tmp_path / "history.csv", "headcount,potential")
    text = str(info.value)
    assert "history.csv line 2, column bookings: negative (-1.0)" in text
    assert "history.csv line 5, column account_id: account not in assignments.csv (NOPE)" in text
    assert "history.csv line 6, column rep_id: rep not in reps.csv (GHOST)" in text
    assert "no rows for [2024]" in text


def test_write_is_atomic_and_replaces_previous_output(book, tmp_path):
    result = run(book)
    out = tmp_path / "quota_test"
    result.write(out)
    expected = {
        "metrics.csv",
        "quotas.csv",
        "verdict.md",
        "attainment_hist.png",
        "attainment_vs_potential.png",
    }
    assert expected <= {p.name for p in out.iterdir()}
    (out / "stale.txt").write_text("from an older run")
    result.write(out)
    assert not (out / "stale.txt").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["quota_test"]  # no temp folders left
    metrics = pd.read_csv(out / "metrics.csv")
    assert list(metrics.columns[:5]) == ["algorithm", "metric", "value", "ci_low", "ci_high"]
    with pytest.raises(FileExistsError):
        result.write(out, overwrite=False)


def test_settings_from_toml_dict_and_plan_from_current_alignment(book):
    settings = QuotaTestSettings.from_dict(
        {"quota_test": {"n_boot": 400, "band_edges": [0.8, 1.2], "baseline": "potential"}}
    )
    assert settings.n_boot == 400 and settings.band_edges == (0.8, 1.2)
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['boot'\] in \[quota_test\]"):
        QuotaTestSettings.from_dict({"boot": 1})
    with pytest.raises(TypeError, match=r"unknown quota test option\(s\) \['nboot'\]"):
        run_quota_test({"assignments": book["assignments"]}, book["history"], nboot=5)
    plan = plan_from_current_alignment(book["history"], book["assignments"])
    assert isinstance(plan, PlanFrames)
    owners = plan.assignments.set_index("account_id")["rep_id"]
    expected = book["history"][book["history"]["year"] == 2025].set_index("account_id")["rep_id"]
    pd.testing.assert_series_equal(owners.sort_index(), expected.sort_index(), check_names=False)

"""Capacity planning: build-up arithmetic, placement MIP, hiring plan, curve of checked solves.

The hand-drawn cases are small enough to work out on paper; the curve runs real solves on
the enterprise segment of the small synthetic book (600 accounts, 4 reps), a few seconds.
"""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from solvers.check import check_plan
from territory_opt.capacity_placement import aggregate_points, place_sites
from territory_opt.capacity_plan import capacity_plan, workload_buildup
from territory_opt.capacity_settings import CapacitySettings
from territory_opt.cli import EXIT_INPUT, app
from territory_opt.config import PlanConfig, PotentialSettings, WorkloadSettings
from territory_opt.geo import haversine_km
from territory_opt.hiring import hiring_plan, ramp
from territory_opt.io import load_inputs, validate_inputs

# --- hiring ------------------------------------------------------------------------------


def test_ramp_is_linear_to_full_productivity_at_month_midpoints():
    np.testing.assert_allclose(
        ramp(np.array([-1, 0, 1, 2, 3, 4]), 3), [0, 0, 1 / 6, 1 / 2, 5 / 6, 1]
    )
    assert ramp(np.array([0, 1, 5]), 0).tolist() == [0, 1, 1]


@pytest.mark.parametrize("months", [0, 3, 6, 12, 18])
def test_one_ramp_convention_for_hiring_rebalance_and_quotas(months):
    """A rep starting on 1 January: its first-year output share is the same number in the
    hiring plan, the rebalance's ramped target and the quotas' ramp factor."""
    from territory_opt.changes import ramp_factor as rebalance_factor
    from territory_opt.quota_algorithms import ramp_factor as quota_factor

    hiring = ramp(np.arange(1, 13), months).mean()
    quota = quota_factor(pd.Series(pd.to_datetime(["2026-01-01"])), np.array([months]), 2026)
    assert hiring == pytest.approx(rebalance_factor(months))
    assert hiring == pytest.approx(float(quota[0]))


def test_monthly_hazard_compounds_to_the_annual_rate():
    s = CapacitySettings(annual_attrition=0.15)
    assert (1 - s.monthly_hazard) ** 12 == pytest.approx(0.85)


def test_hire_lands_early_enough_to_be_productive():
    """Two productive reps, three FTE required from month 0, ramp 2, no attrition.

    A hire in month -2 works at ramp(3) = 1 by month 0; one in month -1 only at 3/4, so the
    least-payroll plan without shortfall is exactly one hire in month -2.
    """
    hp = hiring_plan(
        np.array([1.0, 1.0]),
        [pd.NaT, pd.NaT],
        3.0,
        plan_start=pd.Period("2026-01", "M"),
        ramp_months=2,
        monthly_hazard=0.0,
        lead_months=2,
    )
    t = hp.table
    assert t["month"].tolist()[:3] == ["2025-11", "2025-12", "2026-01"]
    assert t["hires"].tolist() == [1, 0] + [0] * 12
    assert hp.total_hires == 1
    assert t.loc[t["in_plan_year"], "effective_fte"].min() == pytest.approx(3.0)
    assert t.loc[t["in_plan_year"], "shortfall_fte"].max() == pytest.approx(0.0)
    assert t.loc[0, "effective_fte"] == pytest.approx(2.25)  # the hire's first month: 1/4
    assert t.loc[1, "effective_fte"] == pytest.approx(2.75)  # its second: 3/4


def test_attrition_and_tenure_ramp_of_current_reps():
    """One rep who started in the plan's first month (ramp 4) and one veteran; 12 %/yr.

    Month t of the year: veteran (1 - h)^t, newcomer (1 - h)^t x min(1, (t + 1/2) / 4).
    Required 1.0 FTE is met throughout without hires.
    """
    s = CapacitySettings(annual_attrition=0.12, ramp_months=4)
    h = s.monthly_hazard
    hp = hiring_plan(
        np.array([1.0, 1.0]),
        [pd.NaT, pd.Timestamp("2026-01-15")],
        1.0,
        plan_start=pd.Period("2026-01", "M"),
        ramp_months=4,
        monthly_hazard=h,
        lead_months=0,
    )
    months = np.arange(12)
    expect = (1 - h) ** months * (1 + np.minimum(1, (months + 0.5) / 4))
    assert hp.table["effective_fte"].to_numpy() == pytest.approx(expect)
    assert hp.total_hires == 0
    assert hp.table["headcount_fte"].iloc[-1] == pytest.approx(2 * (1 - h) ** 11)


def test_attrition_makes_hires_necessary():
    """Ten reps, ten FTE required, 30 %/yr attrition, productive at once, no lead: every
    month's shortfall is covered, with the fewest payroll months."""
    hp = hiring_plan(
        np.ones(10),
        [pd.NaT] * 10,
        10.0,
        plan_start=pd.Period("2026-01", "M"),
        ramp_months=0,
        monthly_hazard=CapacitySettings(annual_attrition=0.3).monthly_hazard,
        lead_months=0,
    )
    t = hp.table
    assert (t["effective_fte"] >= 10.0 - 1e-9).all()
    assert hp.total_hires >= 3  # 10 x (1 - 0.3 ** (11 / 12)) > 2.7 FTE leave by December
    assert t["hires"].iloc[0] == 0  # month 0 is fully staffed


# --- placement -------------------------------------------------------------------------------


def _line(**overrides):
    """Two demand points and three sites on a line (km)::

        A(0) ------ C1(50) ------ B(100)
        F(0)                      C2(100)

    Each point: potential 1, 10 visits; hours = visits (no travel time: speed 1e9 km/h).
    F is a current rep with 10 h, enough for one point; C1 and C2 are candidates.
    """
    args = dict(
        demand_km=np.array([[0.0, 50.0, 100.0], [100.0, 50.0, 0.0]]),
        demand_potential=np.array([1.0, 1.0]),
        demand_visits=np.array([10.0, 10.0]),
        demand_must=np.array([False, False]),
        site_capacity_h=np.array([10.0, 10.0, 10.0]),
        site_fixed=np.array([True, False, False]),
        num_open=1,
        minutes_per_visit=60.0,
        circuity=1.0,
        speed_kmh=1e9,
        tolerance=0.5,
    )
    return place_sites(**(args | overrides))


def test_placement_opens_the_site_next_to_unserved_demand():
    p = _line()
    assert p.status == "OPTIMAL"
    assert p.open.tolist() == [True, False, True]
    assert p.covered_share == pytest.approx(1.0)
    assert p.travel == pytest.approx(0.0, abs=1e-6)


def test_placement_leaves_what_capacity_cannot_cover():
    p = _line(num_open=0)
    assert p.open.tolist() == [True, False, False]
    assert p.covered_share == pytest.approx(0.5)
    assert p.travel == pytest.approx(0.0, abs=1e-6)


def test_must_cover_demand_is_covered_first():
    """B must be covered: F serves it at 100 km and A is left out."""
    p = _line(num_open=0, demand_must=np.array([False, True]))
    assert p.covered_share == pytest.approx(0.5)
    assert p.travel == pytest.approx(100.0)


def test_placement_rejects_impossible_counts():
    with pytest.raises(ValueError, match="cannot open 3 site"):
        _line(num_open=3)


def test_aggregate_points_respects_the_budget():
    """A 3x3 grid 10 km apart: nine cells when allowed, one when not, at most four else."""
    x, y = np.meshgrid(np.arange(3) * 10.0, np.arange(3) * 10.0)
    x, y = x.ravel(), y.ravel()
    assert np.unique(aggregate_points(x, y, 9)).size == 9
    assert np.unique(aggregate_points(x, y, 1)).size == 1
    cells = aggregate_points(x, y, 4)
    assert 1 < np.unique(cells).size <= 4
    assert np.array_equal(cells, aggregate_points(x, y, 4))


# --- build-up ---------------------------------------------------------------------------------


def _tiny_inputs():
    """Four accounts, one per tier (visits 6, 4, 2, 1), one rep 1 degree south of them all
    (111.19 km); potential 40, 30, 20, 10."""
    accounts = pd.DataFrame(
        {
            "account_id": ["a", "b", "c", "d"],
            "lat": [34.0] * 4,
            "lon": [-84.0] * 4,
            "tier": ["A", "B", "C", "D"],
            "potential": [40.0, 30.0, 20.0, 10.0],
        }
    )
    reps = pd.DataFrame({"rep_id": ["R1"], "lat": [33.0], "lon": [-84.0], "fte": [1.0]})
    return validate_inputs(accounts, reps)


def test_buildup_arithmetic_with_a_typical_radius():
    inputs = _tiny_inputs()
    config = PlanConfig(workload=WorkloadSettings(hours_per_fte=10.0))
    settings = CapacitySettings(typical_radius_km=0.0, utilisation_target=0.5)
    by_seg, by_tier = workload_buildup(inputs, config, settings, inputs.accounts["potential"])
    row = by_seg.iloc[0]
    assert row["workload_h"] == pytest.approx(13.0)  # 6 + 4 + 2 + 1 one-hour visits
    assert row["required_fte"] == pytest.approx(13.0 / 5.0)
    assert row["reps_needed"] == 3
    assert row["reps_gap"] == 2
    assert "= 2.60 FTE -> 3 reps" in row["arithmetic"]
    assert by_tier["workload_h"].tolist() == pytest.approx([6.0, 4.0, 2.0, 1.0])


def test_buildup_travel_from_the_nearest_base_and_coverage():
    """Coverage 0.5, travel from the rep 111.19 km away (1.3 circuity, 70 km/h).

    Potential per hour ranks c and d first (10 per visit-hour, ties by id), then b (7.5),
    then a (6.67): c, d and b hold 60 >= 50 of the potential, so three accounts are covered.
    """
    inputs = _tiny_inputs()
    config = PlanConfig()
    settings = CapacitySettings(coverage=0.5, utilisation_target=1.0)
    row = workload_buildup(inputs, config, settings, inputs.accounts["potential"])[0].iloc[0]
    km = float(haversine_km(34.0, -84.0, 33.0, -84.0))
    per_visit = 1.0 + 2 * km * 1.3 / 70.0
    assert row["accounts_covered"] == 3
    assert row["potential_covered"] == pytest.approx(60.0)
    assert row["workload_h"] == pytest.approx((1 + 2 + 4) * per_visit)
    assert row["travel_km_mean"] == pytest.approx(km)


def test_must_cover_tiers_come_first():
    inputs = _tiny_inputs()
    settings = CapacitySettings(coverage=0.1, must_cover_tiers=["A"], typical_radius_km=0.0)
    row = workload_buildup(inputs, PlanConfig(), settings, inputs.accounts["potential"])[0]
    assert row.iloc[0]["accounts_covered"] == 1
    assert row.iloc[0]["potential_covered"] == pytest.approx(40.0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"coverage": 0}, "coverage must be in"),
        ({"utilisation_target": 1.2}, "utilisation_target must be in"),
        ({"annual_attrition": 1.0}, "annual_attrition must be in"),
        ({"plan_start": "2026-13"}, "plan_start must be 'YYYY-MM'"),
        ({"ramp_months": -1}, "ramp_months must be an integer"),
        ({"target_fte": {"x": -1}}, r"target_fte\['x'\] must be a number"),
    ],
)
def test_bad_settings_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        CapacitySettings(**kwargs)


def test_capacity_table_from_toml(tmp_path):
    path = tmp_path / "plan.toml"
    path.write_text("[capacity]\ncoverage = 0.9\nmust_cover_tiers = ['A', 'B']\nspan = 1\n")
    cfg = PlanConfig.from_file(path)
    assert cfg.capacity.must_cover_tiers == ("A", "B")
    path.write_text("[capacity]\ncoverag = 0.9\n")
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['coverag'\] in \[capacity\]"):
        PlanConfig.from_file(path)


# --- the curve of checked solves on the small book -----------------------------------------

FAST = CapacitySettings(
    span=1,
    solve_time_limit_s=10.0,
    num_sites=30,
    num_demand_points=120,
    placement_time_limit_s=10.0,
    target_fte={"enterprise": 4.0},
)


@pytest.fixture(scope="module")
def small_inputs(small_book_files):
    return load_inputs(
        small_book_files["accounts"], small_book_files["reps"], small_book_files["history"]
    )


@pytest.fixture(scope="module")
def enterprise_plan(small_inputs, plan_config):
    return capacity_plan(small_inputs, plan_config, FAST, segments=["enterprise"])


def test_curve_points_are_checked_plans(enterprise_plan, small_inputs):
    """Every solved point passes the checker again; covered potential is the potential of
    the accounts in that plan; fewer reps cover less."""
    curve = enterprise_plan.curve.set_index("reps")
    assert curve.index.tolist() == [3, 4, 5]
    assert (curve["check"] == "passed").all()
    for k in (3, 4, 5):
        plan = enterprise_plan.plans[("enterprise", k)]
        report = check_plan(plan.planning.problem, plan.result.assignment)
        assert report.ok
        assert len(plan.planning.rep_ids) == k
        assert curve.loc[k, "potential_covered"] == pytest.approx(plan.planning.potential.sum())
        assert curve.loc[k, "worst_dev_pct"] == pytest.approx(100 * report.max_band_dev[0])
        assert curve.loc[k, "worst_dev_pct"] <= 5.0 + 1e-6
        assert curve.loc[k, "travel_km_mean"] == pytest.approx(plan.assignments["travel_km"].mean())
        assert (report.rep_workload_h <= plan.planning.problem.capacity_h + 1e-6).all()
    for row in curve.itertuples():  # each failed attempt is named
        failed = row.failed_attempts.split("; ") if row.failed_attempts else []
        assert row.attempts == len(failed) + 1
    assert curve.loc[4, "covered_pct"] == pytest.approx(100.0)
    assert curve.loc[3, "covered_pct"] < 100.0
    assert curve.loc[5, "travel_km_mean"] < curve.loc[4, "travel_km_mean"]


def test_new_rep_sits_at_the_chosen_base_and_gets_a_book(enterprise_plan, small_inputs):
    new = enterprise_plan.new_reps
    assert len(new) == 1 and new["reps"].iloc[0] == 5
    rep = new.iloc[0]
    site = small_inputs.accounts.loc[rep["site_account_id"]]
    assert (rep["lat"], rep["lon"]) == (site["lat"], site["lon"])
    plan = enterprise_plan.plans[("enterprise", 5)]
    mine = plan.assignments[plan.assignments["rep_id"] == rep["rep_id"]]
    assert len(mine) == rep["accounts"] > 0
    assert mine["potential"].sum() == pytest.approx(rep["potential"])


def test_removing_a_rep_keeps_the_others_in_place(enterprise_plan, small_inputs):
    plan = enterprise_plan.plans[("enterprise", 3)]
    kept = small_inputs.reps.loc[plan.planning.rep_ids]
    assert len(kept) == 3 and set(kept["segment"]) == {"enterprise"}


def test_hiring_keeps_the_target(enterprise_plan):
    h = enterprise_plan.hiring
    year = h[h["in_plan_year"]]
    assert (year["required_fte"] == 4.0).all()
    assert year["shortfall_fte"].max() == pytest.approx(0.0, abs=1e-6)
    assert h["hires"].sum() >= 1  # 15 % attrition erodes four reps below 4.0 FTE
    assert h["month"].iloc[0] == "2025-10"  # hiring starts 3 months before January 2026


def test_write_is_complete_and_recorded(enterprise_plan, tmp_path):
    out = enterprise_plan.write(tmp_path / "cap")
    assert sorted(p.name for p in out.iterdir()) == [
        "capacity.csv",
        "capacity.png",
        "curve.csv",
        "hiring.csv",
        "manifest.json",
        "new_reps.csv",
        "summary.txt",
        "workload_by_tier.csv",
    ]
    m = json.loads((out / "manifest.json").read_text())
    assert {"inputs", "config", "versions", "seed", "num_workers"} <= set(m)
    assert m["capacity"]["curve"]["checked"] == 3
    assert m["capacity"]["plan_start"] == "2026-01"
    assert pd.read_csv(out / "curve.csv")["reps"].tolist() == [3, 4, 5]


def test_same_inputs_same_answers(small_inputs, plan_config, enterprise_plan):
    """The placement MIP and a curve point give the same figures when run again."""
    first, second = _line(), _line()
    assert first.open.tolist() == second.open.tolist() and first.travel == second.travel
    again = capacity_plan(small_inputs, plan_config, replace(FAST, span=0), segments=["enterprise"])
    assert again.buildup.equals(enterprise_plan.buildup)
    point = again.curve.iloc[0]
    before = enterprise_plan.curve.set_index("reps").loc[4]
    assert point["reproducible"] and before["reproducible"]
    assert point["objective"] == pytest.approx(before["objective"], rel=1e-12)


def test_unknown_segment_is_an_error(small_inputs, plan_config):
    with pytest.raises(ValueError, match=r"unknown segment\(s\) \['retail'\]"):
        capacity_plan(small_inputs, plan_config, FAST, segments=["retail"])


# --- command line --------------------------------------------------------------------------


def test_cli_capacity_writes_the_folder(small_book_files, tmp_path):
    out = tmp_path / "cap"
    args = ["capacity", "--accounts", str(small_book_files["accounts"])]
    args += ["--reps", str(small_book_files["reps"]), "--history", str(small_book_files["history"])]
    args += ["--segment", "enterprise", "--span", "0", "--time-limit", "10", "--workers", "1"]
    res = CliRunner().invoke(app, [*args, "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "enterprise:" in res.stdout and "FTE ->" in res.stdout
    assert (out / "capacity.png").stat().st_size > 0


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        (["--coverage", "1.5"], "coverage must be in"),
        (["--segment", "retail"], "unknown segment"),
        (["--target-fte", "3"], "--target-fte applies to one segment"),
    ],
)
def test_cli_bad_input_exits_2(small_book_files, tmp_path, extra, match):
    out = tmp_path / "cap"
    args = ["capacity", "--accounts", str(small_book_files["accounts"])]
    args += ["--reps", str(small_book_files["reps"]), "--history", str(small_book_files["history"])]
    args += ["--out", str(out), *extra]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == EXIT_INPUT
    assert match in res.output
    assert not out.exists()


def test_book_without_segments_or_start_dates():
    """The tiny book (one pool, 'all'; no start dates): the plan year must be given, then
    one checked solve of four accounts and a hiring plan against ``target_fte['all']``."""
    inputs = _tiny_inputs()
    config = PlanConfig(potential=PotentialSettings(method="column"))
    with pytest.raises(ValueError, match="plan_start is not set and the reps have no start_date"):
        capacity_plan(inputs, config, CapacitySettings(span=0))
    settings = CapacitySettings(span=0, plan_start="2027-01", target_fte={"all": 2.0})
    result = capacity_plan(inputs, config, settings)
    assert result.curve["segment"].tolist() == ["all"]
    assert result.curve["check"].tolist() == ["passed"]
    assert result.curve["covered_pct"].iloc[0] == pytest.approx(100.0)
    assert result.hiring["month"].iloc[3] == "2027-01"
    assert result.hiring["hires"].sum() >= 1  # one rep, two FTE required

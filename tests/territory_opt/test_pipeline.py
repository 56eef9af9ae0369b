"""The annual plan end to end on the small synthetic book (4,000 accounts x 20 reps).

One plan is made per module and its written files are read back and re-added here, from
the input files and the documented formulas, without the pipeline's own helpers.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from solvers.check import check_plan
from territory_opt.config import PlanConfig
from territory_opt.errors import InfeasibleError
from territory_opt.pipeline import plan_files
from territory_opt.report import territory_table
from territory_opt.verify import verify_tables

ASSIGNMENT_COLUMNS = [
    "account_id",
    "rep_id",
    "potential",
    "workload_h",
    "travel_km",
    "previous_rep_id",
    "moved",
]
TERRITORY_COLUMNS = [
    "rep_id",
    "accounts",
    "potential",
    "target_potential",
    "potential_dev_pct",
    "workload_h",
    "capacity_h",
    "utilisation",
    "travel_km_mean",
    "quota",
    "quota_headcount",
]
OUTPUTS = ["assignments.csv", "manifest.json", "map.png", "summary.txt", "territories.csv"]


def _run(files, config, out):
    return plan_files(files["accounts"], files["reps"], files["history"], config=config, out=out)


@pytest.fixture(scope="module")
def planned(small_book_files, plan_config, tmp_path_factory):
    out = tmp_path_factory.mktemp("plan") / "out"
    return _run(small_book_files, plan_config, out), out


@pytest.fixture(scope="module")
def written(planned):
    _, out = planned
    read = {"dtype": {"account_id": str, "rep_id": str, "previous_rep_id": str}}
    return (
        pd.read_csv(out / "assignments.csv", keep_default_na=False, **read),
        pd.read_csv(out / "territories.csv", dtype={"rep_id": str}),
        json.loads((out / "manifest.json").read_text()),
    )


def _inputs(files):
    accounts = pd.read_csv(files["accounts"], dtype={"account_id": str, "current_rep_id": str})
    reps = pd.read_csv(files["reps"], dtype={"rep_id": str})
    return accounts, reps


def test_plan_passes_the_checker(planned):
    result, _ = planned
    assert result.check.ok
    report = check_plan(
        result.planning.problem,
        result.result.assignment,
        reported_objective=result.result.objective,
    )
    assert report.ok, report.describe()


def test_files_and_columns(planned, written, small_book_files):
    _, out = planned
    assignments, territories, _ = written
    assert sorted(p.name for p in out.iterdir()) == OUTPUTS
    assert sorted(p.name for p in out.parent.iterdir()) == ["out"]  # no temporary leftovers
    assert assignments.columns.tolist() == ASSIGNMENT_COLUMNS
    assert territories.columns.tolist() == TERRITORY_COLUMNS
    assert (out / "map.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "check         passed" in (out / "summary.txt").read_text()
    accounts, reps = _inputs(small_book_files)
    # One row per account, in input order; one row per rep.
    assert assignments["account_id"].tolist() == accounts["account_id"].tolist()
    assert territories["rep_id"].tolist() == reps["rep_id"].tolist()
    assert set(assignments["rep_id"]) <= set(reps["rep_id"])
    previous = accounts["current_rep_id"].fillna("")
    assert assignments["previous_rep_id"].tolist() == previous.tolist()
    moved = (previous != "") & (previous != assignments["rep_id"])
    assert assignments["moved"].astype(str).eq("True").tolist() == moved.tolist()


def test_every_rep_within_its_band(written, small_book_files, plan_config):
    """Targets by hand: within a segment, a rep's share of the segment's potential is its
    share of the segment's capacity (fte x 1,600 h)."""
    assignments, territories, _ = written
    accounts, reps = _inputs(small_book_files)
    segment_of = accounts.set_index("account_id")["segment"]
    pot = assignments.assign(segment=assignments["account_id"].map(segment_of))
    pool_potential = pot.groupby("segment")["potential"].sum()
    capacity = reps["fte"] * 1600.0
    pool_capacity = capacity.groupby(reps["segment"]).transform("sum")
    target = reps["segment"].map(pool_potential) * capacity / pool_capacity
    held = pot.groupby("rep_id")["potential"].sum().reindex(reps["rep_id"]).to_numpy()
    tol = plan_config.tolerance
    assert np.all(held >= target * (1 - tol) * (1 - 1e-9))
    assert np.all(held <= target * (1 + tol) * (1 + 1e-9))
    np.testing.assert_allclose(territories["target_potential"], target, rtol=1e-9)
    np.testing.assert_allclose(territories["potential"], held, rtol=1e-9)


def test_tables_verify(written, small_book_files, plan_config):
    assignments, territories, manifest = written
    accounts, reps = _inputs(small_book_files)
    quota_total = manifest["plan"]["quota_total"]
    assert verify_tables(assignments, territories, accounts, reps, plan_config, quota_total) == []


def test_verify_catches_a_tampered_table(written, small_book_files, plan_config):
    assignments, territories, manifest = written
    accounts, reps = _inputs(small_book_files)
    tampered = territories.copy()
    tampered.loc[0, "potential"] += 1_000.0
    errors = verify_tables(
        assignments, tampered, accounts, reps, plan_config, manifest["plan"]["quota_total"]
    )
    assert "territories.potential disagrees with the assignments" in errors


def test_manifest(written, small_book_files, plan_config):
    _, _, manifest = written
    for name in ("accounts", "reps", "history"):
        data = small_book_files[name].read_bytes()
        assert manifest["inputs"][name]["sha256"] == hashlib.sha256(data).hexdigest()
    assert {"python", "ortools", "numpy", "pandas", "scikit-learn"} <= set(manifest["versions"])
    assert manifest["seed"] == plan_config.solve.seed == 11
    assert manifest["num_workers"] == 1
    solver = manifest["solver"]
    assert solver["status"] in ("OPTIMAL", "FEASIBLE")
    assert solver["bound"] <= solver["objective"]
    assert solver["gap"] == pytest.approx(
        (solver["objective"] - solver["bound"]) / solver["objective"]
    )
    assert solver["gap"] <= plan_config.solve.relative_gap
    assert solver["reproducible"] is True
    assert (manifest["check"]["result"], manifest["check"]["violations"]) == ("passed", 0)
    assert manifest["check"]["objective_recomputed"] == pytest.approx(solver["objective"])
    assert manifest["config"]["tolerance"] == plan_config.tolerance
    assert manifest["plan"]["accounts"] == 4_000 and manifest["plan"]["reps"] == 20


def test_quotas_follow_potential(written, planned):
    _, territories, manifest = written
    quota_total = manifest["plan"]["quota_total"]
    assert quota_total == pytest.approx(manifest["plan"]["potential_total"])
    assert round(territories["quota"].sum() * 100) == round(quota_total * 100)
    # quota / potential is the same for every rep, up to the cent each quota is rounded to.
    ratio = quota_total / territories["potential"].sum()
    assert np.all(np.abs(territories["quota"] - ratio * territories["potential"]) <= 0.01 + 1e-6)
    # Another total scales every quota alike.
    result, _ = planned
    scaled = territory_table(result.planning, result.assignments, 1_000_000.0)
    assert round(scaled["quota"].sum() * 100) == 100_000_000
    share = territories["potential"] / territories["potential"].sum()
    np.testing.assert_allclose(scaled["quota"], 1_000_000.0 * share, atol=0.01)


def test_small_quota_total_verifies(written, planned, small_book_files, plan_config):
    # Quotas in thousands (1,000 = one million): each is still exact to the cent.
    assignments, _, _ = written
    result, _ = planned
    accounts, reps = _inputs(small_book_files)
    territories = territory_table(result.planning, result.assignments, 1_000.0)
    assert round(territories["quota"].sum() * 100) == 100_000
    assert verify_tables(assignments, territories, accounts, reps, plan_config, 1_000.0) == []


def test_same_seed_same_files(planned, small_book_files, plan_config, tmp_path):
    _, out = planned
    again = tmp_path / "again"
    _run(small_book_files, plan_config, again)
    for name in ("assignments.csv", "territories.csv"):
        assert (again / name).read_bytes() == (out / name).read_bytes(), name


def test_failure_writes_nothing_and_explains(small_book_files, plan_config, tmp_path):
    # One account books 500 million in the last year: its potential dwarfs every rep's target.
    history = pd.read_csv(small_book_files["history"], dtype={"account_id": str, "rep_id": str})
    last_year = int(history["year"].max())
    whale = pd.DataFrame(
        {"account_id": ["A0000010"], "year": [last_year], "bookings": [5e8], "rep_id": ["R001"]}
    )
    files = dict(small_book_files) | {"history": tmp_path / "history.csv"}
    pd.concat([history, whale], ignore_index=True).to_csv(files["history"], index=False)
    out = tmp_path / "out"
    kept = tmp_path / "kept"
    kept.mkdir()
    (kept / "earlier.csv").write_text("an earlier plan")
    config = PlanConfig(tolerance=0.0001, solve=plan_config.solve)
    for target in (out, kept):
        with pytest.raises(InfeasibleError) as err:
            _run(files, config, target)
        (finding,) = err.value.findings
        assert finding.rule == "band"
        match = re.search(
            r"Account 'A0000010' has potential ([\d,]+), .* tightest band any plan can meet "
            r"is \+-([\d.]+) %",
            finding.message,
        )
        assert match, finding.message
        assert float(match[1].replace(",", "")) >= 5e8
        limit_pct = float(match[2])
        assert limit_pct > 100  # the whale alone is more than twice any rep's target
        assert f"at least {limit_pct / 100:.4f}" in finding.fix
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["history.csv", "kept"]
    assert [p.name for p in kept.iterdir()] == ["earlier.csv"]


def test_nearest_only_candidates_do_not_make_a_book_infeasible(small_book_files, plan_config):
    """Candidates pinned to the single nearest rep, no widening allowed: the candidate LP has
    no plan, but the engine prices every eligible pair (column generation) and finds a
    checked plan rather than calling the book infeasible."""
    cfg = replace(plan_config, num_candidates=1, rep_reach=0.01, max_widenings=0)
    res = plan_files(
        small_book_files["accounts"],
        small_book_files["reps"],
        small_book_files["history"],
        config=cfg,
    )
    assert res.check.ok
    assert res.result.stats["bound_scope"] == "all eligible pairs"
    assert res.result.gap <= 0.05


def test_relaxation_infeasible_is_explained_with_amounts(small_book_files, plan_config):
    """Every eligible pair within 40 km: no plan balances potential, and the error names
    reps and how far what they can reach misses their band."""
    cfg = replace(plan_config, num_candidates=1, rep_reach=0.01, max_widenings=0, max_travel_km=40)
    with pytest.raises(InfeasibleError) as info:
        plan_files(
            small_book_files["accounts"],
            small_book_files["reps"],
            small_book_files["history"],
            config=cfg,
        )
    reach = [f for f in info.value.findings if f.rule == "reach"]
    assert reach, str(info.value)
    assert re.search(
        r"Rep 'R\d+' can reach accounts worth at most [\d,]+ \(its candidates\), below its "
        r"band minimum [\d,]+ by [\d,]+",
        reach[0].message,
    )

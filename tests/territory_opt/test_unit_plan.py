"""Unit plans (``plan --units``) on a hand-drawn 3x3 grid of 10 km squares (UTM 17N, Georgia).

::

    g h i        rep R1 lives in a, rep R2 in i
    d e f        every square holds two accounts of potential 50 (currency/yr)
    a b c        band +-20 % around 450 each: 360..540

Every test that plans asserts on figures the independent checks recomputed.
"""

from __future__ import annotations

import json

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from typer.testing import CliRunner

from territory_opt.cli import app
from territory_opt.config import PlanConfig
from territory_opt.errors import InputError
from territory_opt.io import validate_inputs
from territory_opt.unit_plan import plan_units
from territory_opt.unit_settings import UnitSettings

UTM = "EPSG:32617"
X0, Y0, SIZE = 500_000.0, 3_700_000.0, 10_000.0
CELLS = {"a": (0, 0), "b": (1, 0), "c": (2, 0), "d": (0, 1), "e": (1, 1), "f": (2, 1)}
CELLS |= {"g": (0, 2), "h": (1, 2), "i": (2, 2)}


def _units(cells=CELLS) -> gpd.GeoDataFrame:
    boxes = [
        shapely.box(X0 + i * SIZE, Y0 + j * SIZE, X0 + (i + 1) * SIZE, Y0 + (j + 1) * SIZE)
        for i, j in cells.values()
    ]
    return gpd.GeoDataFrame({"unit_id": list(cells)}, geometry=boxes, crs=UTM)


def _lonlat(x: float, y: float) -> tuple[float, float]:
    p = gpd.GeoSeries([shapely.Point(x, y)], crs=UTM).to_crs(4326).iloc[0]
    return p.x, p.y


def _accounts(locked_in_b: bool = False) -> pd.DataFrame:
    rows = []
    for name, (i, j) in CELLS.items():
        for k, dx in enumerate((0.3, 0.7)):
            lon, lat = _lonlat(X0 + (i + dx) * SIZE, Y0 + (j + 0.5) * SIZE)
            rows.append({"account_id": f"{name}{k}", "lat": lat, "lon": lon, "potential": 50.0})
    df = pd.DataFrame(rows)
    df["current_rep_id"] = "R1"
    df["locked"] = False
    if locked_in_b:
        df.loc[df["account_id"] == "b0", ["current_rep_id", "locked"]] = ["R2", True]
    return df


def _reps(home_r2=(2.5, 2.5)) -> pd.DataFrame:
    (lon1, lat1), (lon2, lat2) = (
        _lonlat(X0 + 0.5 * SIZE, Y0 + 0.5 * SIZE),
        _lonlat(X0 + home_r2[0] * SIZE, Y0 + home_r2[1] * SIZE),
    )
    return pd.DataFrame(
        {"rep_id": ["R1", "R2"], "lat": [lat1, lat2], "lon": [lon1, lon2], "fte": [1.0, 1.0]}
    )


def _config(**units) -> PlanConfig:
    cfg = PlanConfig.from_dict({"tolerance": 0.2, "solve": {"time_limit_s": 20.0}})
    from dataclasses import replace

    return replace(cfg, units=UnitSettings(**units))


def test_plan_is_contiguous_balanced_and_checked(tmp_path):
    inputs = validate_inputs(_accounts(), _reps())
    plan = plan_units(inputs, _units(), _config())
    t = plan.territories.set_index("rep_id")
    assert (t["contiguous"] == "yes").all()
    assert t["num_pieces"].tolist() == [1, 1]
    assert t.loc["R1", "home_unit"] == "a" and t.loc["R2", "home_unit"] == "i"
    assert t["potential"].sum() == pytest.approx(900.0)
    assert (t["potential_dev_pct"].abs() <= 20.0 + 1e-9).all()
    assert ((t["polsby_popper"] > 0) & (t["polsby_popper"] <= 1)).all()
    a = plan.assignments
    assert a.groupby("unit_id")["rep_id"].nunique().max() == 1  # accounts move with their unit
    assert plan.manifest["check"]["result"] == "passed"
    assert plan.manifest["units"]["crs_projected"].startswith("WGS 84 / UTM zone 17N")
    out = plan.write(tmp_path / "plan")
    for name in (
        "assignments.csv",
        "territories.csv",
        "territories.gpkg",
        "territories.geojson",
        "map.png",
        "manifest.json",
        "summary.txt",
    ):
        assert (out / name).exists(), name
    shapes = gpd.read_file(out / "territories.geojson")
    assert len(shapes) == 2 and shapes.crs.to_epsg() == 4326
    terr_csv = pd.read_csv(out / "territories.csv")
    assert {"contiguous", "num_pieces", "polsby_popper"} <= set(terr_csv.columns)


def test_named_accounts_stay_with_their_rep_while_the_rest_move_with_the_unit():
    inputs = validate_inputs(_accounts(locked_in_b=True), _reps())
    plan = plan_units(inputs, _units(), _config())
    a = plan.assignments.set_index("account_id")
    assert a.loc["b0", "rep_id"] == "R2" and a.loc["b0", "named"]
    assert a.loc["b1", "rep_id"] == "R1"  # unit b is R1's
    t = plan.territories.set_index("rep_id")
    assert t.loc["R2", "named_accounts"] == 1
    assert t["potential"].sum() == pytest.approx(900.0)


def test_candidates_are_widened_when_the_nearest_rep_alone_cannot_balance():
    """With one candidate per unit, R1 (home a) is nearest to a, b, c, d, e and g (ties go
    to R1): 600 > 540, so no plan exists; the candidates widen to both reps, reported."""
    inputs = validate_inputs(_accounts(), _reps())
    plan = plan_units(inputs, _units(), _config(num_candidates=1))
    t = plan.territories.set_index("rep_id")
    assert (t["contiguous"] == "yes").all()
    assert (t["potential_dev_pct"].abs() <= 20.0 + 1e-9).all()
    assert plan.manifest["solver"]["all"]["num_candidates"] == 2
    assert any(
        "nearest reps as candidates" in w and "widened to 2" in w for w in plan.manifest["warnings"]
    )


def test_same_seed_same_plan():
    inputs = validate_inputs(_accounts(), _reps())
    a = plan_units(inputs, _units(), _config()).assignments
    b = plan_units(inputs, _units(), _config()).assignments
    pd.testing.assert_frame_equal(a, b)


def test_accounts_outside_every_unit_are_listed():
    acc = _accounts()
    acc.loc[0, ["lat", "lon"]] = [30.0, -81.0]
    with pytest.raises(InputError, match="account 'a0' at .* falls in no unit"):
        plan_units(validate_inputs(acc, _reps()), _units(), _config())


def test_a_rep_home_outside_every_unit_is_an_error():
    with pytest.raises(InputError, match="rep 'R2' has its home base .* falls in no unit"):
        plan_units(validate_inputs(_accounts(), _reps((9.0, 9.0))), _units(), _config())


def test_missing_and_mismatched_crs_are_errors():
    no_crs = _units().set_crs(None, allow_override=True)
    with pytest.raises(InputError, match="no coordinate reference system"):
        plan_units(validate_inputs(_accounts(), _reps()), no_crs, _config())
    wrong = _units().set_crs(4326, allow_override=True)  # metres declared as degrees
    with pytest.raises(InputError, match="are not degrees"):
        plan_units(validate_inputs(_accounts(), _reps()), wrong, _config())


def test_invalid_geometry_is_listed_and_repaired_only_when_asked():
    units = _units()
    bowtie = shapely.Polygon(
        [(X0 + SIZE, Y0), (X0 + 2 * SIZE, Y0 + SIZE), (X0 + 2 * SIZE, Y0), (X0 + SIZE, Y0 + SIZE)]
    )
    units.loc[1, "geometry"] = bowtie  # unit b, a self-intersecting bow-tie
    inputs = validate_inputs(_accounts(), _reps())
    with pytest.raises(InputError, match="unit 'b' has an invalid geometry"):
        plan_units(inputs, units, _config())
    plan = plan_units(inputs, units, _config(repair_geometry=True))
    assert any("unit 'b'" in r for r in plan.manifest["units"]["repaired_geometries"])


def test_a_graph_in_pieces_is_bridged_and_reported_or_an_error():
    """Unit ``i`` moved 20 km east: an island, bridged to its nearest unit (f or c side)."""
    cells = dict(CELLS) | {"i": (4, 2)}
    acc = _accounts()
    acc = acc[~acc["account_id"].str.startswith("i")]
    reps = _reps((4.5, 2.5))
    plan = plan_units(validate_inputs(acc, reps), _units(cells), _config())
    assert len(plan.manifest["units"]["bridges"]) == 1
    assert (plan.territories["contiguous"] == "yes").all()
    with pytest.raises(InputError, match="the unit graph has 2 separate pieces"):
        plan_units(validate_inputs(acc, reps), _units(cells), _config(bridge=False))


def test_cli_plan_with_units_end_to_end(tmp_path):
    _accounts().to_csv(tmp_path / "accounts.csv", index=False)
    _reps().to_csv(tmp_path / "reps.csv", index=False)
    _units().to_file(tmp_path / "units.gpkg", engine="pyogrio")
    args = [
        "plan",
        "--accounts",
        str(tmp_path / "accounts.csv"),
        "--reps",
        str(tmp_path / "reps.csv"),
        "--units",
        str(tmp_path / "units.gpkg"),
        "--tolerance",
        "0.2",
        "--time-limit",
        "20",
        "--adjacency",
        "queen",
    ]
    result = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["units"]["adjacency"] == "queen"
    assert manifest["check"]["result"] == "passed"
    terr = pd.read_csv(tmp_path / "out" / "territories.csv")
    assert (terr["contiguous"] == "yes").all()
    # Bad input: exit code 2, nothing written.
    bad = _reps((9.0, 9.0))
    bad.to_csv(tmp_path / "reps_bad.csv", index=False)
    args[4] = str(tmp_path / "reps_bad.csv")
    result = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "out2")])
    assert result.exit_code == 2
    assert not (tmp_path / "out2").exists()


def test_unit_settings_are_validated():
    with pytest.raises(ValueError, match="units.adjacency must be 'rook' or 'queen'"):
        UnitSettings(adjacency="bishop")
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['colour'\] in \[units\]"):
        PlanConfig.from_dict({"units": {"colour": "red"}})
    assert np.isclose(
        PlanConfig.from_dict({"units": {"num_candidates": 3}}).units.num_candidates, 3
    )


def test_config_named_accounts_are_fixed_and_unknown_ids_listed():
    from dataclasses import replace

    inputs = validate_inputs(_accounts(), _reps())
    cfg = replace(_config(), named_accounts={"a1": "R2"})
    plan = plan_units(inputs, _units(), cfg)
    a = plan.assignments.set_index("account_id")
    assert a.loc["a1", "rep_id"] == "R2" and a.loc["a0", "rep_id"] == "R1"
    cfg = replace(_config(), named_accounts={"zz": "R2", "a1": "R9"})
    with pytest.raises(InputError, match=r"(?s)'zz' = 'R2': no such account.*'R9': no such rep"):
        plan_units(inputs, _units(), cfg)

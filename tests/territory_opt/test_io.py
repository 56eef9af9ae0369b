"""Every bad-input path: each problem names its file, row (1-based, header excluded) and column.

The good inputs are five accounts around Atlanta and two reps::

    account_id  lat    lon     potential  current_rep_id  locked
    A1          33.75  -84.39  100        R1              false
    A2          33.80  -84.30  200        R1              false
    A3          33.70  -84.50  300        R2              true
    A4          33.90  -84.40  150        R2              false
    A5          33.60  -84.35  250                        false

    rep_id  lat    lon
    R1      33.75  -84.39
    R2      33.70  -84.50

Each test breaks one thing in a copy, writes the CSV and loads it through ``load_inputs``.
The pre-solve arithmetic (capacity, whales) is tested here too: it is the last line of input
validation, and its messages carry the numbers.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from territory_opt.config import PlanConfig
from territory_opt.errors import InputError
from territory_opt.feasibility import indivisibility_limit, precheck
from territory_opt.io import load_inputs, read_table, validate_inputs
from territory_opt.problem import build_problem

ACCOUNTS = pd.DataFrame(
    {
        "account_id": ["A1", "A2", "A3", "A4", "A5"],
        "lat": [33.75, 33.80, 33.70, 33.90, 33.60],
        "lon": [-84.39, -84.30, -84.50, -84.40, -84.35],
        "potential": [100.0, 200.0, 300.0, 150.0, 250.0],
        "current_rep_id": ["R1", "R1", "R2", "R2", None],
        "locked": [False, False, True, False, False],
    }
)
REPS = pd.DataFrame({"rep_id": ["R1", "R2"], "lat": [33.75, 33.70], "lon": [-84.39, -84.50]})


def _write(folder: Path, name: str, frame: pd.DataFrame) -> Path:
    path = folder / name
    frame.to_csv(path, index=False)
    return path


def _load(tmp_path: Path, accounts: pd.DataFrame = ACCOUNTS, reps: pd.DataFrame = REPS):
    return load_inputs(
        _write(tmp_path, "accounts.csv", accounts), _write(tmp_path, "reps.csv", reps)
    )


def _bad(tmp_path: Path, accounts=ACCOUNTS, reps=REPS, *, match: str) -> InputError:
    with pytest.raises(InputError, match=match) as err:
        _load(tmp_path, accounts, reps)
    return err.value


def _where(err: InputError, file: str, row: int | None, column: str | None) -> str:
    """The one problem at (file, row, column); its place is spelled out in the message."""
    hits = [
        p for p in err.problems if p.file.endswith(file) and p.row == row and p.column == column
    ]
    assert len(hits) == 1, f"expected one problem at {file}/{row}/{column}: {err.problems}"
    where = f"{file}" + (f", row {row}" if row else "") + (f", column '{column}'" if column else "")
    assert where in str(err)
    return hits[0].message


def test_good_inputs(tmp_path):
    inputs = _load(tmp_path)
    assert inputs.accounts.index.tolist() == ["A1", "A2", "A3", "A4", "A5"]
    assert inputs.reps.index.tolist() == ["R1", "R2"]
    assert inputs.accounts["locked"].tolist() == [False, False, True, False, False]
    assert inputs.accounts["current_rep_id"].isna().tolist() == [False] * 4 + [True]
    assert inputs.reps["fte"].tolist() == [1.0, 1.0]  # default when the column is absent
    assert inputs.sources["accounts"].endswith("accounts.csv")
    assert inputs.history is None


def test_parquet_is_read_like_csv(tmp_path):
    ACCOUNTS.to_parquet(tmp_path / "accounts.parquet")
    REPS.to_parquet(tmp_path / "reps.parquet")
    inputs = load_inputs(tmp_path / "accounts.parquet", tmp_path / "reps.parquet")
    from_csv = _load(tmp_path)
    pd.testing.assert_frame_equal(
        inputs.accounts[["lat", "lon", "potential"]], from_csv.accounts[["lat", "lon", "potential"]]
    )


def test_missing_account_id_column(tmp_path):
    err = _bad(tmp_path, ACCOUNTS.drop(columns="account_id"), match="required column")
    message = _where(err, "accounts.csv", None, "account_id")
    assert "required column 'account_id' is missing" in message
    assert "columns present: lat, lon, potential" in message


def test_missing_id(tmp_path):
    accounts = ACCOUNTS.assign(account_id=["A1", "A2", None, "A4", "A5"])
    err = _bad(tmp_path, accounts, match="missing id")
    assert _where(err, "accounts.csv", 3, "account_id") == "missing id"


def test_duplicate_id(tmp_path):
    accounts = ACCOUNTS.assign(account_id=["A1", "A2", "A3", "A2", "A5"])
    err = _bad(tmp_path, accounts, match="duplicate id")
    assert _where(err, "accounts.csv", 4, "account_id") == "duplicate id 'A2' (first seen at row 2)"


def test_duplicate_rep_id(tmp_path):
    reps = pd.concat([REPS, REPS.iloc[[0]]], ignore_index=True)
    err = _bad(tmp_path, reps=reps, match="duplicate id 'R1'")
    _where(err, "reps.csv", 3, "rep_id")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (np.nan, "potential (currency/year) is missing"),
        (-5.0, "potential (currency/year) below 0"),
        ("lots", "potential (currency/year) is not a number"),
    ],
)
def test_bad_potential(tmp_path, value, message):
    accounts = ACCOUNTS.astype({"potential": object})
    accounts.loc[1, "potential"] = value
    err = _bad(tmp_path, accounts, match=re.escape(message))
    assert _where(err, "accounts.csv", 2, "potential") == message


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("lat", 91.0, "latitude above 90"),
        ("lat", -90.5, "latitude below -90"),
        ("lon", 180.5, "longitude above 180"),
        ("lon", -200.0, "longitude below -180"),
    ],
)
def test_coordinates_out_of_range(tmp_path, column, value, message):
    accounts = ACCOUNTS.copy()
    accounts.loc[4, column] = value
    err = _bad(tmp_path, accounts, match=message)
    assert _where(err, "accounts.csv", 5, column) == message


def test_rep_coordinates_out_of_range(tmp_path):
    reps = REPS.assign(lat=[33.75, 133.7])
    err = _bad(tmp_path, reps=reps, match="latitude above 90")
    _where(err, "reps.csv", 2, "lat")


def test_unknown_current_rep(tmp_path):
    accounts = ACCOUNTS.assign(current_rep_id=["R1", "R7", "R2", "R2", None])
    err = _bad(tmp_path, accounts, match="unknown rep id")
    assert _where(err, "accounts.csv", 2, "current_rep_id") == "unknown rep id"
    assert "use a rep_id from" in str(err) and "reps.csv or leave it empty" in str(err)


def test_locked_account_without_rep(tmp_path):
    accounts = ACCOUNTS.assign(locked=[False, False, True, False, True])  # A5 has no rep
    err = _bad(tmp_path, accounts, match="locked account without a current_rep_id")
    _where(err, "accounts.csv", 5, "locked")
    assert "give it a current_rep_id or unlock it" in str(err)


def test_not_a_boolean(tmp_path):
    accounts = ACCOUNTS.astype({"locked": object})
    accounts.loc[0, "locked"] = "maybe"
    err = _bad(tmp_path, accounts, match="not a true/false value")
    _where(err, "accounts.csv", 1, "locked")


def test_every_problem_in_one_error(tmp_path):
    # A duplicate account id and a rep off the globe: two files, two rules, one error.
    accounts = ACCOUNTS.assign(account_id=["A1", "A1", "A3", "A4", "A5"])
    reps = REPS.assign(lon=[-84.39, -184.5])
    err = _bad(tmp_path, accounts, reps, match=r"^2 input problem\(s\) found")
    assert len(err.problems) == 2
    assert _where(err, "accounts.csv", 2, "account_id").startswith("duplicate id 'A1'")
    assert _where(err, "reps.csv", 2, "lon") == "longitude below -180"


def test_long_lists_are_summarised(tmp_path):
    accounts = pd.concat([ACCOUNTS] * 10, ignore_index=True).assign(potential=-1.0)
    accounts["account_id"] = [f"A{i}" for i in range(len(accounts))]
    err = _bad(tmp_path, accounts, match="potential")
    rows = [p.row for p in err.problems if p.column == "potential"]
    assert rows[:20] == list(range(1, 21))
    assert "30 more row(s) with the same problem" in str(err)


def test_unknown_account_in_history(tmp_path):
    history = pd.DataFrame({"account_id": ["A1", "A9"], "year": [2025, 2025], "bookings": [1, 2]})
    with pytest.raises(InputError, match="unknown account id") as err:
        load_inputs(
            _write(tmp_path, "accounts.csv", ACCOUNTS),
            _write(tmp_path, "reps.csv", REPS),
            _write(tmp_path, "history.csv", history),
        )
    _where(err.value, "history.csv", 2, "account_id")


def test_unknown_file_type(tmp_path):
    path = tmp_path / "accounts.xlsx"
    path.write_bytes(b"not a spreadsheet")
    with pytest.raises(InputError, match=r"unknown file type '\.xlsx'.*use \.csv or \.parquet"):
        read_table(path)


def test_file_not_found(tmp_path):
    with pytest.raises(InputError, match="file not found") as err:
        load_inputs(tmp_path / "nowhere.csv", tmp_path / "neither.csv")
    # Both files are reported at once.
    assert [Path(p.file).name for p in err.value.problems] == ["nowhere.csv", "neither.csv"]
    assert all(p.message == "file not found" for p in err.value.problems)


# --- problems found when building the problem ------------------------------------------------


def _frames(accounts: pd.DataFrame, reps: pd.DataFrame):
    inputs = validate_inputs(accounts, reps)
    return inputs.accounts, inputs.reps, inputs.accounts["potential"]


def test_rep_who_can_reach_no_account():
    # Every account is commercial; R2 serves enterprise accounts, of which there are none.
    accounts = ACCOUNTS.assign(segment="commercial", locked=False)
    reps = REPS.assign(segment=["commercial", "enterprise"])
    with pytest.raises(InputError, match="rep 'R2' .* can reach no account") as err:
        build_problem(*_frames(accounts, reps), PlanConfig())
    (problem,) = err.value.problems
    assert (problem.file, problem.row, problem.column) == ("reps", 2, "segment")
    assert "reps, row 2, column 'segment'" in str(err.value)


def test_total_workload_above_total_capacity():
    # 30 accounts on the two rep bases (no travel) at one 60-minute visit a year: 30 h of
    # work for 2 x 10 h of capacity. 10 h short at 10 h per rep is one more rep, or +50 %.
    accounts = pd.DataFrame(
        {
            "account_id": [f"A{i:02d}" for i in range(30)],
            "lat": [33.75, 33.70] * 15,
            "lon": [-84.39, -84.50] * 15,
            "potential": 10.0,
        }
    )
    reps = REPS.assign(capacity_h=[10.0, 10.0])
    pp = build_problem(*_frames(accounts, reps), PlanConfig())
    findings = [f for f in precheck(pp, 0.05) if f.rule == "capacity"]
    assert len(findings) == 1
    assert findings[0].message == (
        "Total workload 30 h (each account with its nearest eligible rep) exceeds total "
        "capacity 20 h across 2 reps by 10 h."
    )
    assert findings[0].fix == "add 1 rep(s) or raise capacity by 50.0 %."


def _whale_frames():
    """Ten accounts of 10 and a whale of 1,000 between two equal reps: targets 550 each."""
    accounts = pd.DataFrame(
        {
            "account_id": ["W"] + [f"A{i}" for i in range(10)],
            "lat": 33.70 + 0.01 * np.arange(11),
            "lon": -84.40,
            "potential": [1_000.0] + [10.0] * 10,
        }
    )
    reps = pd.DataFrame({"rep_id": ["R1", "R2"], "lat": [33.70, 33.75], "lon": [-84.40, -84.40]})
    return _frames(accounts, reps)


def test_impossible_band_from_a_whale():
    pp = build_problem(*_whale_frames(), PlanConfig())
    # No rep can hold 1,000 inside 550 x 1.05; the tightest band is 1,000 / 550 - 1.
    limit = 1_000 / 550 - 1
    assert indivisibility_limit(pp) == pytest.approx(limit)
    (finding,) = [f for f in precheck(pp, 0.05) if f.rule == "band"]
    assert finding.message == (
        "Account 'W' has potential 1,000, above the band maximum (target x 1.05) of every rep "
        f"it can go to; the tightest band any plan can meet is +-{100 * limit:.2f} %."
    )
    assert finding.fix == f"widen the tolerance to at least {limit:.4f}, or split the account."
    # A tolerance at the limit leaves nothing to report.
    assert not [f for f in precheck(pp, limit + 1e-9) if f.rule == "band"]


def test_whale_finding_names_an_account_that_fits_nowhere():
    # RB (100 h) is a small rep: target 1,500 x 100 / 1,700 = 88. X (300) may go to RA
    # (target 1,412) or RB; W (200) is 333 km from RA, beyond max_travel_km, so only RB.
    # W is the whale; X fits RA.
    accounts = pd.DataFrame(
        {
            "account_id": [f"F{i}" for i in range(10)] + ["X", "W"],
            "lat": [33.0] * 10 + [34.0, 36.0],
            "lon": -84.0,
            "potential": [100.0] * 10 + [300.0, 200.0],
        }
    )
    reps = pd.DataFrame(
        {"rep_id": ["RA", "RB"], "lat": [33.0, 35.0], "lon": -84.0, "capacity_h": [1600.0, 100.0]}
    )
    pp = build_problem(*_frames(accounts, reps), PlanConfig(max_travel_km=300, rep_reach=0.5))
    assert pp.problem.candidates(11).tolist() == [1]  # W: RB only
    assert indivisibility_limit(pp) == pytest.approx(200 / (1500 / 17) - 1)
    (finding,) = [f for f in precheck(pp, 0.05) if f.rule == "band"]
    assert finding.message.startswith("Account 'W'")


def test_column_names_are_configurable(tmp_path):
    """A CRM export with its own headers loads through [columns.*] mappings; ids keep their
    leading zeros because the mapped id columns are read as text."""
    (tmp_path / "a.csv").write_text("AcctId,Latitude,Longitude,Owner\n007,33.7,-84.4,R1\n")
    (tmp_path / "r.csv").write_text("RepCode,lat,lon\nR1,33.7,-84.3\n")
    cols = {
        "accounts": {
            "account_id": "AcctId",
            "lat": "Latitude",
            "lon": "Longitude",
            "current_rep_id": "Owner",
        },
        "reps": {"rep_id": "RepCode"},
    }
    inputs = load_inputs(tmp_path / "a.csv", tmp_path / "r.csv", columns=cols)
    assert list(inputs.accounts["account_id"]) == ["007"]
    assert list(inputs.accounts["current_rep_id"]) == ["R1"]
    assert list(inputs.reps["rep_id"]) == ["R1"]


def test_a_mapped_column_that_is_missing_is_named(tmp_path):
    (tmp_path / "a.csv").write_text("account_id,lat,lon\nA,33.7,-84.4\n")
    (tmp_path / "r.csv").write_text("rep_id,lat,lon\nR1,33.7,-84.3\n")
    with pytest.raises(
        InputError,
        match=r"column 'Latitude' \(mapped to 'lat' in "
        r"\[columns.accounts\]\) is missing",
    ):
        load_inputs(
            tmp_path / "a.csv", tmp_path / "r.csv", columns={"accounts": {"lat": "Latitude"}}
        )


def test_unknown_column_mapping_is_a_config_error():
    from territory_opt.config import PlanConfig

    with pytest.raises(
        ValueError, match=r"\[columns.accounts\] maps unknown column\(s\) \['acct'\]"
    ):
        PlanConfig.from_dict({"columns": {"accounts": {"acct": "Id"}}})
    with pytest.raises(ValueError, match=r"\[columns.deals\] is not a table"):
        PlanConfig.from_dict({"columns": {"deals": {}}})


def test_rep_reach_follows_target_weight_not_capacity():
    """Rep-side candidates reach accounts until they hold ``rep_reach`` x the rep's own
    target. RB has little capacity but half the target weight: it must reach accounts
    holding half of its (larger) target, not of a capacity-based one."""
    accounts = pd.DataFrame(
        {
            "account_id": [f"A{i}" for i in range(20)],
            "lat": 33.0 + 0.05 * np.arange(20),
            "lon": -84.0,
            "potential": 100.0,
        }
    )
    reps = pd.DataFrame(
        {
            "rep_id": ["RA", "RB"],
            "lat": [33.0, 36.0],
            "lon": -84.0,
            "capacity_h": [1900.0, 100.0],
            "target_weight": [1.0, 1.0],
        }
    )
    cfg = PlanConfig(num_candidates=1, rep_reach=0.5, max_travel_km=500)
    pp = build_problem(*_frames(accounts, reps), cfg)
    # Every account is nearest to RA, so RB's candidates are its rep-side reach only. Its
    # target is 1,000 (half of 2,000): it reaches accounts holding at least 500, its 5
    # nearest and more; capacity weights (5 %) would have asked for 50, one account.
    rb_units = pp.problem.pair_unit[pp.problem.cand_rep == 1]
    assert pp.problem.unit_measure[rb_units, 0].sum() >= 500
    assert set(range(15, 20)) <= set(rb_units.tolist())

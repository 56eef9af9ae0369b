"""The command line through typer's CliRunner: exit codes, messages, and nothing partial.

Exit codes: 0 done, 2 bad input, 3 no plan can exist, 4 a plan failed the check.
"""

from __future__ import annotations

import pandas as pd
import pytest
from typer.testing import CliRunner

from territory_opt.cli import EXIT_INFEASIBLE, EXIT_INPUT, app

FAST = ["--time-limit", "30", "--workers", "1", "--seed", "11"]


@pytest.fixture(scope="module")
def runner() -> CliRunner:
    return CliRunner()


def _files_args(files, *, history=True) -> list[str]:
    args = ["--accounts", str(files["accounts"]), "--reps", str(files["reps"])]
    return args + (["--history", str(files["history"])] if history else [])


@pytest.fixture(scope="module")
def whale_files(small_book_files, tmp_path_factory):
    """The small book, but account A0000010 booked 500 million last year."""
    folder = tmp_path_factory.mktemp("whale")
    history = pd.read_csv(small_book_files["history"], dtype={"account_id": str, "rep_id": str})
    whale = pd.DataFrame(
        {
            "account_id": ["A0000010"],
            "year": [int(history["year"].max())],
            "bookings": [5e8],
            "rep_id": ["R001"],
        }
    )
    pd.concat([history, whale], ignore_index=True).to_csv(folder / "history.csv", index=False)
    return dict(small_book_files) | {"history": folder / "history.csv"}


def test_plan_writes_the_folder(runner, small_book_files, tmp_path):
    out = tmp_path / "plan"
    res = runner.invoke(app, ["plan", *_files_args(small_book_files), "--out", str(out), *FAST])
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in out.iterdir()) == [
        "assignments.csv",
        "manifest.json",
        "map.png",
        "summary.txt",
        "territories.csv",
    ]
    assert "check         passed" in res.stdout
    assert f"Wrote {out}/" in res.stdout
    assert len(pd.read_csv(out / "assignments.csv")) == 4_000


def test_duplicate_id_exits_2_and_writes_nothing(runner, small_book_files, tmp_path):
    accounts = pd.read_csv(small_book_files["accounts"], dtype=str)
    bad = pd.concat([accounts, accounts.iloc[[5]]], ignore_index=True)  # row 4,001 repeats row 6
    bad_path = tmp_path / "accounts.csv"
    bad.to_csv(bad_path, index=False)
    files = dict(small_book_files) | {"accounts": bad_path}
    out = tmp_path / "plan"
    res = runner.invoke(app, ["plan", *_files_args(files), "--out", str(out), *FAST])
    assert res.exit_code == EXIT_INPUT == 2
    assert f"{bad_path}, row 4001, column 'account_id'" in res.stderr
    assert "duplicate id 'A0000006' (first seen at row 6)" in res.stderr
    assert "Nothing was written." in res.stderr
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["accounts.csv"]


def test_bad_config_exits_2(runner, small_book_files, tmp_path):
    config = tmp_path / "plan.toml"
    config.write_text("tolerence = 0.05\n")
    out = tmp_path / "plan"
    args = ["plan", *_files_args(small_book_files), "--out", str(out), "--config", str(config)]
    res = runner.invoke(app, args)
    assert res.exit_code == EXIT_INPUT
    assert "unknown config key(s) ['tolerence']" in res.stderr
    assert not out.exists()


def test_validate_good_input(runner, small_book_files):
    res = runner.invoke(app, ["validate", *_files_args(small_book_files)])
    assert res.exit_code == 0, res.output
    assert "inputs valid: 4,000 accounts, 20 reps" in res.stdout
    assert "no arithmetic obstacle found" in res.stdout


def test_validate_reports_a_whale(runner, whale_files):
    res = runner.invoke(app, ["validate", *_files_args(whale_files)])
    assert res.exit_code == EXIT_INFEASIBLE == 3
    assert "Account 'A0000010' has potential" in res.stderr


def test_infeasible_settings_exit_3_and_write_nothing(runner, whale_files, tmp_path):
    out = tmp_path / "plan"
    args = ["plan", *_files_args(whale_files), "--out", str(out), "--tolerance", "0.0001"]
    res = runner.invoke(app, [*args, *FAST])
    assert res.exit_code == EXIT_INFEASIBLE
    assert "no plan can satisfy these settings" in res.stderr
    assert "Account 'A0000010' has potential" in res.stderr
    assert "the tightest band any plan can meet is +-" in res.stderr
    assert "Nothing was written." in res.stderr
    assert not out.exists()


def test_error_output_keeps_the_rule_name(runner, whale_files):
    res = runner.invoke(app, ["validate", *_files_args(whale_files)])
    assert "[band] Account 'A0000010'" in res.stderr


@pytest.mark.parametrize(
    ("command", "table"),
    [("rebalance", "[rebalance]"), ("capacity", "[capacity]"), ("quota-test", "[comp_plan]")],
)
def test_help_names_the_config_tables(runner, command, table):
    """Rich markup would swallow a bare [table] in help text: the user must see it."""
    result = runner.invoke(app, [command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert table in result.output

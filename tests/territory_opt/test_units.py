"""Small domain pieces by hand: workload, capacity, quotas, settings, atomic output, hashes."""

from __future__ import annotations

import hashlib
from dataclasses import FrozenInstanceError

import numpy as np
import pandas as pd
import pytest

from solvers.settings import SolveSettings
from territory_opt.atomic import atomic_dir
from territory_opt.config import PlanConfig, PotentialSettings, WorkloadSettings
from territory_opt.demo import demo_files
from territory_opt.manifest import sha256_file, versions
from territory_opt.quotas import exact_split, headcount_quotas, potential_quotas
from territory_opt.workload import capacity_h, visits_per_year, workload_h

# --- workload and capacity -----------------------------------------------------------------


def test_visits_per_year_by_tier():
    accounts = pd.DataFrame({"tier": ["A", "B", "C", "D", "Z", None]})
    # Unknown and missing tiers get the default (1 visit).
    assert visits_per_year(accounts, WorkloadSettings()).tolist() == [6, 4, 2, 1, 1, 1]
    assert visits_per_year(pd.DataFrame(index=range(2)), WorkloadSettings()).tolist() == [1, 1]


def test_workload_formula_by_hand():
    # 2 visits x (60 min on site + a 2 x 35 km x 1.3 / 70 km/h = 1.3 h round trip) = 4.6 h
    assert workload_h(np.array([2.0]), np.array([35.0]), WorkloadSettings()) == pytest.approx([4.6])
    # 30-minute visits at 50 km/h with no detour: 3 x (0.5 + 2 x 10 / 50) = 2.7 h
    slow = WorkloadSettings(minutes_per_visit=30.0, circuity=1.0, speed_kmh=50.0)
    assert workload_h(np.array([3.0]), np.array([10.0]), slow) == pytest.approx([2.7])
    assert workload_h(np.array([4.0]), np.array([0.0]), WorkloadSettings()).tolist() == [4.0]


def test_capacity_defaults_to_fte_times_hours():
    reps = pd.DataFrame({"fte": [1.0, 0.5]})
    assert capacity_h(reps, WorkloadSettings()).tolist() == [1600.0, 800.0]
    assert capacity_h(reps, WorkloadSettings(hours_per_fte=1000.0)).tolist() == [1000.0, 500.0]
    # A given capacity wins; a missing one falls back to the default.
    given = reps.assign(capacity_h=[1200.0, np.nan])
    assert capacity_h(given, WorkloadSettings()).tolist() == [1200.0, 800.0]


def test_bad_workload_settings():
    with pytest.raises(ValueError, match="speed_kmh must be > 0.*visits_per_year\\['A'\\]"):
        WorkloadSettings(speed_kmh=0.0, visits_per_year={"A": -1.0})


# --- quotas --------------------------------------------------------------------------------


def _cents(values: np.ndarray) -> np.ndarray:
    return np.rint(np.asarray(values) * 100).astype(np.int64)


def test_exact_split_sums_to_the_cent():
    q = exact_split(100.0, np.array([1.0, 1.0, 1.0]))
    assert _cents(q).tolist() == [3334, 3333, 3333]  # the leftover cent to the first
    rng = np.random.default_rng(0)
    for _ in range(50):
        total = round(float(rng.uniform(1, 1e8)), 2)
        weights = rng.random(int(rng.integers(1, 40)))
        q = exact_split(total, weights)
        assert _cents(q).sum() == round(total * 100)
        # Largest remainders: nobody is more than a cent off the exact share.
        assert np.all(np.abs(q - total * weights / weights.sum()) <= 0.01 + 1e-9)


def test_potential_quotas_are_proportional():
    q = potential_quotas(1_000.0, np.array([100.0, 200.0, 300.0, 400.0]))
    assert q.tolist() == [100.0, 200.0, 300.0, 400.0]
    q = potential_quotas(1_234_567.89, np.array([3.0, 5.0, 11.0]))
    assert _cents(q).sum() == 123_456_789
    np.testing.assert_allclose(q / np.array([3.0, 5.0, 11.0]), 1_234_567.89 / 19, atol=0.01)


def test_headcount_quotas_are_equal():
    assert headcount_quotas(90.0, 3).tolist() == [30.0, 30.0, 30.0]
    q = headcount_quotas(100.0, 3)
    assert _cents(q).sum() == 10_000 and np.ptp(_cents(q)) <= 1


def test_quotas_need_weight():
    with pytest.raises(ValueError, match="weights that sum to zero"):
        exact_split(10.0, np.zeros(3))


# --- settings ------------------------------------------------------------------------------

TOML = """
tolerance = 0.08
num_candidates = 6

[potential]
method = "firmographic"
quantile = 0.8

[workload]
visits_per_year = { A = 5.0, B = 3.0 }
speed_kmh = 60.0

[solve]
time_limit_s = 12.0
seed = 4
num_workers = 1
"""


def test_config_from_toml(tmp_path):
    path = tmp_path / "plan.toml"
    path.write_text(TOML)
    cfg = PlanConfig.from_file(path)
    assert (cfg.tolerance, cfg.num_candidates, cfg.max_travel_km) == (0.08, 6, 400.0)
    assert cfg.potential == PotentialSettings(method="firmographic", quantile=0.8)
    assert cfg.workload.visits_per_year == {"A": 5.0, "B": 3.0}
    assert cfg.workload.speed_kmh == 60.0
    assert cfg.solve == SolveSettings(time_limit_s=12.0, seed=4, num_workers=1)
    with pytest.raises(FrozenInstanceError):
        cfg.tolerance = 0.1  # type: ignore[misc]


def test_demo_config_loads():
    cfg = PlanConfig.from_file(demo_files()["config"])
    assert cfg.potential.method == "peer_quantile"
    assert cfg.solve.seed == 2027


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("tolerence = 0.05\n", r"unknown config key\(s\) \['tolerence'\]; known: "),
        ("[workload]\nspeed = 50.0\n", r"unknown key\(s\) \['speed'\] in \[workload\]"),
        ("[potential]\nmethods = 'x'\n", r"unknown key\(s\) \['methods'\] in \[potential\]"),
        ("[solve]\nthreads = 4\n", r"unknown solver setting\(s\) \['threads'\]"),
        ("tolerance = 1.5\n", r"tolerance must be in \(0, 1\), got 1.5"),
        ("[solve]\nnum_workers = 0\n", "num_workers must be >= 1"),
        ("tolerance = \n", "not valid TOML"),
    ],
)
def test_config_errors_name_the_file_and_the_key(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ValueError, match=message) as err:
        PlanConfig.from_file(path)
    assert str(path) in str(err.value)


def test_overrides_win_and_keep_the_rest(tmp_path):
    path = tmp_path / "plan.toml"
    path.write_text(TOML)
    cfg = PlanConfig.from_file(path).with_overrides(
        tolerance=0.02, quota_total=5e6, time_limit_s=3.0, seed=9, workers=2
    )
    assert (cfg.tolerance, cfg.quota_total) == (0.02, 5e6)
    assert (cfg.solve.time_limit_s, cfg.solve.seed, cfg.solve.num_workers) == (3.0, 9, 2)
    # Untouched values stay as the file says.
    assert (cfg.num_candidates, cfg.potential.method, cfg.workload.speed_kmh) == (
        6,
        "firmographic",
        60.0,
    )
    # None means "not given on the command line".
    same = PlanConfig.from_file(path).with_overrides(tolerance=None, seed=None)
    assert same == PlanConfig.from_file(path)
    with pytest.raises(ValueError, match="tolerance must be in"):
        cfg.with_overrides(tolerance=-1.0)


# --- atomic output -------------------------------------------------------------------------


def _siblings(folder):
    return sorted(p.name for p in folder.parent.iterdir())


def test_atomic_dir_leaves_nothing_on_failure(tmp_path):
    out = tmp_path / "plan"
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_dir(out) as tmp:
            (tmp / "assignments.csv").write_text("half")
            raise RuntimeError("boom")
    assert _siblings(out) == []  # no output, no temporary folder


def test_atomic_dir_keeps_the_old_folder_on_failure(tmp_path):
    out = tmp_path / "plan"
    out.mkdir()
    (out / "old.csv").write_text("old")
    with pytest.raises(KeyboardInterrupt):
        with atomic_dir(out) as tmp:
            (tmp / "new.csv").write_text("new")
            raise KeyboardInterrupt
    assert _siblings(out) == ["plan"]
    assert sorted(p.name for p in out.iterdir()) == ["old.csv"]


def test_atomic_dir_replaces_an_existing_folder(tmp_path):
    out = tmp_path / "nested" / "plan"
    out.mkdir(parents=True)
    (out / "old.csv").write_text("old")
    with atomic_dir(out) as tmp:
        assert tmp.parent == out.parent  # same file system for the rename
        (tmp / "new.csv").write_text("new")
        assert (out / "old.csv").exists()  # nothing changes until the block succeeds
    assert sorted(p.name for p in out.iterdir()) == ["new.csv"]
    assert (out / "new.csv").read_text() == "new"
    assert _siblings(out) == ["plan"]  # no temporary or old folder left behind


# --- manifest helpers ----------------------------------------------------------------------


def test_sha256_and_versions(tmp_path):
    path = tmp_path / "x.csv"
    path.write_bytes(b"account_id\nA1\n")
    assert sha256_file(path) == hashlib.sha256(b"account_id\nA1\n").hexdigest()
    v = versions()
    assert {"python", "ortools", "numpy", "pandas", "scikit-learn"} <= set(v)
    assert v["territory-opt"] != "not installed"


def test_atomic_dir_result_has_a_plain_folder_mode(tmp_path):
    """mkdtemp makes 0700 folders; the written result must be readable like any folder."""
    import os

    umask = os.umask(0)
    os.umask(umask)
    with atomic_dir(tmp_path / "out") as tmp:
        (tmp / "a.txt").write_text("x")
    assert (tmp_path / "out").stat().st_mode & 0o777 == 0o777 & ~umask

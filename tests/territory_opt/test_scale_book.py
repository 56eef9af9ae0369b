"""Tests for the national-scale benchmark book (``territory_opt.scale_book``).

One small book, 2,000 accounts x 10 reps on the shipped Georgia counties, with and without
drift; the figures are recomputed here from the frames.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.spatial import cKDTree

from territory_opt.config import WorkloadSettings
from territory_opt.geo import haversine_km
from territory_opt.io import COLUMNS, validate_inputs
from territory_opt.scale_book import generate_scale_book
from territory_opt.workload import visits_per_year, workload_h

N, R = 2_000, 10


@pytest.fixture(scope="module")
def book():
    return generate_scale_book(N, R, seed=3)


@pytest.fixture(scope="module")
def drifted():
    return generate_scale_book(N, R, seed=3, drift=0.2)


def test_same_seed_same_frames_other_seed_other_frames(book):
    again = generate_scale_book(N, R, seed=3)
    pd.testing.assert_frame_equal(book.accounts, again.accounts)
    pd.testing.assert_frame_equal(book.reps, again.reps)
    other = generate_scale_book(N, R, seed=4)
    assert not np.array_equal(book.accounts["lat"], other.accounts["lat"])


def test_frames_use_the_input_schema_and_validate(book, drifted):
    for b in (book, drifted):
        assert set(b.accounts.columns) <= set(COLUMNS["accounts"])
        assert set(b.reps.columns) <= set(COLUMNS["reps"])
        inputs = validate_inputs(b.accounts, b.reps)
        assert len(inputs.accounts) == N and len(inputs.reps) == R
    assert "current_rep_id" not in book.accounts
    assert drifted.accounts["current_rep_id"].isin(set(drifted.reps["rep_id"])).all()


def test_capacity_is_the_ratio_times_the_base_workload(book):
    """Total capacity = 1.15 x the workload of the balanced base plan, split by FTE; that
    base needs at least the workload of every account at its nearest rep."""
    r = book.reps
    assert r["capacity_h"].sum() == pytest.approx(1.15 * book.figures["base_workload_h"], rel=1e-4)
    assert book.figures["base_workload_h"] >= book.figures["least_workload_h"]
    per_fte = r["capacity_h"] / r["fte"]
    assert per_fte.max() == pytest.approx(per_fte.min(), rel=1e-3)
    assert book.figures["capacity_ratio"] == pytest.approx(1.15, rel=1e-4)


def test_nearest_base_is_the_least_workload_recomputed():
    """With capacity_base='nearest': 1.3 x the workload of every account at its nearest rep
    (great circle, over all reps)."""
    book = generate_scale_book(N, R, seed=3, capacity_base="nearest", capacity_ratio=1.3)
    a, r = book.accounts, book.reps
    km_all = haversine_km(
        a["lat"].to_numpy()[:, None],
        a["lon"].to_numpy()[:, None],
        r["lat"].to_numpy()[None, :],
        r["lon"].to_numpy()[None, :],
    )
    settings = WorkloadSettings()
    least = workload_h(visits_per_year(a, settings), km_all.min(axis=1), settings).sum()
    assert r["capacity_h"].sum() == pytest.approx(1.3 * least, rel=1e-4)


def test_potential_is_heavy_tailed_but_every_band_attainable(book):
    pot = book.accounts["potential"].to_numpy()
    assert (pot > 0).all()
    assert pot.max() / np.median(pot) > 20  # whales
    smallest_target = pot.sum() * book.reps["fte"].min() / book.reps["fte"].sum()
    assert pot.max() <= 0.2 * smallest_target * (1 + 1e-9)


def test_drift_keeps_last_years_plan_compact_and_unbalances_it(drifted):
    """Last year's plan is a balanced nearest-rep plan: most accounts sit with one of their
    3 nearest reps; after drift some rep is out of a +-2 % band."""
    a, r = drifted.accounts, drifted.reps
    xy = np.c_[r["lon"], r["lat"]]
    _, near = cKDTree(xy).query(np.c_[a["lon"], a["lat"]], k=3)
    owner = pd.Index(r["rep_id"]).get_indexer(a["current_rep_id"])
    assert (near == owner[:, None]).any(axis=1).mean() > 0.9
    assert drifted.figures["last_year_worst_dev_pct"] < 10
    assert drifted.figures["current_worst_dev_pct"] > 2


def test_bad_arguments_are_listed_together():
    with pytest.raises(ValueError, match=r"(?s)num_accounts=100.*capacity_ratio=0"):
        generate_scale_book(100, 10, capacity_ratio=0)

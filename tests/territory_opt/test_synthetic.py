"""Tests for the synthetic demo-book generator.

Most tests share one small book: 4,000 accounts x 20 reps (16 commercial, 4 enterprise) on the
shipped Georgia counties. That is the smallest size at which the realism targets are meaningful:
with 2,000 x 8 the two enterprise reps each cover half the state, utilisation runs above 100%,
and a coefficient of variation over two reps is noise. Figures are recomputed here from the
frames with the pipeline's workload formula rather than taken from ``SyntheticBook.summary``.
"""

from __future__ import annotations

import re

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from territory_opt.synthetic import DEFAULT_GEOGRAPHY_PATH, SyntheticBook, generate_book

NUM_ACCOUNTS = 4_000
NUM_REPS = 20
YEARS = (2023, 2024, 2025)
VISITS = {"A": 6, "B": 4, "C": 2, "D": 1}

ACCOUNT_DTYPES = {
    "account_id": "str",
    "lat": "float64",
    "lon": "float64",
    "segment": "str",
    "tier": "str",
    "industry": "str",
    "employees": "int64",
    "annual_revenue": "float64",
    "current_rep_id": "str",
    "locked": "bool",
}
REP_DTYPES = {
    "rep_id": "str",
    "lat": "float64",
    "lon": "float64",
    "fte": "float64",
    "segment": "str",
    "start_date": "datetime64[s]",
}
HISTORY_DTYPES = {"account_id": "str", "year": "int64", "bookings": "float64", "rep_id": "str"}
TRUTH_DTYPES = {"account_id": "str", "true_potential": "float64"}


@pytest.fixture(scope="module")
def book() -> SyntheticBook:
    return generate_book(NUM_ACCOUNTS, NUM_REPS, seed=7)


@pytest.fixture(scope="module")
def counties() -> gpd.GeoDataFrame:
    return gpd.read_file(DEFAULT_GEOGRAPHY_PATH)


def haversine_km(lon1, lat1, lon2, lat2):
    lon1, lat1, lon2, lat2 = map(np.radians, (lon1, lat1, lon2, lat2))
    h = (
        np.sin((lat2 - lat1) / 2) ** 2
        + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * 6371.0 * np.arcsin(np.sqrt(h))


def per_rep(book: SyntheticBook, segment: str) -> pd.DataFrame:
    """Accounts and true potential per FTE for each rep of ``segment`` at the current alignment."""
    acc = book.accounts.merge(book.truth, on="account_id")
    reps = book.reps[book.reps["segment"] == segment].set_index("rep_id")
    grouped = acc[acc["segment"] == segment].groupby("current_rep_id")
    out = pd.DataFrame(
        {"count": grouped.size(), "potential": grouped["true_potential"].sum()}
    ).reindex(reps.index, fill_value=0)
    return out.div(reps["fte"], axis=0)


def cv(x: pd.Series) -> float:
    return float(x.std(ddof=0) / x.mean())


# --- determinism ---------------------------------------------------------------------------------


def test_same_seed_gives_equal_frames(book):
    again = generate_book(NUM_ACCOUNTS, NUM_REPS, seed=7)
    for name in ("accounts", "reps", "history", "truth"):
        pd.testing.assert_frame_equal(getattr(book, name), getattr(again, name))


def test_different_seed_gives_different_frames(book):
    other = generate_book(NUM_ACCOUNTS, NUM_REPS, seed=8)
    assert not np.array_equal(book.accounts["lat"], other.accounts["lat"])
    assert not np.array_equal(book.truth["true_potential"], other.truth["true_potential"])
    assert not book.history.equals(other.history)


def test_write_is_byte_identical_and_round_trips(book, tmp_path):
    first = book.write(tmp_path / "a")
    second = generate_book(NUM_ACCOUNTS, NUM_REPS, seed=7).write(tmp_path / "b")
    for name, path in first.items():
        assert path.read_bytes() == second[name].read_bytes(), name
    accounts = pd.read_csv(first["accounts"], dtype={"account_id": str, "current_rep_id": str})
    pd.testing.assert_frame_equal(accounts, book.accounts, check_dtype=False)
    reps = pd.read_csv(first["reps"], parse_dates=["start_date"])
    pd.testing.assert_frame_equal(reps, book.reps, check_dtype=False)
    assert (
        first["reps"]
        .read_text()
        .splitlines()[1]
        .endswith(book.reps["start_date"].iloc[0].strftime("%Y-%m-%d"))
    )
    history = pd.read_csv(first["history"])
    pd.testing.assert_frame_equal(history, book.history, check_dtype=False)


# --- schema ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "dtypes"),
    [
        ("accounts", ACCOUNT_DTYPES),
        ("reps", REP_DTYPES),
        ("history", HISTORY_DTYPES),
        ("truth", TRUTH_DTYPES),
    ],
)
def test_columns_and_dtypes(book, name, dtypes):
    frame = getattr(book, name)
    assert list(frame.columns) == list(dtypes)
    assert {c: str(t) for c, t in frame.dtypes.items()} == dtypes
    assert not frame.isna().any().any()


def test_no_potential_column_in_accounts(book):
    assert not any("potential" in c for c in book.accounts.columns)


def test_ids_unique_and_well_formed(book):
    assert book.accounts["account_id"].is_unique
    assert book.reps["rep_id"].is_unique
    assert book.accounts["account_id"].str.fullmatch(r"A\d{7}").all()
    assert book.reps["rep_id"].str.fullmatch(r"R\d{3}").all()
    assert book.truth["account_id"].tolist() == book.accounts["account_id"].tolist()


def test_categorical_values(book):
    acc = book.accounts
    assert set(acc["segment"]) == {"commercial", "enterprise"}
    assert set(acc["tier"]) == {"A", "B", "C", "D"}
    assert acc["industry"].nunique() == 8
    assert all(re.fullmatch(r"[a-z_]+", i) for i in acc["industry"].unique())
    assert set(book.reps["segment"]) == {"commercial", "enterprise"}
    assert set(book.reps["fte"]) <= {0.5, 0.8, 1.0}
    assert (book.reps["fte"] == 1.0).mean() > 0.7


# --- sizes and segments ------------------------------------------------------------------------


def test_segment_split(book):
    assert book.reps["segment"].value_counts().to_dict() == {"commercial": 16, "enterprise": 4}
    share = (book.accounts["segment"] == "enterprise").mean()
    assert share == pytest.approx(0.15, abs=1e-3)


def test_enterprise_accounts_are_much_larger(book):
    acc = book.accounts.merge(book.truth, on="account_id")
    ent = acc[acc["segment"] == "enterprise"]
    com = acc[acc["segment"] == "commercial"]
    assert ent["employees"].min() >= 1_000 > com["employees"].max()
    assert ent["annual_revenue"].median() > 10 * com["annual_revenue"].median()
    assert ent["true_potential"].median() > 10 * com["true_potential"].median()
    assert (acc["true_potential"] > 0).all()


def test_locked_share_about_one_percent(book):
    assert 0.002 <= book.accounts["locked"].mean() <= 0.03


def test_tiers_follow_potential(book):
    acc = book.accounts.merge(book.truth, on="account_id")
    for _, seg in acc.groupby("segment"):
        median = seg.groupby("tier")["true_potential"].median()
        assert median["A"] > median["B"] > median["C"] > median["D"]
        share = seg["tier"].value_counts(normalize=True)
        assert 0.02 <= share["A"] <= 0.08
        assert share["D"] >= 0.3


def test_some_reps_started_within_the_last_year(book):
    recent = book.reps["start_date"] >= pd.Timestamp(YEARS[-1], 1, 1)
    assert 1 <= recent.sum() <= 4


# --- geography ---------------------------------------------------------------------------------


def test_points_inside_georgia_counties(book, counties):
    tree = shapely.STRtree(counties.geometry.to_numpy())
    for frame in (book.accounts, book.reps):
        lon, lat = frame["lon"].to_numpy(), frame["lat"].to_numpy()
        assert ((lon > -85.61) & (lon < -80.84) & (lat > 30.35) & (lat < 35.01)).all()
        points = shapely.points(lon, lat)
        hit = np.unique(tree.query(points, predicate="within")[0])
        assert hit.size == len(frame)


def test_custom_geography_is_respected(counties):
    metro = counties[counties["unit_id"].isin(["13067", "13089", "13121", "13135"])]
    small = generate_book(400, 4, seed=1, geography=metro)
    points = shapely.points(small.accounts["lon"], small.accounts["lat"])
    assert shapely.contains(metro.union_all(), points).all()


# --- the current alignment -----------------------------------------------------------------------


def test_current_alignment_balanced_by_count_not_potential(book):
    for segment in ("commercial", "enterprise"):
        rep_stats = per_rep(book, segment)
        count_cv, potential_cv = cv(rep_stats["count"]), cv(rep_stats["potential"])
        assert count_cv < 0.05, segment
        assert potential_cv > max(0.05, 3 * count_cv), segment


def test_accounts_owned_by_reps_of_their_segment(book):
    reps = book.reps.set_index("rep_id")
    owner_segment = reps.loc[book.accounts["current_rep_id"], "segment"].to_numpy()
    assert (owner_segment == book.accounts["segment"].to_numpy()).all()


@pytest.mark.parametrize("segment", ["commercial", "enterprise"])
def test_workload_utilisation_in_target_range(book, segment):
    acc = book.accounts[book.accounts["segment"] == segment]
    reps = book.reps.set_index("rep_id")
    base = reps.loc[acc["current_rep_id"]]
    km = haversine_km(acc["lon"].to_numpy(), acc["lat"].to_numpy(), base["lon"], base["lat"])
    travel_h = 2 * km * 1.3 / 70
    workload_h = (acc["tier"].map(VISITS).to_numpy() * (60 / 60 + travel_h)).sum()
    capacity_h = reps.loc[reps["segment"] == segment, "fte"].sum() * 1_600
    assert 0.70 <= workload_h / capacity_h <= 0.85
    summary = book.summary()
    assert summary.loc[segment, "utilisation"] == pytest.approx(workload_h / capacity_h)


def test_largest_account_below_four_percent_of_rep_potential(book):
    acc = book.accounts.merge(book.truth, on="account_id")
    for segment, seg in acc.groupby("segment"):
        fte = book.reps.loc[book.reps["segment"] == segment, "fte"].sum()
        assert seg["true_potential"].max() < 0.04 * seg["true_potential"].sum() / fte


# --- history -----------------------------------------------------------------------------------


def test_history_refers_to_known_accounts_and_reps(book):
    hist = book.history
    assert hist["account_id"].isin(book.accounts["account_id"]).all()
    assert hist["rep_id"].isin(book.reps["rep_id"]).all()
    assert set(hist["year"]) == set(YEARS)
    assert not hist.duplicated(["account_id", "year"]).any()
    assert (hist["bookings"] > 0).all()  # ledger rows only; missing (account, year) means zero


def test_history_owners_are_plausible(book):
    hist = book.history.merge(book.accounts, on="account_id")
    reps = book.reps.set_index("rep_id")
    owner = reps.loc[hist["rep_id"]]
    assert (owner["segment"].to_numpy() == hist["segment"].to_numpy()).all()
    assert (owner["start_date"].dt.year.to_numpy() <= hist["year"].to_numpy()).all()
    last = hist[hist["year"] == YEARS[-1]]
    assert (last["rep_id"] == last["current_rep_id"]).all()
    churn = (hist["rep_id"] != hist["current_rep_id"]).groupby(hist["year"]).mean()
    assert 0.02 < churn[YEARS[0]] < 0.6  # some churn in earlier years, not a reshuffle


def test_history_bookings_realistic(book):
    hist = book.history.merge(book.truth, on="account_id")
    # Bookings never exceed the (year-deflated) potential: penetration is capped below 100%.
    assert (hist["bookings"] <= hist["true_potential"]).all()
    whitespace = 1 - book.accounts["account_id"].isin(book.history["account_id"]).mean()
    assert 0.25 <= whitespace <= 0.40
    by_account = hist.groupby("account_id")[["bookings", "true_potential"]].max()
    assert by_account["bookings"].corr(by_account["true_potential"], method="spearman") > 0.6


# --- defaults ----------------------------------------------------------------------------------


def test_default_book_figures():
    default = generate_book()
    assert default.reps["segment"].value_counts().to_dict() == {"commercial": 48, "enterprise": 12}
    assert len(default.accounts) == 20_000
    summary = default.summary()
    assert summary["utilisation"].between(0.70, 0.85).all()
    assert (summary["max_account_share"] < 0.04).all()
    assert (summary["potential_cv"] > 5 * summary["count_cv"]).all()


# --- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"num_reps": 1}, "num_reps=1"),
        ({"enterprise_share": 0.0}, "enterprise_share=0.0"),
        ({"num_accounts": 100, "num_reps": 8}, "at least 50 accounts per rep"),
        ({"years": (2025, 2024)}, "strictly increasing"),
    ],
)
def test_bad_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        generate_book(**{"num_accounts": 400, "num_reps": 4, **kwargs})


def test_bad_arguments_reported_together():
    with pytest.raises(ValueError, match=r"(?s)num_reps=1.*years="):
        generate_book(400, 1, years=())


def test_geography_without_crs_or_population_raises(counties):
    bad = counties.drop(columns="population").set_crs(None, allow_override=True)
    with pytest.raises(ValueError, match=r"(?s)population.*no CRS"):
        generate_book(400, 4, geography=bad)

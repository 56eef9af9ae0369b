"""Seeded synthetic mid-market B2B book of business on real county geography.

:func:`generate_book` places accounts and reps on a county layer (default: the shipped 159
Georgia counties, 1990 census population) and returns a :class:`SyntheticBook` with four
frames that match the pipeline's default input schemas:

``accounts``
    One row per account: location, segment, CRM tier, industry, size, current owner, lock flag.
    There is deliberately no potential column: the demo estimates potential from ``history``.
``reps``
    One row per rep: home base, FTE, segment, start date.
``history``
    Bookings per account and year (currency/yr) with the owning rep of that year. Only rows with
    positive bookings are kept, as in a bookings ledger: a missing (account, year) means zero,
    and an account missing from every year is whitespace.
``truth``
    The hidden true potential per account (currency/yr), for scoring potential estimators.

The generative story, in order:

1. Accounts are drawn into counties in proportion to population (enterprise accounts in
   proportion to population**1.3, i.e. more concentrated in metro counties) and placed uniformly
   inside the county by vectorised rejection sampling.
2. Size is lognormal by segment and shifted up in dense counties (bigger firms sit in cities),
   which is what makes a headcount-based alignment visibly unbalanced in potential.
3. True potential is ``spend_rate[industry] * employees**0.85 * lognormal noise``; the few whales
   are smoothly compressed so no account exceeds ~3.5% of its segment's potential per rep FTE,
   keeping a +-5% potential band per rep achievable (accounts are indivisible).
4. Reps get home bases in counties drawn with the same weights as their segment's accounts,
   by systematic sampling along a Hilbert curve (spread out, metro counties get several reps),
   at a random point inside the county.
5. The current alignment is drawn by headcount: a greedy nearest-rep assignment with a per-rep
   cap of ``ceil(accounts * fte / segment_fte)`` accounts, blind to potential.
6. CRM tiers come from a noisy potential rank within segment. The tier cut-offs are chosen, within
   realistic bounds (A 3-7%, B 10-20%, C 22-35%), so that the current workload is about 78% of
   capacity: sales operations size tier coverage to the team, and it keeps the demo feasible.
   The band is reachable for roughly 200-400 accounts per rep on Georgia; far outside it (e.g.
   1,000 accounts per rep) the nearest end is used and a warning is logged.
7. Bookings = true potential x penetration (rep skill, tier, account noise) x yearly noise, with
   about a third of accounts never buying (whitespace) and some owner churn in earlier years.

Workload follows the pipeline's default formula (hours/yr per account)::

    visits_per_year[tier] * (visit_minutes / 60 + 2 * great_circle_km * circuity / speed_kmh)

with ``visits_per_year = {A: 6, B: 4, C: 2, D: 1}``, 60 min per visit, circuity 1.3, 70 km/h,
and capacity ``fte * 1,600 h`` per rep. Money is in an unnamed currency (think USD).
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from scipy.spatial import cKDTree

__all__ = ["DEFAULT_GEOGRAPHY_PATH", "SyntheticBook", "generate_book"]

logger = logging.getLogger(__name__)

DEFAULT_GEOGRAPHY_PATH = (
    Path(__file__).resolve().parents[1] / "datasets" / "geography" / "ga_counties.gpkg"
)

# --- Workload: the pipeline's default formula; keep in sync with territory_opt.workload. -------
TIERS = ("A", "B", "C", "D")
VISITS_PER_YEAR = np.array([6.0, 4.0, 2.0, 1.0])  # by tier A..D
VISIT_H = 60.0 / 60.0  # hours on site per visit
CIRCUITY = 1.3  # road km per great-circle km
SPEED_KMH = 70.0
HOURS_PER_FTE = 1_600.0
EARTH_RADIUS_KM = 6_371.0

# --- Calibration targets ---------------------------------------------------------------------
TARGET_UTILISATION = 0.78  # middle of the 70-85% band
# Cumulative tier cut-offs (share of the segment in A, A+B, A+B+C) at both ends of the
# realistic range; the calibration interpolates between them.
TIER_CUTS_LEAN = np.array([0.03, 0.13, 0.35])
TIER_CUTS_RICH = np.array([0.07, 0.27, 0.62])
TIER_NOISE_SD = 0.4  # log-scale noise: CRM tiers are assigned from imperfect knowledge
MAX_ACCOUNT_SHARE = 0.035  # of segment potential per rep FTE; the brief's ceiling is ~4%
MIN_ACCOUNTS_PER_REP = 50  # per segment, so that MAX_ACCOUNT_SHARE leaves a heavy tail

SEGMENTS = ("commercial", "enterprise")
ENTERPRISE_REP_SHARE = 0.2  # 60 reps -> 48 commercial / 12 enterprise
SEGMENT_COUNTY_EXPONENT = np.array([1.0, 1.3])  # enterprise accounts cluster in metros

# name, share of accounts, spend multiplier on potential, revenue per employee (currency/yr)
INDUSTRIES = (
    ("manufacturing", 0.17, 0.9, 260_000.0),
    ("healthcare", 0.14, 1.1, 150_000.0),
    ("retail", 0.13, 0.7, 200_000.0),
    ("software", 0.09, 1.6, 320_000.0),
    ("financial_services", 0.10, 1.3, 420_000.0),
    ("logistics", 0.10, 0.8, 230_000.0),
    ("construction", 0.13, 0.6, 270_000.0),
    ("professional_services", 0.14, 1.0, 180_000.0),
)
SIZE_BY_DENSITY = 0.3  # log-size shift per sd of county log density
SIZE_BY_COUNTY_SD = 0.25  # sd of a random log-size shift per county
SPEND_PER_EMPLOYEE = 900.0  # currency/yr per employee**0.85, before industry multiplier

FTE_LEVELS = np.array([1.0, 0.8, 0.5])
FTE_PROBS = np.array([0.90, 0.06, 0.04])
NEW_REP_SHARE = 0.08  # reps who started within the last year
LOCKED_SHARE = 0.01
LOCK_WEIGHT_BY_TIER = np.array([4.0, 2.0, 1.0, 0.6])  # strategic accounts get locked more

ENGAGED_BY_TIER = np.array([0.93, 0.86, 0.74, 0.57])  # P(account has ever bought)
PENETRATION_BY_TIER = np.array([1.15, 1.05, 1.0, 0.9])
ACTIVE_YEAR_PROB = 0.85  # P(an engaged account books in a given year)
YEARLY_NOISE_SD = 0.3
MIN_PENETRATION = 0.01
MAX_PENETRATION = 0.95
ANNUAL_GROWTH = 1.04  # potential grows ~4%/yr, so earlier years book a little less
OWNER_CHURN = 0.10  # P(owner differs from the next year's owner), per year back
NEW_REP_RAMP = 0.75  # skill multiplier in a rep's first (partial) year


@dataclass(frozen=True, eq=False)  # DataFrames have no single truth value to compare
class SyntheticBook:
    """A generated book of business; see the module docstring for the columns."""

    accounts: pd.DataFrame
    reps: pd.DataFrame
    history: pd.DataFrame
    truth: pd.DataFrame

    def write(self, out_dir: str | Path) -> dict[str, Path]:
        """Write ``accounts.csv``, ``reps.csv``, ``history.csv`` and ``truth.csv`` to ``out_dir``.

        Values are already rounded in the frames (lat/lon 6 decimals, money 2 decimals), so the
        files are byte-identical for the same seed and round-trip to equal frames.
        """
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = {}
        for name in ("accounts", "reps", "history", "truth"):
            path = out / f"{name}.csv"
            frame = getattr(self, name)
            frame.to_csv(path, index=False, lineterminator="\n", date_format="%Y-%m-%d")
            paths[name] = path
        logger.info("wrote %s", ", ".join(str(p) for p in paths.values()))
        return paths

    def summary(self) -> pd.DataFrame:
        """Per-segment figures of the current alignment, recomputed from the frames.

        Columns: ``num_accounts``, ``num_reps``, ``fte``, ``workload_h`` and ``capacity_h``
        (hours/yr), ``utilisation`` (workload / capacity), ``count_cv`` and ``potential_cv``
        (coefficient of variation across reps of accounts per FTE and true potential per FTE),
        ``max_account_share`` (largest true potential / segment potential per FTE) and
        ``whitespace_share`` (accounts with no bookings in any year).
        """
        acc = self.accounts.copy()
        truth = self.truth.set_index("account_id")["true_potential"]
        acc["true_potential"] = truth.reindex(acc["account_id"]).to_numpy()
        reps = self.reps.set_index("rep_id")
        owner = reps.loc[acc["current_rep_id"]]
        travel_km = _haversine_km(
            acc["lon"].to_numpy(),
            acc["lat"].to_numpy(),
            owner["lon"].to_numpy(),
            owner["lat"].to_numpy(),
        )
        tier = acc["tier"].map(dict(zip(TIERS, range(4), strict=True))).to_numpy()
        acc["workload_h"] = _workload_h(tier, travel_km)
        # get_indexer, not isin: arrow-backed isin loops over the values in Python.
        booked = pd.Index(acc["account_id"]).get_indexer(
            self.history.loc[self.history["bookings"] > 0, "account_id"]
        )
        whitespace = np.ones(len(acc), dtype=bool)
        whitespace[booked[booked >= 0]] = False
        acc["whitespace"] = whitespace
        rows = {}
        for seg in SEGMENTS:
            a = acc[acc["segment"] == seg]
            r = reps[reps["segment"] == seg]
            per_rep = a.groupby("current_rep_id").agg(
                n=("account_id", "size"), potential=("true_potential", "sum")
            )
            per_rep = per_rep.reindex(r.index, fill_value=0)
            per_fte = per_rep.div(r["fte"], axis=0)
            fte = r["fte"].sum()
            rows[seg] = {
                "num_accounts": len(a),
                "num_reps": len(r),
                "fte": fte,
                "workload_h": a["workload_h"].sum(),
                "capacity_h": fte * HOURS_PER_FTE,
                "utilisation": a["workload_h"].sum() / (fte * HOURS_PER_FTE),
                "count_cv": _cv(per_fte["n"].to_numpy()),
                "potential_cv": _cv(per_fte["potential"].to_numpy()),
                "max_account_share": a["true_potential"].max() / (a["true_potential"].sum() / fte),
                "whitespace_share": a["whitespace"].mean(),
            }
        return pd.DataFrame(rows).T.rename_axis("segment")


def generate_book(
    num_accounts: int = 20_000,
    num_reps: int = 60,
    *,
    seed: int = 2027,
    geography: gpd.GeoDataFrame | None = None,
    years: tuple[int, ...] = (2023, 2024, 2025),
    enterprise_share: float = 0.15,
) -> SyntheticBook:
    """Generate a seeded synthetic book of business; the same arguments give equal frames.

    Parameters
    ----------
    num_accounts, num_reps
        Sizes of the book. Reps split 80/20 commercial/enterprise (at least one of each).
    seed
        Seed for all randomness; each generation stage draws from its own child stream.
    geography
        Polygons with a ``population`` column (residents) and a CRS; reprojected to EPSG:4326.
        Default: the shipped ``datasets/geography/ga_counties.gpkg``.
    years
        Strictly increasing history years; the last one is the current year, and "today" is
        1 January of the year after it.
    enterprise_share
        Share of accounts in the enterprise segment.

    Returns
    -------
    SyntheticBook
        ``accounts``, ``reps``, ``history`` and ``truth`` frames; ``summary()`` gives the
        utilisation and balance figures of the current alignment.

    Raises
    ------
    ValueError
        Listing every problem with the arguments (fewer than 2 reps, fewer than 50 accounts per
        rep in a segment, ``enterprise_share`` outside (0, 1), unordered ``years``) or with the
        geography (no CRS, no ``population`` column, non-positive population, invalid polygons).
    """
    years = tuple(int(y) for y in years)
    _validate_args(num_accounts, num_reps, years, enterprise_share)
    if geography is None:
        geography = gpd.read_file(DEFAULT_GEOGRAPHY_PATH)
    geo = _Geography.from_geodataframe(geography)
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(6)]
    rng_acc, rng_rep, rng_tier, rng_lock, rng_hist, rng_owner = streams

    # --- reps ---
    num_ent_reps = max(1, round(num_reps * ENTERPRISE_REP_SHARE))
    rep_seg = np.zeros(num_reps, dtype=np.int8)
    rep_seg[num_reps - num_ent_reps :] = 1  # R001.. commercial, then enterprise
    rep_county = np.empty(num_reps, dtype=np.int64)
    for s in (0, 1):
        idx = np.flatnonzero(rep_seg == s)
        # Same county weights as the segment's accounts: reps are hired where the accounts are.
        w = geo.population ** SEGMENT_COUNTY_EXPONENT[s]
        rep_county[idx] = _systematic_pps(rng_rep, w, geo.hilbert_order, idx.size)
    rep_lon, rep_lat = geo.sample_points(rng_rep, rep_county)
    rep_fte = rng_rep.choice(FTE_LEVELS, size=num_reps, p=FTE_PROBS)
    today = dt.date(years[-1] + 1, 1, 1)
    start_date, rep_skill = _rep_tenure_and_skill(rng_rep, rep_seg, years[0], today)
    rep_start_year = start_date.astype("datetime64[Y]").astype(np.int64) + 1970

    # --- accounts: where, and how big ---
    num_ent = round(num_accounts * enterprise_share)
    seg = np.zeros(num_accounts, dtype=np.int8)
    seg[rng_acc.permutation(num_accounts)[:num_ent]] = 1
    county = np.empty(num_accounts, dtype=np.int64)
    for s in (0, 1):
        idx = np.flatnonzero(seg == s)
        w = geo.population ** SEGMENT_COUNTY_EXPONENT[s]
        county[idx] = rng_acc.choice(len(w), size=idx.size, p=w / w.sum())
    lon, lat = geo.sample_points(rng_acc, county)
    industry = rng_acc.choice(len(INDUSTRIES), size=num_accounts, p=[i[1] for i in INDUSTRIES])
    # Bigger firms sit in dense counties, plus a county-level shock (local industry mix): this
    # is what makes territories of equal account counts unequal in potential.
    size_effect = SIZE_BY_DENSITY * geo.density_z + rng_acc.normal(
        0.0, SIZE_BY_COUNTY_SD, len(geo.population)
    )
    employees = _employees(rng_acc, seg, size_effect[county])
    revenue = (
        employees
        * np.array([i[3] for i in INDUSTRIES])[industry]
        * rng_acc.lognormal(0.0, 0.4, num_accounts)
    )
    raw_potential = (
        SPEND_PER_EMPLOYEE
        * np.array([i[2] for i in INDUSTRIES])[industry]
        * employees**0.85
        * rng_acc.lognormal(0.0, 0.55, num_accounts)
    )
    seg_fte = np.array([rep_fte[rep_seg == s].sum() for s in (0, 1)])
    potential = np.round(_compress_whales(raw_potential, seg, seg_fte), 2)

    # --- current alignment by headcount, blind to potential ---
    owner_now = np.empty(num_accounts, dtype=np.int64)
    for s in (0, 1):
        a_idx = np.flatnonzero(seg == s)
        r_idx = np.flatnonzero(rep_seg == s)
        caps = np.ceil(a_idx.size * rep_fte[r_idx] / rep_fte[r_idx].sum()).astype(np.int64)
        xy = _plane_km(np.r_[lon[a_idx], rep_lon[r_idx]], np.r_[lat[a_idx], rep_lat[r_idx]])
        local = _align_by_headcount(xy[: a_idx.size], xy[a_idx.size :], caps)
        owner_now[a_idx] = r_idx[local]
    travel_km = _haversine_km(lon, lat, rep_lon[owner_now], rep_lat[owner_now])

    # --- CRM tiers, sized to the team's capacity ---
    score = np.log(potential) + rng_tier.normal(0.0, TIER_NOISE_SD, num_accounts)
    tier = np.empty(num_accounts, dtype=np.int64)
    for s in (0, 1):
        idx = np.flatnonzero(seg == s)
        tier[idx] = _calibrate_tiers(
            score[idx], VISIT_H + _travel_h(travel_km[idx]), seg_fte[s] * HOURS_PER_FTE, SEGMENTS[s]
        )

    lock_p = LOCKED_SHARE * LOCK_WEIGHT_BY_TIER[tier] / LOCK_WEIGHT_BY_TIER[tier].mean()
    locked = rng_lock.random(num_accounts) < lock_p

    # --- history ---
    owners = _owner_history(
        rng_owner, owner_now, seg, rep_seg, rep_start_year, years, lon, lat, rep_lon, rep_lat
    )
    bookings = _bookings(rng_hist, potential, tier, owners, rep_skill, rep_start_year, years)

    book = _assemble(
        lon=lon,
        lat=lat,
        seg=seg,
        tier=tier,
        industry=industry,
        employees=employees,
        revenue=revenue,
        owner_now=owner_now,
        locked=locked,
        potential=potential,
        rep_lon=rep_lon,
        rep_lat=rep_lat,
        rep_fte=rep_fte,
        rep_seg=rep_seg,
        start_date=start_date,
        owners=owners,
        bookings=bookings,
        years=years,
    )
    if logger.isEnabledFor(logging.INFO):
        logger.info("synthetic book, current alignment:\n%s", book.summary().to_string())
    return book


# --- validation & geography ------------------------------------------------------------------


def _validate_args(
    num_accounts: int, num_reps: int, years: tuple[int, ...], enterprise_share: float
) -> None:
    problems = []
    if num_reps < 2:
        problems.append(f"num_reps={num_reps}: need at least 2 (one rep per segment)")
    if not 0.0 < enterprise_share < 1.0:
        problems.append(f"enterprise_share={enterprise_share}: must lie strictly in (0, 1)")
    elif num_reps >= 2:
        num_ent_reps = max(1, round(num_reps * ENTERPRISE_REP_SHARE))
        num_ent = round(num_accounts * enterprise_share)
        # The whale cap (3.5% of potential per rep) is only attainable with many accounts per
        # rep; below ~30 it would flatten every account to the same potential.
        num_com, num_com_reps = num_accounts - num_ent, num_reps - num_ent_reps
        if min(num_ent / num_ent_reps, num_com / num_com_reps) < MIN_ACCOUNTS_PER_REP:
            problems.append(
                f"num_accounts={num_accounts}: each segment needs at least "
                f"{MIN_ACCOUNTS_PER_REP} accounts per rep ({num_com} commercial accounts for "
                f"{num_com_reps} reps, {num_ent} enterprise for {num_ent_reps}); add accounts "
                "or remove reps"
            )
    if not years or any(b <= a for a, b in zip(years, years[1:], strict=False)):
        problems.append(f"years={years}: must be non-empty and strictly increasing")
    if problems:
        raise ValueError("invalid generate_book arguments:\n- " + "\n- ".join(problems))


@dataclass(frozen=True)
class _Geography:
    """County polygons (prepared) with population and a size effect per county."""

    geometry: np.ndarray  # shapely geometries, EPSG:4326
    bounds: np.ndarray  # (n, 4) minx, miny, maxx, maxy in degrees
    population: np.ndarray  # residents, float
    density_z: np.ndarray  # standardised log population density, by county
    hilbert_order: np.ndarray  # county indices along a Hilbert curve through their centres

    @classmethod
    def from_geodataframe(cls, gdf: gpd.GeoDataFrame) -> _Geography:
        problems = [] if "population" in gdf else ["missing column 'population'"]
        if gdf.crs is None:
            problems.append("geography has no CRS; set it with .set_crs()")
        if problems:
            raise ValueError("invalid geography:\n- " + "\n- ".join(problems))
        gdf = gdf.to_crs("EPSG:4326")
        population = gdf["population"].to_numpy(dtype=float)
        geometry = gdf.geometry.to_numpy().copy()
        bad = []
        if not (population > 0).all():
            bad.append("population must be positive in every unit")
        if not shapely.is_valid(geometry).all():
            bad.append("invalid geometries; repair with shapely.make_valid")
        if bad:
            raise ValueError("invalid geography:\n- " + "\n- ".join(bad))
        shapely.prepare(geometry)
        # Area from an equal-area projection (CONUS Albers); units do not matter after z.
        area_km2 = gdf.geometry.to_crs("EPSG:5070").area.to_numpy() / 1e6
        log_density = np.log(population / area_km2)
        z = (log_density - log_density.mean()) / (log_density.std() or 1.0)
        centre = shapely.get_coordinates(shapely.point_on_surface(geometry))
        order = np.argsort(_hilbert_index(centre), kind="stable")
        return cls(geometry, shapely.bounds(geometry), population, z, order)

    def sample_points(
        self, rng: np.random.Generator, unit: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Uniform random points inside ``geometry[unit]``: (lon, lat), degrees, 6 decimals.

        Vectorised rejection sampling: draw in each unit's bounding box, keep what falls inside,
        redraw the rest. Coordinates are rounded *before* the test so that the written 6-decimal
        values are themselves inside the polygon.
        """
        lon = np.empty(unit.size)
        lat = np.empty(unit.size)
        pending = np.arange(unit.size)
        for _ in range(200):  # fill ratio >= 0.26 for Georgia: ~15 rounds suffice
            if pending.size == 0:
                return lon, lat
            b = self.bounds[unit[pending]]
            x = np.round(b[:, 0] + rng.random(pending.size) * (b[:, 2] - b[:, 0]), 6)
            y = np.round(b[:, 1] + rng.random(pending.size) * (b[:, 3] - b[:, 1]), 6)
            inside = shapely.contains_xy(self.geometry[unit[pending]], x, y)
            lon[pending[inside]] = x[inside]
            lat[pending[inside]] = y[inside]
            pending = pending[~inside]
        raise RuntimeError(f"rejection sampling did not converge for {pending.size} points")


def _hilbert_index(xy: np.ndarray, bits: int = 16) -> np.ndarray:
    """Position of each point along a Hilbert curve over the points' bounding box."""
    span = np.ptp(xy, axis=0)
    grid = ((xy - xy.min(axis=0)) / np.where(span > 0, span, 1.0) * (2**bits - 1)).astype(np.int64)
    x, y = grid[:, 0].copy(), grid[:, 1].copy()
    d = np.zeros(len(xy), dtype=np.int64)
    s = 2 ** (bits - 1)
    while s > 0:  # classic xy -> d, vectorised over points
        rx = (x & s) > 0
        ry = (y & s) > 0
        d += s * s * ((3 * rx) ^ ry)
        flip = ~ry & rx
        x = np.where(flip, s - 1 - x, x)
        y = np.where(flip, s - 1 - y, y)
        x, y = np.where(~ry, y, x), np.where(~ry, x, y)
        s //= 2
    return d


def _systematic_pps(
    rng: np.random.Generator, weight: np.ndarray, order: np.ndarray, k: int
) -> np.ndarray:
    """Draw ``k`` units with probability proportional to ``weight``, spread out in space.

    Systematic sampling along ``order`` (a Hilbert curve): one random start, then equal steps
    through the cumulative weight. Every unit is as likely to be hit as with independent draws,
    but reps do not pile up in one region while another has none, which independent draws do.
    A unit heavier than one step (a metro county) gets several reps.
    """
    cum = np.cumsum(weight[order])
    ticks = (rng.random() + np.arange(k)) * (cum[-1] / k)
    return order[np.minimum(np.searchsorted(cum, ticks, side="right"), order.size - 1)]


# --- distances & workload --------------------------------------------------------------------


def _haversine_km(lon1, lat1, lon2, lat2) -> np.ndarray:
    """Great-circle distance in km (spherical Earth, radius 6,371 km)."""
    lon1, lat1, lon2, lat2 = (
        np.radians(np.asarray(v, dtype=float)) for v in (lon1, lat1, lon2, lat2)
    )
    h = (
        np.sin((lat2 - lat1) / 2) ** 2
        + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0)))


def _travel_h(great_circle_km: np.ndarray) -> np.ndarray:
    """Round-trip driving hours per visit: 2 x km x circuity / speed."""
    return 2.0 * great_circle_km * CIRCUITY / SPEED_KMH


def _workload_h(tier: np.ndarray, great_circle_km: np.ndarray) -> np.ndarray:
    """Hours per account per year: visits[tier] x (on-site hours + round-trip travel hours)."""
    return VISITS_PER_YEAR[tier] * (VISIT_H + _travel_h(great_circle_km))


def _plane_km(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """Equirectangular km coordinates, for nearest-neighbour searches within a region.

    The reference latitude is the middle of the points given, so callers pass accounts and reps
    together (over Georgia's 30.4-35.0 deg N the east-west scale error stays below 5%).
    """
    lat0 = np.radians(0.5 * (np.min(lat) + np.max(lat)))
    return np.column_stack([np.radians(lon) * np.cos(lat0), np.radians(lat)]) * EARTH_RADIUS_KM


def _cv(x: np.ndarray) -> float:
    mean = float(np.mean(x))
    return float(np.std(x) / mean) if mean else 0.0


# --- stages ----------------------------------------------------------------------------------


def _rep_tenure_and_skill(
    rng: np.random.Generator, rep_seg: np.ndarray, first_year: int, today: dt.date
) -> tuple[np.ndarray, np.ndarray]:
    """Start dates (datetime64[D]) and a hidden skill multiplier per rep (~1.0).

    Tenure is 1-12 years, except ~8% of reps (at least one from 4 reps up) who started within
    the last year.
    """
    num_reps = rep_seg.size
    tenure_days = rng.integers(365, 12 * 365, num_reps)
    # The first rep of each segment is a veteran, so every history year has an owner available.
    anchors = np.array([np.flatnonzero(rep_seg == s)[0] for s in (0, 1)])
    veteran_days = (today - dt.date(first_year - 1, 1, 1)).days
    tenure_days[anchors] = np.maximum(tenure_days[anchors], veteran_days)
    others = np.setdiff1d(np.arange(num_reps), anchors)
    num_new = min(others.size, max(1, round(NEW_REP_SHARE * num_reps))) if num_reps >= 4 else 0
    new = rng.choice(others, size=num_new, replace=False)
    tenure_days[new] = rng.integers(30, 365, num_new)
    start = np.datetime64(today, "D") - tenure_days.astype("timedelta64[D]")
    skill = np.clip(rng.lognormal(0.0, 0.2, num_reps), 0.6, 1.5)
    return start, skill


def _employees(rng: np.random.Generator, seg: np.ndarray, size_effect: np.ndarray) -> np.ndarray:
    """Employees (int): commercial 10-999, enterprise 1,000-100,000, larger in dense counties."""
    n = seg.size
    z = rng.normal(0.0, 1.0, n)
    commercial = 10 + np.exp(np.log(40.0) + size_effect + 0.9 * z)
    enterprise = 1_000 + np.exp(np.log(1_500.0) + size_effect + 1.1 * z)
    emp = np.where(seg == 1, np.minimum(enterprise, 100_000), np.minimum(commercial, 999))
    return np.round(emp).astype(np.int64)


def _compress_whales(potential: np.ndarray, seg: np.ndarray, seg_fte: np.ndarray) -> np.ndarray:
    """Smoothly cap each account below MAX_ACCOUNT_SHARE of its segment's potential per FTE.

    Whales are indivisible, so an account bigger than the +-5% band of a rep's target would make
    balanced territories impossible. Above half the cap, values are squeezed with a tanh that has
    slope 1 at the knee (no kink in the distribution) and approaches the cap asymptotically.
    Compression lowers the segment total, hence the cap, so iterate to a fixed point.
    """
    out = potential.copy()
    for s in (0, 1):
        idx = np.flatnonzero(seg == s)
        p = potential[idx]
        cap = MAX_ACCOUNT_SHARE * p.sum() / seg_fte[s]
        for _ in range(20):
            knee = 0.5 * cap
            q = np.where(p > knee, knee + (cap - knee) * np.tanh((p - knee) / (cap - knee)), p)
            new_cap = MAX_ACCOUNT_SHARE * q.sum() / seg_fte[s]
            if q.max() < 0.999 * new_cap:  # strictly below, with room for rounding
                break
            cap = new_cap
        out[idx] = q
    return out


def _align_by_headcount(acc_xy: np.ndarray, rep_xy: np.ndarray, caps: np.ndarray) -> np.ndarray:
    """Greedy nearest-rep assignment with a count cap per rep; returns a rep index per account.

    Rounds of proposals: every unassigned account proposes to its nearest rep that still has
    room; each rep keeps its closest proposers up to its remaining cap. A round either assigns
    every proposer or fills at least one rep, so it ends within ``len(caps) + 1`` rounds.
    """
    if caps.sum() < len(acc_xy):
        raise ValueError("caps do not cover all accounts")
    owner = np.full(len(acc_xy), -1, dtype=np.int64)
    room = caps.copy()
    pending = np.arange(len(acc_xy))
    while pending.size:
        open_reps = np.flatnonzero(room > 0)
        dist, j = cKDTree(rep_xy[open_reps]).query(acc_xy[pending])
        rep = open_reps[np.atleast_1d(j)]
        dist = np.atleast_1d(dist)
        order = np.lexsort((pending, dist, rep))  # by rep, then distance; ids break ties
        rep_sorted = rep[order]
        first = np.searchsorted(rep_sorted, rep_sorted, side="left")
        rank = np.arange(order.size) - first
        accept = order[rank < room[rep_sorted]]
        owner[pending[accept]] = rep[accept]
        room -= np.bincount(rep[accept], minlength=room.size)
        keep = np.ones(pending.size, dtype=bool)
        keep[accept] = False
        pending = pending[keep]
    return owner


def _calibrate_tiers(
    score: np.ndarray, hours_per_visit: np.ndarray, capacity_h: float, segment: str
) -> np.ndarray:
    """Tier codes (0=A..3=D) by rank of ``score``, with cut-offs sized to capacity.

    The cut-offs move along the line from TIER_CUTS_LEAN to TIER_CUTS_RICH; workload grows
    monotonically along it, so bisection finds the point where workload / capacity hits
    TARGET_UTILISATION (clamped to the ends, with a warning, if the team is far off).
    """
    n = score.size
    order = np.argsort(-score, kind="stable")
    cum = np.concatenate([[0.0], np.cumsum(hours_per_visit[order])])

    def cuts(t: float) -> np.ndarray:
        return np.round((TIER_CUTS_LEAN + t * (TIER_CUTS_RICH - TIER_CUTS_LEAN)) * n).astype(int)

    def workload(t: float) -> float:
        # visits 6/4/2/1 over rank bands == 2*C[kA] + 2*C[kB] + C[kC] + C[n]
        k_a, k_b, k_c = cuts(t)
        return 2 * cum[k_a] + 2 * cum[k_b] + cum[k_c] + cum[n]

    target = TARGET_UTILISATION * capacity_h
    lo, hi = 0.0, 1.0
    if workload(lo) >= target or workload(hi) <= target:
        t = lo if workload(lo) >= target else hi
        logger.warning(
            "%s: utilisation %.0f%% at the %s realistic tier mix; target %.0f%% not reachable",
            segment,
            100 * workload(t) / capacity_h,
            "leanest" if t == lo else "richest",
            100 * TARGET_UTILISATION,
        )
    else:
        for _ in range(40):
            t = 0.5 * (lo + hi)
            lo, hi = (t, hi) if workload(t) < target else (lo, t)
        t = 0.5 * (lo + hi)
    k_a, k_b, k_c = cuts(t)
    logger.debug(
        "%s tier cut-offs A/B/C/D: %d/%d/%d/%d", segment, k_a, k_b - k_a, k_c - k_b, n - k_c
    )
    tier_by_rank = np.searchsorted([k_a, k_b, k_c], np.arange(n), side="right")
    tier = np.empty(n, dtype=np.int64)
    tier[order] = tier_by_rank
    return tier


def _owner_history(
    rng: np.random.Generator,
    owner_now: np.ndarray,
    seg: np.ndarray,
    rep_seg: np.ndarray,
    rep_start_year: np.ndarray,
    years: tuple[int, ...],
    lon: np.ndarray,
    lat: np.ndarray,
    rep_lon: np.ndarray,
    rep_lat: np.ndarray,
) -> np.ndarray:
    """Owning rep per account and year, shape (accounts, years); last year = current owner.

    Walking back in time, an account changes owner with probability OWNER_CHURN per year, and
    always when the later owner had not started yet. The earlier owner is a random one of the
    few same-segment reps nearest to the account that were active that year (reps hand over
    neighbouring accounts), else any active rep of the segment.
    """
    n, num_years = owner_now.size, len(years)
    owners = np.empty((n, num_years), dtype=np.int64)
    owners[:, -1] = owner_now
    active = rep_start_year[:, None] <= np.asarray(years)[None, :]  # (reps, years)
    for s in (0, 1):
        a_idx = np.flatnonzero(seg == s)
        r_idx = np.flatnonzero(rep_seg == s)
        k = min(5, r_idx.size)
        xy = _plane_km(np.r_[lon[a_idx], rep_lon[r_idx]], np.r_[lat[a_idx], rep_lat[r_idx]])
        _, near = cKDTree(xy[a_idx.size :]).query(xy[: a_idx.size], k=k)
        near = r_idx[np.asarray(near).reshape(a_idx.size, k)]
        for j in range(num_years - 2, -1, -1):
            later = owners[a_idx, j + 1]
            change = (rng.random(a_idx.size) < OWNER_CHURN) | ~active[later, j]
            c = np.flatnonzero(change)
            cand = near[c]
            ok = active[cand, j] & (cand != later[c, None])
            keys = np.where(ok, rng.random(cand.shape), -1.0)
            pick = cand[np.arange(c.size), keys.argmax(axis=1)]
            pool = r_idx[active[r_idx, j]]  # never empty: each segment has a veteran
            fallback = pool[rng.integers(0, pool.size, c.size)]
            new_owner = later.copy()
            new_owner[c] = np.where(keys.max(axis=1) >= 0, pick, fallback)
            owners[a_idx, j] = new_owner
    return owners


def _bookings(
    rng: np.random.Generator,
    potential: np.ndarray,
    tier: np.ndarray,
    owners: np.ndarray,
    rep_skill: np.ndarray,
    rep_start_year: np.ndarray,
    years: tuple[int, ...],
) -> np.ndarray:
    """Bookings per account and year (currency/yr, >= 0, 2 decimals), shape (accounts, years).

    bookings = potential x growth^(year - last year) x clip(penetration x owner skill x noise,
    0.01, 0.95) for engaged accounts in active years; zero otherwise. Every engaged account books in
    at least one year, so whitespace = never engaged.
    """
    n, num_years = owners.shape
    year_arr = np.asarray(years)
    engaged = rng.random(n) < ENGAGED_BY_TIER[tier]
    penetration = rng.beta(2.0, 5.0, n) * PENETRATION_BY_TIER[tier]  # mean ~0.29
    active = rng.random((n, num_years)) < ACTIVE_YEAR_PROB
    none = ~active.any(axis=1)
    active[none, rng.integers(0, num_years, n)[none]] = True
    skill = rep_skill[owners] * np.where(
        rep_start_year[owners] == year_arr[None, :], NEW_REP_RAMP, 1.0
    )
    noise = rng.lognormal(-0.5 * YEARLY_NOISE_SD**2, YEARLY_NOISE_SD, (n, num_years))
    growth = ANNUAL_GROWTH ** (year_arr - year_arr[-1]).astype(float)
    # The floor keeps token bookings of a few cents out: an engaged account buys something real.
    share = np.clip(penetration[:, None] * skill * noise, MIN_PENETRATION, MAX_PENETRATION)
    bookings = potential[:, None] * growth[None, :] * share * (active & engaged[:, None])
    return np.round(bookings, 2)


def _assemble(
    *,
    lon,
    lat,
    seg,
    tier,
    industry,
    employees,
    revenue,
    owner_now,
    locked,
    potential,
    rep_lon,
    rep_lat,
    rep_fte,
    rep_seg,
    start_date,
    owners,
    bookings,
    years,
) -> SyntheticBook:
    """Build the four frames with string ids and rounded values."""
    n, num_reps = lon.size, rep_lon.size
    width = max(7, len(str(n)))
    account_id = np.array([f"A{i:0{width}d}" for i in range(1, n + 1)], dtype=object)
    rep_width = max(3, len(str(num_reps)))
    rep_id = np.array([f"R{i:0{rep_width}d}" for i in range(1, num_reps + 1)], dtype=object)
    segments = np.array(SEGMENTS, dtype=object)
    accounts = pd.DataFrame(
        {
            "account_id": account_id,
            "lat": lat,
            "lon": lon,
            "segment": segments[seg],
            "tier": np.array(TIERS, dtype=object)[tier],
            "industry": np.array([i[0] for i in INDUSTRIES], dtype=object)[industry],
            "employees": employees,
            "annual_revenue": np.round(revenue, 2),
            "current_rep_id": rep_id[owner_now],
            "locked": locked,
        }
    )
    reps = pd.DataFrame(
        {
            "rep_id": rep_id,
            "lat": rep_lat,
            "lon": rep_lon,
            "fte": rep_fte,
            "segment": segments[rep_seg],
            "start_date": start_date.astype("datetime64[s]"),
        }
    )
    acc_idx, year_idx = np.nonzero(bookings > 0)  # row-major: by account, then year
    history = pd.DataFrame(
        {
            "account_id": account_id[acc_idx],
            "year": np.asarray(years, dtype=np.int64)[year_idx],
            "bookings": bookings[acc_idx, year_idx],
            "rep_id": rep_id[owners[acc_idx, year_idx]],
        }
    )
    truth = pd.DataFrame({"account_id": account_id, "true_potential": potential})
    return SyntheticBook(accounts=accounts, reps=reps, history=history, truth=truth)

"""Seeded national-scale books for the engine benchmark: a million accounts in seconds.

:func:`generate_scale_book` returns accounts and reps in the pipeline's input schema
(:data:`territory_opt.io.COLUMNS`), with a ``potential`` column and each rep's
``capacity_h``, so that a benchmark measures the alignment engine and nothing else: one
segment pool, no history, no potential estimation. Everything is vectorised (numpy, shapely,
a k-d tree); 1,000,000 accounts x 1,000 reps take about 10 s and under 2 GB.

The generative story, in order:

1. **Places.** Accounts are drawn into polygons in proportion to population and placed
   uniformly inside them (rejection sampling). Two maps come with the project:

   - ``"georgia"`` (default): the shipped 159 Georgia counties, 1990 census population
     (``datasets/geography/ga_counties.gpkg``). Always available; metro concentration is real.
   - ``"us48"``: the 48 contiguous states, polygons from the ``us_income`` example bundled
     with libpysal (``pip install territory-opt[data]``), resident population of the 2020
     Census (typed in below; with Alaska, Hawaii and DC they sum to the published
     331,449,281). A national book: travel from Maine to California, sparse mountain states.
     Inside a state accounts are uniform, so rural travel is if anything overstated.

2. **Potential** (currency/yr) is lognormal (median ``exp(10)`` ~ 22,000, log-sd
   ``potential_sigma``), and a share ``whale_share`` of accounts are whales, ``whale_factor``
   times larger. No account may exceed ``WHALE_CAP`` (20 %) of the smallest rep target, so
   every +-2 % band stays attainable: a band is 4 % of a target wide, and a territory holds
   hundreds of accounts.
3. **Tiers** (visits per year A 6, B 4, C 2, D 1) come from a noisy potential rank: A the top
   5 %, B the next 15 %, C 30 %, D the rest.
4. **Reps** are placed where the work is: a systematic sample of accounts, weighted by visits,
   along a Hilbert curve through the accounts; each rep's home base is its sampled account's
   location. Metro areas get many reps, and no region is left without one. FTE is 1.0 for
   most reps, 0.8 or 0.5 for a few.
5. **Capacity.** "Capacity 1.15 x mean workload" needs a plan to measure workload on, since
   travel depends on who covers whom. The default base is a potential-balanced nearest-rep
   plan (a weighted Voronoi diagram of the reps, tuned toward each rep's potential target):
   the kind of plan the bands ask for, so ``capacity_ratio`` is the slack the team has over
   a plan that already balances potential. Workload is computed with
   :mod:`territory_opt.workload` and the default
   :class:`~territory_opt.config.WorkloadSettings`; each rep gets the FTE-weighted share of
   ``capacity_ratio`` x that total. ``capacity_base="nearest"`` measures instead on every
   account at its nearest rep, the least total workload any plan can have; at 1.15 that is
   tighter, and small books on it are often infeasible (the full LP says so). Rural reps
   travel more than the mean, so capacity binds for them either way.
6. **Drift** (optional): last year's potentials are the ones drawn in step 2; last year's plan
   is a balanced nearest-rep alignment of them (a weighted Voronoi diagram of the reps, its
   weights tuned toward each rep's potential target; ``last_year_worst_dev_pct`` in the
   figures says how close it got). Then every account's potential drifts by lognormal noise of
   log-sd ``drift``, times a regional factor per polygon (log-sd ``drift / 3``). The accounts
   carry this year's potential and last year's plan as ``current_rep_id``, so the plan is a
   realignment: some reps are now out of band, and a transfer limit decides how far each may
   be repaired.

Without ``drift`` there is no ``current_rep_id`` column (a greenfield alignment).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

from .config import WorkloadSettings
from .geo import haversine_km
from .synthetic import DEFAULT_GEOGRAPHY_PATH, _Geography, _hilbert_index
from .workload import visits_per_year, workload_h

__all__ = ["ScaleBook", "generate_scale_book", "load_geography", "US48_POPULATION_2020"]

logger = logging.getLogger(__name__)

TIER_SHARES = np.array([0.05, 0.15, 0.30, 0.50])  # A, B, C, D by noisy potential rank
TIERS = np.array(["A", "B", "C", "D"], dtype=object)
TIER_NOISE_SD = 0.4  # log-scale noise on the rank: CRM tiers are imperfect
POTENTIAL_LOG_MEDIAN = 10.0  # median potential exp(10) ~ 22,000 currency/yr
WHALE_CAP = 0.20  # no account above this share of the smallest rep target
MIN_POTENTIAL = 100.0
FTE_LEVELS = np.array([1.0, 0.8, 0.5])
FTE_PROBS = np.array([0.92, 0.05, 0.03])
LAST_YEAR_BAND = 0.02  # last year's plan filled each rep up to target x (1 + this)

# Resident population, 2020 Census (April 1, 2020), of the 48 states in libpysal's us48 map.
# With Alaska (733,391), Hawaii (1,455,271) and DC (689,545) they sum to 331,449,281.
US48_POPULATION_2020 = {
    "Alabama": 5_024_279,
    "Arizona": 7_151_502,
    "Arkansas": 3_011_524,
    "California": 39_538_223,
    "Colorado": 5_773_714,
    "Connecticut": 3_605_944,
    "Delaware": 989_948,
    "Florida": 21_538_187,
    "Georgia": 10_711_908,
    "Idaho": 1_839_106,
    "Illinois": 12_812_508,
    "Indiana": 6_785_528,
    "Iowa": 3_190_369,
    "Kansas": 2_937_880,
    "Kentucky": 4_505_836,
    "Louisiana": 4_657_757,
    "Maine": 1_362_359,
    "Maryland": 6_177_224,
    "Massachusetts": 7_029_917,
    "Michigan": 10_077_331,
    "Minnesota": 5_706_494,
    "Mississippi": 2_961_279,
    "Missouri": 6_154_913,
    "Montana": 1_084_225,
    "Nebraska": 1_961_504,
    "Nevada": 3_104_614,
    "New Hampshire": 1_377_529,
    "New Jersey": 9_288_994,
    "New Mexico": 2_117_522,
    "New York": 20_201_249,
    "North Carolina": 10_439_388,
    "North Dakota": 779_094,
    "Ohio": 11_799_448,
    "Oklahoma": 3_959_353,
    "Oregon": 4_237_256,
    "Pennsylvania": 13_002_700,
    "Rhode Island": 1_097_379,
    "South Carolina": 5_118_425,
    "South Dakota": 886_667,
    "Tennessee": 6_910_840,
    "Texas": 29_145_505,
    "Utah": 3_271_616,
    "Vermont": 643_077,
    "Virginia": 8_631_393,
    "Washington": 7_705_281,
    "West Virginia": 1_793_716,
    "Wisconsin": 5_893_718,
    "Wyoming": 576_851,
}


@dataclass(frozen=True, eq=False)
class ScaleBook:
    """Accounts and reps in the pipeline's input schema, plus the generator's figures.

    ``figures`` holds ``least_workload_h`` (total workload with every account at its nearest
    rep), ``base_workload_h`` (total workload of the capacity base), ``capacity_h`` (total),
    ``capacity_ratio`` (capacity over the base), ``geography``, and with
    drift ``current_worst_dev_pct`` (worst potential deviation of last year's plan from this
    year's targets) and ``last_year_worst_dev_pct``.
    """

    accounts: pd.DataFrame
    reps: pd.DataFrame
    figures: dict[str, Any] = field(default_factory=dict)

    def write(self, out_dir: str | Path, *, fmt: str = "parquet") -> dict[str, Path]:
        """Write ``accounts`` and ``reps`` as Parquet (default) or CSV; returns the paths."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = {}
        for name in ("accounts", "reps"):
            frame = getattr(self, name)
            path = out / f"{name}.{fmt}"
            if fmt == "parquet":
                frame.to_parquet(path, index=False)
            elif fmt == "csv":
                frame.to_csv(path, index=False, lineterminator="\n")
            else:
                raise ValueError(f"fmt must be 'parquet' or 'csv', got {fmt!r}")
            paths[name] = path
        return paths


def load_geography(name: str | gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Polygons with a ``population`` column: ``"georgia"``, ``"us48"`` or a GeoDataFrame."""
    if isinstance(name, gpd.GeoDataFrame):
        return name
    if name == "georgia":
        return gpd.read_file(DEFAULT_GEOGRAPHY_PATH)
    if name == "us48":
        try:
            from libpysal.examples import get_path
        except ImportError as exc:
            raise ImportError(
                "geography='us48' needs libpysal: pip install 'territory-opt[data]', "
                "or use geography='georgia'"
            ) from exc
        states = gpd.read_file(get_path("us48.shp"))
        # The shapefile has no .prj; its coordinates are longitude/latitude degrees.
        states = states.set_crs("EPSG:4326") if states.crs is None else states
        states["population"] = states["STATE_NAME"].map(US48_POPULATION_2020)
        missing = states.loc[states["population"].isna(), "STATE_NAME"].tolist()
        if missing:
            raise ValueError(f"us48 map has states without a 2020 population: {missing}")
        return states[["STATE_NAME", "population", "geometry"]]
    raise ValueError(f"geography must be 'georgia', 'us48' or a GeoDataFrame, got {name!r}")


def generate_scale_book(
    num_accounts: int,
    num_reps: int,
    *,
    seed: int = 0,
    capacity_ratio: float = 1.15,
    drift: float | None = None,
    geography: str | gpd.GeoDataFrame = "georgia",
    potential_sigma: float = 1.0,
    whale_share: float = 0.002,
    whale_factor: float = 20.0,
    capacity_base: str = "balanced",
) -> ScaleBook:
    """Generate a seeded one-pool book; the same arguments give equal frames.

    Parameters
    ----------
    num_accounts, num_reps
        Sizes; at least 20 accounts per rep.
    seed
        Seed for all randomness; each stage draws from its own child stream.
    capacity_ratio
        Total capacity over the total workload of ``capacity_base``.
    capacity_base
        ``"balanced"``: a potential-balanced nearest-rep plan (a weighted Voronoi diagram,
        the kind of plan the bands ask for); ``"nearest"``: every account at its nearest
        rep, the least total workload any plan can have.
    drift
        ``None``: no current alignment. Otherwise the log-sd of each account's potential
        drift since last year's balanced plan, which becomes ``current_rep_id``.
    geography
        ``"georgia"`` (shipped counties), ``"us48"`` (states, needs libpysal) or polygons
        with a ``population`` column and a CRS.
    potential_sigma, whale_share, whale_factor
        Log-sd of potential, share of whale accounts and their size multiplier.

    Raises
    ------
    ValueError
        Listing every problem with the arguments.
    """
    problems = []
    if num_reps < 1:
        problems.append(f"num_reps={num_reps}: need at least 1")
    elif num_accounts < 20 * num_reps:
        problems.append(f"num_accounts={num_accounts}: need at least 20 per rep ({20 * num_reps})")
    if capacity_base not in ("balanced", "nearest"):
        problems.append(f"capacity_base={capacity_base!r}: must be 'balanced' or 'nearest'")
    if not capacity_ratio > 0:
        problems.append(f"capacity_ratio={capacity_ratio}: must be > 0")
    if drift is not None and not drift >= 0:
        problems.append(f"drift={drift}: must be >= 0 or None")
    if not 0 <= whale_share < 1:
        problems.append(f"whale_share={whale_share}: must lie in [0, 1)")
    if problems:
        raise ValueError("invalid generate_scale_book arguments:\n- " + "\n- ".join(problems))

    geo = _Geography.from_geodataframe(load_geography(geography))
    rng_place, rng_pot, rng_rep, rng_tier, rng_drift = (
        np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(5)
    )
    n, r = num_accounts, num_reps

    # --- accounts: where, and how much ---
    weight = geo.population / geo.population.sum()
    unit = np.searchsorted(np.cumsum(weight), rng_place.random(n) * weight.sum(), side="right")
    unit = np.minimum(unit, weight.size - 1)
    lon, lat = geo.sample_points(rng_place, unit)
    fte = rng_rep.choice(FTE_LEVELS, size=r, p=FTE_PROBS)
    pot0 = np.exp(rng_pot.normal(POTENTIAL_LOG_MEDIAN, potential_sigma, n))
    whale = rng_pot.random(n) < whale_share
    pot0[whale] *= whale_factor * rng_pot.lognormal(0.0, 0.5, int(whale.sum()))
    pot0 = _cap_whales(pot0, fte)

    # --- reps where the work is ---
    xyz = _unit_sphere(lat, lon)
    order = np.argsort(_hilbert_index(np.column_stack([lon, lat])), kind="stable")
    tier = _tiers(rng_tier, pot0)
    visits = np.array([6.0, 4.0, 2.0, 1.0])[tier]
    cum = np.cumsum(visits[order])
    ticks = (rng_rep.random() + np.arange(r)) * (cum[-1] / r)
    base = order[np.minimum(np.searchsorted(cum, ticks, side="right"), n - 1)]
    rep_lat, rep_lon = lat[base].copy(), lon[base].copy()
    tree = cKDTree(_unit_sphere(rep_lat, rep_lon))

    figures: dict[str, Any] = {
        "geography": geography if isinstance(geography, str) else "custom",
        "num_accounts": n,
        "num_reps": r,
        "seed": seed,
        "whales": int(whale.sum()),
    }
    # --- drift: last year's balanced plan, then this year's potentials ---
    current = None
    pot = pot0
    if drift is not None:
        target0 = pot0.sum() * fte / fte.sum()
        current = _balanced_nearest(xyz, tree, pot0, target0)
        regional = rng_drift.lognormal(0.0, drift / 3, geo.population.size)[unit]
        noise = rng_drift.lognormal(-0.5 * drift**2, drift, n)
        pot = _cap_whales(pot0 * noise * regional, fte)
        tier = _tiers(rng_tier, pot)
        target = pot.sum() * fte / fte.sum()
        before = np.bincount(current, weights=pot0, minlength=r)
        after = np.bincount(current, weights=pot, minlength=r)
        figures["last_year_worst_dev_pct"] = float(100 * np.max(np.abs(before / target0 - 1)))
        figures["current_worst_dev_pct"] = float(100 * np.max(np.abs(after / target - 1)))
    pot = np.round(pot, 2)

    # --- capacity: capacity_ratio x the mean workload of a balanced plan, split by FTE ---
    settings = WorkloadSettings()
    visits_now = visits_per_year(pd.DataFrame({"tier": TIERS[tier]}), settings)
    near = tree.query(xyz, k=1)[1]
    least = float(_workload(lat, lon, rep_lat, rep_lon, near, visits_now, settings).sum())
    if capacity_base == "nearest":
        base_h = least
    else:
        target = pot.sum() * fte / fte.sum()
        # 30 rounds: a few per cent of balance changes the total workload by far less.
        balanced = _balanced_nearest(xyz, tree, pot, target, iterations=30)
        base_h = float(_workload(lat, lon, rep_lat, rep_lon, balanced, visits_now, settings).sum())
    capacity = np.round(capacity_ratio * base_h * fte / fte.sum(), 1)
    figures |= {
        "least_workload_h": least,
        "base_workload_h": base_h,
        "capacity_h": float(capacity.sum()),
        "capacity_ratio": float(capacity.sum() / base_h),
    }

    width = max(7, len(str(n)))
    rep_width = max(4, len(str(r)))
    rep_id = np.array([f"R{i:0{rep_width}d}" for i in range(1, r + 1)], dtype=object)
    accounts = pd.DataFrame(
        {
            "account_id": np.array([f"A{i:0{width}d}" for i in range(1, n + 1)], dtype=object),
            "lat": lat,
            "lon": lon,
            "potential": pot,
            "tier": TIERS[tier],
            "locked": np.zeros(n, dtype=bool),
        }
    )
    if current is not None:
        accounts.insert(5, "current_rep_id", rep_id[current])
    reps = pd.DataFrame(
        {
            "rep_id": rep_id,
            "lat": np.round(rep_lat, 6),
            "lon": np.round(rep_lon, 6),
            "fte": fte,
            "capacity_h": capacity,
        }
    )
    logger.info("scale book: %s", figures)
    return ScaleBook(accounts, reps, figures)


def _workload(lat, lon, rep_lat, rep_lon, owner, visits, settings) -> np.ndarray:
    """Hours per account per year with the given owner (the pipeline's formula)."""
    km = haversine_km(lat, lon, rep_lat[owner], rep_lon[owner])
    return workload_h(visits, km, settings)


def _unit_sphere(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Points on the unit sphere: chord length is monotone in great-circle distance, so a
    k-d tree on these finds the nearest rep by great circle exactly, at any latitude."""
    phi, lam = np.radians(lat), np.radians(lon)
    return np.column_stack([np.cos(phi) * np.cos(lam), np.cos(phi) * np.sin(lam), np.sin(phi)])


def _cap_whales(potential: np.ndarray, fte: np.ndarray) -> np.ndarray:
    """Clip every account to WHALE_CAP of the smallest rep target (a fixed point: clipping
    lowers the total and with it the cap), and lift it to MIN_POTENTIAL."""
    p = np.maximum(potential, MIN_POTENTIAL)
    for _ in range(50):
        cap = WHALE_CAP * p.sum() * fte.min() / fte.sum()
        if p.max() <= cap * (1 + 1e-12):
            break
        p = np.minimum(p, 0.999 * cap)
    return p


def _tiers(rng: np.random.Generator, potential: np.ndarray) -> np.ndarray:
    """Tier code 0..3 (A..D) from a noisy rank of log potential."""
    score = np.log(potential) + rng.normal(0.0, TIER_NOISE_SD, potential.size)
    rank = np.empty(potential.size, dtype=np.int64)
    rank[np.argsort(-score, kind="stable")] = np.arange(potential.size)
    cuts = np.round(np.cumsum(TIER_SHARES)[:-1] * potential.size)
    return np.searchsorted(cuts, rank, side="right")


def _balanced_nearest(
    xyz: np.ndarray,
    tree: cKDTree,
    weight: np.ndarray,
    target: np.ndarray,
    *,
    k: int = 16,
    iterations: int = 100,
) -> np.ndarray:
    """Nearest-rep alignment balanced in ``weight``: a rep index per account.

    A multiplicatively weighted Voronoi diagram over each account's ``k`` nearest reps: an
    account goes to the rep minimising ``log(distance**2) - w[rep]``. Each rep's weight
    moves against its deviation from target with its own step, halved whenever the
    deviation changes sign and grown by 10 % otherwise (Rprop). Territories stay compact;
    the best iterate is returned (about +-2 % on Georgia, +-10 % on the 48 states, where
    sparse regions move slowly).
    """
    r = target.size
    k = min(k, r)
    dist, nbr = tree.query(xyz, k=k)
    cost = np.log(np.asarray(dist, dtype=np.float64).reshape(-1, k) ** 2 + 1e-18)
    cost = cost.astype(np.float32)
    nbr = np.asarray(nbr).reshape(-1, k).astype(np.int32)
    rows = np.arange(nbr.shape[0])
    w = np.zeros(r, dtype=np.float32)
    step = np.full(r, 0.5, dtype=np.float32)
    prev = np.zeros(r)
    best, best_dev = None, np.inf
    for _ in range(iterations):
        owner = nbr[rows, np.argmin(cost - w[nbr], axis=1)]
        rel = np.bincount(owner, weights=weight, minlength=r) / target - 1.0
        dev = float(np.max(np.abs(rel)))
        if dev < best_dev:
            best, best_dev = owner, dev
        if dev <= LAST_YEAR_BAND:
            break
        step = np.where(rel * prev < 0, 0.5 * step, np.minimum(1.1 * step, 4.0))
        w -= (step * np.sign(rel) * (np.abs(rel) > 0.005)).astype(np.float32)
        prev = rel
    return best.astype(np.int64)

"""Sampled territory tests of quota algorithms, with intervals, p-values and power.

A quota test asks "if we switched from the current quota algorithm (the *baseline*) to a
new one, what would change?" on a stratified random sample of territories, the way a pilot
would:

1. Backtest every algorithm on the whole book (:mod:`territory_opt.quota_backtest`):
   quotas for each history year from earlier data, scored on actual bookings.
2. Stratify the plan's territories by region (a given column, a lat/lon quantile grid or
   k-means on rep lat/lon) and size (territory potential quantiles), and draw
   ``sample_frac`` of them, allocated to strata in proportion (largest remainder).
3. Estimate each metric and each new-minus-baseline difference on the sample, with
   percentile intervals from a *paired stratified bootstrap*: territories are resampled
   with replacement within their stratum (Rao-Wu rescaled, ``n_h - 1`` draws weighted
   ``n_h / (n_h - 1)``, because strata hold only a few sampled territories), and every
   algorithm is scored on the same replicate, so the difference is paired. The unit is
   the territory (all its backtest years move together). Strata with a single sampled
   territory are pooled, with a warning.
4. Test each difference with a *paired permutation test*: under "no difference" the two
   algorithms' quotas are exchangeable within a territory, so labels are swapped per
   territory at random; the p-value is two-sided with the usual +1 correction.
5. Power: how many territories would detect a given difference (``min_effect``, default
   the observed one) at ``alpha = 1 - confidence`` with the asked power, by the normal
   approximation with the bootstrap standard error scaled as 1/sqrt(n).

Resampling is split into fixed chunks with per-chunk seeds from
``numpy.random.SeedSequence(seed).spawn``; chunks run serially or on Dask and are combined
in chunk order, so the same seed gives the same numbers on every backend and any number of
workers.
"""

from __future__ import annotations

import json
import logging
import math
import time
import tomllib
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import norm

from territory_opt.atomic import atomic_dir
from territory_opt.config import check_keys
from territory_opt.quota_algorithms import QuotaAlgorithm, QuotaDataError, parse_algorithms
from territory_opt.quota_backtest import (
    METRICS,
    BacktestResult,
    CompPlan,
    QuotaBook,
    attainment_metrics,
    backtest_quotas,
    band_figures,
    plan_total,
)

__all__ = [
    "PlanFrames",
    "QuotaTestResult",
    "QuotaTestSettings",
    "SampleSizeError",
    "SampleSizeWarning",
    "plan_from_current_alignment",
    "run_quota_test",
    "sample_territories",
    "stratify_territories",
    "synthetic_quota_frames",
]

logger = logging.getLogger(__name__)

# A percentile interval end resting on fewer bootstrap draws than this is noise.
_MIN_TAIL_DRAWS = 5


class SampleSizeError(ValueError):
    """The sample (or the number of resamples) cannot support the asked confidence."""


class SampleSizeWarning(UserWarning):
    """The sample is small enough that intervals may under-cover."""


# --------------------------------------------------------------------------------------
# Settings
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class QuotaTestSettings:
    """Options of a quota test; loadable from TOML (``[quota_test]`` table or flat).

    Attributes
    ----------
    baseline:
        Name of the current algorithm; ``None`` = the first one listed.
    n_boot:
        Bootstrap resamples.
    n_perm:
        Permutation-test label swaps.
    confidence:
        Interval confidence; the tests use ``alpha = 1 - confidence``.
    power:
        Target power for the sample-size calculation.
    min_effect:
        Smallest difference (new - baseline, metric units) worth detecting, per metric;
        metrics not listed use the observed difference.
    growth:
        Total quota per backtest year: factor, ``"trend"`` or ``"actual"`` (see
        :func:`~territory_opt.quota_backtest.backtest_quotas`).
    total:
        Plan-year total quota, currency/yr; ``None`` = the plan's ``quota`` column total if
        territories have one, else last year's bookings x growth.
    floor, cap:
        Year-over-year change limits (fractions) applied to every algorithm.
    ramp_months:
        Default ramp for reps without ``ramp_months``.
    region_col:
        Column of reps (or territories) holding a region; ``None`` = derived from lat/lon.
    region_method:
        ``"grid"`` (lat x lon quantile bins, ``region_grid``) or ``"kmeans"``
        (``num_regions`` clusters of rep lat/lon).
    num_size_bins:
        Potential quantile bins.
    chunk_size:
        Resamples per chunk (the unit of parallel work; fixed so results do not depend on
        the backend).
    band_edges:
        Attainment edges of the below/at/above target bands.
    min_territories:
        Below this many sampled territories a :class:`SampleSizeWarning` is issued.
    """

    baseline: str | None = None
    n_boot: int = 1000
    n_perm: int = 1000
    confidence: float = 0.95
    power: float = 0.8
    min_effect: Mapping[str, float] = field(default_factory=dict)
    growth: float | str = "trend"
    total: float | None = None
    floor: float | None = None
    cap: float | None = None
    ramp_months: float = 0.0
    region_col: str | None = None
    region_method: str = "grid"
    region_grid: tuple[int, int] = (2, 2)
    num_regions: int = 4
    num_size_bins: int = 3
    chunk_size: int = 50
    band_edges: tuple[float, float] = (0.9, 1.1)
    min_territories: int = 30

    def __post_init__(self) -> None:
        errors = []
        if self.n_boot < 1 or self.n_perm < 0:
            errors.append(f"n_boot must be >= 1 and n_perm >= 0, got {self.n_boot}, {self.n_perm}")
        if not 0 < self.confidence < 1:
            errors.append(f"confidence must be in (0, 1), got {self.confidence}")
        if not 0 < self.power < 1:
            errors.append(f"power must be in (0, 1), got {self.power}")
        if self.region_method not in ("grid", "kmeans"):
            errors.append(f"region_method must be 'grid' or 'kmeans', got {self.region_method!r}")
        if min(self.region_grid) < 1 or self.num_regions < 1 or self.num_size_bins < 1:
            errors.append("region_grid, num_regions and num_size_bins must be >= 1")
        if self.chunk_size < 1:
            errors.append(f"chunk_size must be >= 1, got {self.chunk_size}")
        unknown = sorted(set(self.min_effect) - set(METRICS))
        if unknown:
            errors.append(f"min_effect has unknown metric(s) {unknown}; known: {list(METRICS)}")
        if not (isinstance(self.growth, int | float) or self.growth in ("trend", "actual")):
            errors.append(f"growth must be a factor, 'trend' or 'actual', got {self.growth!r}")
        if errors:
            raise ValueError("invalid QuotaTestSettings: " + "; ".join(errors))

    @property
    def alpha(self) -> float:
        return 1 - self.confidence

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> QuotaTestSettings:
        if "quota_test" in data and isinstance(data["quota_test"], Mapping):
            data = data["quota_test"]
        data = check_keys(cls, data, "quota_test")
        for key in ("region_grid", "band_edges"):
            if key in data:
                data[key] = tuple(data[key])
        return cls(**data)

    @classmethod
    def from_file(cls, path: str | Path) -> QuotaTestSettings:
        with open(path, "rb") as f:
            return cls.from_dict(tomllib.load(f))


# --------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------


def _read_table(path: Path) -> pd.DataFrame:
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    return pd.read_csv(path)


@dataclass(frozen=True, eq=False)
class PlanFrames:
    """The parts of a plan folder a quota test reads.

    Attributes
    ----------
    assignments:
        ``account_id``, ``rep_id`` (plan owner), ``potential`` (currency/yr).
    territories:
        Optional ``rep_id``, ``potential``, ``quota``, ...
    manifest:
        Parsed ``manifest.json`` (may be empty).
    folder:
        Folder the plan came from, if any; used to find ``reps.csv``.
    """

    assignments: pd.DataFrame
    territories: pd.DataFrame | None = None
    manifest: Mapping[str, Any] = field(default_factory=dict)
    folder: Path | None = None

    @classmethod
    def from_dir(cls, path: str | Path) -> PlanFrames:
        folder = Path(path)
        assignments_path = folder / "assignments.csv"
        if not assignments_path.is_file():
            raise FileNotFoundError(
                f"{assignments_path} not found; pass the folder written by `territory-opt plan`"
            )
        territories_path = folder / "territories.csv"
        manifest_path = folder / "manifest.json"
        return cls(
            assignments=pd.read_csv(assignments_path),
            territories=pd.read_csv(territories_path) if territories_path.is_file() else None,
            manifest=json.loads(manifest_path.read_text()) if manifest_path.is_file() else {},
            folder=folder,
        )

    def reps_path(self) -> Path | None:
        """``reps.csv`` next to the plan, else the reps input named in the manifest."""
        if self.folder is not None and (self.folder / "reps.csv").is_file():
            return self.folder / "reps.csv"
        inputs = self.manifest.get("inputs", {}) if isinstance(self.manifest, Mapping) else {}
        named = inputs.get("reps") if isinstance(inputs, Mapping) else None
        if isinstance(named, Mapping):
            named = named.get("path")
        if isinstance(named, str):
            path = Path(named)
            if not path.is_absolute() and self.folder is not None:
                path = self.folder / path
            if path.is_file():
                return path
        return None


def plan_from_current_alignment(
    history: pd.DataFrame,
    potential: pd.Series | pd.DataFrame | None = None,
    *,
    accounts: pd.DataFrame | None = None,
    owner_col: str = "current_rep_id",
    potential_col: str = "potential",
) -> PlanFrames:
    """A stand-in plan: today's alignment with a potential per account.

    Parameters
    ----------
    history:
        ``account_id``, ``year``, ``rep_id``, ``bookings``.
    potential:
        Potential per account (currency/yr): a Series indexed by ``account_id`` or a frame
        with ``account_id`` and ``potential_col`` (e.g. ``truth.csv`` with
        ``potential_col="true_potential"``). ``None`` uses each account's mean yearly
        bookings (0 in years without a row), a crude proxy that flatters history quotas.
    accounts:
        Optional accounts table with the current owner in ``owner_col`` (as in the demo's
        ``accounts.csv``); covers accounts that never booked. Without it the owner is the
        top booker of the last history year.
    """
    hist = history.assign(account_id=history["account_id"].astype(str))
    if accounts is not None:
        owners = accounts.assign(account_id=accounts["account_id"].astype(str)).set_index(
            "account_id"
        )[owner_col]
    else:
        last = hist[hist["year"] == hist["year"].max()]
        per = last.groupby(["account_id", "rep_id"], as_index=False)["bookings"].sum()
        per = per.sort_values(["account_id", "bookings", "rep_id"], ascending=[True, False, True])
        owners = per.drop_duplicates("account_id").set_index("account_id")["rep_id"]
    if potential is None:
        num_years = hist["year"].nunique()
        pot = hist.groupby("account_id")["bookings"].sum() / num_years
    elif isinstance(potential, pd.DataFrame):
        pot = potential.assign(account_id=potential["account_id"].astype(str)).set_index(
            "account_id"
        )[potential_col]
    else:
        pot = potential.set_axis(potential.index.astype(str))
    account_ids = sorted(set(pot.index) | set(owners.index) | set(hist["account_id"]))
    assignments = pd.DataFrame(
        {
            "account_id": account_ids,
            "rep_id": owners.reindex(account_ids).to_numpy(),
            "potential": pot.reindex(account_ids).fillna(0.0).to_numpy(),
        }
    )
    return PlanFrames(assignments=assignments)


def _load(
    plan: str | Path | PlanFrames | Mapping[str, Any],
    history: str | Path | pd.DataFrame,
    reps: str | Path | pd.DataFrame | None,
) -> tuple[PlanFrames, pd.DataFrame, pd.DataFrame, dict[str, str]]:
    sources: dict[str, str] = {}
    if isinstance(plan, PlanFrames):
        frames = plan
    elif isinstance(plan, Mapping):
        frames = PlanFrames(
            assignments=plan["assignments"],
            territories=plan.get("territories"),
            manifest=plan.get("manifest", {}),
        )
    else:
        frames = PlanFrames.from_dir(plan)
        sources["assignments"] = "assignments.csv"
        sources["territories"] = "territories.csv"
    if isinstance(history, pd.DataFrame):
        history_frame = history
    else:
        history_frame = _read_table(Path(history))
        sources["history"] = Path(history).name
    if reps is None:
        path = frames.reps_path()
        if path is None:
            raise FileNotFoundError(
                "reps not given and no reps.csv next to the plan or in its manifest; pass "
                "reps= (the reps.csv used for the plan: rep_id, lat, lon, fte, start_date)"
            )
        reps = path
    if isinstance(reps, pd.DataFrame):
        reps_frame = reps
    else:
        reps_frame = _read_table(Path(reps))
        sources["reps"] = Path(reps).name
    return frames, history_frame, reps_frame, sources


# --------------------------------------------------------------------------------------
# Strata and sample
# --------------------------------------------------------------------------------------


def _quantile_bins(values: pd.Series, q: int) -> np.ndarray:
    # Ranking first makes equal-count bins even with ties or fewer distinct values.
    q = max(1, min(q, len(values)))
    if q == 1:
        return np.zeros(len(values), dtype=int)
    return pd.qcut(values.rank(method="first"), q, labels=False).to_numpy(dtype=int)


def stratify_territories(
    territories: pd.DataFrame,
    *,
    region_col: str | None = None,
    region_method: str = "grid",
    region_grid: tuple[int, int] = (2, 2),
    num_regions: int = 4,
    num_size_bins: int = 3,
    seed: int | np.random.SeedSequence = 0,
) -> pd.DataFrame:
    """Assign each territory a region, a size bin and their stratum.

    Parameters
    ----------
    territories:
        ``rep_id``, ``potential`` (currency/yr) and either ``region_col`` or ``lat`` and
        ``lon`` (degrees) of the rep.
    region_col:
        Column with a ready-made region.
    region_method:
        ``"grid"``: ``region_grid`` = (lat bins, lon bins) quantile bins; ``"kmeans"``:
        ``num_regions`` k-means clusters of (lat, lon) with a seed from ``seed``.
    num_size_bins:
        Potential quantile bins (``size1`` = smallest).

    Returns
    -------
    DataFrame with ``rep_id``, ``potential``, ``region``, ``size_bin``, ``stratum``.
    """
    terr = territories.reset_index(drop=True)
    if region_col is not None:
        if region_col not in terr.columns:
            raise QuotaDataError(
                [f"territories: region column {region_col!r} not found; has {list(terr.columns)}"],
                "quota test strata",
            )
        region = terr[region_col].astype(str).to_numpy()
    elif {"lat", "lon"} <= set(terr.columns) and terr[["lat", "lon"]].notna().all().all():
        if region_method == "kmeans":
            from sklearn.cluster import KMeans

            ss = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
            k = max(1, min(num_regions, len(terr)))
            labels = KMeans(
                n_clusters=k, n_init=10, random_state=int(ss.generate_state(1)[0] % 2**31)
            ).fit_predict(terr[["lat", "lon"]].to_numpy(float))
            # Number clusters south-to-north so labels do not depend on k-means' order.
            order = pd.Series(terr["lat"].to_numpy()).groupby(labels).mean().rank(method="first")
            region = np.array([f"r{int(order[lab])}" for lab in labels])
        else:
            lat_bin = _quantile_bins(terr["lat"], region_grid[0])
            lon_bin = _quantile_bins(terr["lon"], region_grid[1])
            region = np.array(
                [f"lat{a + 1}-lon{b + 1}" for a, b in zip(lat_bin, lon_bin, strict=True)]
            )
    else:
        msg = (
            "territories have no region column and incomplete rep lat/lon; strata use "
            "potential size only (add lat/lon to reps.csv or pass region_col)"
        )
        warnings.warn(msg, SampleSizeWarning, stacklevel=2)
        region = np.full(len(terr), "all")
    size = _quantile_bins(terr["potential"].astype(float), num_size_bins)
    out = pd.DataFrame(
        {
            "rep_id": terr["rep_id"].astype(str).to_numpy(),
            "potential": terr["potential"].astype(float).to_numpy(),
            "region": region,
            "size_bin": [f"size{s + 1}" for s in size],
        }
    )
    out["stratum"] = out["region"] + "|" + out["size_bin"]
    return out


def sample_territories(
    strata: pd.DataFrame, sample_frac: float, seed: int | np.random.SeedSequence = 0
) -> pd.DataFrame:
    """Stratified random sample without replacement; adds a boolean ``sampled`` column.

    ``round(sample_frac x N)`` territories are drawn, allocated to strata in proportion to
    their size by largest remainder (so small strata are not systematically dropped), each
    stratum drawn uniformly at random.
    """
    if not 0 < sample_frac <= 1:
        raise ValueError(f"sample_frac must be in (0, 1], got {sample_frac}")
    rng = np.random.default_rng(seed)
    strata = strata.sort_values(["stratum", "rep_id"]).reset_index(drop=True)
    sizes = strata.groupby("stratum", sort=True).size()
    n_total = round(sample_frac * len(strata))
    exact = sizes.to_numpy() * n_total / len(strata)
    alloc = np.floor(exact).astype(int)
    order = np.lexsort((np.arange(len(exact)), -(exact - alloc)))
    alloc[order[: n_total - alloc.sum()]] += 1
    sampled = np.zeros(len(strata), dtype=bool)
    for (name, members), n_h in zip(
        strata.groupby("stratum", sort=True).groups.items(), alloc, strict=True
    ):
        members = np.sort(np.asarray(members))
        if n_h > 0:
            sampled[rng.choice(members, size=n_h, replace=False)] = True
        logger.debug("stratum %s: %d of %d sampled", name, n_h, len(members))
    return strata.assign(sampled=sampled)


# --------------------------------------------------------------------------------------
# Resampling kernels (numpy only; shipped to Dask workers)
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class _ResampleData:
    """Sampled rep-years as arrays, rows grouped by territory (unit)."""

    quota: np.ndarray  # (num_algorithms, num_rows), currency
    payout: np.ndarray  # (num_algorithms, num_rows), currency
    bookings: np.ndarray  # (num_rows,), currency
    potential: np.ndarray  # (num_rows,), currency/yr
    unit_len: np.ndarray  # (num_units,) rows per unit
    unit_of_row: np.ndarray  # (num_rows,)
    strata: tuple[np.ndarray, ...]  # unit indices per bootstrap stratum
    baseline: int
    others: tuple[int, ...]


def _score(data: _ResampleData, a: int, weights: np.ndarray | None = None) -> np.ndarray:
    return attainment_metrics(data.quota[a], data.bookings, data.potential, data.payout[a], weights)


def _bootstrap_chunk(data: _ResampleData, seed: np.random.SeedSequence, size: int) -> np.ndarray:
    """``size`` rescaled stratified bootstrap replicates -> (size, algorithms, metrics).

    Rao-Wu rescaling bootstrap with ``m_h = n_h - 1``: each stratum of ``n_h`` sampled
    territories draws ``n_h - 1`` of them with replacement, each draw weighted
    ``n_h / (n_h - 1)``. The naive version (draw ``n_h``) shrinks the variance by
    ``(n_h - 1) / n_h``, a third in strata of 3 territories, and its intervals
    under-cover; this one matches the unbiased stratified variance for means and totals.
    """
    rng = np.random.default_rng(seed)
    num_algos = data.quota.shape[0]
    num_units = len(data.unit_len)
    out = np.empty((size, num_algos, len(METRICS)))
    for b in range(size):
        unit_w = np.zeros(num_units)
        for members in data.strata:
            n_h = len(members)
            picks = members[rng.integers(0, n_h, n_h - 1)]
            unit_w += np.bincount(picks, minlength=num_units) * (n_h / (n_h - 1))
        row_w = unit_w[data.unit_of_row]
        for a in range(num_algos):
            out[b, a] = _score(data, a, row_w)
    return out


def _permutation_chunk(data: _ResampleData, seed: np.random.SeedSequence, size: int) -> np.ndarray:
    """``size`` within-territory label swaps -> (size, num_others, num_metrics) diffs."""
    rng = np.random.default_rng(seed)
    out = np.empty((size, len(data.others), len(METRICS)))
    base = data.baseline
    bk, pot = data.bookings, data.potential
    for b in range(size):
        # One coin per territory: all its years swap together, as in the bootstrap.
        swap = (rng.random(len(data.unit_len)) < 0.5)[data.unit_of_row]
        for j, a in enumerate(data.others):
            qa = np.where(swap, data.quota[base], data.quota[a])
            qb = np.where(swap, data.quota[a], data.quota[base])
            pa = np.where(swap, data.payout[base], data.payout[a])
            pb = np.where(swap, data.payout[a], data.payout[base])
            out[b, j] = attainment_metrics(qa, bk, pot, pa) - attainment_metrics(qb, bk, pot, pb)
    return out


def _chunks(total: int, chunk_size: int, seed: np.random.SeedSequence):
    sizes = [chunk_size] * (total // chunk_size)
    if total % chunk_size:
        sizes.append(total % chunk_size)
    return seed.spawn(len(sizes)), sizes


class _Executor:
    """Runs chunk functions serially or on Dask, always returning results in chunk order.

    ``backend``: ``"serial"``; ``"local"`` (a 2-worker, 1-thread-each process cluster on
    this machine, closed afterwards); a scheduler address such as ``"tcp://host:8786"``;
    or a ``distributed.Client`` (left open).
    """

    def __init__(self, backend: Any = "serial") -> None:
        self.backend = backend
        self._client = None
        self._cluster = None
        self._owns_client = False

    @property
    def name(self) -> str:
        if isinstance(self.backend, str):
            return self.backend
        scheduler = getattr(self.backend, "scheduler", None)
        return f"dask:{scheduler.address}" if scheduler is not None else "dask"

    def __enter__(self) -> _Executor:
        if isinstance(self.backend, str) and self.backend == "serial":
            return self
        from distributed import Client, LocalCluster

        if isinstance(self.backend, Client):
            self._client = self.backend
        elif self.backend == "local":
            # Quiet: the cluster's own INFO chatter drowns the user's progress lines.
            self._cluster = LocalCluster(
                n_workers=2,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                silence_logs=logging.WARNING,
            )
            self._client = Client(self._cluster)
            self._owns_client = True
        elif isinstance(self.backend, str) and (":" in self.backend):
            self._client = Client(self.backend)
            self._owns_client = True
        else:
            raise ValueError(
                f"backend must be 'serial', 'local', a scheduler address (tcp://host:port) "
                f"or a distributed.Client, got {self.backend!r}"
            )
        logger.info("quota test resampling on Dask at %s", self._client.scheduler.address)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._owns_client and self._client is not None:
            self._client.close()
        if self._cluster is not None:
            self._cluster.close()

    def map(
        self,
        fn: Callable[[_ResampleData, np.random.SeedSequence, int], np.ndarray],
        data: _ResampleData,
        seeds: Sequence[np.random.SeedSequence],
        sizes: Sequence[int],
    ) -> list[np.ndarray]:
        if self._client is None:
            return [fn(data, s, n) for s, n in zip(seeds, sizes, strict=True)]
        # Ship the arrays once to every worker instead of once per chunk. hash=False gives
        # each call its own key: with content hashing, releasing the previous call's
        # future could drop data this call still needs.
        [shared] = self._client.scatter([data], broadcast=True, hash=False)
        futures = [
            self._client.submit(fn, shared, s, n, pure=False)
            for s, n in zip(seeds, sizes, strict=True)
        ]
        return self._client.gather(futures)


# --------------------------------------------------------------------------------------
# Result
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class QuotaTestResult:
    """Everything a quota test produces.

    Attributes
    ----------
    metrics:
        ``algorithm``, ``metric``, ``value`` (on the sample), ``ci_low``, ``ci_high``
        (bootstrap percentile interval), ``book_value`` (same metric on all territories,
        for reference).
    effects:
        ``algorithm``, ``baseline``, ``metric``, ``diff`` (new - baseline on the sample),
        ``ci_low``, ``ci_high`` (paired bootstrap), ``p_value`` (paired permutation).
    power:
        ``algorithm``, ``baseline``, ``metric``, ``effect`` (difference to detect),
        ``effect_source`` (given / observed), ``se`` (bootstrap standard error of the
        difference with ``num_sampled`` territories), ``num_sampled``, ``power_at_n``,
        ``num_required`` (territories), ``num_available``, ``reachable``.
    quotas:
        Plan-year quotas: ``rep_id`` and one column per algorithm, currency/yr.
    sample:
        Sampling frame: ``rep_id``, ``potential``, ``region``, ``size_bin``, ``stratum``,
        ``sampled``.
    rep_years:
        Backtest rep-years of the sampled territories (see
        :class:`~territory_opt.quota_backtest.BacktestResult`).
    bands:
        Below/at/above target figures on the sample.
    backtest:
        Full-book backtest.
    verdict:
        Markdown text answering "is the new algorithm fairer than the baseline?".
    warnings:
        Sample-size and data warnings issued during the run.
    settings:
        Run parameters (JSON-serialisable).
    """

    metrics: pd.DataFrame
    effects: pd.DataFrame
    power: pd.DataFrame
    quotas: pd.DataFrame
    sample: pd.DataFrame
    rep_years: pd.DataFrame
    bands: pd.DataFrame
    backtest: BacktestResult
    verdict: str
    warnings: tuple[str, ...] = ()
    settings: Mapping[str, Any] = field(default_factory=dict)

    def write(self, out_dir: str | Path, *, overwrite: bool = True) -> Path:
        """Write all outputs to ``out_dir`` atomically; returns the folder.

        Files are written into a temporary folder next to ``out_dir`` and renamed into
        place, so readers never see a half-written result; an existing ``out_dir`` is
        replaced (or ``FileExistsError`` when ``overwrite`` is false). Writes
        ``metrics.csv``, ``effects.csv``, ``power.csv``, ``quotas.csv``, ``sample.csv``,
        ``bands.csv``, ``verdict.md``, ``quota_test.json``, ``attainment_hist.png`` and
        ``attainment_vs_potential.png``.
        """
        out = Path(out_dir).resolve()
        if out.exists() and not overwrite:
            raise FileExistsError(f"{out} exists; pass overwrite=True or choose another folder")
        with atomic_dir(out) as tmp:
            self.metrics.to_csv(tmp / "metrics.csv", index=False)
            self.effects.to_csv(tmp / "effects.csv", index=False)
            self.power.to_csv(tmp / "power.csv", index=False)
            self.quotas.to_csv(tmp / "quotas.csv", index=False)
            self.sample.to_csv(tmp / "sample.csv", index=False)
            self.bands.to_csv(tmp / "bands.csv", index=False)
            (tmp / "verdict.md").write_text(self.verdict)
            (tmp / "quota_test.json").write_text(
                json.dumps(
                    {"settings": self.settings, "warnings": list(self.warnings)},
                    indent=2,
                    default=str,
                )
            )
            _plot_histogram(self.rep_years, tmp / "attainment_hist.png")
            _plot_vs_potential(self.rep_years, self.metrics, tmp / "attainment_vs_potential.png")
        logger.info("quota test written to %s", out)
        return out


def _plot_histogram(rep_years: pd.DataFrame, path: Path) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.2))
    ax = fig.add_subplot()
    scored = rep_years[np.isfinite(rep_years["attainment"])]
    hi = max(2.0, float(scored["attainment"].quantile(0.99))) if len(scored) else 2.0
    bins = np.linspace(0, hi, 31)
    for name, g in scored.groupby("algorithm", sort=False):
        ax.hist(
            g["attainment"].clip(upper=hi),
            bins=bins,
            histtype="step",
            linewidth=1.6,
            label=str(name),
        )
    ax.axvline(1.0, color="0.3", linestyle="--", linewidth=1)
    ax.set_xlabel("attainment (bookings / quota)")
    ax.set_ylabel("rep-years")
    ax.set_title("Attainment of sampled territories by quota algorithm")
    ax.legend(frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def _plot_vs_potential(rep_years: pd.DataFrame, metrics: pd.DataFrame, path: Path) -> None:
    from matplotlib.figure import Figure
    from matplotlib.ticker import NullFormatter

    algos = list(dict.fromkeys(rep_years["algorithm"]))
    fig = Figure(figsize=(3.6 * max(1, len(algos)), 3.8))
    axes = fig.subplots(1, max(1, len(algos)), sharey=True, squeeze=False)[0]
    corr = metrics[metrics["metric"] == "fairness_corr_potential"].set_index("algorithm")
    for ax, name in zip(axes, algos, strict=False):
        g = rep_years[(rep_years["algorithm"] == name) & np.isfinite(rep_years["attainment"])]
        ax.scatter(g["potential"], g["attainment"], s=12, alpha=0.7)
        ax.axhline(1.0, color="0.3", linestyle="--", linewidth=1)
        if (g["potential"] > 0).all() and len(g):
            ax.set_xscale("log")
            # Minor log ticks get labels too and collide when the span is under a decade.
            ax.xaxis.set_minor_formatter(NullFormatter())
        title = name
        if name in corr.index:
            r = corr.loc[name]
            title += f"\nSpearman {r['value']:.2f} [{r['ci_low']:.2f}, {r['ci_high']:.2f}]"
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("territory potential (currency/yr)")
    axes[0].set_ylabel("attainment")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


# --------------------------------------------------------------------------------------
# Orchestration
# --------------------------------------------------------------------------------------


def _warn(collected: list[str], message: str) -> None:
    collected.append(message)
    warnings.warn(message, SampleSizeWarning, stacklevel=3)


def _check_sample_size(
    num_sampled: int,
    num_frame: int,
    sample_frac: float,
    settings: QuotaTestSettings,
    collected: list[str],
) -> None:
    alpha = settings.alpha
    conf = f"{settings.confidence:.0%}"
    # Exact sign-flip distribution: identity and full swap both reach |observed|, so the
    # smallest two-sided p-value is 2 / 2^n.
    need = max(3, math.ceil(math.log2(2 / alpha)))
    if num_sampled < need:
        frac_needed = need / num_frame
        raise SampleSizeError(
            f"sample of {num_sampled} territories (sample_frac {sample_frac:g} of "
            f"{num_frame}) is too small for {conf} confidence: with {num_sampled} paired "
            f"territories the smallest two-sided permutation p-value is 2/2^{num_sampled} = "
            f"{2 / 2**num_sampled:.3g} > alpha {alpha:.3g}; sample at least {need} "
            f"territories (sample_frac >= {frac_needed:.2f})"
        )
    tail = settings.n_boot * alpha / 2
    if tail < _MIN_TAIL_DRAWS:
        raise SampleSizeError(
            f"{settings.n_boot:,} bootstrap resamples leave {tail:.1f} draws in each tail of "
            f"a {conf} interval (need >= {_MIN_TAIL_DRAWS}); use n_boot >= "
            f"{math.ceil(2 * _MIN_TAIL_DRAWS / alpha):,}"
        )
    if settings.n_perm and 1 / (settings.n_perm + 1) > alpha:
        raise SampleSizeError(
            f"{settings.n_perm:,} permutations cannot give a p-value below "
            f"1/{settings.n_perm + 1} = {1 / (settings.n_perm + 1):.3g} > alpha {alpha:.3g}; "
            f"use n_perm >= {math.ceil(1 / alpha) * 20:,}"
        )
    if num_sampled < settings.min_territories:
        _warn(
            collected,
            f"only {num_sampled} sampled territories (< {settings.min_territories}): bootstrap "
            f"{conf} intervals from this few tend to be too narrow; sample at least "
            f"{settings.min_territories} (sample_frac >= "
            f"{min(1.0, settings.min_territories / num_frame):.2f} of {num_frame})",
        )


def _bootstrap_strata(sample: pd.DataFrame, collected: list[str]) -> list[np.ndarray]:
    """Unit indices per bootstrap stratum; strata with one sampled unit are pooled."""
    groups = {k: np.asarray(v) for k, v in sample.groupby("stratum", sort=True).indices.items()}
    small = sorted(k for k, v in groups.items() if len(v) < 2)
    if not small:
        return list(groups.values())
    pooled = np.sort(np.concatenate([groups.pop(k) for k in small]))
    _warn(
        collected,
        f"{len(small)} strata have a single sampled territory (no spread to resample); "
        f"their {len(pooled)} territories are pooled into one bootstrap stratum. Raise "
        "sample_frac or use fewer region/size bins for a fully stratified bootstrap",
    )
    if len(pooled) == 1 and groups:
        largest = max(groups, key=lambda k: len(groups[k]))
        groups[largest] = np.sort(np.concatenate([groups[largest], pooled]))
    else:
        groups["pooled"] = pooled
    return list(groups.values())


def _resample_data(
    rep_years: pd.DataFrame,
    units: list[str],
    strata: list[np.ndarray],
    algos: list[str],
    baseline: str,
) -> _ResampleData:
    unit_index = {u: i for i, u in enumerate(units)}
    first = rep_years[rep_years["algorithm"] == algos[0]]
    first = first.assign(_unit=first["rep_id"].map(unit_index)).sort_values(["_unit", "year"])
    keys = first[["year", "rep_id"]]
    quota = np.empty((len(algos), len(first)))
    payout = np.empty((len(algos), len(first)))
    for a, name in enumerate(algos):
        g = rep_years[rep_years["algorithm"] == name].set_index(["year", "rep_id"])
        aligned = g.loc[pd.MultiIndex.from_frame(keys)]
        quota[a] = aligned["quota"].to_numpy(float)
        payout[a] = aligned["payout"].to_numpy(float)
    unit_of_row = first["_unit"].to_numpy(int)
    unit_len = np.bincount(unit_of_row, minlength=len(units))
    return _ResampleData(
        quota=quota,
        payout=np.nan_to_num(payout),
        bookings=first["bookings"].to_numpy(float),
        potential=first["potential"].to_numpy(float),
        unit_len=unit_len,
        unit_of_row=unit_of_row,
        strata=tuple(strata),
        baseline=algos.index(baseline),
        others=tuple(i for i, n in enumerate(algos) if n != baseline),
    )


def _percentiles(draws: np.ndarray, confidence: float) -> tuple[np.ndarray, np.ndarray]:
    lo_q = (1 - confidence) / 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN metric -> NaN interval
        return (np.nanquantile(draws, lo_q, axis=0), np.nanquantile(draws, 1 - lo_q, axis=0))


def run_quota_test(
    plan: str | Path | PlanFrames | Mapping[str, Any],
    history: str | Path | pd.DataFrame,
    algorithms: str | Iterable[str | QuotaAlgorithm] = "headcount,potential",
    *,
    reps: str | Path | pd.DataFrame | None = None,
    sample_frac: float = 1.0,
    seed: int = 0,
    backend: Any = "serial",
    comp_plan: CompPlan | Mapping[str, Any] | None = None,
    settings: QuotaTestSettings | None = None,
    **overrides: Any,
) -> QuotaTestResult:
    """Run a sampled territory test of quota algorithms against a baseline.

    Parameters
    ----------
    plan:
        A plan folder (``assignments.csv``, optional ``territories.csv`` and
        ``manifest.json``), a :class:`PlanFrames`, or a dict with ``assignments`` (and
        optionally ``territories``) frames.
    history:
        ``history.csv`` path or frame: ``account_id``, ``year``, ``bookings`` (currency
        >= 0), ``rep_id``.
    algorithms:
        Spec such as ``"headcount,potential,blended:0.5"`` or algorithm objects; the first
        is the baseline unless ``settings.baseline`` says otherwise.
    reps:
        ``reps.csv`` path or frame (``rep_id``, ``lat``, ``lon``, ``fte``, ``start_date``);
        default ``reps.csv`` next to the plan or the reps input named in its manifest.
    sample_frac:
        Share of the plan's territories in the test sample, in (0, 1].
    seed:
        Seed of the sample, bootstrap and permutations; same seed, same numbers on every
        backend.
    backend:
        ``"serial"``, ``"local"`` (2-worker, 1-thread-each Dask process cluster on this
        machine, started and closed here), a Dask scheduler address such as
        ``"tcp://host:8786"`` (its workers need ``territory_opt`` importable), or a
        ``distributed.Client`` (left open).
    comp_plan:
        :class:`~territory_opt.quota_backtest.CompPlan` or its TOML dict.
    settings, overrides:
        :class:`QuotaTestSettings`; keyword overrides replace single fields
        (``n_boot=200``).

    Raises
    ------
    QuotaDataError
        Listing every input problem (file, row, column, fix).
    SampleSizeError
        When the sample or resample counts cannot support ``confidence``.
    """
    known = {f.name for f in fields(QuotaTestSettings)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise TypeError(f"unknown quota test option(s) {unknown}; known: {sorted(known)}")
    settings = replace(settings or QuotaTestSettings(), **overrides)
    if isinstance(comp_plan, Mapping):
        comp_plan = CompPlan.from_dict(comp_plan)
    comp_plan = comp_plan or CompPlan()
    algos = parse_algorithms(algorithms, floor=settings.floor, cap=settings.cap)
    names = [a.name for a in algos]
    if len(algos) < 2:
        raise ValueError(f"a quota test compares >= 2 algorithms, got {names}")
    baseline = settings.baseline or names[0]
    if baseline not in names:
        raise ValueError(f"baseline {baseline!r} is not among the algorithms {names}")
    collected: list[str] = []

    started = time.perf_counter()
    frames, history_frame, reps_frame, sources = _load(plan, history, reps)
    book = QuotaBook.from_frames(
        frames.assignments,
        history_frame,
        reps_frame,
        territories=frames.territories,
        sources=sources,
    )
    backtest = backtest_quotas(
        book,
        algos,
        comp_plan=comp_plan,
        growth=settings.growth,
        ramp_months=settings.ramp_months,
        band_edges=settings.band_edges,
    )

    # Plan-year quotas on the plan's territories.
    plan_inputs = book.plan_inputs(ramp_months=settings.ramp_months)
    total = settings.total
    terr = frames.territories
    if (
        total is None
        and terr is not None
        and "quota" in terr.columns
        and terr["quota"].notna().all()
    ):
        total = float(pd.to_numeric(terr["quota"]).sum())
    if total is None:
        growth = "trend" if settings.growth == "actual" else settings.growth
        total = plan_total(plan_inputs, growth)
    quotas = pd.DataFrame({"rep_id": plan_inputs.rep_ids})
    for algo in algos:
        quotas[algo.name] = algo(plan_inputs, total).to_numpy()

    # Sampling frame: plan territories with backtest data.
    observed = set(backtest.rep_years["rep_id"])
    frame = plan_inputs.reps[["potential"]].reset_index()
    for col in ("lat", "lon", settings.region_col):
        if col and col in book.reps.columns:
            frame[col] = book.reps.loc[frame["rep_id"], col].to_numpy()
    if settings.region_col and settings.region_col not in frame.columns and terr is not None:
        if settings.region_col in terr.columns:
            region = terr.assign(rep_id=terr["rep_id"].astype(str)).set_index("rep_id")
            frame[settings.region_col] = (
                region[settings.region_col].reindex(frame["rep_id"]).to_numpy()
            )
    missing = sorted(set(frame["rep_id"]) - observed)
    if missing:
        logger.info(
            "%d plan territories have no backtest rep-years (new reps) and cannot be sampled: %s",
            len(missing),
            missing[:10],
        )
    frame = frame[frame["rep_id"].isin(observed)].reset_index(drop=True)
    root = np.random.SeedSequence(seed)
    ss_strata, ss_sample, ss_boot, ss_perm = root.spawn(4)
    strata = stratify_territories(
        frame,
        region_col=settings.region_col,
        region_method=settings.region_method,
        region_grid=settings.region_grid,
        num_regions=settings.num_regions,
        num_size_bins=settings.num_size_bins,
        seed=ss_strata,
    )
    sample = sample_territories(strata, sample_frac, ss_sample)
    chosen = sample[sample["sampled"]].reset_index(drop=True)
    _check_sample_size(len(chosen), len(sample), sample_frac, settings, collected)
    boot_strata = _bootstrap_strata(chosen, collected)

    units = chosen["rep_id"].tolist()
    rep_years = backtest.rep_years[backtest.rep_years["rep_id"].isin(set(units))]
    data = _resample_data(rep_years, units, boot_strata, names, baseline)
    observed_values = np.stack([_score(data, a) for a in range(len(names))])

    boot_seeds, boot_sizes = _chunks(settings.n_boot, settings.chunk_size, ss_boot)
    perm_seeds, perm_sizes = _chunks(settings.n_perm, settings.chunk_size, ss_perm)
    executor = _Executor(backend)
    logger.info(
        "quota test: %d territories, %d resamples, %d permutations on %s",
        len(units),
        settings.n_boot,
        settings.n_perm,
        executor.name,
    )
    prepared = time.perf_counter()
    with executor:
        connected = time.perf_counter()
        boot = np.concatenate(executor.map(_bootstrap_chunk, data, boot_seeds, boot_sizes))
        perm = (
            np.concatenate(executor.map(_permutation_chunk, data, perm_seeds, perm_sizes))
            if perm_sizes
            else np.empty((0, len(data.others), len(METRICS)))
        )
        resampled = time.perf_counter()

    metrics = _metrics_table(names, observed_values, boot, backtest, settings)
    effects, diffs = _effects_table(names, data, observed_values, boot, perm, settings)
    power = _power_table(effects, diffs, names, data, len(sample), settings)
    nan_share = np.isnan(boot).mean()
    if nan_share > 0.05:
        _warn(
            collected,
            f"{nan_share:.0%} of bootstrap metric values are undefined (e.g. "
            "constant attainment); their intervals use the remaining draws",
        )
    info = {
        "num_sampled": len(units),
        "num_frame": len(sample),
        "num_strata": len(boot_strata),
        "sample_frac": sample_frac,
        "years": sorted(rep_years["year"].unique().tolist()),
        "num_rep_years": int(len(rep_years) / len(names)),
    }
    verdict = _verdict(metrics, effects, power, baseline, names, info, settings, collected)
    run_settings = {
        **{k: v for k, v in asdict(settings).items()},
        "baseline": baseline,
        "algorithms": names,
        "sample_frac": sample_frac,
        "seed": seed,
        "backend": executor.name,
        "plan_year": plan_inputs.plan_year,
        "plan_total": total,
        "comp_plan": asdict(comp_plan),
        # Wall-clock seconds: loading + backtest, cluster start/connect, resampling.
        "timings_s": {
            "prepare": prepared - started,
            "connect": connected - prepared,
            "resample": resampled - connected,
        },
    }
    return QuotaTestResult(
        metrics=metrics,
        effects=effects,
        power=power,
        quotas=quotas,
        sample=sample,
        rep_years=rep_years.reset_index(drop=True),
        bands=band_figures(rep_years),
        backtest=backtest,
        verdict=verdict,
        warnings=tuple(collected),
        settings=run_settings,
    )


def _metrics_table(
    names: list[str],
    observed: np.ndarray,
    boot: np.ndarray,
    backtest: BacktestResult,
    settings: QuotaTestSettings,
) -> pd.DataFrame:
    lo, hi = _percentiles(boot, settings.confidence)
    book = backtest.metrics.set_index(["algorithm", "metric"])["value"]
    rows = []
    for a, name in enumerate(names):
        for m, metric in enumerate(METRICS):
            rows.append(
                (name, metric, observed[a, m], lo[a, m], hi[a, m], book.get((name, metric), np.nan))
            )
    return pd.DataFrame(
        rows, columns=["algorithm", "metric", "value", "ci_low", "ci_high", "book_value"]
    )


def _effects_table(
    names: list[str],
    data: _ResampleData,
    observed: np.ndarray,
    boot: np.ndarray,
    perm: np.ndarray,
    settings: QuotaTestSettings,
) -> tuple[pd.DataFrame, np.ndarray]:
    base = data.baseline
    diffs = boot[:, list(data.others), :] - boot[:, [base], :]  # paired: same resample
    lo, hi = _percentiles(diffs, settings.confidence)
    rows = []
    for j, a in enumerate(data.others):
        for m, metric in enumerate(METRICS):
            d = observed[a, m] - observed[base, m]
            p = np.nan
            if len(perm) and np.isfinite(d):
                null = perm[:, j, m]
                null = null[np.isfinite(null)]
                # Tolerance so swaps that reproduce |d| exactly (e.g. the full swap) count.
                tol = 1e-12 * max(1.0, abs(d))
                p = (1 + np.sum(np.abs(null) >= abs(d) - tol)) / (1 + len(null))
            rows.append((names[a], names[base], metric, d, lo[j, m], hi[j, m], p))
    effects = pd.DataFrame(
        rows, columns=["algorithm", "baseline", "metric", "diff", "ci_low", "ci_high", "p_value"]
    )
    return effects, diffs


def _power_table(
    effects: pd.DataFrame,
    diffs: np.ndarray,
    names: list[str],
    data: _ResampleData,
    num_available: int,
    settings: QuotaTestSettings,
) -> pd.DataFrame:
    n = len(data.unit_len)
    z_a = norm.ppf(1 - settings.alpha / 2)
    z_b = norm.ppf(settings.power)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        se = np.nanstd(diffs, axis=0, ddof=1)
    rows = []
    for j, a in enumerate(data.others):
        for m, metric in enumerate(METRICS):
            given = settings.min_effect.get(metric)
            observed = effects.loc[
                (effects["algorithm"] == names[a]) & (effects["metric"] == metric), "diff"
            ].iloc[0]
            effect = abs(given) if given is not None else abs(observed)
            s = se[j, m]
            if not (np.isfinite(s) and np.isfinite(effect)) or effect == 0 or s == 0:
                power_at_n = np.nan if s != 0 else 1.0
                required = np.nan
            else:
                power_at_n = float(norm.cdf(effect / s - z_a))
                # se shrinks as 1/sqrt(n): solve effect / (s sqrt(n/n')) = z_a + z_b for n'.
                required = math.ceil(n * ((z_a + z_b) * s / effect) ** 2)
                # Below this many territories the permutation test cannot reach alpha.
                required = max(required, math.ceil(math.log2(2 / settings.alpha)))
            rows.append(
                (
                    names[a],
                    names[data.baseline],
                    metric,
                    effect,
                    "given" if given is not None else "observed",
                    s,
                    n,
                    power_at_n,
                    required,
                    num_available,
                    bool(np.isfinite(required) and required <= num_available),
                )
            )
    return pd.DataFrame(
        rows,
        columns=[
            "algorithm",
            "baseline",
            "metric",
            "effect",
            "effect_source",
            "se",
            "num_sampled",
            "power_at_n",
            "num_required",
            "num_available",
            "reachable",
        ],
    )


# --------------------------------------------------------------------------------------
# Verdict
# --------------------------------------------------------------------------------------


def _ci(lo: float, hi: float, digits: int = 2) -> str:
    return f"[{lo:.{digits}f}, {hi:.{digits}f}]"


def _p(p: float, n_perm: int) -> str:
    if not np.isfinite(p):
        return "p n/a"
    floor = 1 / (n_perm + 1)
    # With no swap as extreme as observed, p is only known to be at most 1/(n+1).
    return f"p <= {floor:.4f}" if p <= floor * (1 + 1e-9) else f"p = {p:.3f}"


def _verdict(
    metrics: pd.DataFrame,
    effects: pd.DataFrame,
    power: pd.DataFrame,
    baseline: str,
    names: list[str],
    info: Mapping[str, Any],
    settings: QuotaTestSettings,
    collected: list[str],
) -> str:
    conf = f"{settings.confidence:.0%}"
    m = metrics.set_index(["algorithm", "metric"])
    e = effects.set_index(["algorithm", "metric"])
    pw = power.set_index(["algorithm", "metric"])
    years = info["years"]
    span = f"{years[0]}-{years[-1]}" if len(years) > 1 else str(years[0])
    lines = [
        "# Quota test verdict",
        "",
        f"Sample: {info['num_sampled']} of {info['num_frame']} territories "
        f"(sample_frac {info['sample_frac']:g}) in {info['num_strata']} bootstrap strata "
        f"(region x potential size); backtest years {span}, {info['num_rep_years']} "
        f"rep-years per algorithm. Intervals: {conf} paired stratified (Rao-Wu) bootstrap "
        f"({settings.n_boot:,} resamples); p-values: paired permutation test swapping the "
        f"algorithms within each territory ({settings.n_perm:,} swaps). Fairness = Spearman "
        "correlation of attainment with territory potential (0 = fair).",
        "",
    ]
    # Put the question the issue asks first: potential-based against headcount.
    others = [n for n in names if n != baseline]
    others.sort(key=lambda n: (not n.startswith("potential"), names.index(n)))
    for new in others:
        d = e.loc[(new, "fairness_abs_corr_potential")]
        g = e.loc[(new, "attainment_gini")]
        if d["ci_high"] < 0:
            answer = f"**Yes: {new} is fairer than {baseline}.**"
        elif d["ci_low"] > 0:
            answer = f"**No: {new} is less fair than {baseline}.**"
        else:
            answer = f"**Not shown: {new} and {baseline} are not distinguishable on fairness.**"
        c_new = m.loc[(new, "fairness_corr_potential")]
        c_base = m.loc[(baseline, "fairness_corr_potential")]
        g_new = m.loc[(new, "attainment_gini")]
        g_base = m.loc[(baseline, "attainment_gini")]
        p_corr, p_gini = _p(d["p_value"], settings.n_perm), _p(g["p_value"], settings.n_perm)
        lines += [
            f"## Is {new} fairer than {baseline}?",
            "",
            answer,
            f"Correlation of attainment with potential: {new} {c_new['value']:.2f} "
            f"{_ci(c_new['ci_low'], c_new['ci_high'])}, {baseline} {c_base['value']:.2f} "
            f"{_ci(c_base['ci_low'], c_base['ci_high'])}; change in |correlation| "
            f"{d['diff']:+.2f} {_ci(d['ci_low'], d['ci_high'])} ({p_corr}).",
            f"Attainment Gini: {new} {g_new['value']:.3f}, {baseline} {g_base['value']:.3f}; "
            f"change {g['diff']:+.3f} {_ci(g['ci_low'], g['ci_high'], 3)} ({p_gini}).",
        ]
        for metric, label in (
            ("share_ge_100", "share of rep-years at or above 100%"),
            ("cost_of_sales", "cost of sales"),
            ("forecast_bias", "forecast bias"),
        ):
            r = e.loc[(new, metric)]
            if np.isfinite(r["diff"]):
                # These metrics are fractions; their differences read as percentage points.
                lines.append(
                    f"Change in {label}: {100 * r['diff']:+.2f} pp "
                    f"[{100 * r['ci_low']:+.2f}, {100 * r['ci_high']:+.2f}] "
                    f"({_p(r['p_value'], settings.n_perm)})."
                )
        pr = pw.loc[(new, "fairness_abs_corr_potential")]
        if np.isfinite(pr["num_required"]):
            lines.append(
                f"Power: detecting a change of {pr['effect']:.2f} in |correlation| at alpha "
                f"{settings.alpha:.2g} with {settings.power:.0%} power needs about "
                f"{int(pr['num_required'])} territories (sampled {int(pr['num_sampled'])}, "
                f"available {int(pr['num_available'])}"
                + ("" if pr["reachable"] else "; not reachable with this book")
                + ")."
            )
        lines.append("")
    if collected:
        lines += ["## Warnings", ""] + [f"- {w}" for w in collected] + [""]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------
# Synthetic data for tests, notebooks and benchmarks
# --------------------------------------------------------------------------------------


def synthetic_quota_frames(
    num_reps: int = 40,
    num_accounts: int = 1200,
    years: Sequence[int] = (2023, 2024, 2025),
    *,
    seed: int = 0,
    capture: float = 0.3,
    growth: float = 1.04,
    noise: float = 0.25,
) -> dict[str, pd.DataFrame]:
    """Small synthetic book with known structure (not the demo data).

    Territories differ a lot in size (accounts per rep vary ~8x) and yearly account
    bookings are ``capture`` x potential x ``growth``^t x lognormal(0, ``noise``) noise, so
    bookings are proportional to potential and potential-based quotas are fair by
    construction. Reps sit in a Georgia-like lat/lon box; the last 2 reps start during the
    last year (ramp proration) and take over accounts that the first 2 reps owned before.

    Returns ``{"assignments", "history", "reps"}`` frames in the plan/input formats.
    """
    rng = np.random.default_rng(seed)
    rep_ids = [f"R{i:03d}" for i in range(num_reps)]
    start = np.full(num_reps, "2015-01-01", dtype=object)
    start[-2:] = [f"{years[-1]}-04-01", f"{years[-1]}-07-01"]
    reps = pd.DataFrame(
        {
            "rep_id": rep_ids,
            "lat": rng.uniform(30.4, 35.0, num_reps),
            "lon": rng.uniform(-85.6, -80.8, num_reps),
            "fte": 1.0,
            "segment": "field",
            "start_date": start,
        }
    )
    size = rng.uniform(1, 8, num_reps)
    owner = rng.choice(num_reps, num_accounts, p=size / size.sum())
    owner[:num_reps] = np.arange(num_reps)  # every rep owns at least one account
    # Before the new reps start, their accounts belong to the first two reps.
    owner_before = np.where(owner >= num_reps - 2, owner - (num_reps - 2), owner)
    account_ids = [f"A{i:05d}" for i in range(num_accounts)]
    potential = np.round(rng.lognormal(11, 0.8, num_accounts), 2)
    assignments = pd.DataFrame(
        {
            "account_id": account_ids,
            "rep_id": np.asarray(rep_ids)[owner],
            "potential": potential,
        }
    )
    rows = []
    for t, year in enumerate(years):
        bookings = capture * potential * growth**t * rng.lognormal(0, noise, num_accounts)
        rows.append(
            pd.DataFrame(
                {
                    "account_id": account_ids,
                    "year": year,
                    "bookings": np.round(bookings, 2),
                    "rep_id": np.asarray(rep_ids)[owner if year == years[-1] else owner_before],
                }
            )
        )
    return {"assignments": assignments, "history": pd.concat(rows, ignore_index=True), "reps": reps}

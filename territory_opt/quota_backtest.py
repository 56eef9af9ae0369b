"""Backtest quota algorithms on bookings history, and the metrics that judge them.

For every history year ``t`` from the second on, each algorithm sets quotas with only what
was known before ``t``: the plan's account potential (an approximation: today's estimate
stands in for the potential of earlier years) and bookings of years ``< t``. The quotas
are compared with actual bookings in ``t`` per rep, giving one *rep-year* row per
algorithm. Territories are the accounts each rep owned in ``t`` (see
:meth:`QuotaBook.owners`: an account booked by two reps in one year belongs to the one who
booked more; accounts without bookings keep their last owner, or the plan owner), bookings
are credited to the rep on each history row.

Metrics (one value per algorithm, pooled over all backtest rep-years; see
:func:`attainment_metrics`):

``attainment_mean``, ``attainment_std``
    Mean and sample standard deviation (ddof=1) of attainment = bookings / quota.
``share_ge_90``, ``share_ge_100``
    Share of rep-years at >= 90% and >= 100% attainment.
``fairness_corr_potential``
    **Spearman** rank correlation of attainment with territory potential. Spearman rather
    than Pearson because potential is heavily right-skewed and a few large territories
    would otherwise dominate; a monotone bias (bigger territories over- or under-attain)
    is what unfairness means here. 0 is fair; positive means quotas are too easy in
    large territories (typical of headcount quotas).
``fairness_abs_corr_potential``
    Its absolute value, so "fairer" is always "smaller".
``attainment_gini``
    Gini coefficient of attainment (0 = everybody attains the same).
``payout_total``
    Sum of pay (base + variable, currency) over the rep-years, from :class:`CompPlan`.
``cost_of_sales``
    ``payout_total`` / bookings.
``forecast_bias``
    (sum of quotas - sum of bookings) / sum of bookings; positive = quotas too high.
"""

from __future__ import annotations

import logging
import math
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from territory_opt.config import check_keys
from territory_opt.quota_algorithms import (
    QuotaAlgorithm,
    QuotaDataError,
    QuotaInputs,
    parse_algorithms,
)

__all__ = [
    "BANDS",
    "METRICS",
    "BacktestResult",
    "CompPlan",
    "QuotaBook",
    "attainment_metrics",
    "backtest_quotas",
    "gini",
    "plan_total",
    "spearman",
    "weighted_ranks",
]

logger = logging.getLogger(__name__)

METRICS: tuple[str, ...] = (
    "attainment_mean",
    "attainment_std",
    "share_ge_90",
    "share_ge_100",
    "fairness_corr_potential",
    "fairness_abs_corr_potential",
    "attainment_gini",
    "payout_total",
    "cost_of_sales",
    "forecast_bias",
)
BANDS: tuple[str, ...] = ("below", "at", "above")

Growth = float | Literal["trend", "actual"]

# How many offending rows to name per problem before summarising the rest as a count.
_MAX_ROWS_LISTED = 5

# --------------------------------------------------------------------------------------
# Compensation plan
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CompPlan:
    """Pay per rep as a function of attainment.

    Pay = OTE x FTE x (``base_share`` + (1 - ``base_share``) x m(attainment)), where the
    variable multiple m (1.0 = target incentive) is piecewise linear and continuous:

    - below ``threshold``: decelerated, m = ``decelerator`` x attainment;
    - from ``threshold`` to 100%: straight line up to m(1) = 1;
    - above 100%: accelerated, m = 1 + ``accelerator`` x (attainment - 1);
    - never above ``payout_cap`` (a multiple of the target incentive).

    Attributes
    ----------
    ote:
        On-target earnings per full-time rep, currency/yr (> 0).
    base_share:
        Fixed share of OTE, in [0, 1]; the rest is the target incentive.
    threshold:
        Attainment (fraction) below which the decelerator applies, in (0, 1).
    decelerator:
        Multiple of target incentive per unit attainment below the threshold, in [0, 1].
    accelerator:
        Multiple of target incentive per unit attainment above 100%, >= 0.
    payout_cap:
        Highest variable multiple, >= 1.
    """

    ote: float = 150_000.0
    base_share: float = 0.6
    threshold: float = 0.5
    decelerator: float = 0.5
    accelerator: float = 2.0
    payout_cap: float = 2.0

    def __post_init__(self) -> None:
        errors = []
        if not (math.isfinite(self.ote) and self.ote > 0):
            errors.append(f"ote must be > 0 (currency/yr), got {self.ote}")
        if not 0 <= self.base_share <= 1:
            errors.append(f"base_share must be in [0, 1], got {self.base_share}")
        if not 0 < self.threshold < 1:
            errors.append(f"threshold must be in (0, 1), got {self.threshold}")
        if not 0 <= self.decelerator <= 1:
            errors.append(f"decelerator must be in [0, 1], got {self.decelerator}")
        if not self.accelerator >= 0:
            errors.append(f"accelerator must be >= 0, got {self.accelerator}")
        if not self.payout_cap >= 1:
            errors.append(f"payout_cap must be >= 1 (x target incentive), got {self.payout_cap}")
        if errors:
            raise ValueError("invalid CompPlan: " + "; ".join(errors))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CompPlan:
        """From a TOML-style dict, flat or under a ``comp_plan`` table."""
        if "comp_plan" in data and isinstance(data["comp_plan"], Mapping):
            data = data["comp_plan"]
        data = check_keys(cls, data, "comp_plan")
        return cls(**{k: float(v) for k, v in data.items()})

    @classmethod
    def from_file(cls, path: str | Path) -> CompPlan:
        with open(path, "rb") as f:
            return cls.from_dict(tomllib.load(f))

    def variable_multiple(self, attainment: np.ndarray) -> np.ndarray:
        """Variable pay as a multiple of target incentive; NaN stays NaN."""
        a = np.asarray(attainment, dtype=float)
        t, d = self.threshold, self.decelerator
        mid_slope = (1 - d * t) / (1 - t)
        m = np.where(
            a < t,
            d * a,
            np.where(a <= 1, d * t + (a - t) * mid_slope, 1 + self.accelerator * (a - 1)),
        )
        return np.minimum(np.maximum(m, 0.0), self.payout_cap)

    def payout(self, attainment: np.ndarray, fte: np.ndarray | float = 1.0) -> np.ndarray:
        """Total pay (base + variable) per rep, currency/yr."""
        m = self.variable_multiple(attainment)
        return (
            self.ote * np.asarray(fte, dtype=float) * (self.base_share + (1 - self.base_share) * m)
        )


# --------------------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------------------


def _weights(w: np.ndarray | None, n: int) -> np.ndarray:
    return np.ones(n) if w is None else np.asarray(w, dtype=float)


def weighted_ranks(x: np.ndarray, w: np.ndarray | None = None) -> np.ndarray:
    """Mid-ranks of ``x`` counting each value ``w`` times (ties share their mean rank).

    With unit weights this is ``scipy.stats.rankdata(x)``; with integer weights it equals
    ranking a data set in which each value is repeated ``w`` times.
    """
    x = np.asarray(x, dtype=float)
    w = _weights(w, len(x))
    order = np.argsort(x, kind="mergesort")
    xs, ws = x[order], w[order]
    first = np.r_[True, xs[1:] != xs[:-1]]
    group = np.cumsum(first) - 1
    group_w = np.bincount(group, weights=ws)
    group_start = np.cumsum(group_w) - group_w
    ranks = np.empty(len(x))
    ranks[order] = group_start[group] + (group_w[group] + 1) / 2
    return ranks


def spearman(x: np.ndarray, y: np.ndarray, w: np.ndarray | None = None) -> float:
    """Spearman rank correlation (mid-ranks for ties), optionally weighted.

    NaN with fewer than 3 values or when either variable is constant.
    """
    if len(x) < 3:
        return float("nan")
    w = _weights(w, len(x))
    rx = weighted_ranks(x, w)
    ry = weighted_ranks(y, w)
    total = w.sum()
    rx = rx - (w * rx).sum() / total
    ry = ry - (w * ry).sum() / total
    denom = math.sqrt(float((w * rx * rx).sum() * (w * ry * ry).sum()))
    return float((w * rx * ry).sum() / denom) if denom > 0 else float("nan")


def gini(x: np.ndarray, w: np.ndarray | None = None) -> float:
    """Gini coefficient of non-negative values, optionally weighted.

    0 = all equal, towards 1 = one takes all. Uses the sorted form of
    sum_ij w_i w_j |x_i - x_j| / (2 W^2 mean).
    """
    x = np.asarray(x, dtype=float)
    if len(x) == 0:
        return float("nan")
    w = _weights(w, len(x))
    order = np.argsort(x, kind="mergesort")
    xs, ws = x[order], w[order]
    total_w = ws.sum()
    mass = (ws * xs).sum()
    if mass <= 0:
        return 0.0
    cum = np.cumsum(ws)
    return float((ws * xs * (2 * cum - ws - total_w)).sum() / (total_w * mass))


def attainment_metrics(
    quota: np.ndarray,
    bookings: np.ndarray,
    potential: np.ndarray,
    payout: np.ndarray,
    weights: np.ndarray | None = None,
) -> np.ndarray:
    """The :data:`METRICS` (in that order) for one algorithm over a set of rep-years.

    Rep-years with a zero quota have no attainment and are left out of every metric.

    Parameters
    ----------
    quota, bookings:
        Currency per rep-year.
    potential:
        Territory potential per rep-year, currency/yr.
    payout:
        Pay per rep-year, currency.
    weights:
        Optional non-negative weight per rep-year (bootstrap replicate weights); sums
        become weighted sums, means weighted means, the standard deviation uses
        ``sum(w) - 1`` degrees of freedom. ``None`` = every row once.
    """
    w = _weights(weights, len(quota))
    ok = (quota > 0) & (w > 0)
    out = np.full(len(METRICS), np.nan)
    if not ok.any():
        return out
    q, b, p, pay, w = quota[ok], bookings[ok], potential[ok], payout[ok], w[ok]
    att = b / q
    total_w = w.sum()
    b_sum = (w * b).sum()
    pay_sum = (w * pay).sum()
    mean = (w * att).sum() / total_w
    corr = spearman(att, p, w)
    out[0] = mean
    out[1] = math.sqrt((w * (att - mean) ** 2).sum() / (total_w - 1)) if total_w > 1 else np.nan
    out[2] = w[att >= 0.9].sum() / total_w
    out[3] = w[att >= 1.0].sum() / total_w
    out[4] = corr
    out[5] = abs(corr)
    out[6] = gini(att, w)
    out[7] = pay_sum
    out[8] = pay_sum / b_sum if b_sum > 0 else np.nan
    out[9] = (w * q).sum() / b_sum - 1 if b_sum > 0 else np.nan
    return out


# --------------------------------------------------------------------------------------
# Validated book: plan potential, bookings history, reps
# --------------------------------------------------------------------------------------


def _locate(source: str, positions: Sequence[int]) -> str:
    """'history.csv lines 3, 9 (+4 more)' for CSV files (header = line 1), else rows."""
    positions = list(positions)
    if source.endswith(".csv"):
        shown = [str(p + 2) for p in positions[:_MAX_ROWS_LISTED]]
        word = "line" if len(positions) == 1 else "lines"
    else:
        shown = [str(p) for p in positions[:_MAX_ROWS_LISTED]]
        word = "row" if len(positions) == 1 else "rows"
    more = len(positions) - _MAX_ROWS_LISTED
    return f"{source} {word} {', '.join(shown)}" + (f" (+{more} more)" if more > 0 else "")


def _row_problem(
    problems: list[str],
    source: str,
    mask: pd.Series,
    column: str,
    what: str,
    fix: str,
    values: pd.Series | None = None,
) -> None:
    pos = np.flatnonzero(mask.to_numpy())
    if len(pos) == 0:
        return
    shown = ""
    if values is not None:
        sample = values.iloc[pos[:_MAX_ROWS_LISTED]].tolist()
        shown = f" ({', '.join(map(str, sample))}{', ...' if len(pos) > len(sample) else ''})"
    problems.append(f"{_locate(source, pos)}, column {column}: {what}{shown}; fix: {fix}")


def _require(problems: list[str], source: str, frame: pd.DataFrame, cols: Iterable[str]) -> bool:
    missing = [c for c in cols if c not in frame.columns]
    if missing:
        problems.append(
            f"{source}: missing column(s) {missing} (has {list(frame.columns)}); add them"
        )
    return not missing


def _as_id(series: pd.Series) -> pd.Series:
    # Ids are compared as text so '7' in one file matches 7 in another.
    return series.astype("string").str.strip().astype(object)


@dataclass(frozen=True, eq=False)
class QuotaBook:
    """Validated plan potential, bookings history and reps, ready for quota backtests.

    Build with :meth:`from_frames`, which reports every problem in one
    :class:`~territory_opt.quota_algorithms.QuotaDataError`.

    Attributes
    ----------
    accounts:
        Index ``account_id``; ``potential`` (currency/yr) and ``rep_id`` (plan owner, may
        be missing when only a backtest is wanted).
    history:
        ``account_id``, ``year``, ``rep_id``, ``bookings`` (currency, >= 0), contiguous
        years.
    reps:
        Index ``rep_id``; ``fte`` plus whatever else reps.csv has (``start_date``,
        ``lat``, ``lon``, ``ramp_months``, ...).
    extra_reps:
        Plan reps with no account (vacant territories), kept so they get a quota.
    """

    accounts: pd.DataFrame
    history: pd.DataFrame
    reps: pd.DataFrame
    extra_reps: tuple[str, ...] = ()

    @classmethod
    def from_frames(
        cls,
        assignments: pd.DataFrame,
        history: pd.DataFrame,
        reps: pd.DataFrame,
        *,
        territories: pd.DataFrame | None = None,
        potential_col: str = "potential",
        sources: Mapping[str, str] | None = None,
    ) -> QuotaBook:
        """Validate and normalise the three inputs, raising once for all problems.

        Parameters
        ----------
        assignments:
            One row per account: ``account_id``, ``potential_col`` (currency/yr) and
            optionally ``rep_id`` (the plan's owner).
        history:
            ``account_id``, ``year``, ``bookings`` (currency >= 0), ``rep_id`` (owner that
            year).
        reps:
            ``rep_id``, ``fte`` (defaults to 1 when the column is absent) and optional
            ``start_date``, ``ramp_months``, ``lat``, ``lon``.
        territories:
            Optional plan territories (``rep_id``); reps listed here without accounts are
            kept as vacant territories.
        sources:
            Names used in messages for ``assignments``, ``history``, ``reps`` and
            ``territories`` (file names such as ``history.csv`` report line numbers).
        """
        src = {
            "assignments": "assignments",
            "history": "history",
            "reps": "reps",
            "territories": "territories",
            **(sources or {}),
        }
        problems: list[str] = []
        reps_ok = _require(problems, src["reps"], reps, ["rep_id"])
        acc_ok = _require(problems, src["assignments"], assignments, ["account_id", potential_col])
        hist_ok = _require(
            problems, src["history"], history, ["account_id", "year", "rep_id", "bookings"]
        )

        reps = reps.reset_index(drop=True).copy()
        if reps_ok:
            reps["rep_id"] = _as_id(reps["rep_id"])
            _row_problem(
                problems,
                src["reps"],
                reps["rep_id"].isna(),
                "rep_id",
                "missing id",
                "give every rep an id",
            )
            _row_problem(
                problems,
                src["reps"],
                reps["rep_id"].duplicated(keep="first"),
                "rep_id",
                "duplicated rep_id",
                "keep one row per rep",
                reps["rep_id"],
            )
            if "fte" not in reps.columns:
                logger.info("%s has no fte column; every rep counts as 1 FTE", src["reps"])
                reps["fte"] = 1.0
            fte = pd.to_numeric(reps["fte"], errors="coerce")
            _row_problem(
                problems,
                src["reps"],
                ~(fte > 0),
                "fte",
                "not a number > 0",
                "set fte in (0, 1] (e.g. 0.5 for half time)",
                reps["fte"],
            )
            reps["fte"] = fte
            if "start_date" in reps.columns:
                start = pd.to_datetime(reps["start_date"], errors="coerce")
                _row_problem(
                    problems,
                    src["reps"],
                    start.isna() & reps["start_date"].notna(),
                    "start_date",
                    "not a date",
                    "use YYYY-MM-DD or leave empty",
                    reps["start_date"],
                )
                reps["start_date"] = start
        rep_ids = set(reps["rep_id"].dropna()) if reps_ok else set()

        accounts = assignments.reset_index(drop=True).copy()
        if acc_ok:
            accounts["account_id"] = _as_id(accounts["account_id"])
            _row_problem(
                problems,
                src["assignments"],
                accounts["account_id"].duplicated(),
                "account_id",
                "duplicated account",
                "keep one row per account",
                accounts["account_id"],
            )
            pot = pd.to_numeric(accounts[potential_col], errors="coerce")
            _row_problem(
                problems,
                src["assignments"],
                ~(pot >= 0) | ~np.isfinite(pot),
                potential_col,
                "potential must be a number >= 0",
                "re-run the potential model or fill 0",
                accounts[potential_col],
            )
            accounts["potential"] = pot
            if "rep_id" in accounts.columns:
                accounts["rep_id"] = _as_id(accounts["rep_id"])
                if reps_ok:
                    unknown = accounts["rep_id"].notna() & ~accounts["rep_id"].isin(rep_ids)
                    _row_problem(
                        problems,
                        src["assignments"],
                        unknown,
                        "rep_id",
                        f"rep not in {src['reps']}",
                        f"add the rep to {src['reps']}",
                        accounts["rep_id"],
                    )
        account_ids = set(accounts["account_id"].dropna()) if acc_ok else set()

        hist = history.reset_index(drop=True).copy()
        if hist_ok:
            hist["account_id"] = _as_id(hist["account_id"])
            hist["rep_id"] = _as_id(hist["rep_id"])
            year = pd.to_numeric(hist["year"], errors="coerce")
            bad_year = ~(year.notna() & (year == year.round()))
            _row_problem(
                problems,
                src["history"],
                bad_year,
                "year",
                "not a whole year",
                "use a 4-digit year such as 2024",
                hist["year"],
            )
            bookings = pd.to_numeric(hist["bookings"], errors="coerce")
            _row_problem(
                problems,
                src["history"],
                bookings.isna() | ~np.isfinite(bookings),
                "bookings",
                "missing or not a number",
                "fill 0 for accounts that booked nothing",
                hist["bookings"],
            )
            _row_problem(
                problems,
                src["history"],
                bookings < 0,
                "bookings",
                "negative",
                "bookings must be >= 0; net refunds into the same year or use 0",
                hist["bookings"],
            )
            if acc_ok:
                _row_problem(
                    problems,
                    src["history"],
                    ~hist["account_id"].isin(account_ids),
                    "account_id",
                    f"account not in {src['assignments']}",
                    f"add the account to {src['assignments']} (with its potential) "
                    "or drop these rows",
                    hist["account_id"],
                )
            if reps_ok:
                _row_problem(
                    problems,
                    src["history"],
                    ~hist["rep_id"].isin(rep_ids),
                    "rep_id",
                    f"rep not in {src['reps']}",
                    f"add the rep (fte, start_date) to {src['reps']} or correct the owner",
                    hist["rep_id"],
                )
            years = sorted({int(y) for y in year[~bad_year]})
            if years:
                gaps = sorted(set(range(years[0], years[-1] + 1)) - set(years))
                if gaps:
                    problems.append(
                        f"{src['history']}, column year: years {years[0]}-{years[-1]} have no "
                        f"rows for {gaps}; fix: add the missing year(s) (0 bookings where "
                        "nothing was booked) or drop the years before the gap"
                    )
            else:
                problems.append(f"{src['history']}: no rows; fix: provide bookings history")
            hist["year"] = year
            hist["bookings"] = bookings

        extra: tuple[str, ...] = ()
        if territories is not None and "rep_id" in territories.columns:
            terr_ids = _as_id(territories["rep_id"])
            if reps_ok:
                _row_problem(
                    problems,
                    src["territories"],
                    ~terr_ids.isin(rep_ids),
                    "rep_id",
                    f"rep not in {src['reps']}",
                    f"add the rep to {src['reps']}",
                    terr_ids,
                )
            owners = set(accounts["rep_id"].dropna()) if "rep_id" in accounts.columns else set()
            extra = tuple(sorted(set(terr_ids.dropna()) - owners))

        if problems:
            raise QuotaDataError(problems, "quota test inputs")

        hist["year"] = hist["year"].astype(int)
        hist["bookings"] = hist["bookings"].astype(float)
        keep = ["potential"] + (["rep_id"] if "rep_id" in accounts.columns else [])
        return cls(
            accounts=accounts.set_index("account_id")[keep],
            history=hist[["account_id", "year", "rep_id", "bookings"]],
            reps=reps.set_index("rep_id"),
            extra_reps=extra,
        )

    @property
    def years(self) -> list[int]:
        return sorted(self.history["year"].unique().tolist())

    def owners(self, year: int) -> pd.Series:
        """Owner rep of each account in ``year`` (account_id -> rep_id).

        History is a bookings ledger, so an account without a row in ``year`` booked
        nothing and its owner is not recorded. In order of preference the owner is: the rep
        who booked most on the account in ``year``; else its latest earlier owner; else,
        for accounts never booked so far (whitespace), the plan owner if that rep had
        started by the end of ``year``. Without this, whitespace potential would vanish
        from backtest territories while the plan's territories count it.
        """
        h = self.history[self.history["year"] <= year]
        per = h.groupby(["account_id", "year", "rep_id"], as_index=False)["bookings"].sum()
        per = per.sort_values(
            ["account_id", "year", "bookings", "rep_id"], ascending=[True, False, False, True]
        )
        known = per.drop_duplicates("account_id").set_index("account_id")["rep_id"]
        if "rep_id" not in self.accounts.columns:
            return known
        plan = self.accounts["rep_id"].dropna()
        plan = plan[~plan.index.isin(known.index)]
        if "start_date" in self.reps.columns:
            start = self.reps["start_date"]
            hired = start.isna() | (start <= pd.Timestamp(year=year, month=12, day=31))
            plan = plan[plan.map(hired).fillna(False).astype(bool)]
        return pd.concat([known, plan]).rename("rep_id")

    def territory_inputs(
        self,
        owners: pd.Series,
        plan_year: int,
        *,
        ramp_months: float = 0.0,
        extra_reps: Iterable[str] = (),
    ) -> QuotaInputs:
        """Quota inputs for territories given as ``owners`` (account_id -> rep_id).

        Territory potential sums the plan potential of the accounts; territory history
        sums their bookings in each year before ``plan_year``, whoever booked them.
        """
        rep_ids = sorted(set(owners.to_numpy()) | set(extra_reps))
        potential = (
            self.accounts["potential"]
            .reindex(owners.index)
            .fillna(0.0)
            .groupby(owners.to_numpy())
            .sum()
            .reindex(rep_ids, fill_value=0.0)
        )
        past = self.history[self.history["year"] < plan_year]
        past = past[past["account_id"].isin(owners.index)]
        territory = owners.reindex(past["account_id"]).to_numpy()
        wide = (
            past.assign(territory=territory)
            .pivot_table(
                index="territory", columns="year", values="bookings", aggfunc="sum", fill_value=0.0
            )
            .reindex(rep_ids, fill_value=0.0)
        )
        wide.index.name = "rep_id"
        cols = [c for c in ("fte", "start_date", "ramp_months") if c in self.reps.columns]
        reps = self.reps.loc[rep_ids, cols].assign(potential=potential.to_numpy())
        return QuotaInputs(reps=reps, history=wide, plan_year=plan_year, ramp_months=ramp_months)

    def year_inputs(self, year: int, *, ramp_months: float = 0.0) -> tuple[QuotaInputs, pd.Series]:
        """Inputs for backtest year ``year`` and the actual bookings per rep in it."""
        actual = self.history[self.history["year"] == year].groupby("rep_id")["bookings"].sum()
        inputs = self.territory_inputs(
            self.owners(year), year, ramp_months=ramp_months, extra_reps=actual.index
        )
        return inputs, actual.reindex(inputs.rep_ids, fill_value=0.0)

    def plan_inputs(self, *, ramp_months: float = 0.0) -> QuotaInputs:
        """Inputs for the plan year (last history year + 1) on the plan's territories."""
        if "rep_id" not in self.accounts.columns:
            raise QuotaDataError(
                [
                    "assignments: no rep_id column, so the plan's territories are unknown; "
                    "add the plan owner per account"
                ],
                "quota plan",
            )
        owners = self.accounts["rep_id"].dropna()
        return self.territory_inputs(
            owners, self.years[-1] + 1, ramp_months=ramp_months, extra_reps=self.extra_reps
        )


def plan_total(inputs: QuotaInputs, growth: float | Literal["trend"] = "trend") -> float:
    """Total quota (currency/yr) = last year's bookings x growth.

    ``growth`` is a factor (1.05 = +5%) or ``"trend"``: last year's bookings over the year
    before's (1.0 when there is no earlier year).
    """
    history = inputs.history
    last = float(inputs.last_year_bookings.sum())
    if growth == "trend":
        prev_year = inputs.plan_year - 2
        prev = float(history[prev_year].sum()) if prev_year in history.columns else 0.0
        factor = last / prev if prev > 0 else 1.0
    else:
        factor = float(growth)
        if not (math.isfinite(factor) and factor >= 0):
            raise ValueError(f"growth must be a factor >= 0 or 'trend', got {growth!r}")
    return last * factor


# --------------------------------------------------------------------------------------
# Backtest
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class BacktestResult:
    """Backtest output.

    Attributes
    ----------
    rep_years:
        One row per (algorithm, year, rep): ``potential`` (currency/yr), ``fte``,
        ``quota`` and ``bookings`` (currency), ``attainment`` (fraction; NaN when the quota
        is 0), ``payout`` (currency), ``band`` (below/at/above target).
    metrics:
        ``algorithm``, ``metric``, ``value`` pooled over all backtest years.
    by_year:
        ``algorithm``, ``year``, ``metric``, ``value``.
    bands:
        Per ``algorithm`` and ``band``: ``num_rep_years``, ``share``, ``quota``,
        ``bookings``, ``payout`` (currency), ``cost_of_sales``, ``attainment_mean``.
    totals:
        Per ``year``: ``total`` quota, ``bookings`` and the ``growth`` factor assumed.
    """

    rep_years: pd.DataFrame
    metrics: pd.DataFrame
    by_year: pd.DataFrame
    bands: pd.DataFrame
    totals: pd.DataFrame

    def metric_table(self) -> pd.DataFrame:
        """Metrics as a wide table: one row per metric, one column per algorithm."""
        table = self.metrics.pivot(index="metric", columns="algorithm", values="value")
        return table.reindex(list(METRICS))


def _band(att: np.ndarray, edges: tuple[float, float]) -> np.ndarray:
    return np.where(att < edges[0], "below", np.where(att < edges[1], "at", "above"))


def _metrics_frame(rep_years: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    rows = []
    for key, g in rep_years.groupby(keys, sort=False):
        values = attainment_metrics(
            g["quota"].to_numpy(float),
            g["bookings"].to_numpy(float),
            g["potential"].to_numpy(float),
            g["payout"].to_numpy(float),
        )
        key = key if isinstance(key, tuple) else (key,)
        rows += [(*key, m, v) for m, v in zip(METRICS, values, strict=True)]
    return pd.DataFrame(rows, columns=[*keys, "metric", "value"])


def backtest_quotas(
    book: QuotaBook,
    algorithms: str | Iterable[str | QuotaAlgorithm],
    *,
    comp_plan: CompPlan | None = None,
    growth: Growth = "trend",
    ramp_months: float = 0.0,
    band_edges: tuple[float, float] = (0.9, 1.1),
) -> BacktestResult:
    """Set quotas for each history year from earlier data and score them on actuals.

    Parameters
    ----------
    book:
        Validated inputs (:meth:`QuotaBook.from_frames`); needs at least 2 years.
    algorithms:
        Spec (``"headcount,potential"``) or algorithm objects.
    comp_plan:
        Pay rules for ``payout``; default :class:`CompPlan()`.
    growth:
        Total quota of year t: last year's bookings x ``growth`` (factor), x the trailing
        growth (``"trend"``), or the actual bookings of t (``"actual"``, which isolates the
        split from the forecast; ``forecast_bias`` is then 0).
    ramp_months:
        Default ramp for reps without ``ramp_months`` in reps.
    band_edges:
        Attainment edges (fractions) between the below / at / above target bands.
    """
    algos = parse_algorithms(algorithms)
    comp_plan = comp_plan or CompPlan()
    years = book.years
    if len(years) < 2:
        raise QuotaDataError(
            [
                f"history: only year(s) {years}; a backtest needs at least 2 consecutive years "
                "(quotas for year t are set from year t-1)"
            ],
            "quota backtest",
        )
    frames = []
    totals = []
    for year in years[1:]:
        inputs, actual = book.year_inputs(year, ramp_months=ramp_months)
        if growth == "actual":
            total = float(actual.sum())
        else:
            total = plan_total(inputs, growth)
        last = float(inputs.last_year_bookings.sum())
        totals.append((year, total, float(actual.sum()), total / last if last > 0 else np.nan))
        logger.info("backtest %d: %d reps, total quota %.0f", year, len(inputs.rep_ids), total)
        base = pd.DataFrame(
            {
                "year": year,
                "rep_id": inputs.rep_ids,
                "potential": inputs.reps["potential"].to_numpy(),
                "fte": inputs.reps["fte"].to_numpy(),
                "bookings": actual.to_numpy(),
            }
        )
        for algo in algos:
            quota = algo(inputs, total).to_numpy()
            frames.append(base.assign(algorithm=algo.name, quota=quota))
    rep_years = pd.concat(frames, ignore_index=True)
    quota = rep_years["quota"].to_numpy(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        att = np.where(quota > 0, rep_years["bookings"].to_numpy(float) / quota, np.nan)
    num_zero = int((quota <= 0).sum())
    if num_zero:
        logger.warning("%d rep-years have a zero quota and no attainment; left out", num_zero)
    rep_years["attainment"] = att
    rep_years["payout"] = comp_plan.payout(att, rep_years["fte"].to_numpy(float))
    rep_years["band"] = np.where(np.isnan(att), "none", _band(att, band_edges))
    rep_years = rep_years[
        [
            "algorithm",
            "year",
            "rep_id",
            "potential",
            "fte",
            "quota",
            "bookings",
            "attainment",
            "payout",
            "band",
        ]
    ]
    metrics = _metrics_frame(rep_years, ["algorithm"])
    by_year = _metrics_frame(rep_years, ["algorithm", "year"])
    return BacktestResult(
        rep_years=rep_years,
        metrics=metrics,
        by_year=by_year,
        bands=band_figures(rep_years),
        totals=pd.DataFrame(totals, columns=["year", "total", "bookings", "growth"]),
    )


def band_figures(rep_years: pd.DataFrame) -> pd.DataFrame:
    """Per algorithm and attainment band: counts, money and cost of sales."""
    scored = rep_years[rep_years["band"].isin(BANDS)]
    grouped = scored.groupby(["algorithm", "band"], sort=False).agg(
        num_rep_years=("rep_id", "size"),
        quota=("quota", "sum"),
        bookings=("bookings", "sum"),
        payout=("payout", "sum"),
        attainment_mean=("attainment", "mean"),
    )
    algos = list(dict.fromkeys(rep_years["algorithm"]))
    full = pd.MultiIndex.from_product([algos, list(BANDS)], names=["algorithm", "band"])
    out = grouped.reindex(full).reset_index()
    out["num_rep_years"] = out["num_rep_years"].fillna(0).astype(int)
    for col in ("quota", "bookings", "payout"):
        out[col] = out[col].fillna(0.0)
    out["share"] = out["num_rep_years"] / out.groupby("algorithm")["num_rep_years"].transform("sum")
    with np.errstate(divide="ignore", invalid="ignore"):
        out["cost_of_sales"] = np.where(
            out["bookings"] > 0, out["payout"] / out["bookings"], np.nan
        )
    return out[
        [
            "algorithm",
            "band",
            "num_rep_years",
            "share",
            "quota",
            "bookings",
            "payout",
            "cost_of_sales",
            "attainment_mean",
        ]
    ]

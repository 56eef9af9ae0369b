"""Pluggable quota algorithms: split a total quota (currency/yr) across reps.

Every algorithm turns a validated :class:`QuotaInputs` and a ``total`` (currency/yr) into a
``pandas.Series`` of quotas (currency/yr) indexed by ``rep_id`` whose cent amounts sum
exactly to the total rounded to cents. The pipeline is the same for all of them:

1. ``weights``: the algorithm's raw, non-negative share of the total per rep
   (equal, FTE, last-year territory bookings, territory potential, or a blend).
2. Ramp proration: weights are multiplied by each rep's *productive share* of the plan
   year (see :func:`ramp_factor`), so a rep hired in July with a 6-month ramp carries a
   fraction of a tenured rep's weight and the difference goes to everybody else.
3. Optional floor and cap on the year-over-year change against a reference (the rep's
   ``previous_quota`` when given, else last year's bookings of the territory), solved by
   clamp-and-redistribute so the total is still met; an impossible floor/cap raises
   :class:`QuotaInfeasibleError` with the arithmetic.
4. Largest-remainder rounding to cents, so the cents sum to the total exactly.

Algorithms are small frozen dataclasses registered by name; :func:`parse_algorithms`
turns a spec such as ``"headcount,potential,blended:0.5"`` into instances.
"""

from __future__ import annotations

import logging
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pandas as pd

__all__ = [
    "BlendedQuota",
    "HeadcountQuota",
    "HistoryQuota",
    "PotentialQuota",
    "QuotaAlgorithm",
    "QuotaDataError",
    "QuotaInfeasibleError",
    "QuotaInputs",
    "allocate_with_bounds",
    "available_algorithms",
    "parse_algorithm",
    "parse_algorithms",
    "ramp_factor",
    "register_algorithm",
    "round_to_cents",
    "to_cents",
]

logger = logging.getLogger(__name__)

# Relative slack when checking that a floor/cap leaves the total reachable: the allocation
# itself is float arithmetic, so exact ties must not be reported as infeasible.
_FEASIBILITY_RTOL = 1e-9


class QuotaDataError(ValueError):
    """Input data for quotas is invalid; ``problems`` lists every problem with its fix."""

    def __init__(self, problems: list[str], what: str = "quota input") -> None:
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{len(self.problems)} problem(s) in {what}:\n{lines}")


class QuotaInfeasibleError(ValueError):
    """The floor/cap on year-over-year change cannot be met while summing to the total."""


# --------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class QuotaInputs:
    """Everything a quota algorithm may look at for one plan year.

    Attributes
    ----------
    reps:
        One row per rep (``rep_id`` column or index) with ``potential`` (territory
        potential, currency/yr, >= 0) and ``fte`` (> 0). Optional: ``start_date`` (missing
        or NaT = tenured), ``ramp_months`` (months to full productivity, >= 0; overrides
        the ``ramp_months`` attribute per rep) and ``previous_quota`` (currency/yr; the
        reference for the floor/cap when present).
    history:
        Bookings (currency, >= 0) of each rep's *territory* by year, either long
        (``rep_id``, ``year``, ``bookings``) or wide (index ``rep_id``, one column per
        integer year). Only years before ``plan_year`` are allowed, so an algorithm can
        never peek at the year it sets quotas for. Reps without a row have no history.
    plan_year:
        Calendar year the quotas are for.
    ramp_months:
        Default ramp length in months for reps without a ``ramp_months`` value; 0 means
        productive from the start date.

    After construction ``reps`` is indexed by ``rep_id`` (strings, sorted) and ``history``
    is wide (reps x years, currency, 0 where no bookings).
    """

    reps: pd.DataFrame
    history: pd.DataFrame
    plan_year: int
    ramp_months: float = 0.0

    def __post_init__(self) -> None:
        problems: list[str] = []
        reps = _normalise_reps(self.reps, problems)
        history = _normalise_history(self.history, reps, int(self.plan_year), problems)
        if not (np.isfinite(self.ramp_months) and self.ramp_months >= 0):
            problems.append(f"ramp_months must be a number >= 0, got {self.ramp_months!r}")
        if problems:
            raise QuotaDataError(problems, "QuotaInputs")
        object.__setattr__(self, "reps", reps)
        object.__setattr__(self, "history", history)
        object.__setattr__(self, "plan_year", int(self.plan_year))
        object.__setattr__(self, "ramp_months", float(self.ramp_months))

    @property
    def rep_ids(self) -> pd.Index:
        return self.reps.index

    @property
    def last_year_bookings(self) -> pd.Series:
        """Territory bookings in ``plan_year - 1`` per rep, currency (0 when none)."""
        year = self.plan_year - 1
        if year in self.history.columns:
            return self.history[year].rename("last_year_bookings")
        return pd.Series(0.0, index=self.rep_ids, name="last_year_bookings")

    @property
    def ramp(self) -> pd.Series:
        """Productive share of the plan year per rep, in [0, 1] (see :func:`ramp_factor`)."""
        months = self.reps.get("ramp_months")
        if months is None:
            months = pd.Series(self.ramp_months, index=self.rep_ids)
        else:
            months = months.fillna(self.ramp_months)
        start = self.reps.get("start_date")
        if start is None:
            start = pd.Series(pd.NaT, index=self.rep_ids, dtype="datetime64[ns]")
        values = ramp_factor(start, months.to_numpy(float), self.plan_year)
        return pd.Series(values, index=self.rep_ids, name="ramp")

    @property
    def reference(self) -> pd.Series:
        """Reference for the year-over-year floor/cap, currency/yr; NaN = unconstrained.

        ``previous_quota`` when the reps frame has it, else last year's territory
        bookings. Reps with no positive reference (new territories) are left free.
        """
        if "previous_quota" in self.reps.columns:
            ref = self.reps["previous_quota"].astype(float)
        else:
            ref = self.last_year_bookings.astype(float)
        return ref.where(ref > 0).rename("reference")


def _rep_index(frame: pd.DataFrame) -> pd.DataFrame:
    if "rep_id" in frame.columns:
        frame = frame.set_index("rep_id")
    elif frame.index.name != "rep_id":
        raise QuotaDataError(["reps: needs a 'rep_id' column or index"], "QuotaInputs")
    frame = frame.copy()
    frame.index = frame.index.astype(str)
    frame.index.name = "rep_id"
    return frame


def _normalise_reps(reps: pd.DataFrame, problems: list[str]) -> pd.DataFrame:
    reps = _rep_index(reps)
    missing = [c for c in ("potential", "fte") if c not in reps.columns]
    if missing:
        problems.append(f"reps: missing column(s) {missing}; add them (potential currency/yr)")
        return reps.sort_index()
    dup = reps.index[reps.index.duplicated()].unique().tolist()
    if dup:
        problems.append(f"reps: duplicated rep_id {dup[:10]}; keep one row per rep")
    reps["potential"] = pd.to_numeric(reps["potential"], errors="coerce").astype(float)
    reps["fte"] = pd.to_numeric(reps["fte"], errors="coerce").astype(float)
    bad = reps.index[~(reps["potential"] >= 0) | ~np.isfinite(reps["potential"])].tolist()
    if bad:
        problems.append(f"reps: potential must be finite and >= 0 for {bad[:10]}")
    bad = reps.index[~(reps["fte"] > 0) | ~np.isfinite(reps["fte"])].tolist()
    if bad:
        problems.append(f"reps: fte must be finite and > 0 for {bad[:10]}")
    if "start_date" in reps.columns:
        parsed = pd.to_datetime(reps["start_date"], errors="coerce")
        bad = reps.index[parsed.isna() & reps["start_date"].notna()].tolist()
        if bad:
            problems.append(f"reps: start_date is not a date for {bad[:10]}; use YYYY-MM-DD")
        reps["start_date"] = parsed
    if "ramp_months" in reps.columns:
        reps["ramp_months"] = pd.to_numeric(reps["ramp_months"], errors="coerce").astype(float)
        bad = reps.index[reps["ramp_months"] < 0].tolist()
        if bad:
            problems.append(f"reps: ramp_months must be >= 0 for {bad[:10]}")
    if "previous_quota" in reps.columns:
        reps["previous_quota"] = pd.to_numeric(reps["previous_quota"], errors="coerce")
        bad = reps.index[reps["previous_quota"] < 0].tolist()
        if bad:
            problems.append(f"reps: previous_quota must be >= 0 for {bad[:10]}")
    return reps.sort_index()


def _normalise_history(
    history: pd.DataFrame, reps: pd.DataFrame, plan_year: int, problems: list[str]
) -> pd.DataFrame:
    if {"rep_id", "year", "bookings"} <= set(history.columns):
        long = history[["rep_id", "year", "bookings"]].copy()
        long["rep_id"] = long["rep_id"].astype(str)
        long["bookings"] = pd.to_numeric(long["bookings"], errors="coerce")
        wide = long.pivot_table(
            index="rep_id", columns="year", values="bookings", aggfunc="sum", fill_value=0.0
        )
    else:
        wide = _rep_index(history)
    wide = wide.copy()
    try:
        wide.columns = [int(c) for c in wide.columns]
    except (TypeError, ValueError):
        problems.append(
            f"history: year columns must be integers, got {list(wide.columns)[:10]}; "
            "pass long (rep_id, year, bookings) or wide (rep_id x year) bookings"
        )
        return pd.DataFrame(index=reps.index)
    wide = wide.apply(pd.to_numeric, errors="coerce").astype(float)
    late = sorted(c for c in wide.columns if c >= plan_year)
    if late:
        problems.append(
            f"history: has year(s) {late} >= plan_year {plan_year}; quotas may only use "
            "earlier years, drop them"
        )
    if (wide < 0).to_numpy().any() or wide.isna().to_numpy().any():
        bad = wide.index[((wide < 0) | wide.isna()).any(axis=1)].tolist()
        problems.append(f"history: bookings must be numbers >= 0; check reps {bad[:10]}")
    unknown = sorted(set(wide.index) - set(reps.index))
    if unknown:
        problems.append(
            f"history: rep_id(s) {unknown[:10]} not in reps; add them to reps or drop them"
        )
    wide = wide.reindex(index=reps.index, columns=sorted(wide.columns), fill_value=0.0)
    wide.index.name = "rep_id"
    return wide


def ramp_factor(start_date: pd.Series, ramp_months: np.ndarray, plan_year: int) -> np.ndarray:
    """Productive share of ``plan_year`` per rep, in [0, 1].

    Each calendar month of the plan year is evaluated at its midpoint: a rep contributes
    0 before the start date, ``tenure / ramp_months`` while ramping (linear ramp) and 1
    afterwards; the factor is the mean over the 12 months. Tenure is counted in months
    (days of the start month as a fraction), so a rep starting on 1 July with no ramp gets
    exactly 0.5, and one starting on 1 January of the plan year with a 12-month ramp gets
    exactly 0.5. Missing start dates count as tenured (factor 1).

    Parameters
    ----------
    start_date:
        Start dates (datetime-like, NaT allowed), one per rep.
    ramp_months:
        Months to full productivity per rep, >= 0.
    plan_year:
        Calendar year of the plan.
    """
    start = pd.to_datetime(pd.Series(start_date).reset_index(drop=True))
    ramp = np.asarray(ramp_months, dtype=float)
    known = start.notna().to_numpy()
    out = np.ones(len(start))
    if not known.any():
        return out
    s = start[known]
    # Month-count arithmetic keeps the documented exact cases exact (no 30.44-day months).
    start_month = (
        s.dt.year.to_numpy() * 12
        + (s.dt.month.to_numpy() - 1)
        + (s.dt.day.to_numpy() - 1) / s.dt.days_in_month.to_numpy()
    )
    mid = plan_year * 12 + np.arange(12) + 0.5
    tenure = mid[None, :] - start_month[:, None]
    r = ramp[known][:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        prod = np.where(r > 0, np.clip(tenure / np.where(r > 0, r, 1.0), 0.0, 1.0), 1.0)
    prod = np.where(tenure < 0, 0.0, prod)
    out[known] = prod.mean(axis=1)
    return out


# --------------------------------------------------------------------------------------
# Allocation with floor/cap and exact rounding
# --------------------------------------------------------------------------------------


def _fmt(x: float) -> str:
    return f"{x:,.2f}"


def allocate_with_bounds(
    weights: np.ndarray,
    total: float,
    lower: np.ndarray | None = None,
    upper: np.ndarray | None = None,
) -> np.ndarray:
    """Split ``total`` in proportion to ``weights`` within per-rep bounds.

    Clamp-and-redistribute: the free reps share what is left after the clamped ones in
    proportion to their weights; reps pushed outside their bounds are clamped and the rest
    redistributed, until nothing moves. Each pass clamps only the side (floors or caps)
    with the larger total violation, which is provably a clamp the exact solution also has,
    so the loop ends in at most ``n`` passes and never oscillates. Reps with zero weight
    sit at their lower bound.

    Parameters
    ----------
    weights:
        Non-negative weights, one per rep.
    total:
        Amount to split (currency).
    lower, upper:
        Per-rep bounds (currency); default 0 and +inf.

    Raises
    ------
    QuotaInfeasibleError
        If no split within the bounds sums to ``total``.
    """
    w = np.asarray(weights, dtype=float)
    n = len(w)
    lo = np.zeros(n) if lower is None else np.asarray(lower, dtype=float)
    hi = np.full(n, np.inf) if upper is None else np.asarray(upper, dtype=float)
    if (w < 0).any() or not np.isfinite(w).all():
        raise ValueError("weights must be finite and >= 0")
    lo_sum = float(lo.sum())
    hi_sum = float(np.where(w > 0, hi, lo).sum())
    slack = _FEASIBILITY_RTOL * max(abs(total), 1.0)
    if total < lo_sum - slack or total > hi_sum + slack:
        raise QuotaInfeasibleError(
            f"cannot split {_fmt(total)} within the bounds: they allow between "
            f"{_fmt(lo_sum)} and {_fmt(hi_sum)}"
        )
    q = lo.copy()
    free = w > 0
    for _ in range(n + 1):
        remaining = total - q[~free].sum()
        w_free = w[free].sum()
        if w_free <= 0:
            break
        trial = remaining / w_free * w[free]
        low_violation = np.maximum(lo[free] - trial, 0.0)
        high_violation = np.maximum(trial - hi[free], 0.0)
        if low_violation.sum() == 0 and high_violation.sum() == 0:
            q[free] = trial
            break
        idx = np.flatnonzero(free)
        if low_violation.sum() >= high_violation.sum():
            clamp = idx[low_violation > 0]
            q[clamp] = lo[clamp]
        else:
            clamp = idx[high_violation > 0]
            q[clamp] = hi[clamp]
        free[clamp] = False
    return q


def round_to_cents(values: pd.Series, total: float) -> pd.Series:
    """Round ``values`` (currency) to cents so the cents sum to ``total`` exactly.

    Largest-remainder (Hamilton) rounding: every value is rounded down to a cent and the
    cents still missing go, one each, to the largest fractional parts (ties to the earlier
    rep). ``total`` itself is rounded to the nearest cent first. Each value moves by less
    than one cent.
    """
    total_cents = round(float(total) * 100)
    raw = np.clip(values.to_numpy(dtype=float) * 100.0, 0.0, None)
    # Scale away float drift from the allocation so the remainder is in [0, n].
    raw_sum = raw.sum()
    if raw_sum > 0:
        raw = raw * (total_cents / raw_sum)
    base = np.floor(raw).astype(np.int64)
    remainder = int(total_cents - base.sum())
    frac = raw - base
    order = np.lexsort((np.arange(len(raw)), -frac))
    if not 0 <= remainder <= len(raw):
        raise AssertionError(f"rounding remainder {remainder} outside [0, {len(raw)}]")
    base[order[:remainder]] += 1
    return pd.Series(base / 100.0, index=values.index, name="quota")


def to_cents(quotas: pd.Series) -> pd.Series:
    """Quotas (currency) as integer cents; their sum is the exact total in cents."""
    return (quotas * 100).round().astype(np.int64)


# --------------------------------------------------------------------------------------
# Algorithms
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class QuotaAlgorithm(ABC):
    """Base class: subclasses set ``kind`` and implement :meth:`weights`.

    Attributes
    ----------
    floor:
        Lowest allowed year-over-year change against the reference, as a fraction
        (-0.10 = quota at least 90% of the reference); ``None`` = no floor.
    cap:
        Highest allowed year-over-year change, as a fraction (0.25 = at most 125% of the
        reference); ``None`` = no cap.
    """

    kind: ClassVar[str] = ""
    floor: float | None = None
    cap: float | None = None

    def __post_init__(self) -> None:
        if self.floor is not None and not (math.isfinite(self.floor) and self.floor >= -1):
            raise ValueError(f"floor must be a fraction >= -1 (e.g. -0.1), got {self.floor}")
        if self.cap is not None and not (math.isfinite(self.cap) and self.cap >= -1):
            raise ValueError(f"cap must be a fraction >= -1 (e.g. 0.25), got {self.cap}")
        if self.floor is not None and self.cap is not None and self.cap < self.floor:
            raise ValueError(f"cap {self.cap} is below floor {self.floor}")

    @property
    def name(self) -> str:
        """Label used in result frames, e.g. ``blended:0.5``."""
        return self.kind

    @abstractmethod
    def weights(self, inputs: QuotaInputs) -> pd.Series:
        """Raw non-negative weights per rep, before ramp proration."""

    def __call__(self, inputs: QuotaInputs, total: float) -> pd.Series:
        """Quotas (currency/yr) per rep summing, in cents, exactly to ``total``."""
        if not (math.isfinite(total) and total >= 0):
            raise ValueError(f"total must be a finite amount >= 0, got {total}")
        weights = self.weights(inputs).reindex(inputs.rep_ids).astype(float)
        if weights.isna().any() or (weights < 0).any():
            raise ValueError(f"{self.name}: weights must be >= 0 for every rep")
        ramp = inputs.ramp
        weights = weights * ramp
        if weights.sum() <= 0 and total > 0:
            raise QuotaDataError(
                [
                    f"{self.name}: every rep has zero weight after ramp proration, so "
                    f"{_fmt(total)} cannot be split; check potential/history and start dates"
                ],
                "quota algorithm",
            )
        lower, upper = self._bounds(inputs, ramp)
        try:
            values = allocate_with_bounds(weights.to_numpy(), total, lower, upper)
        except QuotaInfeasibleError:
            raise self._infeasible(inputs, ramp, total) from None
        return round_to_cents(pd.Series(values, index=inputs.rep_ids), total)

    def _bounds(self, inputs: QuotaInputs, ramp: pd.Series) -> tuple[np.ndarray, np.ndarray]:
        # The reference is scaled by the ramp so a rep still ramping is not forced to a
        # full-year floor; reps without a reference are free (bounds 0 and +inf).
        ref = (inputs.reference * ramp).to_numpy()
        has_ref = np.isfinite(ref)
        lower = np.zeros(len(ref))
        upper = np.full(len(ref), np.inf)
        if self.floor is not None:
            lower[has_ref] = (1 + self.floor) * ref[has_ref]
        if self.cap is not None:
            upper[has_ref] = (1 + self.cap) * ref[has_ref]
        return lower, upper

    def _infeasible(
        self, inputs: QuotaInputs, ramp: pd.Series, total: float
    ) -> QuotaInfeasibleError:
        ref = (inputs.reference * ramp).to_numpy()
        has_ref = np.isfinite(ref)
        ref_sum = float(ref[has_ref].sum())
        num = int(has_ref.sum())
        lower, upper = self._bounds(inputs, ramp)
        lo_sum = float(lower.sum())
        if self.floor is not None and total < lo_sum:
            best = total / ref_sum - 1 if ref_sum > 0 else float("nan")
            return QuotaInfeasibleError(
                f"{self.name}: floor {self.floor:+.1%} makes the total impossible: the "
                f"{num} reps with a reference must keep {1 + self.floor:.3f} x "
                f"{_fmt(ref_sum)} = {_fmt(lo_sum)}, which exceeds the total {_fmt(total)} "
                f"by {_fmt(lo_sum - total)}; lower the floor to at most {best:+.1%} or "
                f"raise the total to at least {_fmt(lo_sum)}"
            )
        # Cap side: every rep with weight is capped, so the caps bound the total.
        hi_sum = float(upper[np.isfinite(upper)].sum())
        best = total / ref_sum - 1 if ref_sum > 0 else float("nan")
        return QuotaInfeasibleError(
            f"{self.name}: cap {self.cap:+.1%} makes the total impossible: all "
            f"{num} reps that can take quota have a reference and may reach at most "
            f"{1 + (self.cap or 0):.3f} x {_fmt(ref_sum)} = {_fmt(hi_sum)}, which is "
            f"{_fmt(total - hi_sum)} short of the total {_fmt(total)}; raise the cap to at "
            f"least {best:+.1%} or lower the total to {_fmt(hi_sum)}"
        )


@dataclass(frozen=True)
class HeadcountQuota(QuotaAlgorithm):
    """Equal split per rep, or per FTE when ``fte_weighted`` (spec ``headcount:fte``)."""

    kind: ClassVar[str] = "headcount"
    fte_weighted: bool = False

    @property
    def name(self) -> str:
        return "headcount:fte" if self.fte_weighted else "headcount"

    def weights(self, inputs: QuotaInputs) -> pd.Series:
        if self.fte_weighted:
            return inputs.reps["fte"].astype(float)
        return pd.Series(1.0, index=inputs.rep_ids)


@dataclass(frozen=True)
class HistoryQuota(QuotaAlgorithm):
    """Last year's territory bookings, scaled (the growth) to meet the total.

    The growth factor is implied by the total: ``total / sum(last-year bookings)`` (see
    :func:`territory_opt.quota_backtest.plan_total` for choosing the total from a growth
    rate). Territories with no bookings last year (new or empty) get the median
    bookings per FTE of the others times their FTE, so they are not handed a zero quota.
    """

    kind: ClassVar[str] = "history"

    def weights(self, inputs: QuotaInputs) -> pd.Series:
        last = inputs.last_year_bookings.astype(float)
        fte = inputs.reps["fte"].astype(float)
        has = last > 0
        if not has.any():
            raise QuotaDataError(
                [
                    f"history: no territory has bookings in {inputs.plan_year - 1}, so the "
                    "history algorithm has nothing to scale; use headcount or potential"
                ],
                "quota algorithm",
            )
        if not has.all():
            per_fte = float((last[has] / fte[has]).median())
            logger.debug(
                "history: %d territories without %d bookings get median %.2f per FTE",
                int((~has).sum()),
                inputs.plan_year - 1,
                per_fte,
            )
            last = last.where(has, per_fte * fte)
        return last


@dataclass(frozen=True)
class PotentialQuota(QuotaAlgorithm):
    """Share of territory potential (currency/yr)."""

    kind: ClassVar[str] = "potential"

    def weights(self, inputs: QuotaInputs) -> pd.Series:
        potential = inputs.reps["potential"].astype(float)
        if potential.sum() <= 0:
            raise QuotaDataError(
                ["potential: every territory has zero potential; check the plan"],
                "quota algorithm",
            )
        return potential


@dataclass(frozen=True)
class BlendedQuota(QuotaAlgorithm):
    """``weight`` x potential share + (1 - weight) x history share (spec ``blended:w``)."""

    kind: ClassVar[str] = "blended"
    weight: float = 0.5

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 <= self.weight <= 1:
            raise ValueError(f"blended weight must be in [0, 1], got {self.weight}")

    @property
    def name(self) -> str:
        return f"blended:{self.weight:g}"

    def weights(self, inputs: QuotaInputs) -> pd.Series:
        pot = PotentialQuota().weights(inputs)
        hist = HistoryQuota().weights(inputs)
        return self.weight * pot / pot.sum() + (1 - self.weight) * hist / hist.sum()


# --------------------------------------------------------------------------------------
# Registry and spec parser
# --------------------------------------------------------------------------------------

AlgorithmFactory = Callable[[str | None, float | None, float | None], QuotaAlgorithm]
_REGISTRY: dict[str, AlgorithmFactory] = {}


def register_algorithm(name: str, factory: AlgorithmFactory) -> None:
    """Register ``factory(arg, floor, cap) -> QuotaAlgorithm`` under ``name``.

    ``arg`` is the text after ``:`` in a spec (``None`` when absent). Re-registering a
    name replaces it, so plug-ins can override built-ins deliberately.
    """
    if not name or ":" in name or "," in name:
        raise ValueError(f"algorithm name must be non-empty without ':' or ',', got {name!r}")
    _REGISTRY[name] = factory


def available_algorithms() -> list[str]:
    return sorted(_REGISTRY)


def _no_arg(cls: type[QuotaAlgorithm]) -> AlgorithmFactory:
    def factory(arg: str | None, floor: float | None, cap: float | None) -> QuotaAlgorithm:
        if arg is not None:
            raise ValueError(f"'{cls.kind}' takes no argument, got '{cls.kind}:{arg}'")
        return cls(floor=floor, cap=cap)

    return factory


def _headcount(arg: str | None, floor: float | None, cap: float | None) -> QuotaAlgorithm:
    if arg not in (None, "fte", "equal"):
        raise ValueError(f"headcount takes 'fte' or 'equal', got 'headcount:{arg}'")
    return HeadcountQuota(floor=floor, cap=cap, fte_weighted=arg == "fte")


def _blended(arg: str | None, floor: float | None, cap: float | None) -> QuotaAlgorithm:
    try:
        weight = 0.5 if arg is None else float(arg)
    except ValueError:
        raise ValueError(f"blended weight must be a number in [0, 1], got {arg!r}") from None
    return BlendedQuota(floor=floor, cap=cap, weight=weight)


register_algorithm("headcount", _headcount)
register_algorithm("history", _no_arg(HistoryQuota))
register_algorithm("potential", _no_arg(PotentialQuota))
register_algorithm("blended", _blended)


def parse_algorithm(
    spec: str, *, floor: float | None = None, cap: float | None = None
) -> QuotaAlgorithm:
    """One algorithm from a spec such as ``potential`` or ``blended:0.3``."""
    name, _, arg = spec.strip().partition(":")
    name = name.strip().lower()
    if name not in _REGISTRY:
        raise ValueError(
            f"unknown quota algorithm {name!r}; known: {', '.join(available_algorithms())}"
        )
    return _REGISTRY[name](arg.strip() if arg else None, floor, cap)


def parse_algorithms(
    spec: str | Iterable[str | QuotaAlgorithm],
    *,
    floor: float | None = None,
    cap: float | None = None,
) -> list[QuotaAlgorithm]:
    """Algorithms from ``"headcount,potential,blended:0.5"`` (or a list of specs/objects).

    ``floor`` and ``cap`` apply to every algorithm parsed from text; algorithm objects are
    passed through unchanged. Duplicate names are an error because results are keyed by
    name.
    """
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    algos = [
        a if isinstance(a, QuotaAlgorithm) else parse_algorithm(a, floor=floor, cap=cap)
        for a in items
        if not (isinstance(a, str) and not a.strip())
    ]
    if not algos:
        raise ValueError(f"no quota algorithm in {spec!r}")
    names = [a.name for a in algos]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"quota algorithm(s) {dup} listed twice; results are keyed by name")
    return algos

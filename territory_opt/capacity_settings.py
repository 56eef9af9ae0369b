"""Settings of capacity planning (``territory-opt capacity``, TOML table ``[capacity]``)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = ["CapacitySettings"]


@dataclass(frozen=True)
class CapacitySettings:
    """How many reps the book needs, where new ones sit, and when to hire them.

    See :mod:`territory_opt.capacity_plan` for the arithmetic.

    Attributes
    ----------
    coverage:
        Share of each segment's potential that must be covered (0 < coverage <= 1).
        Accounts are taken by potential per workload hour, best first (``must_cover_tiers``
        before all others) until their potential reaches this share.
    must_cover_tiers:
        Tiers whose accounts are always covered (e.g. ``["A", "B"]``).
    typical_radius_km:
        Travel of the workload build-up: ``None`` measures each account from the nearest
        current rep base of its segment; a number uses that great-circle radius for every
        account.
    utilisation_target:
        Share of a rep's productive hours the modelled workload may fill (the rest absorbs
        balance detours and unmodelled work): reps needed = hours / (hours_per_fte x this).
    span:
        The marginal-value curve runs real solves for current - span .. current + span reps.
    solve_time_limit_s:
        Wall-clock limit of each checked alignment solve on the curve.
    new_rep_fte:
        FTE of every new rep (capacity = new_rep_fte x hours_per_fte).
    num_demand_points, num_sites, num_links:
        Placement model size: accounts aggregated into about this many demand points
        (cells x quartiles of potential per visit), candidate home bases (account
        locations), and nearest sites of each kind (current, candidate) a point may use.
    placement_time_limit_s:
        Wall-clock limit of each placement MIP.
    plan_start:
        First month of the plan year, ``"YYYY-MM"``; ``None``: the January after the latest
        rep ``start_date`` (a date in the data, so reruns agree).
    ramp_months:
        Months to full productivity: in the n-th month of tenure (n = 1 the start month) a
        rep works at min(1, n / ramp_months); 0 means productive at once.
    annual_attrition:
        Expected share of reps leaving per year (0 <= a < 1); monthly hazard
        h = 1 - (1 - a) ** (1 / 12).
    lead_months:
        Hires may start this many months before the plan year (default ``ramp_months``),
        so they can be productive when it starts.
    target_fte:
        Per segment (``"all"`` without segments), the effective FTE the hiring plan keeps;
        default: the FTE required by the workload build-up.
    max_hires_per_month:
        Cap on hires per month and segment (``None``: no cap).
    """

    coverage: float = 1.0
    must_cover_tiers: tuple[str, ...] = ()
    typical_radius_km: float | None = None
    utilisation_target: float = 0.9
    span: int = 2
    solve_time_limit_s: float = 60.0
    new_rep_fte: float = 1.0
    num_demand_points: int = 300
    num_sites: int = 80
    num_links: int = 12
    placement_time_limit_s: float = 20.0
    plan_start: str | None = None
    ramp_months: int = 3
    annual_attrition: float = 0.15
    lead_months: int | None = None
    target_fte: dict[str, float] = field(default_factory=dict)
    max_hires_per_month: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "must_cover_tiers", tuple(str(t) for t in self.must_cover_tiers))
        bad = []
        if not 0 < self.coverage <= 1:
            bad.append(f"capacity.coverage must be in (0, 1], got {self.coverage!r}")
        if self.typical_radius_km is not None and not self.typical_radius_km >= 0:
            bad.append(f"capacity.typical_radius_km must be >= 0, got {self.typical_radius_km!r}")
        if not 0 < self.utilisation_target <= 1:
            bad.append(
                f"capacity.utilisation_target must be in (0, 1], got {self.utilisation_target!r}"
            )
        for name in ("span", "ramp_months"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                bad.append(f"capacity.{name} must be an integer >= 0, got {value!r}")
        for name in ("num_demand_points", "num_sites", "num_links"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                bad.append(f"capacity.{name} must be an integer >= 1, got {value!r}")
        for name in ("solve_time_limit_s", "placement_time_limit_s", "new_rep_fte"):
            if not getattr(self, name) > 0:
                bad.append(f"capacity.{name} must be > 0, got {getattr(self, name)!r}")
        if not 0 <= self.annual_attrition < 1:
            bad.append(
                f"capacity.annual_attrition must be in [0, 1), got {self.annual_attrition!r}"
            )
        if self.lead_months is not None and (
            not isinstance(self.lead_months, int) or self.lead_months < 0
        ):
            bad.append(f"capacity.lead_months must be an integer >= 0, got {self.lead_months!r}")
        if self.max_hires_per_month is not None and (
            not isinstance(self.max_hires_per_month, int) or self.max_hires_per_month < 0
        ):
            bad.append(
                "capacity.max_hires_per_month must be an integer >= 0, got "
                f"{self.max_hires_per_month!r}"
            )
        if self.plan_start is not None and not re.fullmatch(
            r"\d{4}-(0[1-9]|1[0-2])", str(self.plan_start)
        ):
            bad.append(f"capacity.plan_start must be 'YYYY-MM', got {self.plan_start!r}")
        for seg, fte in self.target_fte.items():
            if isinstance(fte, bool) or not isinstance(fte, int | float) or not fte >= 0:
                bad.append(f"capacity.target_fte[{seg!r}] must be a number >= 0, got {fte!r}")
        if bad:
            raise ValueError("invalid capacity settings: " + "; ".join(bad))

    @property
    def effective_lead_months(self) -> int:
        return self.ramp_months if self.lead_months is None else self.lead_months

    @property
    def monthly_hazard(self) -> float:
        """h = 1 - (1 - annual_attrition) ** (1 / 12): the expected share leaving each month."""
        return 1.0 - (1.0 - self.annual_attrition) ** (1.0 / 12.0)

"""Planning settings: small frozen objects, loadable from TOML, overridable from the CLI."""

from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from solvers.settings import SolveSettings

from .capacity_settings import CapacitySettings
from .unit_settings import UnitSettings

__all__ = [
    "WorkloadSettings",
    "PotentialSettings",
    "TransferSettings",
    "RebalanceSettings",
    "PlanConfig",
    "check_keys",
]


@dataclass(frozen=True)
class WorkloadSettings:
    """Hours per account per year = visits x (minutes per visit / 60 + travel per visit).

    Travel per visit is a round trip: 2 x great-circle km x ``circuity`` / ``speed_kmh``.
    """

    visits_per_year: dict[str, float] = field(
        default_factory=lambda: {"A": 6.0, "B": 4.0, "C": 2.0, "D": 1.0}
    )
    default_visits_per_year: float = 1.0
    minutes_per_visit: float = 60.0
    circuity: float = 1.3
    speed_kmh: float = 70.0
    hours_per_fte: float = 1600.0

    def __post_init__(self) -> None:
        bad = [
            f"{name} must be > 0"
            for name in ("minutes_per_visit", "circuity", "speed_kmh", "hours_per_fte")
            if not getattr(self, name) > 0
        ]
        bad += [
            f"visits_per_year[{k!r}] must be >= 0" for k, v in self.visits_per_year.items() if v < 0
        ]
        if bad:
            raise ValueError("invalid workload settings: " + "; ".join(bad))


@dataclass(frozen=True)
class PotentialSettings:
    """How potential (currency/year) is obtained when the accounts carry no ``potential``.

    ``method``: ``column`` (use the accounts' ``potential``), ``peer_quantile`` or
    ``firmographic``; ``auto`` picks ``column`` when present, else ``peer_quantile``.
    """

    method: str = "auto"
    quantile: float = 0.75
    min_peers: int = 20
    size_bins: int = 5
    floor_at_spend: bool = True

    def __post_init__(self) -> None:
        if self.method not in ("auto", "column", "peer_quantile", "firmographic"):
            raise ValueError(
                f"potential.method must be auto, column, peer_quantile or firmographic; "
                f"got {self.method!r}"
            )
        if not 0 < self.quantile < 1:
            raise ValueError(f"potential.quantile must be in (0, 1), got {self.quantile}")


@dataclass(frozen=True)
class TransferSettings:
    """Hard limits on how much of the current alignment may change (``[transfer]``).

    Each is a share in [0, 1], or ``None`` (off). ``max_accounts_share_per_rep = 0.2`` means
    at most 20 % of each rep's current accounts may go to another rep, so the rep keeps at
    least 80 % of its current book; ``*_potential_*`` counts potential instead of accounts;
    ``*_total`` limits the share of all currently assigned accounts (or potential) that
    moves. Accounts without a current rep are in no book.
    """

    max_accounts_share_per_rep: float | None = None
    max_potential_share_per_rep: float | None = None
    max_accounts_share_total: float | None = None
    max_potential_share_total: float | None = None

    def __post_init__(self) -> None:
        bad = [
            f"transfer.{f.name} must be in [0, 1] (or left out), got {getattr(self, f.name)!r}"
            for f in fields(self)
            if getattr(self, f.name) is not None
            and not (
                isinstance(getattr(self, f.name), int | float) and 0 <= getattr(self, f.name) <= 1
            )
        ]
        if bad:
            raise ValueError("invalid transfer settings: " + "; ".join(bad))

    @property
    def active(self) -> bool:
        return any(getattr(self, f.name) is not None for f in fields(self))


@dataclass(frozen=True)
class RebalanceSettings:
    """What a mid-year rebalance may move (``[rebalance]``; see :mod:`territory_opt.rebalance`).

    Budgets are hard shares in [0, 1] of the previous plan's accounts and potential that may
    move, overall (``*_total``, counting every forced move too) and per rep (``*_per_rep``:
    the share of a rep's book that may leave it; reps named in a change are exempt). ``None``
    switches a budget off.

    ``protected_columns`` are accounts columns whose true values keep an account with its
    rep (besides ``locked``, which always does); with ``tenure_column`` and
    ``tenure_years``, an account whose relationship tenure (years) is above ``tenure_years``
    is protected too. Reps named in a change must end inside the plan's band (``tolerance``
    of the plan); every other rep inside ``+-tolerance`` of this table (a mid-year band,
    never narrower than the plan's) around its new target, or no further out than before.
    Workload stays within ``capacity_share`` x capacity (1.05 lets reps covering a leaver
    work 5 % over), or no further over than before.
    ``neighbours_only`` allows moves only between neighbouring territories
    (accounts of the two books are among each other's nearest accounts). A rebalance first
    frees the territories within one hop of the changed reps and widens by one hop while
    that is infeasible, up to ``max_hops``. ``disruption_slack`` is how much more potential
    than the least possible (a share) the balance and travel stages may move.
    """

    max_accounts_share_total: float | None = 0.10
    max_potential_share_total: float | None = 0.10
    max_accounts_share_per_rep: float | None = 0.35
    max_potential_share_per_rep: float | None = 0.35
    protected_columns: tuple[str, ...] = ()
    tenure_column: str | None = None
    tenure_years: float | None = None
    tolerance: float = 0.15
    capacity_share: float = 1.0
    neighbours_only: bool = True
    max_hops: int = 4
    disruption_slack: float = 0.02

    def __post_init__(self) -> None:
        object.__setattr__(self, "protected_columns", tuple(self.protected_columns))
        bad = [
            f"rebalance.{name} must be in [0, 1] (or left out), got {getattr(self, name)!r}"
            for name in (
                "max_accounts_share_total",
                "max_potential_share_total",
                "max_accounts_share_per_rep",
                "max_potential_share_per_rep",
            )
            if getattr(self, name) is not None
            and (
                isinstance(getattr(self, name), bool)
                or not isinstance(getattr(self, name), int | float)
                or not 0 <= getattr(self, name) <= 1
            )
        ]
        if not all(isinstance(c, str) and c for c in self.protected_columns):
            bad.append("rebalance.protected_columns must be a list of column names")
        if (self.tenure_column is None) != (self.tenure_years is None):
            bad.append("rebalance.tenure_column and rebalance.tenure_years go together")
        if self.tenure_years is not None and not self.tenure_years >= 0:
            bad.append(f"rebalance.tenure_years must be >= 0, got {self.tenure_years}")
        if not 0 < self.tolerance < 1:
            bad.append(f"rebalance.tolerance must be in (0, 1), got {self.tolerance}")
        if not self.capacity_share > 0:
            bad.append(f"rebalance.capacity_share must be > 0, got {self.capacity_share}")
        if not isinstance(self.max_hops, int) or self.max_hops < 1:
            bad.append(f"rebalance.max_hops must be an integer >= 1, got {self.max_hops!r}")
        if not 0 <= self.disruption_slack <= 1:
            bad.append(f"rebalance.disruption_slack must be in [0, 1], got {self.disruption_slack}")
        if bad:
            raise ValueError("invalid rebalance settings: " + "; ".join(bad))


@dataclass(frozen=True)
class PlanConfig:
    """Everything a plan depends on besides the input files.

    Attributes
    ----------
    quota_total:
        Currency to distribute as quotas; ``None`` uses the total potential.
    tolerance:
        Half-width of each rep's potential band around its target, as a share of target.
    num_candidates:
        Nearest reps (by travel) an account may go to, besides its current rep.
    max_travel_km:
        Candidates farther than this are dropped (the nearest one is always kept).
    rep_reach:
        Each rep is also a candidate for its nearest accounts until they hold this multiple
        of its target potential.
    columns:
        Per table (``accounts``, ``reps``, ``history``), our column names mapped to the
        input files' own names.
    max_widenings:
        When the relaxation proves the candidates too narrow, ``rep_reach`` doubles and
        ``num_candidates`` grows by 4, up to this many times, before the plan is called
        infeasible.
    balance:
        Extra balance measures, each mapped to its band half-width as a share of the rep's
        target (potential keeps ``tolerance``): ``account_count`` (accounts per rep),
        ``workload_h`` (visit hours per year: visits x minutes per visit; travel depends on
        the rep and is already bounded by each rep's capacity, so it is left out), or the
        name of any numeric accounts column (summed per rep). Targets follow the same
        per-rep shares as potential (``target_weight``, else capacity).
    named_accounts:
        ``account_id -> rep_id``: named accounts go to that rep whatever else happens
        (fixed, like locked accounts; the rep is made a candidate).
    transfer:
        Hard limits on moves against the current alignment (:class:`TransferSettings`).
    forbidden_pairs:
        ``[[account_id, rep_id], ...]``: that account never goes to that rep.
    rebalance:
        Budgets and protected accounts of a mid-year rebalance (:class:`RebalanceSettings`).
    capacity:
        Coverage, placement, ramp and attrition of capacity planning
        (:class:`territory_opt.capacity_settings.CapacitySettings`).
    """

    quota_total: float | None = None
    tolerance: float = 0.05
    num_candidates: int = 8
    max_travel_km: float = 400.0
    rep_reach: float = 2.0
    max_widenings: int = 3
    workload: WorkloadSettings = field(default_factory=WorkloadSettings)
    potential: PotentialSettings = field(default_factory=PotentialSettings)
    solve: SolveSettings = field(default_factory=lambda: SolveSettings(time_limit_s=120.0))
    columns: dict[str, dict[str, str]] = field(default_factory=dict)
    balance: dict[str, float] = field(default_factory=dict)
    named_accounts: dict[str, str] = field(default_factory=dict)
    transfer: TransferSettings = field(default_factory=TransferSettings)
    forbidden_pairs: list[list[str]] = field(default_factory=list)
    units: UnitSettings = field(default_factory=UnitSettings)
    rebalance: RebalanceSettings = field(default_factory=RebalanceSettings)
    capacity: CapacitySettings = field(default_factory=CapacitySettings)

    def __post_init__(self) -> None:
        bad = []
        for name, width in self.balance.items():
            if name == "potential":
                bad.append("balance.potential: the potential band is set by 'tolerance'")
            elif isinstance(width, bool) or not isinstance(width, int | float) or not width > 0:
                bad.append(f"balance.{name} must be a share > 0 of the target, got {width!r}")
        for acc, rep in self.named_accounts.items():
            if not isinstance(rep, str) or not rep:
                bad.append(f"named_accounts[{acc!r}] must be a rep_id (text), got {rep!r}")
        for k, pair in enumerate(self.forbidden_pairs):
            if (
                not isinstance(pair, list | tuple)
                or len(pair) != 2
                or not all(isinstance(x, str) for x in pair)
            ):
                bad.append(
                    f"forbidden_pairs[{k}] must be [account_id, rep_id] (two texts), got {pair!r}"
                )
        if not 0 < self.tolerance < 1:
            bad.append(f"tolerance must be in (0, 1), got {self.tolerance}")
        if self.num_candidates < 1:
            bad.append(f"num_candidates must be >= 1, got {self.num_candidates}")
        if self.quota_total is not None and not self.quota_total > 0:
            bad.append(f"quota_total must be > 0, got {self.quota_total}")
        if not self.max_travel_km > 0:
            bad.append(f"max_travel_km must be > 0, got {self.max_travel_km}")
        from .io import COLUMNS  # here, not at the top: io needs no config

        for table, mapping in self.columns.items():
            if table not in COLUMNS:
                bad.append(f"[columns.{table}] is not a table; use {sorted(COLUMNS)}")
                continue
            unknown = sorted(set(mapping) - set(COLUMNS[table]))
            if unknown:
                bad.append(
                    f"[columns.{table}] maps unknown column(s) {unknown}; known: "
                    f"{list(COLUMNS[table])}"
                )
        if bad:
            raise ValueError("invalid plan config: " + "; ".join(bad))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PlanConfig:
        data = dict(data)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown config key(s) {unknown}; known: {sorted(known)}")
        if "workload" in data:
            data["workload"] = _sub(WorkloadSettings, data["workload"], "workload")
        if "potential" in data:
            data["potential"] = _sub(PotentialSettings, data["potential"], "potential")
        if "solve" in data:
            data["solve"] = SolveSettings.from_dict(data["solve"])
        if "transfer" in data:
            data["transfer"] = _sub(TransferSettings, data["transfer"], "transfer")
        if "units" in data:
            data["units"] = _sub(UnitSettings, data["units"], "units")
        if "rebalance" in data:
            data["rebalance"] = _sub(RebalanceSettings, data["rebalance"], "rebalance")
        if "capacity" in data:
            data["capacity"] = _sub(CapacitySettings, data["capacity"], "capacity")
        return cls(**data)

    @classmethod
    def from_file(cls, path: str | Path) -> PlanConfig:
        path = Path(path)
        try:
            with open(path, "rb") as f:
                return cls.from_dict(tomllib.load(f))
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"{path}: not valid TOML ({exc})") from exc
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{path}: {exc}") from exc

    def with_overrides(
        self,
        *,
        quota_total: float | None = None,
        tolerance: float | None = None,
        time_limit_s: float | None = None,
        seed: int | None = None,
        workers: int | None = None,
    ) -> PlanConfig:
        """The CLI's flags win over the file's values."""
        top = {
            k: v
            for k, v in (("quota_total", quota_total), ("tolerance", tolerance))
            if v is not None
        }
        solve = {
            k: v
            for k, v in (("time_limit_s", time_limit_s), ("seed", seed), ("num_workers", workers))
            if v is not None
        }
        return replace(self, **top, solve=replace(self.solve, **solve))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_keys(cls, data, table: str) -> dict[str, Any]:
    """``data`` as a dict, after checking every key names a field of dataclass ``cls``.

    Unknown keys are an error naming the TOML table and the keys it accepts, so a typo in a
    settings file never goes unnoticed.
    """
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"unknown key(s) {unknown} in [{table}]; known: {sorted(known)}")
    return dict(data)


def _sub(cls, data: dict[str, Any], name: str):
    return cls(**check_keys(cls, data, name))

"""Capacity planning: how many reps the book needs, where new ones sit, when to hire them.

Four answers per segment (``"all"`` when reps have no segment), each with its arithmetic:

1. **Workload build-up** (``capacity.csv``). Each account costs
   ``visits x (minutes_per_visit / 60 + 2 x km x circuity / speed_kmh)`` hours per year
   (:mod:`territory_opt.workload`), with ``km`` the great-circle distance to the nearest
   current rep base of its segment (or ``typical_radius_km`` when set). Accounts are covered
   best first: ``must_cover_tiers`` first, then by potential per hour, until their potential
   reaches ``coverage`` x the segment's potential. Then
   ``required_fte = covered hours / (hours_per_fte x utilisation_target)`` and
   ``reps_needed = ceil(required_fte)``.
2. **Marginal value of a rep** (``curve.csv``). For ``k`` = current - span .. current + span
   reps: the bases come from the placement model (new reps added to the current ones, or
   which current reps to keep), the book covered is the best-first prefix of accounts whose
   build-up hours at those bases fit in ``utilisation_target`` x the k reps' capacity, and
   a real alignment solve (:func:`territory_opt.pipeline.plan`, checked by
   :mod:`solvers.check`) assigns it. **Covered potential** is the potential of the accounts
   in that checked plan, where every rep's workload (visits plus travel from its own base)
   is within its capacity and its potential within its band. When a solve finds no plan
   (proven infeasible, or none found within ``solve_time_limit_s``), the covered hours
   shrink by 5 % and it runs again, at most twice more; ``attempts`` and
   ``failed_attempts`` say what happened. Each point is therefore what a checked solve
   achieved in its time: a lower estimate of what k reps can cover.
3. **Where new reps sit** (``new_reps.csv``): the placement model
   (:mod:`territory_opt.capacity_placement`), a capacitated p-median MIP with bands over
   aggregated demand, current reps fixed, then the checked alignment of step 2.
4. **Hiring plan** (``hiring.csv``): hires per month keeping the effective FTE (ramp and
   attrition, :mod:`territory_opt.hiring`) at the required FTE through the plan year.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .atomic import atomic_dir
from .capacity_placement import aggregate_points, place_sites
from .capacity_settings import CapacitySettings
from .config import PlanConfig, PotentialSettings
from .errors import InfeasibleError
from .geo import haversine_km, nearest
from .hiring import hiring_plan
from .io import Inputs, validate_inputs
from .manifest import finite_or_none, header, json_default, sha256_file
from .potential import estimate_potential
from .workload import capacity_h, visits_per_year, workload_h

__all__ = ["CapacityPlan", "capacity_plan", "workload_buildup", "run_capacity_cli"]

log = logging.getLogger(__name__)

ALL = "all"
_KM_PER_DEG_LAT = 110.57
_KM_PER_DEG_LON = 111.32
_CLASSES = 4  # demand classes per cell: quartiles of potential per visit


@dataclass(frozen=True, eq=False)
class CapacityPlan:
    """Capacity answers for each segment; see the module docstring.

    ``buildup``: one row per segment (written as ``capacity.csv``); ``by_tier``: the same
    build-up per segment and tier; ``curve``: one row per segment and rep count;
    ``new_reps``: the bases of new reps at each rep count above the current one;
    ``hiring``: one row per segment and month; ``plans``: the checked plan of each curve
    point, keyed by ``(segment, reps)``.
    """

    buildup: pd.DataFrame
    by_tier: pd.DataFrame
    curve: pd.DataFrame
    new_reps: pd.DataFrame
    hiring: pd.DataFrame
    manifest: dict[str, Any]
    plans: dict[tuple[str, int], Any] = field(default_factory=dict)

    def summary(self) -> str:
        lines = []
        for row in self.buildup.itertuples():
            lines.append(f"{row.segment}: {row.arithmetic}")
            lines.append(
                f"  current {row.current_reps} reps ({row.current_fte:g} FTE); the build-up "
                f"needs {row.reps_needed} ({row.reps_gap:+d})"
            )
            curve = self.curve[self.curve["segment"] == row.segment]
            for c in curve.itertuples():
                if c.status in ("OPTIMAL", "FEASIBLE"):
                    text = (
                        f"covered {c.covered_pct:6.2f} %  worst dev {c.worst_dev_pct:5.2f} %  "
                        f"travel {c.travel_km_mean:6.1f} km  (gap {100 * c.gap:.1f} %)"
                    )
                else:
                    text = c.status
                if c.failed_attempts:
                    text += f"; before: {c.failed_attempts}"
                lines.append(f"  {c.reps:4d} reps ({c.change:+d}): {text}")
            hires = self.hiring[self.hiring["segment"] == row.segment]
            if len(hires):
                months = hires.loc[hires["hires"] > 0, ["month", "hires"]]
                when = ", ".join(f"{m.hires} in {m.month}" for m in months.itertuples())
                lines.append(
                    f"  hiring: {int(hires['hires'].sum())} hire(s)"
                    f"{': ' + when if when else ''}; least effective FTE in the plan year "
                    f"{hires.loc[hires['in_plan_year'], 'effective_fte'].min():.2f} against "
                    f"{hires['required_fte'].dropna().iloc[0]:.2f} required"
                )
        return "\n".join(lines)

    def plot(self, path: str | Path) -> Path:
        """The curve (covered potential, worst deviation, mean travel against the change in
        reps) and the hiring plan, one line per segment, as a PNG."""
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        fig = Figure(figsize=(11, 8))
        FigureCanvasAgg(fig)
        axes = fig.subplots(2, 2)
        panels = [
            ("covered_pct", "covered potential (%)"),
            ("worst_dev_pct", "worst potential deviation (%)"),
            ("travel_km_mean", "mean travel (km)"),
        ]
        for ax, (col, label) in zip(axes.ravel()[:3], panels, strict=True):
            for seg, c in self.curve.groupby("segment", sort=False):
                ok = c["status"].isin(["OPTIMAL", "FEASIBLE"])
                ax.plot(c.loc[ok, "change"], c.loc[ok, col], marker="o", label=seg)
            ax.axvline(0, color="0.6", linewidth=0.8)
            if col == "worst_dev_pct":
                band = 100 * self.manifest["config"]["tolerance"]
                ax.axhline(band, color="0.4", linestyle=":", label="band")
                ax.set_ylim(0, 1.3 * band)
            ax.set_xlabel("reps added (+) or removed (-) against today")
            ax.set_ylabel(label)
            ax.legend(fontsize=8)
        ax = axes[1, 1]
        for seg, h in self.hiring.groupby("segment", sort=False):
            x = np.arange(len(h))
            (line,) = ax.plot(x, h["effective_fte"], marker=".", label=f"{seg} effective FTE")
            ax.plot(x, h["required_fte"], linestyle="--", color=line.get_color())
            ax.bar(x, h["hires"], color=line.get_color(), alpha=0.35)
            ax.set_xticks(x[::3], h["month"].iloc[::3], rotation=30, fontsize=8)
        ax.set_ylabel("FTE (bars: hires; dashed: required)")
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = Path(path)
        fig.savefig(path, dpi=110)
        return path

    def write(self, out_dir: str | Path) -> Path:
        """Write every output at once (nothing partial on failure); returns the folder."""
        out_dir = Path(out_dir)
        with atomic_dir(out_dir) as tmp:
            self.buildup.to_csv(tmp / "capacity.csv", index=False, float_format="%.6f")
            self.by_tier.to_csv(tmp / "workload_by_tier.csv", index=False, float_format="%.6f")
            self.curve.to_csv(tmp / "curve.csv", index=False, float_format="%.6f")
            self.new_reps.to_csv(tmp / "new_reps.csv", index=False, float_format="%.6f")
            self.hiring.to_csv(tmp / "hiring.csv", index=False, float_format="%.6f")
            self.plot(tmp / "capacity.png")
            (tmp / "summary.txt").write_text(self.summary() + "\n")
            with open(tmp / "manifest.json", "w") as f:
                json.dump(self.manifest, f, indent=2, default=json_default)
                f.write("\n")
        return out_dir


# --- 1. workload build-up ----------------------------------------------------------------


def _segments(inputs: Inputs) -> tuple[np.ndarray, np.ndarray]:
    """Each account's and each rep's segment pool (``"all"`` without segments)."""
    reps, acc = inputs.reps, inputs.accounts
    if "segment" in reps and reps["segment"].notna().any():
        return acc["segment"].astype(str).to_numpy(), reps["segment"].astype(str).to_numpy()
    return np.full(len(acc), ALL), np.full(len(reps), ALL)


def _hours(accounts, reps, config: PlanConfig, settings: CapacitySettings):
    """Build-up hours per account (visits + round trips) and the km they assume."""
    visits = visits_per_year(accounts, config.workload)
    if settings.typical_radius_km is not None:
        km = np.full(len(accounts), float(settings.typical_radius_km))
    else:
        _, dist = nearest(
            accounts["lat"].to_numpy(float),
            accounts["lon"].to_numpy(float),
            reps["lat"].to_numpy(float),
            reps["lon"].to_numpy(float),
            1,
        )
        km = dist[:, 0]
    return visits, km, workload_h(visits, km, config.workload)


def _priority(accounts, potential, hours, settings: CapacitySettings) -> np.ndarray:
    """Accounts best first: must-cover tiers, then potential per hour, then account id."""
    must = _must(accounts, settings)
    density = potential / np.maximum(hours, 1e-9)
    return np.lexsort((accounts["account_id"].to_numpy(str), -density, ~must))


def _must(accounts, settings: CapacitySettings) -> np.ndarray:
    if not settings.must_cover_tiers or "tier" not in accounts:
        return np.zeros(len(accounts), bool)
    return accounts["tier"].astype(str).isin(settings.must_cover_tiers).to_numpy()


def _covered_by_potential(order, potential, must, coverage) -> int:
    """Length of the shortest best-first prefix holding ``coverage`` of the potential and
    every must-cover account."""
    cum = np.cumsum(potential[order])
    need = coverage * cum[-1] if cum.size else 0.0
    by_share = int(np.searchsorted(cum, need * (1 - 1e-12))) + 1
    return min(max(by_share, int(must.sum())), order.size)


def workload_buildup(
    inputs: Inputs,
    config: PlanConfig,
    settings: CapacitySettings,
    potential: pd.Series | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Workload build-up per segment and per segment x tier (hours per year).

    Returns ``(by_segment, by_tier)``; see the module docstring for the arithmetic.
    """
    if potential is None:
        potential, _ = estimate_potential(inputs.accounts, inputs.history, config.potential)
    acc_seg, rep_seg = _segments(inputs)
    pot_all = potential.reindex(inputs.accounts.index).to_numpy(float)
    hpf = config.workload.hours_per_fte
    rows, tiers = [], []
    for seg in sorted(set(rep_seg)):
        a_mask = acc_seg == seg
        acc = inputs.accounts[a_mask]
        reps = inputs.reps[rep_seg == seg]
        pot = pot_all[a_mask]
        visits, km, hours = _hours(acc, reps, config, settings)
        order = _priority(acc, pot, hours, settings)
        n_cov = _covered_by_potential(order, pot, _must(acc, settings), settings.coverage)
        covered = np.zeros(len(acc), bool)
        covered[order[:n_cov]] = True
        visit_h = visits * config.workload.minutes_per_visit / 60.0
        need_h = float(hours[covered].sum())
        fte_needed = need_h / (hpf * settings.utilisation_target)
        reps_needed = math.ceil(fte_needed - 1e-9)
        cap = capacity_h(reps, config.workload)
        basis = (
            "nearest current rep base"
            if settings.typical_radius_km is None
            else f"typical radius {settings.typical_radius_km:g} km"
        )
        rows.append(
            {
                "segment": seg,
                "accounts": int(a_mask.sum()),
                "accounts_covered": int(n_cov),
                "potential": float(pot.sum()),
                "potential_covered": float(pot[covered].sum()),
                "coverage_pct": 100 * float(pot[covered].sum()) / max(float(pot.sum()), 1e-12),
                "visits": float(visits[covered].sum()),
                "visit_h": float(visit_h[covered].sum()),
                "travel_h": float((hours - visit_h)[covered].sum()),
                "workload_h": need_h,
                "travel_km_mean": float(km[covered].mean()) if n_cov else 0.0,
                "travel_basis": basis,
                "hours_per_fte": hpf,
                "utilisation_target": settings.utilisation_target,
                "required_fte": fte_needed,
                "reps_needed": reps_needed,
                "current_reps": len(reps),
                "current_fte": float(reps["fte"].sum()),
                "current_capacity_h": float(cap.sum()),
                "reps_gap": reps_needed - len(reps),
                "arithmetic": (
                    f"{need_h:,.0f} h/yr ({visit_h[covered].sum():,.0f} h visits + "
                    f"{(hours - visit_h)[covered].sum():,.0f} h travel, {basis}) for "
                    f"{n_cov:,} accounts holding {100 * settings.coverage:g} % of potential"
                    f" / ({hpf:,.0f} h per FTE x {settings.utilisation_target:g}) = "
                    f"{fte_needed:.2f} FTE -> {reps_needed} reps"
                ),
            }
        )
        tier = acc["tier"].astype(str).to_numpy() if "tier" in acc else np.full(len(acc), "-")
        for t in sorted(set(tier)):
            m = tier == t
            tiers.append(
                {
                    "segment": seg,
                    "tier": t,
                    "accounts": int(m.sum()),
                    "accounts_covered": int((m & covered).sum()),
                    "visits_per_account": float(visits[m].mean()),
                    "visit_h": float(visit_h[m & covered].sum()),
                    "travel_h": float((hours - visit_h)[m & covered].sum()),
                    "workload_h": float(hours[m & covered].sum()),
                    "potential_covered": float(pot[m & covered].sum()),
                }
            )
    return pd.DataFrame(rows), pd.DataFrame(tiers)


# --- 2 and 3. placement and the marginal-value curve ---------------------------------------


def _plane_km(lat: np.ndarray, lon: np.ndarray, lat0: float) -> tuple[np.ndarray, np.ndarray]:
    return lon * _KM_PER_DEG_LON * np.cos(np.radians(lat0)), lat * _KM_PER_DEG_LAT


@dataclass(frozen=True)
class _Demand:
    lat: np.ndarray
    lon: np.ndarray
    potential: np.ndarray
    visits: np.ndarray
    must: np.ndarray


def _demand_and_sites(acc, pot, visits, must, settings: CapacitySettings):
    """Aggregated demand points and candidate sites.

    Demand points: accounts grouped by square cell (at most ``num_demand_points / 4``
    cells), must-cover flag and quartile of potential per visit, so the model can give a
    cell's high-value and low-value accounts to different reps; each point sits at its
    accounts' visit-weighted centre. Sites: the account nearest the centre of each of at
    most ``num_sites`` cells.
    """
    lat, lon = acc["lat"].to_numpy(float), acc["lon"].to_numpy(float)
    x, y = _plane_km(lat, lon, float(lat.mean()))
    cell = aggregate_points(x, y, max(1, settings.num_demand_points // _CLASSES))
    density = pot / np.maximum(visits, 1e-9)
    cuts = np.quantile(density, np.linspace(0, 1, _CLASSES + 1)[1:-1]) if len(acc) else []
    klass = np.searchsorted(cuts, density)
    key = (cell * 2 + must.astype(int)) * _CLASSES + klass
    _, point = np.unique(key, return_inverse=True)
    point = point.ravel()
    w = np.maximum(visits, 1e-9)
    demand = _Demand(
        lat=_sums(point, lat * w) / _sums(point, w),
        lon=_sums(point, lon * w) / _sums(point, w),
        potential=_sums(point, pot),
        visits=_sums(point, visits),
        must=_sums(point, must.astype(float)) > 0,
    )
    site_cell = aggregate_points(x, y, settings.num_sites)
    cx = _sums(site_cell, x * w) / _sums(site_cell, w)
    cy = _sums(site_cell, y * w) / _sums(site_cell, w)
    d2 = (x - cx[site_cell]) ** 2 + (y - cy[site_cell]) ** 2
    order = np.lexsort((acc["account_id"].to_numpy(str), d2, site_cell))
    first = np.r_[True, site_cell[order][1:] != site_cell[order][:-1]]
    sites = order[first]
    return demand, sites


def _sums(group: np.ndarray, values: np.ndarray) -> np.ndarray:
    return np.bincount(group, weights=values)


def _place(demand, site_lat, site_lon, site_cap, site_fixed, num_open, config, settings):
    km = haversine_km(
        demand.lat[:, None], demand.lon[:, None], site_lat[None, :], site_lon[None, :]
    )
    return place_sites(
        km,
        demand.potential,
        demand.visits,
        demand.must,
        site_cap,
        site_fixed,
        num_open,
        minutes_per_visit=config.workload.minutes_per_visit,
        circuity=config.workload.circuity,
        speed_kmh=config.workload.speed_kmh,
        tolerance=config.tolerance,
        utilisation=1.0,
        num_links=settings.num_links,
        time_limit_s=settings.placement_time_limit_s,
    )


def _new_rep_rows(reps, seg, lat, lon, site_ids, settings, config, start):
    """Rows of new reps at the chosen bases, in the reps table's columns."""
    rows = []
    for j, (la, lo, site) in enumerate(zip(lat, lon, site_ids, strict=True), start=1):
        rid = f"NEW-{seg}-{j:02d}" if seg != ALL else f"NEW-{j:02d}"
        row = {"rep_id": rid, "lat": la, "lon": lo, "fte": settings.new_rep_fte}
        if "segment" in reps:
            row["segment"] = None if seg == ALL else seg
        if "capacity_h" in reps:
            row["capacity_h"] = settings.new_rep_fte * config.workload.hours_per_fte
        if "start_date" in reps:
            row["start_date"] = start
        if "target_weight" in reps and reps["target_weight"].notna().any():
            row["target_weight"] = float(reps["target_weight"].median())
        row["site_account_id"] = site
        rows.append(row)
    return pd.DataFrame(rows)


def _sub_config(config: PlanConfig, settings: CapacitySettings, accounts, reps) -> PlanConfig:
    """The plan settings for one curve point: potential given, short solve, and named
    accounts and forbidden pairs only where both sides are in the sub-book."""
    acc_ids, rep_ids = set(accounts["account_id"]), set(reps["rep_id"])
    named = {a: r for a, r in config.named_accounts.items() if a in acc_ids and r in rep_ids}
    forbidden = [p for p in config.forbidden_pairs if p[0] in acc_ids and p[1] in rep_ids]
    return replace(
        config,
        potential=PotentialSettings(method="column"),
        named_accounts=named,
        forbidden_pairs=forbidden,
        solve=replace(config.solve, time_limit_s=settings.solve_time_limit_s),
    )


def _solve_point(acc, reps, pot, config, settings, budget_h):
    """Cover the best-first accounts fitting ``budget_h`` at these bases, then plan them.

    Returns ``(plan or None, covered mask, failures)``: one ``(accounts, reason)`` per
    attempt without a plan, the reason ``"time"`` (none found within the time limit) or
    ``"infeasible"`` (the settings admit none).
    """
    from .pipeline import plan as run_plan

    _, _, hours = _hours(acc, reps, config, settings)
    order = _priority(acc, pot, hours, settings)
    must = _must(acc, settings)
    cum = np.cumsum(hours[order])
    failures: list[tuple[int, str]] = []
    for _ in range(3):
        take = max(int(np.searchsorted(cum, budget_h * (1 + 1e-12), side="right")), int(must.sum()))
        take = max(take, 1)
        covered = np.zeros(len(acc), bool)
        covered[order[:take]] = True
        sub = acc[covered].assign(potential=pot[covered])
        known = set(reps["rep_id"])
        gone = ~sub["current_rep_id"].isin(known)
        sub = sub.assign(
            current_rep_id=sub["current_rep_id"].where(~gone, None),
            locked=sub["locked"] & ~gone,
        )
        inputs = validate_inputs(sub.reset_index(drop=True), reps.reset_index(drop=True))
        cfg = _sub_config(config, settings, sub, reps)
        try:
            return run_plan(inputs, cfg), covered, failures
        except InfeasibleError as exc:
            reason = "time" if all(f.rule == "time" for f in exc.findings) else "infeasible"
            failures.append((take, reason))
            log.info("no plan with %d accounts (%s); covering 5 %% fewer hours", take, reason)
            budget_h = 0.95 * float(cum[take - 1])
    return None, covered, failures


def _curve(seg, acc, reps, pot, config, settings, start):
    """The marginal-value curve of one segment: rows, new-rep rows, checked plans, stats."""
    cur = len(reps)
    visits, _, _ = _hours(acc, reps, config, settings)
    must = _must(acc, settings)
    demand, site_idx = _demand_and_sites(acc, pot, visits, must, settings)
    cap_now = capacity_h(reps, config.workload)
    new_cap = settings.new_rep_fte * config.workload.hours_per_fte
    rows, new_rows, plans = [], [], {}
    for k in range(max(1, cur - settings.span), cur + settings.span + 1):
        t0 = time.perf_counter()
        placement = None
        if k == cur:
            reps_k, new = reps, pd.DataFrame()
        elif k > cur:
            s_lat = np.r_[reps["lat"].to_numpy(float), acc["lat"].to_numpy(float)[site_idx]]
            s_lon = np.r_[reps["lon"].to_numpy(float), acc["lon"].to_numpy(float)[site_idx]]
            s_cap = np.r_[cap_now, np.full(site_idx.size, new_cap)]
            fixed = np.r_[np.ones(cur, bool), np.zeros(site_idx.size, bool)]
            placement = _place(demand, s_lat, s_lon, s_cap, fixed, k - cur, config, settings)
        else:
            placement = _place(
                demand,
                reps["lat"].to_numpy(float),
                reps["lon"].to_numpy(float),
                cap_now,
                np.zeros(cur, bool),
                k,
                config,
                settings,
            )
        if placement is not None and placement.status not in ("OPTIMAL", "FEASIBLE", "LP_ROUNDED"):
            log.warning("%s: the placement MIP for %d reps ended %s", seg, k, placement.status)
            row = _row(seg, k, cur, None, placement, None, None, [], t0, pot, config)
            rows.append(row | {"status": "no placement"})
            continue
        if k > cur:
            chosen = np.flatnonzero(placement.open[cur:])
            new = _new_rep_rows(
                reps,
                seg,
                s_lat[cur + chosen],
                s_lon[cur + chosen],
                acc["account_id"].to_numpy(str)[site_idx[chosen]],
                settings,
                config,
                start,
            )
            reps_k = pd.concat([reps, new.drop(columns="site_account_id")], ignore_index=True)
        elif k < cur:
            reps_k, new = reps[placement.open], pd.DataFrame()
        budget = settings.utilisation_target * float(capacity_h(reps_k, config.workload).sum())
        log.info("%s: %d reps (%+d), solving", seg, k, k - cur)
        result, covered, failures = _solve_point(acc, reps_k, pot, config, settings, budget)
        row = _row(seg, k, cur, reps_k, placement, result, covered, failures, t0, pot, config)
        if result is None:
            row["status"] = "no plan in time" if failures[-1][1] == "time" else "infeasible"
        rows.append(row)
        if result is not None:
            plans[(seg, k)] = result
        if len(new):
            terr = result.territories.set_index("rep_id") if result is not None else None
            for r in new.itertuples():
                entry = {
                    "segment": seg,
                    "reps": k,
                    "rep_id": r.rep_id,
                    "lat": r.lat,
                    "lon": r.lon,
                    "site_account_id": r.site_account_id,
                    "accounts": np.nan,
                    "potential": np.nan,
                    "workload_h": np.nan,
                    "travel_km_mean": np.nan,
                }
                if terr is not None:
                    t = terr.loc[r.rep_id]
                    entry |= {
                        "accounts": int(t["accounts"]),
                        "potential": float(t["potential"]),
                        "workload_h": float(t["workload_h"]),
                        "travel_km_mean": float(t["travel_km_mean"]),
                    }
                new_rows.append(entry)
    curve = pd.DataFrame(rows)
    ok = curve["status"].isin(["OPTIMAL", "FEASIBLE"])
    for col in ("covered_pct", "travel_km_mean"):
        curve[f"delta_{col}"] = curve[col].where(ok).diff()
    return curve, new_rows, plans


def _row(seg, k, cur, reps_k, placement, result, covered, failures, t0, pot, config):
    row = {
        "segment": seg,
        "reps": k,
        "change": k - cur,
        "fte": np.nan if reps_k is None else float(reps_k["fte"].sum()),
        "capacity_h": np.nan
        if reps_k is None
        else float(capacity_h(reps_k, config.workload).sum()),
        "placement_status": "current reps" if placement is None else placement.status,
        "placement_gap": 0.0 if placement is None else placement.gap,
        "placement_covered_pct": 100.0 if placement is None else 100 * placement.covered_share,
        "status": "no plan",
        "accounts_covered": 0,
        "potential_covered": 0.0,
        "covered_pct": np.nan,
        "worst_dev_pct": np.nan,
        "travel_km_mean": np.nan,
        "utilisation_max": np.nan,
        "objective": np.nan,
        "bound": np.nan,
        "gap": np.nan,
        "check": "",
        "reproducible": False,
        "attempts": len(failures or []) + (result is not None),
        "failed_attempts": "; ".join(
            f"{'no plan in time' if why == 'time' else 'infeasible'} with {n:,} accounts"
            for n, why in failures or []
        ),
        "solve_s": time.perf_counter() - t0,
    }
    if result is not None:
        terr = result.territories
        row |= {
            "status": result.result.status,
            "accounts_covered": int(covered.sum()),
            "potential_covered": float(pot[covered].sum()),
            "covered_pct": 100 * float(pot[covered].sum()) / max(float(pot.sum()), 1e-12),
            "worst_dev_pct": float(100 * result.check.max_band_dev[0]),
            "travel_km_mean": float(result.assignments["travel_km"].mean()),
            "utilisation_max": float(terr["utilisation"].max()),
            "objective": result.result.objective,
            "bound": result.result.bound,
            "gap": result.result.gap,
            "check": "passed" if result.check.ok else "FAILED",
            "reproducible": bool(result.manifest["solver"]["reproducible"]),
        }
    return row


# --- 4. the whole analysis -----------------------------------------------------------------


def _plan_start(inputs: Inputs, settings: CapacitySettings) -> pd.Period:
    if settings.plan_start is not None:
        return pd.Period(settings.plan_start, freq="M")
    starts = inputs.reps.get("start_date", pd.Series([], dtype="datetime64[ns]"))
    if starts.notna().any():
        return pd.Period(f"{starts.max().year + 1}-01", freq="M")
    raise ValueError(
        "capacity.plan_start is not set and the reps have no start_date to take the plan year "
        "from; set plan_start = 'YYYY-MM' in [capacity] or pass --plan-start"
    )


def capacity_plan(
    inputs: Inputs,
    config: PlanConfig | None = None,
    settings: CapacitySettings | None = None,
    *,
    segments: list[str] | None = None,
) -> CapacityPlan:
    """Build-up, marginal-value curve with placements, and hiring plan, per segment.

    ``settings`` default to ``config.capacity`` (the ``[capacity]`` table); ``segments``
    limits the analysis (default: every segment the reps cover). Raises ``ValueError`` for
    an unknown segment or a missing plan year.
    """
    config = config or PlanConfig()
    settings = settings or config.capacity
    config = replace(config, capacity=settings)  # the manifest records what was used
    t_all = time.perf_counter()
    potential, method = estimate_potential(inputs.accounts, inputs.history, config.potential)
    acc_seg, rep_seg = _segments(inputs)
    known = sorted(set(rep_seg))
    chosen = known if not segments else list(segments)
    unknown = [s for s in chosen if s not in known]
    if unknown:
        raise ValueError(f"unknown segment(s) {unknown}; the reps cover {known}")
    unknown_t = sorted(set(settings.target_fte) - set(known))
    if unknown_t:
        raise ValueError(
            f"capacity.target_fte names unknown segment(s) {unknown_t}; the reps cover {known}"
        )
    start = _plan_start(inputs, settings)
    buildup, by_tier = workload_buildup(inputs, config, settings, potential)
    buildup = buildup[buildup["segment"].isin(chosen)].reset_index(drop=True)
    by_tier = by_tier[by_tier["segment"].isin(chosen)].reset_index(drop=True)
    curves, new_rows, plans, hires, hire_stats = [], [], {}, [], {}
    pot_all = potential.reindex(inputs.accounts.index).to_numpy(float)
    for seg in chosen:
        acc = inputs.accounts[acc_seg == seg]
        reps = inputs.reps[rep_seg == seg]
        curve, new, seg_plans = _curve(
            seg, acc, reps, pot_all[acc_seg == seg], config, settings, start.start_time
        )
        curves.append(curve)
        new_rows += new
        plans |= seg_plans
        need = buildup.loc[buildup["segment"] == seg, "required_fte"].iloc[0]
        required = float(settings.target_fte.get(seg, need))
        hp = hiring_plan(
            reps["fte"].to_numpy(float),
            reps["start_date"] if "start_date" in reps else np.full(len(reps), pd.NaT),
            required,
            plan_start=start,
            ramp_months=settings.ramp_months,
            monthly_hazard=settings.monthly_hazard,
            lead_months=settings.effective_lead_months,
            new_fte=settings.new_rep_fte,
            max_hires_per_month=settings.max_hires_per_month,
        )
        hires.append(hp.table.assign(segment=seg)[["segment", *hp.table.columns]])
        hire_stats[seg] = {"status": hp.status, "hires": hp.total_hires, "required_fte": required}
    curve = pd.concat(curves, ignore_index=True)
    new_cols = [
        "segment",
        "reps",
        "rep_id",
        "lat",
        "lon",
        "site_account_id",
        "accounts",
        "potential",
        "workload_h",
        "travel_km_mean",
    ]
    new_reps = pd.DataFrame(new_rows, columns=new_cols)
    hiring = pd.concat(hires, ignore_index=True)
    manifest = _manifest(inputs, config, settings, method, start, buildup, curve, hire_stats, t_all)
    return CapacityPlan(buildup, by_tier, curve, new_reps, hiring, manifest, plans)


def _manifest(inputs, config, settings, method, start, buildup, curve, hire_stats, t_all):
    files = {
        name: {"path": path, "sha256": sha256_file(path)}
        for name, path in inputs.sources.items()
        if Path(path).exists()
    }
    solved = curve["status"].isin(["OPTIMAL", "FEASIBLE"])
    return {
        **header(config, files),
        "capacity": {
            "settings": asdict(settings),
            "potential_method": method,
            "plan_start": str(start),
            "monthly_hazard": settings.monthly_hazard,
            "ramp": "productivity in tenure month n = min(1, n / ramp_months)",
            "buildup": {
                r.segment: {
                    "arithmetic": r.arithmetic,
                    "required_fte": r.required_fte,
                    "reps_needed": r.reps_needed,
                    "current_reps": r.current_reps,
                }
                for r in buildup.itertuples()
            },
            "curve": {
                "points": int(len(curve)),
                "solved": int(solved.sum()),
                "checked": int((curve["check"] == "passed").sum()),
                "covered_potential": "potential of the accounts in the checked plan: the "
                "best-first accounts whose build-up hours fit utilisation_target x capacity, "
                "5 % fewer hours after each attempt without a plan (failed_attempts)",
                "worst_gap": finite_or_none(float(curve.loc[solved, "gap"].max()))
                if solved.any()
                else None,
            },
            "hiring": hire_stats,
            # Plans stopped by the clock (or placement MIPs) depend on the machine's speed.
            "reproducible": bool(curve.loc[solved, "reproducible"].all())
            and bool(curve["placement_status"].isin(["OPTIMAL", "current reps"]).all()),
            "runtime_s": time.perf_counter() - t_all,
        },
    }


def run_capacity_cli(
    accounts,
    reps,
    history,
    config: PlanConfig,
    *,
    segment: str | None = None,
    span: int | None = None,
    coverage: float | None = None,
    must_cover: str | None = None,
    utilisation: float | None = None,
    time_limit: float | None = None,
    plan_start: str | None = None,
    ramp_months: int | None = None,
    attrition: float | None = None,
    target_fte: float | None = None,
) -> CapacityPlan:
    """``territory-opt capacity``: the flags win over ``[capacity]``; load, validate, plan."""
    from .io import load_inputs

    given = {
        "span": span,
        "coverage": coverage,
        "utilisation_target": utilisation,
        "solve_time_limit_s": time_limit,
        "plan_start": plan_start,
        "ramp_months": ramp_months,
        "annual_attrition": attrition,
    }
    given = {k: v for k, v in given.items() if v is not None}
    if must_cover is not None:
        given["must_cover_tiers"] = tuple(t.strip() for t in must_cover.split(",") if t.strip())
    segments = [s.strip() for s in segment.split(",") if s.strip()] if segment else None
    settings = replace(config.capacity, **given)  # validates the flags before any loading
    inputs = load_inputs(accounts, reps, history, columns=config.columns)
    if target_fte is not None:
        pools = segments or sorted(set(_segments(inputs)[1]))
        if len(pools) != 1:
            raise ValueError(
                f"--target-fte applies to one segment; name one of {pools} with --segment"
            )
        settings = replace(settings, target_fte={**settings.target_fte, pools[0]: target_fte})
    config = replace(config, capacity=settings)
    return capacity_plan(inputs, config, settings, segments=segments)

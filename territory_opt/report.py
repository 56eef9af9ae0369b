"""Output tables, the map and the terminal summary of a plan."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .problem import PlanningProblem
from .quotas import headcount_quotas, potential_quotas

__all__ = ["assignment_table", "territory_table", "balance_column", "render_map", "summary_text"]


def assignment_table(pp: PlanningProblem, assignment: np.ndarray) -> pd.DataFrame:
    """One row per account: rep, potential (currency/yr), hours/yr, km, previous rep, moved."""
    p = pp.problem
    pairs = p.pair_index(np.arange(p.num_units), assignment)
    prev = np.where(p.current_rep >= 0, pp.rep_ids[np.maximum(p.current_rep, 0)], "")
    rep = pp.rep_ids[assignment]
    return pd.DataFrame(
        {
            "account_id": pp.account_ids,
            "rep_id": rep,
            "potential": pp.potential,
            "workload_h": p.pair_workload_h[pairs],
            "travel_km": pp.pair_travel_km[pairs],
            "previous_rep_id": prev,
            "moved": (prev != "") & (prev != rep),
        }
    )


def territory_table(
    pp: PlanningProblem, assignments: pd.DataFrame, quota_total: float
) -> pd.DataFrame:
    """One row per rep: size, potential against target, workload against capacity, quotas;
    then each extra balance measure (value, ``target_*``, ``*_dev_pct``) and, with transfer
    limits, ``kept_accounts_share`` and ``kept_potential_share`` (of the rep's current
    book; empty for a rep with no current book)."""
    p = pp.problem
    g = assignments.groupby("rep_id")
    ids = pd.Index(pp.rep_ids, name="rep_id")
    potential = g["potential"].sum().reindex(ids).fillna(0.0).to_numpy()
    target = p.measure_target[:, 0]
    workload = g["workload_h"].sum().reindex(ids).fillna(0.0).to_numpy()
    table = pd.DataFrame(
        {
            "rep_id": pp.rep_ids,
            "accounts": g.size().reindex(ids).fillna(0).astype(int).to_numpy(),
            "potential": potential,
            "target_potential": target,
            "potential_dev_pct": 100 * (potential - target) / np.where(target > 0, target, 1),
            "workload_h": workload,
            "capacity_h": p.capacity_h,
            "utilisation": workload / np.where(p.capacity_h > 0, p.capacity_h, np.nan),
            "travel_km_mean": g["travel_km"].mean().reindex(ids).fillna(0.0).to_numpy(),
            "quota": potential_quotas(quota_total, potential),
            "quota_headcount": headcount_quotas(quota_total, len(ids)),
        }
    )
    return _with_balance_and_transfer(pp, assignments, table)


def balance_column(name: str) -> str:
    """Territory-table column of an extra balance measure (prefixed when the name is taken,
    as ``workload_h`` is by the rep's total hours)."""
    return f"balance_{name}" if name in _BASE_COLUMNS else name


_BASE_COLUMNS = (
    "rep_id",
    "accounts",
    "potential",
    "target_potential",
    "potential_dev_pct",
    "workload_h",
    "capacity_h",
    "utilisation",
    "travel_km_mean",
    "quota",
    "quota_headcount",
)


def _with_balance_and_transfer(
    pp: PlanningProblem, assignments: pd.DataFrame, table: pd.DataFrame
) -> pd.DataFrame:
    """Per extra balance measure: value, target and deviation %; with transfer limits, the
    share of each rep's current accounts and potential that stays with it."""
    p = pp.problem
    unit = pd.Index(pp.account_ids).get_indexer(assignments["account_id"])
    rep = pd.Index(pp.rep_ids).get_indexer(assignments["rep_id"])
    for j in range(1, p.num_measures):
        col = balance_column(p.measure_names[j])
        value = np.bincount(rep, weights=p.unit_measure[unit, j], minlength=p.num_reps)
        target = p.measure_target[:, j]
        table[col] = value
        table[f"target_{col}"] = target
        table[f"{col}_dev_pct"] = 100 * (value - target) / np.where(target > 0, target, 1)
    if p.num_keep:
        prev = assignments["previous_rep_id"]
        kept = assignments[(prev != "") & (prev == assignments["rep_id"])]
        book = assignments[prev != ""]
        ids = pd.Index(pp.rep_ids)
        for what, kept_v, book_v in (
            ("accounts", kept.groupby("rep_id").size(), book.groupby("previous_rep_id").size()),
            (
                "potential",
                kept.groupby("rep_id")["potential"].sum(),
                book.groupby("previous_rep_id")["potential"].sum(),
            ),
        ):
            k = kept_v.reindex(ids).fillna(0.0).to_numpy(float)
            b = book_v.reindex(ids).fillna(0.0).to_numpy(float)
            with np.errstate(divide="ignore", invalid="ignore"):
                table[f"kept_{what}_share"] = np.where(b > 0, k / b, np.nan)
    return table


def render_map(
    accounts: pd.DataFrame,
    reps: pd.DataFrame,
    assignments: pd.DataFrame,
    path: str | Path,
    *,
    boundaries=None,
    title: str = "Territory plan",
) -> None:
    """Accounts coloured by rep, rep bases as black stars, optional polygon boundaries.

    With rep segments, one panel per segment, since territories of different segments
    overlap. Uses a figure without pyplot, so no global matplotlib state changes.
    """
    segments = (
        sorted(reps["segment"].dropna().astype(str).unique())
        if "segment" in reps and reps["segment"].notna().any()
        else [None]
    )
    fig = Figure(figsize=(7.5 * len(segments), 8.5), dpi=100)
    FigureCanvasAgg(fig)
    acc = accounts.set_index("account_id").loc[assignments["account_id"]]
    rep_of = assignments["rep_id"].to_numpy(str)
    aspect = 1 / np.cos(np.radians(float(reps["lat"].mean())))
    for k, segment in enumerate(segments):
        ax = fig.add_subplot(1, len(segments), k + 1)
        these = reps if segment is None else reps[reps["segment"].astype(str) == segment]
        ids = these["rep_id"].to_numpy(str)
        # Neighbouring reps get far-apart hues: a fixed shuffle of the palette.
        hues = np.random.default_rng(0).permutation(len(ids)) / max(1, len(ids))
        colour = dict(zip(ids, colormaps["hsv"](hues), strict=True))
        mask = np.isin(rep_of, ids)
        if boundaries is not None:
            boundaries.boundary.plot(ax=ax, color="0.75", linewidth=0.4)
        ax.scatter(
            acc["lon"].to_numpy()[mask],
            acc["lat"].to_numpy()[mask],
            s=2,
            c=np.array([colour[r] for r in rep_of[mask]]),
            linewidths=0,
            alpha=0.8,
        )
        ax.scatter(these["lon"], these["lat"], s=60, marker="*", c="black", label="rep base")
        ax.set_title(title if segment is None else f"{title}: {segment} ({len(ids)} reps)")
        ax.set_xlabel("longitude")
        ax.set_ylabel("latitude")
        ax.set_aspect(aspect)
        ax.legend(loc="lower left")
    fig.savefig(path, bbox_inches="tight")


def summary_text(territories: pd.DataFrame, manifest: dict) -> str:
    """A short plain-text summary for the terminal and ``summary.txt``."""
    s = manifest["solver"]
    dev = territories["potential_dev_pct"].abs()
    moved = manifest["plan"]["moved_accounts"]
    quota_diff = (territories["quota"] - territories["quota_headcount"]).abs()
    lines = [
        f"Plan for {manifest['plan']['accounts']:,} accounts and {len(territories)} reps "
        f"(potential: {manifest['plan']['potential_method']})",
        f"  solver        {s['status']} in {s['runtime_s']:.1f} s; objective "
        f"{s['objective']:,.4g}, bound {s['bound']:,.4g}, gap {100 * s['gap']:.2f} % "
        f"({s['stop_reason']})",
        f"  check         {manifest['check']['result']}",
        f"  potential     worst deviation from target {dev.max():.2f} % "
        f"(band +-{100 * manifest['config']['tolerance']:.1f} %); before: "
        f"{manifest['plan']['before_worst_dev_pct']:.1f} %",
        f"  workload      utilisation {territories['utilisation'].min():.0%} to "
        f"{territories['utilisation'].max():.0%}",
        f"  travel        mean {manifest['plan']['travel_km_mean']:.1f} km per account",
        f"  moved         {moved:,} accounts ({manifest['plan']['moved_potential_pct']:.1f} % "
        "of potential)",
        f"  quotas        total {manifest['plan']['quota_total']:,.0f}; potential-based quotas "
        f"differ from headcount quotas by up to {quota_diff.max():,.0f} per rep",
    ]
    return "\n".join(lines)

"""A rebalance's tables and reports: assignments with move reasons, territories with ramped
quotas, the diff (every move, every rep before and after), the frontier, the manifest."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from solvers.check import check_plan

from .balance import pool_targets, target_weights
from .config import TransferSettings
from .geo import haversine_km
from .manifest import finite_or_none, header, json_default, sha256_file
from .report import assignment_table, territory_table
from .verify import verify_tables
from .workload import capacity_h, visits_per_year, workload_h

__all__ = ["build_result", "summary_text", "write_outputs", "move_reasons"]


def _assignments(pp, full: np.ndarray, previous: np.ndarray) -> pd.DataFrame:
    """The plan's assignment table with ``previous_rep_id`` the previous plan's rep (a rep
    who is gone included) and ``moved`` against it."""
    table = assignment_table(pp, full)
    table["previous_rep_id"] = previous
    table["moved"] = table["rep_id"].to_numpy(str) != previous
    return table


def move_reasons(b, table: pd.DataFrame) -> np.ndarray:
    """Why each moved account moved ('' for those that stay): the change or the rule that
    required the move, or the objective term that chose it."""
    p = b.pp.problem
    rep_pos = pd.Series(np.arange(p.num_reps), index=b.pp.rep_ids)
    moved = table["moved"].to_numpy(bool)
    src = table["previous_rep_id"].to_numpy(str)
    dst = table["rep_id"].to_numpy(str)
    pot = table["potential"].to_numpy(float)
    after = np.bincount(rep_pos[dst].to_numpy(), weights=pot, minlength=p.num_reps)
    m_src, m_dst = src[moved], dst[moved]
    inflow = pd.Series(pot[moved]).groupby(m_dst).sum()
    outflow = pd.Series(pot[moved]).groupby(m_src).sum()
    in_from = pd.Series(m_src).groupby(m_dst).agg(lambda s: sorted(set(s)))
    out_to = pd.Series(m_dst).groupby(m_src).agg(lambda s: sorted(set(s)))
    lo, hi = p.measure_lo[:, 0], p.measure_hi[:, 0]
    cap = p.capacity_h
    work = table["workload_h"].to_numpy(float)
    work_after = np.bincount(rep_pos[dst].to_numpy(), weights=work, minlength=p.num_reps)
    # Hours a moved account cost its previous rep (where that rep is still in the team).
    src_idx = rep_pos.reindex(m_src).fillna(-1).to_numpy(np.int64)
    units = np.flatnonzero(moved)
    has = src_idx >= 0
    pairs = p.pair_index(units[has], src_idx[has])
    w_src = np.zeros(units.size)
    w_src[has] = np.where(pairs >= 0, p.pair_workload_h[np.maximum(pairs, 0)], 0.0)
    work_out = pd.Series(w_src).groupby(m_src).sum()
    reasons = np.full(len(table), "", dtype=object)

    def names(xs) -> str:
        xs = list(xs)
        return ", ".join(xs[:3]) + (f" and {len(xs) - 3} more" if len(xs) > 3 else "")

    for k in np.flatnonzero(moved):
        c, d = src[k], dst[k]
        if c in b.team.gone:
            ch = b.team.gone[c]
            if ch.kind == "remove":
                reasons[k] = f"re-homed: rep {c} left"
            else:
                reasons[k] = (
                    f"covers {c} on leave {ch.start_date:%Y-%m-%d} to {ch.end_date:%Y-%m-%d} "
                    "(returns after)"
                )
        elif d in b.team.added:
            i = rep_pos[d]
            reasons[k] = (
                f"fills new rep {d} to its band (ramped target {p.measure_target[i, 0]:,.0f})"
            )
        elif c in b.team.fte:
            reasons[k] = f"{c} to fte {b.team.fte[c].fte:g}: sheds potential to its new band"
        elif c in inflow.index and after[rep_pos[c]] + outflow.get(c, 0.0) > hi[rep_pos[c]]:
            reasons[k] = f"keeps {c} within its band after it took accounts of {names(in_from[c])}"
        elif c in inflow.index and work_after[rep_pos[c]] + work_out.get(c, 0.0) > cap[
            rep_pos[c]
        ] * (1 + 1e-9):
            reasons[k] = f"keeps {c} within capacity after it took accounts of {names(in_from[c])}"
        elif d in outflow.index and after[rep_pos[d]] - inflow.get(d, 0.0) < lo[rep_pos[d]]:
            reasons[k] = f"keeps {d} within its band after it gave accounts to {names(out_to[d])}"
        elif c in inflow.index:
            reasons[k] = f"makes room in {c} for the accounts it took of {names(in_from[c])}"
        elif d in outflow.index:
            reasons[k] = f"refills {d} after it gave accounts to {names(out_to[d])}"
        else:
            reasons[k] = f"balance: brings {c} and {d} closer to their targets"
    return reasons


def _rep_changes(previous, b, table: pd.DataFrame, territories: pd.DataFrame) -> pd.DataFrame:
    """Per rep of the old or new team: every measure before and after."""
    inputs = previous.inputs
    old = inputs.reps
    pot = table["potential"].to_numpy(float)
    acc = inputs.accounts
    # Before: the previous plan with the old team's targets and bases.
    seg_old = (
        old["segment"].astype(str).to_numpy()
        if "segment" in old and old["segment"].notna().any()
        else np.full(len(old), "all")
    )
    acc_pool = b.pp.account_pool
    w_old = target_weights(old, previous.config.workload)
    t_old = pool_targets(pot, seg_old, acc_pool, w_old)
    prev = table["previous_rep_id"].to_numpy(str)
    base = old.loc[prev]
    km_before = haversine_km(
        acc["lat"].to_numpy(), acc["lon"].to_numpy(), base["lat"].to_numpy(), base["lon"].to_numpy()
    )
    visits = visits_per_year(acc, previous.config.workload)
    wl_before = workload_h(visits, km_before, previous.config.workload)
    before = pd.DataFrame(
        {
            "accounts_before": pd.Series(1, index=prev).groupby(level=0).sum(),
            "potential_before": pd.Series(pot, index=prev).groupby(level=0).sum(),
            "workload_h_before": pd.Series(wl_before, index=prev).groupby(level=0).sum(),
        }
    )
    before["target_before"] = pd.Series(t_old, index=old["rep_id"].to_numpy())
    terr = territories.set_index("rep_id")
    after = pd.DataFrame(
        {
            "accounts_after": terr["accounts"],
            "potential_after": terr["potential"],
            "target_after": terr["target_potential"],
            "workload_h_after": terr["workload_h"],
            "capacity_h_after": terr["capacity_h"],
            "quota_after": terr["quota"],
            "ramp_factor": terr["ramp_factor"],
            "ramped_quota": terr["ramped_quota"],
        }
    )
    ids = list(dict.fromkeys(list(old["rep_id"]) + list(b.pp.rep_ids)))
    out = before.reindex(ids).join(after.reindex(ids))
    out.index.name = "rep_id"
    for col in ("accounts_before", "accounts_after"):
        out[col] = out[col].fillna(0).astype(int)
    for col in ("potential_before", "potential_after", "workload_h_before", "workload_h_after"):
        out[col] = out[col].fillna(0.0)
    out["dev_before_pct"] = 100 * (out["potential_before"] / out["target_before"] - 1)
    out["dev_after_pct"] = 100 * (out["potential_after"] / out["target_after"] - 1)
    moved = table[table["moved"]]
    out["moved_in_accounts"] = moved.groupby("rep_id").size().reindex(ids).fillna(0).astype(int)
    out["moved_out_accounts"] = (
        moved.groupby("previous_rep_id").size().reindex(ids).fillna(0).astype(int)
    )
    out["moved_in_potential"] = moved.groupby("rep_id")["potential"].sum().reindex(ids).fillna(0.0)
    out["moved_out_potential"] = (
        moved.groupby("previous_rep_id")["potential"].sum().reindex(ids).fillna(0.0)
    )
    status = pd.Series("unchanged", index=ids, dtype=object)
    for rid, ch in b.team.gone.items():
        status[rid] = "left" if ch.kind == "remove" else "on leave"
    for rid in b.team.added:
        status[rid] = "new"
    for rid, ch in b.team.fte.items():
        status[rid] = f"fte {ch.fte:g}"
    out.insert(0, "status", status)
    return out.reset_index()


def _frontier(b, fronts, bound_value: float, table_fn) -> tuple[pd.DataFrame, tuple]:
    """One row per frontier band (``fronts``: ``(band share, plan or None)``), and each
    plan's assignments table (``None`` where the band found no plan in its time)."""
    p = b.pp.problem
    rows, plans = [], []
    for k, (band, plan) in enumerate(fronts):
        row = {"plan": k, "band_pct": 100 * band}
        if plan is None:
            rows.append({**row, "check": "no plan in time"})
            plans.append(None)
            continue
        rep = check_plan(p, plan)
        t = table_fn(plan)
        dev = np.abs(rep.rep_measure[:, 0] / p.measure_target[:, 0] - 1)
        moved = t["moved"].to_numpy(bool)
        moved_pot = float(t["potential"][moved].sum())
        rows.append(
            {
                **row,
                "check": "passed" if rep.ok else "FAILED",
                "moved_accounts": int(moved.sum()),
                "moved_potential": moved_pot,
                "moved_vs_bound": moved_pot / bound_value if bound_value > 0 else float("nan"),
                "worst_dev_pct": float(100 * dev.max()),
                "mean_abs_dev_pct": float(100 * dev.mean()),
                "travel_km_mean": float(t["travel_km"].mean()),
            }
        )
        plans.append(t)
    return pd.DataFrame(rows), tuple(plans)


def build_result(
    previous, b, changes, changes_file, config, full, report, bound, tries, res, fronts, runtime
):
    from .rebalance import Rebalance

    pp = b.pp
    p = pp.problem
    table = _assignments(pp, full, b.previous)
    table["move_reason"] = move_reasons(b, table)
    pot_total = float(pp.potential.sum())
    quota_total = config.quota_total or previous.quota_total or pot_total
    territories = territory_table(pp, table, quota_total)
    # The table shows each rep's real capacity (the rebalance's limit may be above it for a
    # rep that was already over, or scaled by capacity_share).
    real_cap = capacity_h(b.team.reps, config.workload)
    territories["capacity_h"] = real_cap
    territories["utilisation"] = territories["workload_h"] / np.where(
        real_cap > 0, real_cap, np.nan
    )
    ramp = b.team.reps["ramp_factor"].reindex(territories["rep_id"]).to_numpy(float)
    territories["ramp_factor"] = ramp
    territories["ramped_quota"] = np.round(territories["quota"].to_numpy() * ramp, 2)
    cfg = replace(config, transfer=TransferSettings())
    errors = verify_tables(
        table, territories, previous.inputs.accounts, b.team.reps, cfg, quota_total
    )
    if errors:
        raise RuntimeError("output tables failed verification: " + "; ".join(errors))
    moved = table["moved"].to_numpy(bool)
    moves = pd.DataFrame(
        {
            "account_id": table["account_id"][moved],
            "from_rep_id": table["previous_rep_id"][moved],
            "to_rep_id": table["rep_id"][moved],
            "potential": table["potential"][moved],
            "travel_km": table["travel_km"][moved],
            "move_reason": table["move_reason"][moved],
        }
    ).reset_index(drop=True)
    rep_changes = _rep_changes(previous, b, table, territories)
    moved_pot = float(pp.potential[moved].sum())
    lb = bound.bound
    frontier = None
    plans: tuple = ()
    if fronts:
        frontier, plans = _frontier(b, fronts, lb, lambda plan: _assignments(pp, plan, b.previous))
    files = dict(previous.files)
    if changes_file is not None:
        files["changes"] = {
            "path": str(changes_file.resolve()),
            "sha256": sha256_file(changes_file),
        }
    dev = np.abs(report.rep_measure[:, 0] / p.measure_target[:, 0] - 1)
    manifest = {
        **header(config, files),
        "kind": "rebalance",
        "changes": [
            {
                "change": c.kind,
                "rep_id": c.rep_id,
                "row": c.row,
                "describe": c.describe(),
                "segment_inferred": b.team.inferred_segment.get(c.rep_id),
                "ramp_factor": float(b.team.reps.at[c.rep_id, "ramp_factor"])
                if c.kind == "add"
                else None,
            }
            for c in changes
        ],
        "solver": {
            "status": res.status,
            "stages": [vars(s) for s in res.stages],
            "regions": tries,
            "runtime_s": runtime,
            # Same inputs, seed and workers give the same plan when no stage stopped on the
            # wall clock (each ended on a plan, a proof or its deterministic limit).
            "reproducible": res.stats.get("clock_stops", 0) == 0,
            "band_pct": 100 * res.band,
        },
        "check": {
            "result": "passed" if report.ok else "FAILED",
            "violations": len(report.violations),
            "rules": "assignment, candidates (neighbour rule), protected accounts, bands, "
            "capacity, budgets (transfer limits)",
            "max_potential_dev_pct": float(100 * dev.max()),
        },
        "plan": {
            "accounts": int(len(table)),
            "reps": int(p.num_reps),
            "potential_total": pot_total,
            "quota_total": float(quota_total),
            "moved_accounts": int(moved.sum()),
            "moved_potential": moved_pot,
            "moved_potential_pct": 100 * moved_pot / pot_total,
            "moved_potential_lower_bound": finite_or_none(lb),
            "moved_potential_lower_bound_method": bound.method
            if np.isfinite(bound.lp) and bound.lp >= bound.arithmetic
            else "arithmetic (what the bands force in or out)",
            "moved_potential_arithmetic_bound": bound.arithmetic,
            "moved_potential_bound_raise_s": bound.raised_s,
            "moved_potential_lp_bound": finite_or_none(bound.lp),
            "disruption_ratio": moved_pot / lb if lb > 0 else None,
            "protected_accounts": int(sum(1 for w in b.protected_why if w)),
            "budgets": {
                k: getattr(config.rebalance, k)
                for k in (
                    "max_accounts_share_total",
                    "max_potential_share_total",
                    "max_accounts_share_per_rep",
                    "max_potential_share_per_rep",
                )
            },
            "travel_km_mean": float(table["travel_km"].mean()),
            "worst_dev_pct": float(100 * dev.max()),
        },
    }
    return Rebalance(
        assignments=table,
        territories=territories,
        moves=moves,
        rep_changes=rep_changes,
        manifest=manifest,
        check=report,
        planning=pp,
        reps=b.team.reps,
        accounts=previous.inputs.accounts,
        frontier=frontier,
        frontier_plans=plans,
    )


def summary_text(r) -> str:
    m = r.manifest
    pl = m["plan"]
    lb = pl["moved_potential_lower_bound"]
    ratio = pl["disruption_ratio"]
    budgets = pl["budgets"]
    lines = [
        f"Rebalance of {pl['accounts']:,} accounts and {pl['reps']} reps: "
        + "; ".join(c["describe"] for c in m["changes"]),
        f"  moved         {pl['moved_accounts']:,} accounts, {pl['moved_potential']:,.0f} of "
        f"potential ({pl['moved_potential_pct']:.2f} %)",
        f"  lower bound   {lb:,.0f} ({pl['moved_potential_lower_bound_method'].split(' (')[0]}); "
        f"this plan {ratio:.3f} x the bound"
        if lb
        else "  lower bound   0 (nothing must move)",
        f"  budgets       accounts {100 * pl['moved_accounts'] / pl['accounts']:.2f} % of "
        f"{_pct(budgets['max_accounts_share_total'])}, potential "
        f"{pl['moved_potential_pct']:.2f} % of {_pct(budgets['max_potential_share_total'])}",
        f"  balance       worst deviation from target {pl['worst_dev_pct']:.2f} % "
        f"(band +-{100 * m['config']['tolerance']:.1f} %; reps out of band before stay no "
        "further out)",
        f"  check         {m['check']['result']} ({m['check']['rules']})",
        f"  runtime       {m['solver']['runtime_s']:.1f} s; region "
        f"{m['solver']['regions'][-1]['hops']} hop(s), {m['solver']['regions'][-1]['reps']} reps",
    ]
    rc = r.rep_changes.set_index("rep_id")
    for rid in rc.index[rc["status"] == "new"]:
        x = rc.loc[rid]
        lines.append(
            f"  new rep       {rid}: {x['accounts_after']:,} accounts, potential "
            f"{x['potential_after']:,.0f} (ramped target {x['target_after']:,.0f}); quota "
            f"{x['quota_after']:,.0f}, ramped quota {x['ramped_quota']:,.0f} (ramp factor "
            f"{x['ramp_factor']:.3f})"
        )
    if r.frontier is not None:
        f = r.frontier[r.frontier["check"] == "passed"]
        span = ""
        if len(f):
            span = (
                f": moved {f['moved_potential'].min():,.0f} to {f['moved_potential'].max():,.0f},"
                f" worst deviation {f['worst_dev_pct'].max():.1f} % to "
                f"{f['worst_dev_pct'].min():.1f} %"
            )
        lines.append(
            f"  frontier      {len(f)} of {len(r.frontier)} plans{span} "
            "(frontier.csv, frontier.png)"
        )
    return "\n".join(lines)


def _pct(x) -> str:
    return "no budget" if x is None else f"{100 * x:g} %"


def _diff_markdown(r) -> str:
    m = r.manifest
    pl = m["plan"]
    rc = r.rep_changes
    touched = rc[
        (rc["status"] != "unchanged")
        | (rc["moved_in_accounts"] > 0)
        | (rc["moved_out_accounts"] > 0)
    ]
    lines = [
        "# Rebalance diff",
        "",
        "Changes: " + "; ".join(c["describe"] for c in m["changes"]) + ".",
        "",
        f"Moved {pl['moved_accounts']:,} accounts and {pl['moved_potential']:,.0f} of potential "
        f"({pl['moved_potential_pct']:.2f} %). Least any plan could move: "
        f"{(pl['moved_potential_lower_bound'] or 0):,.0f} "
        f"({pl['moved_potential_lower_bound_method']}); arithmetic floor "
        f"{pl['moved_potential_arithmetic_bound']:,.0f}."
        + (
            f" This plan: {pl['disruption_ratio']:.3f} x the bound."
            if pl["disruption_ratio"]
            else ""
        ),
        "",
        "## Reps before and after",
        "",
        "| rep | status | accounts | potential | target | dev % | workload h | in / out | "
        "quota | ramped quota |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]

    def f(x, fmt=",.0f"):
        return "-" if pd.isna(x) else format(x, fmt)

    for _, x in touched.iterrows():
        lines.append(
            f"| {x['rep_id']} | {x['status']} | {x['accounts_before']:,} -> "
            f"{x['accounts_after']:,} | {f(x['potential_before'])} -> {f(x['potential_after'])}"
            f" | {f(x['target_before'])} -> {f(x['target_after'])} | "
            f"{f(x['dev_before_pct'], '+.2f')} -> {f(x['dev_after_pct'], '+.2f')} | "
            f"{f(x['workload_h_before'])} -> {f(x['workload_h_after'])} | "
            f"{x['moved_in_accounts']} / {x['moved_out_accounts']} | {f(x['quota_after'])} | "
            f"{f(x['ramped_quota'])} |"
        )
    lines += [
        "",
        f"Reps not listed kept every account ({len(rc) - len(touched)} reps). Ramped quota = "
        "quota x ramp factor, the mean productivity over the first 12 months (linear ramp).",
        "",
        "## Every move",
        "",
        "| account | from | to | potential | why |",
        "|---|---|---|---:|---|",
    ]
    for _, x in r.moves.iterrows():
        lines.append(
            f"| {x['account_id']} | {x['from_rep_id']} | {x['to_rep_id']} | "
            f"{x['potential']:,.0f} | {x['move_reason']} |"
        )
    return "\n".join(lines) + "\n"


def _frontier_plot(frontier: pd.DataFrame, path: Path, bound: float | None) -> None:
    fig = Figure(figsize=(6.5, 4.5), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    frontier = frontier[frontier["check"] == "passed"]
    x = frontier["moved_potential"].to_numpy()
    ax.plot(x, frontier["mean_abs_dev_pct"], "o-", label="mean |deviation| %")
    ax.plot(x, frontier["worst_dev_pct"], "s--", label="worst deviation %")
    for _, row in frontier.iterrows():
        ax.annotate(
            str(int(row["plan"])),
            (row["moved_potential"], row["mean_abs_dev_pct"]),
            textcoords="offset points",
            xytext=(4, 4),
            fontsize=8,
        )
    if bound:
        ax.axvline(bound, color="0.5", linestyle=":", label="disruption lower bound")
    ax.set_xlabel("moved potential")
    ax.set_ylabel("deviation from target (%)")
    ax.set_title("Balance against disruption")
    ax.legend()
    fig.savefig(path, bbox_inches="tight")


def write_outputs(r, tmp: Path, final: Path) -> None:
    """Every file of a rebalance into ``tmp`` (renamed to ``final`` by the caller)."""
    r.assignments.to_csv(tmp / "assignments.csv", index=False, float_format="%.6f")
    r.territories.to_csv(tmp / "territories.csv", index=False, float_format="%.6f")
    r.moves.to_csv(tmp / "moves.csv", index=False, float_format="%.6f")
    r.rep_changes.to_csv(tmp / "rep_changes.csv", index=False, float_format="%.6f")
    (tmp / "diff.md").write_text(_diff_markdown(r))
    reps = r.reps.drop(columns=["ramp_factor"])
    reps.to_csv(tmp / "reps.csv", index=False, float_format="%.6f", date_format="%Y-%m-%d")
    manifest = json.loads(json.dumps(r.manifest, default=json_default))
    # The new team is part of the plan: a later rebalance reads it from here.
    manifest["inputs"]["reps"] = {
        "path": str(final / "reps.csv"),
        "sha256": sha256_file(tmp / "reps.csv"),
    }
    if r.frontier is not None:
        r.frontier.to_csv(tmp / "frontier.csv", index=False, float_format="%.6f")
        _frontier_plot(
            r.frontier, tmp / "frontier.png", manifest["plan"]["moved_potential_lower_bound"]
        )
        (tmp / "frontier").mkdir()
        for k, t in enumerate(r.frontier_plans):
            if t is None:
                continue
            t.to_csv(tmp / "frontier" / f"plan_{k}.csv", index=False, float_format="%.6f")
    (tmp / "summary.txt").write_text(r.summary() + "\n")
    with open(tmp / "manifest.json", "w") as f:
        json.dump(manifest, f, indent=2, default=json_default)
        f.write("\n")

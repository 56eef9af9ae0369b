"""What-if rebalance: a hire, a leaver, a leave or an FTE change, answered with the plan
that moves least, every move explained.

The rules, in order of priority:

1. **Feasibility.** Every account goes to a candidate rep (:func:`territory_opt.problem.
   build_problem` on the changed team). Protected accounts never move: ``locked``, every
   ``[rebalance] protected_columns`` column that is true, and relationship tenure
   (``tenure_column``) above ``tenure_years``. By default (``neighbours_only``) an account
   moves only to a territory neighbouring its own: two territories neighbour when an
   account of one is among the 6 nearest accounts of an account of the other; a new rep
   neighbours the territories that hold its nearest accounts worth its target. Reps named
   in a change must end inside their band around the new targets (the new rep's target
   follows its ramped weight, below); every other rep must end inside its band or no
   further out than it already is (a rebalance does not repair last year's plan), and
   within capacity (or no further over). Budgets (``max_*_share_total``, and
   ``max_*_share_per_rep`` for reps not named in a change) cap the share of accounts and
   potential that moves: hard limits, checked like the plan's transfer limits.
2. **Least disruption**: the potential of the accounts that move.
3. **Balance**: the narrowest potential band (worst deviation from target, down to the
   plan's ``tolerance``) that a plan moving at most ``(1 + disruption_slack)`` times the
   least potential can keep.
4. **Travel**: potential x km, inside that band and that disruption cap.

**Bound.** ``moved_potential_lower_bound`` is the optimum of a transshipment LP over all
reps (:func:`solvers.rebalance.disruption_bound`): no plan that keeps the rules above can
move less potential. When the plan moves more than 1.02 x that, it is raised first by the
LP duals of the plan's region one hop wider priced over the whole book
(:func:`solvers.rebalance.region_dual_bound`, capacity included, about a second), then,
when time remains, to the LP relaxation of least disruption with every rule, capacity
included (which the transshipment LP drops):
exact below 50,000 accounts, a Lagrangian bound of the staged relaxation above (skipped
when the plan is within 2 % of the transshipment bound). The arithmetic floor -- what must
leave a leaver or an over-band rep and what a new rep must receive to reach the lower edge
of its ramped band -- is reported beside it (``moved_potential_arithmetic_bound``); the LP
is never below it.

**Locality.** Only the territories within one hop of a changed rep are freed at first
(everyone else keeps every account), widened one hop at a time while that region admits no
plan, up to ``max_hops``; and, while the region's least-disruption plan moves more than 1.10
x the bound and under half of the time limit is spent, one hop further as long as each
widening moves at least 2 % less. The lexicographic stages then run on the region chosen.
The plan is then checked (:func:`solvers.check.check_plan`)
against the *whole* problem: every band, capacity, protected account, neighbour rule and
budget. A region whose plans fail that check (the lexicographic plan, then stage 1's) hands
over to the wider regions, up to ``max_hops``, with the time that is left.

**Ramp.** A new rep's productivity rises linearly from 0 at its start date to 1 after
``ramp_months``. Its ramp factor is its mean productivity over the 12 months from the start
date (:func:`territory_opt.changes.ramp_factor`: ``1 - ramp/24`` up to 12 months). Its
target weight is its capacity (fte x hours per fte) times the ramp factor, so its band
centres on a ramped target; its ramped quota is its potential-based quota times the ramp
factor (``ramped_quota`` in ``territories.csv``).

**Leave.** A rep on leave is out of the team for the cover plan: its book is covered by
neighbours (``move_reason`` says so) and returns after ``end_date``.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

from solvers.aggregate import solve_relaxation_at_scale
from solvers.check import CheckReport, check_plan
from solvers.lp import solve_relaxation
from solvers.pairspace import unit_vectors
from solvers.problem import AlignmentProblem
from solvers.rebalance import (
    disruption_bound,
    least_disruption,
    moved_potential,
    region_dual_bound,
    region_subproblem,
    solve_lexicographic,
)

from .atomic import atomic_dir
from .changes import Change, ramp_factor, read_changes
from .config import PlanConfig, TransferSettings
from .errors import Finding, InfeasibleError, InputError, InputProblem
from .io import Inputs, load_inputs, read_table
from .manifest import json_default, sha256_file
from .potential import estimate_potential
from .problem import PlanningProblem, build_problem
from .verify import after_solve_s
from .workload import capacity_h

__all__ = ["PreviousPlan", "Rebalance", "load_previous_plan", "rebalance", "rebalance_files"]

log = logging.getLogger(__name__)

KNN = 6  # neighbouring territories: an account among another's 6 nearest accounts


@dataclass(frozen=True, eq=False)
class PreviousPlan:
    """An earlier plan: its validated inputs, each account's potential and rep, settings.

    ``rep_of`` maps account_id to the rep of the plan; ``files`` names every file it came
    from with its sha256 (for the manifest); ``quota_total`` is the plan's.
    """

    inputs: Inputs
    potential: pd.Series
    rep_of: pd.Series
    config: PlanConfig
    quota_total: float | None
    files: dict[str, dict[str, str]]


def _resolve(plan_dir: Path, name: str, entry: dict) -> Path:
    """The input file a manifest points to, its hash verified; an error says what to pass."""
    flag = f"--{name}"
    given = Path(entry["path"])
    tries = [given] if given.is_absolute() else [given, plan_dir / given]
    tries.append(plan_dir / given.name)
    for path in tries:
        if path.exists():
            if sha256_file(path) != entry.get("sha256"):
                raise InputError(
                    [
                        InputProblem(
                            str(path),
                            f"the plan's {name} file changed since the plan was made (its "
                            "sha256 differs from the one in manifest.json)",
                            f"pass the file the plan was made from with {flag}, or make a new "
                            "plan first",
                        )
                    ]
                )
            return path
    raise InputError(
        [
            InputProblem(
                str(plan_dir / "manifest.json"),
                f"the plan's {name} file '{given}' is not found (moved or deleted)",
                f"pass it with {flag}",
            )
        ]
    )


def load_previous_plan(
    plan_dir: str | Path | None = None,
    *,
    accounts: str | Path | None = None,
    reps: str | Path | None = None,
    history: str | Path | None = None,
    alignment: str | Path | None = None,
    config: PlanConfig | str | Path | None = None,
) -> PreviousPlan:
    """An earlier plan from its output folder (``plan_dir``: ``assignments.csv`` and the
    ``manifest.json`` that points to its inputs, hashes verified), or from an alignment
    file (``account_id``, ``rep_id``, optional ``potential``) with the accounts and reps
    files. Files given explicitly win over the manifest's; so does ``config``.
    """
    if isinstance(config, str | Path):
        config = PlanConfig.from_file(config)
    files: dict[str, dict[str, str]] = {}
    quota_total = None
    if plan_dir is not None:
        plan_dir = Path(plan_dir)
        mpath, apath = plan_dir / "manifest.json", plan_dir / "assignments.csv"
        missing = [p for p in (mpath, apath) if not p.exists()]
        if missing:
            raise InputError(
                [
                    InputProblem(
                        str(p),
                        "not found: --plan must be a plan's output folder",
                        "point --plan to the folder territory-opt plan wrote, or pass "
                        "--alignment with --accounts and --reps",
                    )
                    for p in missing
                ]
            )
        manifest = json.loads(mpath.read_text())
        src = manifest.get("inputs", {})
        if accounts is None:
            if "accounts" not in src:
                raise InputError(
                    [InputProblem(str(mpath), "names no accounts file", "pass --accounts")]
                )
            accounts = _resolve(plan_dir, "accounts", src["accounts"])
        if reps is None:
            if "reps" not in src:
                raise InputError([InputProblem(str(mpath), "names no reps file", "pass --reps")])
            reps = _resolve(plan_dir, "reps", src["reps"])
        if history is None and "history" in src:
            history = _resolve(plan_dir, "history", src["history"])
        if config is None:
            config = PlanConfig.from_dict(manifest["config"])
        quota_total = manifest.get("plan", {}).get("quota_total")
        alignment = apath
    elif alignment is None or accounts is None or reps is None:
        raise InputError(
            [
                InputProblem(
                    "rebalance",
                    "no previous plan given",
                    "pass --plan (a plan's output folder), or --alignment with --accounts "
                    "and --reps",
                )
            ]
        )
    config = config or PlanConfig()
    inputs = load_inputs(accounts, reps, history, columns=config.columns)
    for name, path in inputs.sources.items():
        if Path(path).is_file():
            files[name] = {"path": str(Path(path).resolve()), "sha256": sha256_file(path)}
    table = read_table(alignment, text_columns=("account_id", "rep_id", "previous_rep_id"))
    files["alignment"] = {"path": str(Path(alignment).resolve()), "sha256": sha256_file(alignment)}
    rep_of, potential = _alignment(table, inputs, config, str(alignment))
    return PreviousPlan(inputs, potential, rep_of, config, quota_total, files)


def _alignment(table: pd.DataFrame, inputs: Inputs, config: PlanConfig, file: str):
    problems: list[InputProblem] = []
    for col in ("account_id", "rep_id"):
        if col not in table.columns:
            problems.append(
                InputProblem(
                    file, f"required column '{col}' is missing", f"add '{col}'", column=col
                )
            )
    if problems:
        raise InputError(problems)
    ids = table["account_id"].astype(str)
    acc_ids = inputs.accounts["account_id"]
    dup = ids.duplicated()
    for i in np.flatnonzero(dup.to_numpy())[:20]:
        problems.append(
            InputProblem(
                file,
                f"account '{ids.iloc[i]}' appears twice",
                "keep one row",
                row=int(i) + 1,
                column="account_id",
            )
        )
    unknown = ~ids.isin(set(acc_ids))
    for i in np.flatnonzero(unknown.to_numpy())[:20]:
        problems.append(
            InputProblem(
                file,
                f"unknown account '{ids.iloc[i]}'",
                "use account ids of the accounts file",
                row=int(i) + 1,
                column="account_id",
            )
        )
    bad_rep = ~table["rep_id"].astype(str).isin(set(inputs.reps["rep_id"]))
    for i in np.flatnonzero(bad_rep.to_numpy())[:20]:
        problems.append(
            InputProblem(
                file,
                f"rep '{table['rep_id'].iloc[i]}' is not in the reps file",
                "use rep ids of the reps file",
                row=int(i) + 1,
                column="rep_id",
            )
        )
    missing = set(acc_ids) - set(ids)
    if missing:
        problems.append(
            InputProblem(
                file,
                f"{len(missing)} account(s) have no rep, e.g. {', '.join(sorted(missing)[:3])}",
                "give every account of the accounts file a row",
            )
        )
    if problems:
        raise InputError(problems)
    rep_of = pd.Series(table["rep_id"].astype(str).to_numpy(), index=ids.to_numpy())
    rep_of = rep_of.reindex(acc_ids.to_numpy())
    if "potential" in table.columns:
        potential = pd.Series(pd.to_numeric(table["potential"]).to_numpy(float), index=ids)
        potential = potential.reindex(acc_ids.to_numpy())
    else:
        potential, _ = estimate_potential(inputs.accounts, inputs.history, config.potential)
        potential = potential.reindex(acc_ids.to_numpy())
    potential.index = inputs.accounts.index
    rep_of.index = inputs.accounts.index
    return rep_of, potential


# --- the changed team ---------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class _Team:
    reps: pd.DataFrame  # the new team, with target_weight and ramp_factor
    changed: set[str]  # reps named in a change that stay in the team (add, fte)
    gone: dict[str, Change]  # removed or on leave
    added: dict[str, Change]
    fte: dict[str, Change]
    inferred_segment: dict[str, str]


def _apply_changes(reps: pd.DataFrame, changes: list[Change], config: PlanConfig) -> _Team:
    reps = reps.copy()
    weight = (
        reps["target_weight"].to_numpy(float)
        if "target_weight" in reps and reps["target_weight"].notna().any()
        else capacity_h(reps, config.workload)
    )
    reps["target_weight"] = weight
    reps["ramp_factor"] = 1.0
    segmented = "segment" in reps and reps["segment"].notna().any()
    gone, added, fte, inferred = {}, {}, {}, {}
    rows = []
    for ch in changes:
        if ch.kind in ("remove", "leave"):
            gone[ch.rep_id] = ch
        elif ch.kind == "fte":
            fte[ch.rep_id] = ch
            old = float(reps.at[ch.rep_id, "fte"])
            reps.at[ch.rep_id, "fte"] = ch.fte
            if "capacity_h" in reps and pd.notna(reps.at[ch.rep_id, "capacity_h"]):
                reps.at[ch.rep_id, "capacity_h"] *= ch.fte / old if old > 0 else 1.0
            reps.at[ch.rep_id, "target_weight"] *= ch.fte / old if old > 0 else 1.0
        else:
            added[ch.rep_id] = ch
            seg = ch.segment
            if segmented and seg is None:
                d = (reps["lat"] - ch.lat) ** 2 + (
                    (reps["lon"] - ch.lon) * np.cos(np.radians(ch.lat))
                ) ** 2
                seg = str(reps["segment"].iloc[int(np.argmin(d.to_numpy()))])
                inferred[ch.rep_id] = seg
            pool = reps[reps["segment"] == seg] if segmented else reps
            per_fte = float((pool["target_weight"] / pool["fte"].where(pool["fte"] > 0)).median())
            f = ramp_factor(ch.ramp_months)
            rows.append(
                {
                    "rep_id": ch.rep_id,
                    "lat": ch.lat,
                    "lon": ch.lon,
                    "fte": ch.fte,
                    "segment": seg if segmented else None,
                    "start_date": ch.start_date,
                    "target_weight": per_fte * ch.fte * f,
                    "ramp_factor": f,
                }
            )
    reps = reps[~reps["rep_id"].isin(list(gone))]
    if rows:
        new = pd.DataFrame(rows).set_index("rep_id", drop=False)
        if "capacity_h" in reps:
            new["capacity_h"] = np.nan
        reps = pd.concat([reps, new[[c for c in new.columns if c in reps.columns]]])
    changed = set(added) | set(fte)
    return _Team(reps, changed, gone, added, fte, inferred)


def _protected(accounts: pd.DataFrame, config: PlanConfig) -> tuple[np.ndarray, list[str]]:
    """Protected accounts (mask) and, per account, why ('' when not)."""
    rb = config.rebalance
    why = np.where(accounts["locked"].to_numpy(bool), "locked", "").astype(object)
    problems = []
    for col in rb.protected_columns:
        if col not in accounts.columns:
            problems.append(
                InputProblem(
                    "config",
                    f"rebalance.protected_columns names '{col}', which the accounts do not have",
                    "add the column to the accounts, or drop it from protected_columns",
                    column=col,
                )
            )
            continue
        raw = accounts[col]
        if raw.dtype == bool:
            flag = raw.to_numpy(bool)
        else:
            text = raw.fillna("").astype(str).str.strip().str.lower()
            num = pd.to_numeric(raw, errors="coerce")
            flag = (text.isin({"true", "yes", "y", "t"}) | (num.fillna(0) > 0)).to_numpy(bool)
        why = np.where(flag & (why == ""), col, why)
    if config.rebalance.tenure_column:
        col = config.rebalance.tenure_column
        if col not in accounts.columns:
            problems.append(
                InputProblem(
                    "config",
                    f"rebalance.tenure_column names '{col}', which the accounts do not have",
                    "add the column (years) or drop tenure_column",
                    column=col,
                )
            )
        else:
            years = pd.to_numeric(accounts[col], errors="coerce").fillna(0).to_numpy(float)
            flag = years > config.rebalance.tenure_years
            why = np.where(
                flag & (why == ""), f"tenure above {config.rebalance.tenure_years:g} years", why
            )
    if problems:
        raise InputError(problems)
    return why != "", list(why)


# --- neighbouring territories ------------------------------------------------------


def _territory_graph(
    accounts: pd.DataFrame,
    owner: np.ndarray,
    num_owners: int,
    pool: np.ndarray,
    new_reps: dict[int, np.ndarray],
) -> np.ndarray:
    """``(num_owners, num_owners)`` boolean adjacency of territories (see the module
    docstring); ``owner`` is each account's territory index; ``new_reps`` maps a new
    rep's index to the accounts it would naturally hold."""
    xyz = unit_vectors(accounts["lat"].to_numpy(float), accounts["lon"].to_numpy(float))
    adj = np.zeros((num_owners, num_owners), dtype=bool)
    for p in np.unique(pool):
        idx = np.flatnonzero(pool == p)
        if idx.size < 2:
            continue
        k = min(KNN + 1, idx.size)
        _, nb = cKDTree(xyz[idx]).query(xyz[idx], k=k)
        a = owner[idx][:, None].repeat(k - 1, axis=1).ravel()
        b = owner[idx][nb[:, 1:]].ravel()
        adj[a, b] = True
        adj[b, a] = True
    for n, natural in new_reps.items():
        owners = np.unique(owner[natural])
        adj[n, owners] = True
        adj[owners, n] = True
    np.fill_diagonal(adj, False)
    return adj


# --- the rebalance problem ---------------------------------------------------------


@dataclass(frozen=True, eq=False)
class _Built:
    pp: PlanningProblem  # the whole problem: every rule a plan must keep
    team: _Team
    previous: np.ndarray  # previous rep id per account (str)
    owner: np.ndarray  # territory index per account (over owner_ids)
    owner_ids: np.ndarray
    adjacency: np.ndarray
    protected_why: list[str]
    current_load: np.ndarray  # (num_reps,) potential before, in the new team
    forced_total: dict[str, float]


def _build(previous: PreviousPlan, changes: list[Change], config: PlanConfig) -> _Built:
    inputs = previous.inputs
    team = _apply_changes(inputs.reps, changes, config)
    reps = team.reps
    rep_ids = reps["rep_id"].to_numpy(str)
    prev = previous.rep_of.to_numpy(str)
    accounts = inputs.accounts.copy()
    orphan = np.isin(prev, list(team.gone))
    accounts["current_rep_id"] = np.where(orphan, None, prev).astype(object)
    protected, why = _protected(accounts, config)
    # Locked and protected accounts of a rep who is gone cannot stay: they are re-homed.
    accounts["locked"] = protected & ~orphan
    cfg = replace(config, transfer=TransferSettings())
    pp = build_problem(accounts, reps, previous.potential, cfg)
    p = pp.problem
    n, r = p.num_units, p.num_reps
    cur = p.current_rep.astype(np.int64)

    # Territories: the previous plan's reps (gone ones included) plus the new reps.
    owner_ids = np.array(list(dict.fromkeys(list(inputs.reps["rep_id"]) + list(team.added))))
    owner_pos = pd.Series(np.arange(owner_ids.size), index=owner_ids)
    owner = owner_pos[prev].to_numpy()
    lat, lon = accounts["lat"].to_numpy(float), accounts["lon"].to_numpy(float)
    natural = {}
    for rid, ch in team.added.items():
        i = int(np.flatnonzero(rep_ids == rid)[0])
        same = np.flatnonzero(pp.account_pool == pp.rep_pool[i])
        km = (lat[same] - ch.lat) ** 2 + ((lon[same] - ch.lon) * np.cos(np.radians(ch.lat))) ** 2
        order = same[np.argsort(km, kind="stable")]
        take = int(np.searchsorted(np.cumsum(pp.potential[order]), p.measure_target[i, 0])) + 1
        natural[int(owner_pos[rid])] = order[:take]
    adjacency = _territory_graph(accounts, owner, owner_ids.size, pp.account_pool, natural)

    # Neighbour rule: a move goes from an account's territory to a neighbouring one.
    pu = p.pair_unit
    rep_owner = owner_pos[rep_ids].to_numpy()
    allowed = (p.cand_rep == cur[pu]) | (p.fixed_rep[pu] == p.cand_rep)
    if config.rebalance.neighbours_only:
        allowed |= adjacency[owner[pu], rep_owner[p.cand_rep]]
    else:
        allowed[:] = True
    # An account left without any option keeps all its candidates (rare: a leaver's
    # account deep inside a large territory).
    none = np.bincount(pu[allowed], minlength=n) == 0
    allowed |= none[pu]

    # Bands and capacity: changed and new reps meet their band; the others stay in band or
    # no further out than before.
    stay = cur >= 0
    load = np.zeros((r, p.num_measures))
    for j in range(p.num_measures):
        load[:, j] = np.bincount(cur[stay], weights=p.unit_measure[stay, j], minlength=r)
    stay_pairs = p.pair_index(np.flatnonzero(stay), cur[stay])
    work = np.bincount(cur[stay], weights=p.pair_workload_h[stay_pairs], minlength=r)
    free_rep = ~np.isin(rep_ids, list(team.changed))
    plan_tol = (p.measure_target - p.measure_lo) / np.where(
        p.measure_target > 0, p.measure_target, 1.0
    )
    wide = np.maximum(plan_tol, config.rebalance.tolerance)
    mid_lo = np.maximum(p.measure_target * (1 - wide), 0.0)
    mid_hi = p.measure_target * (1 + wide)
    lo = np.where(free_rep[:, None], np.minimum(mid_lo, load), p.measure_lo)
    hi = np.where(free_rep[:, None], np.maximum(mid_hi, load), p.measure_hi)
    share_cap = p.capacity_h * config.rebalance.capacity_share
    cap = np.where(free_rep, np.maximum(share_cap, work), share_cap)

    # Budgets as transfer limits: keep (1 - share) of each book and of everything.
    rb = config.rebalance
    measure = np.column_stack([np.ones(n), pp.potential])
    book = np.column_stack(
        [np.bincount(cur[stay], weights=measure[stay, t], minlength=r) for t in (0, 1)]
    )
    keep_min = np.zeros((r, 2))
    keep_total = np.zeros(2)
    for t, (per_rep, total) in enumerate(
        (
            (rb.max_accounts_share_per_rep, rb.max_accounts_share_total),
            (rb.max_potential_share_per_rep, rb.max_potential_share_total),
        )
    ):
        if per_rep is not None:
            keep_min[:, t] = np.where(free_rep, (1 - per_rep) * book[:, t], 0.0)
        if total is not None:
            keep_total[t] = (1 - total) * measure[:, t].sum()
    keep_min[:, 0] = np.ceil(keep_min[:, 0] - 1e-9)
    keep_total[0] = np.ceil(keep_total[0] - 1e-9)

    sel = np.flatnonzero(allowed)
    indptr = np.r_[0, np.cumsum(np.bincount(pu[sel], minlength=n))]
    problem = AlignmentProblem(
        cand_indptr=indptr,
        cand_rep=p.cand_rep[sel],
        pair_cost=p.pair_cost[sel],
        pair_workload_h=p.pair_workload_h[sel],
        unit_measure=p.unit_measure,
        measure_lo=lo,
        measure_hi=hi,
        measure_target=p.measure_target,
        capacity_h=cap,
        fixed_rep=p.fixed_rep,
        current_rep=cur,
        measure_names=p.measure_names,
        keep_measure=measure,
        keep_min=np.maximum(keep_min, 0.0),
        keep_min_total=np.maximum(keep_total, 0.0),
        keep_names=("accounts", "potential"),
    )
    pp = replace(pp, problem=problem, pair_travel_km=pp.pair_travel_km[sel])
    return _Built(
        pp=pp,
        team=team,
        previous=prev,
        owner=owner,
        owner_ids=owner_ids,
        adjacency=adjacency,
        protected_why=why,
        current_load=load[:, 0],
        forced_total={
            "accounts": float(orphan.sum()),
            "potential": float(pp.potential[orphan].sum()),
        },
    )


# --- explanations before solving ---------------------------------------------------


def _money(x: float) -> str:
    return f"{x:,.0f}"


def _precheck(b: _Built, config: PlanConfig, bound) -> list[Finding]:
    """Budgets and protected orphans against the arithmetic, before any solve."""
    out: list[Finding] = []
    p = b.pp.problem
    rb = config.rebalance
    total_pot = float(b.pp.potential.sum())
    n = p.num_units
    orphan = p.current_rep < 0
    if rb.max_accounts_share_total is not None:
        allowed = np.floor(rb.max_accounts_share_total * n + 1e-9)
        if orphan.sum() > allowed:
            out.append(
                Finding(
                    "budget",
                    f"The changes leave {int(orphan.sum()):,} accounts without a rep; all must "
                    f"move, but the budget max_accounts_share_total = "
                    f"{rb.max_accounts_share_total:g} allows {int(allowed):,} of {n:,}.",
                    "raise [rebalance] max_accounts_share_total to at least "
                    f"{orphan.sum() / n:.3f}.",
                )
            )
    if rb.max_potential_share_total is not None:
        allowed = rb.max_potential_share_total * total_pot
        need = bound.arithmetic
        if need > allowed * (1 + 1e-9):
            out.append(
                Finding(
                    "budget",
                    f"The changes force at least {_money(need)} of potential to move "
                    f"({100 * need / total_pot:.2f} % of {_money(total_pot)}: "
                    f"{_money(bound.orphan_potential)} from reps who are gone, "
                    f"{_money(bound.required_in.sum())} into reps below their band), but "
                    f"max_potential_share_total = {rb.max_potential_share_total:g} allows "
                    f"{_money(allowed)}.",
                    "raise [rebalance] max_potential_share_total to at least "
                    f"{need / total_pot:.4f}.",
                )
            )
    # Capacity: every account costs at least its cheapest allowed pair's hours.
    least = np.minimum.reduceat(p.pair_workload_h, p.cand_indptr[:-1])
    fixed = np.flatnonzero(p.fixed_rep >= 0)
    if fixed.size:
        least[fixed] = p.pair_workload_h[p.pair_index(fixed, p.fixed_rep[fixed])]
    for pool in np.unique(b.pp.rep_pool):
        mine = b.pp.rep_pool == pool
        need = float(least[b.pp.account_pool == pool].sum())
        have = float(p.capacity_h[mine].sum())
        if need > have * (1 + 1e-9):
            where = "" if pool == "all" else f" of segment '{pool}'"
            out.append(
                Finding(
                    "capacity",
                    f"The accounts{where} need at least {need:,.0f} h a year (each at its "
                    f"nearest allowed rep), but the {int(mine.sum())} reps{where} have "
                    f"{have:,.0f} h (capacity_share {rb.capacity_share:g}).",
                    "raise [rebalance] capacity_share to at least "
                    f"{need / (have / rb.capacity_share):.3f} "
                    "(overtime while covering), or add a rep.",
                )
            )
    # Protected orphans need room somewhere they may go.
    prot = orphan & np.array([w != "" for w in b.protected_why])
    if prot.any():
        pu = p.pair_unit
        reps_for = np.unique(p.cand_rep[prot[pu]])
        room = float(np.maximum(p.measure_hi[reps_for, 0] - b.current_load[reps_for], 0).sum())
        need = float(p.unit_measure[prot, 0].sum())
        if need > room:
            gone = ", ".join(sorted(b.team.gone))
            out.append(
                Finding(
                    "protected",
                    f"{int(prot.sum())} protected account(s) of {gone} hold {_money(need)} of "
                    f"potential; the {reps_for.size} reps they may go to have "
                    f"{_money(room)} of room below their band maxima.",
                    "widen the tolerance, set [rebalance] neighbours_only = false, or add a "
                    "rep near them.",
                )
            )
    return out


def _bound_findings(b: _Built, config: PlanConfig) -> list[Finding]:
    """Why the transshipment LP is infeasible: budgets, or bands within the neighbour rule."""
    p = b.pp.problem
    loose = replace(p, keep_min=np.zeros_like(p.keep_min), keep_min_total=np.zeros(2))
    free = disruption_bound(loose)
    if free.status != "INFEASIBLE":
        total_pot = float(b.pp.potential.sum())
        return [
            Finding(
                "budget",
                f"No plan within the budgets: keeping every band needs moving at least "
                f"{_money(free.bound)} of potential ({100 * free.bound / total_pot:.2f} %), "
                "more than the per-rep and total budgets allow together.",
                f"raise [rebalance] max_potential_share_total to at least "
                f"{free.bound / total_pot:.4f} and the per-rep shares, or widen the tolerance.",
            )
        ]
    need_in = free.required_in.sum()
    return [
        Finding(
            "band",
            "No plan keeps every band: the reps named in the changes need "
            f"{_money(need_in)} of potential in and {_money(free.orphan_potential)} must "
            "leave reps who are gone, but their neighbouring territories cannot give or take "
            "that much and stay in their own bands.",
            "widen the tolerance, or set [rebalance] neighbours_only = false.",
        )
    ]


# Below this many accounts the bound also solves the exact LP relaxation of least
# disruption over the whole problem (capacity included); from it on, the staged relaxation
# (solvers.aggregate) gives a Lagrangian bound over the same rules: the exact LP at
# 100,000 accounts outlasts any rebalance's time limit.
EXACT_BOUND_UNITS = 50_000
BOUND_RESERVE_S = 20.0
# A region one hop wider is tried while the plan moves more than WIDEN_UNTIL x the bound
# and less than WIDEN_TIME_SHARE of the time limit is spent; it is kept if it moves at
# least WIDEN_GAIN less.
WIDEN_UNTIL = 1.10
WIDEN_TIME_SHARE = 0.5
WIDEN_GAIN = 0.02


def _lp_bound(p: AlignmentProblem, bound, time_limit_s: float, unit_xy=None):
    """The transshipment bound, raised to the LP relaxation's (every rule of the whole
    problem, capacity included, fractional accounts) when that is higher: the exact
    optimum below :data:`EXACT_BOUND_UNITS` accounts, a Lagrangian bound from the staged
    relaxation above (valid whatever its status, by weak duality)."""
    t0 = time.perf_counter()
    pot = p.unit_measure[:, 0]
    pu = p.pair_unit
    cost = replace(p, pair_cost=pot[pu] * (p.cand_rep != p.current_rep[pu]))
    if p.num_units < EXACT_BOUND_UNITS:
        lp = solve_relaxation(cost, time_limit_s=time_limit_s)
        value = lp.bound if lp.status == "OPTIMAL" else -np.inf
        method = "exact LP relaxation of the whole problem"
    else:
        lp = solve_relaxation_at_scale(cost, unit_xy=unit_xy, time_limit_s=time_limit_s)
        value = lp.bound
        method = "Lagrangian bound of the LP relaxation of the whole problem"
    raised_s = bound.raised_s + time.perf_counter() - t0
    if np.isfinite(value) and value > bound.lp:
        return replace(bound, lp=float(value), method=method, raised_s=raised_s)
    return replace(bound, raised_s=raised_s)


# --- the result ----------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Rebalance:
    """A checked rebalance and its reports (see :mod:`territory_opt.rebalance_report`)."""

    assignments: pd.DataFrame
    territories: pd.DataFrame
    moves: pd.DataFrame
    rep_changes: pd.DataFrame
    manifest: dict[str, Any]
    check: CheckReport
    planning: PlanningProblem
    reps: pd.DataFrame
    accounts: pd.DataFrame
    frontier: pd.DataFrame | None = None
    frontier_plans: tuple[pd.DataFrame, ...] = ()

    def summary(self) -> str:
        from .rebalance_report import summary_text

        return summary_text(self)

    def write(self, out_dir: str | Path) -> Path:
        """Write every output at once (nothing partial on failure); returns the folder."""
        from .rebalance_report import write_outputs

        out_dir = Path(out_dir)
        with atomic_dir(out_dir) as tmp:
            write_outputs(self, tmp, out_dir.resolve())
        return out_dir


def rebalance(
    previous: PreviousPlan,
    changes: list[Change] | str | Path,
    config: PlanConfig | None = None,
    *,
    frontier: int = 0,
) -> Rebalance:
    """The least-disruption plan for ``changes`` to ``previous`` (rules: module docstring).

    ``frontier = N >= 2`` adds N plans from least disruption to best balance. Raises
    :class:`InputError` for bad changes and :class:`InfeasibleError` with the arithmetic
    when the budgets, protected accounts or bands admit no plan.
    """
    from .rebalance_report import build_result

    t0 = time.perf_counter()
    config = config or previous.config
    changes_file = None
    if isinstance(changes, str | Path):
        changes_file = Path(changes)
        changes = read_changes(changes, previous.inputs.reps)
    b = _build(previous, changes, config)
    p = b.pp.problem
    bound = disruption_bound(p, time_limit_s=min(30.0, config.solve.time_limit_s))
    findings = _precheck(b, config, bound)
    if findings:
        raise InfeasibleError(findings)
    if bound.status == "INFEASIBLE":
        raise InfeasibleError(_bound_findings(b, config))

    # Territories within h hops of a changed rep (gone reps act through their neighbours).
    rep_ids = b.pp.rep_ids
    owner_pos = pd.Series(np.arange(b.owner_ids.size), index=b.owner_ids)
    rep_owner = owner_pos[rep_ids].to_numpy()
    seeds = np.isin(b.owner_ids, list(b.team.changed) + list(b.team.gone))
    reach = seeds.copy()
    tries = []
    plan = None
    rb = config.rebalance
    # Above EXACT_BOUND_UNITS the capacity-aware bound takes a staged relaxation (about
    # 16 s for a leaver at 100,000 x 300), which must not be left only the crumbs of the
    # later lexicographic stages; a plan within 2 % of the transshipment bound (a hire,
    # typically) skips it and keeps the time.
    reserve = (
        min(BOUND_RESERVE_S, 0.35 * config.solve.time_limit_s)
        if p.num_units >= EXACT_BOUND_UNITS
        else 0.0
    )
    if reserve < 0.5 * BOUND_RESERVE_S:
        reserve = 0.0  # too little for the staged bound to pay (see below): keep the time
    # Pass 1 chooses the region by least disruption alone (stage 1, about a second at
    # 100,000 x 300): the nearest region that admits a plan, or a wider one while that
    # moves markedly less (a leaver at 100,000 x 300: the two-hop region moved 1.33 x the
    # whole book's bound, its own LP bound being 1.28 x).
    chosen = spare = None
    reached = 0  # hops ``reach`` spans
    for hop in range(1, rb.max_hops + 1):
        reach = reach | b.adjacency[reach].any(axis=0)
        reached = hop
        region = reach[rep_owner]
        left = config.solve.time_limit_s - (time.perf_counter() - t0)
        if left <= 0:
            break
        local = disruption_bound(p, reps=region, time_limit_s=min(10.0, left))
        entry = {"hops": hop, "reps": int(region.sum()), "region_bound": local.bound}
        tries.append(entry)
        if local.status == "INFEASIBLE" and not region.all():
            entry["result"] = "region infeasible (transshipment LP)"
            continue
        built = region_subproblem(p, region)
        if built is None:
            entry["result"] = "an orphan has no candidate in the region"
            continue
        entry["free_accounts"] = int(built[1].size)
        moved1, first = least_disruption(built[0], config.solve, 0.5 * left)
        entry.update(least_disruption=moved1, region_lp_bound=float(first.bound))
        if not np.isfinite(moved1):
            entry["result"] = "no plan in the region"
            if region.all():
                break
            continue
        if chosen is not None and moved1 >= (1 - WIDEN_GAIN) * chosen[1]:
            entry["result"] = "moves no less than one hop fewer"
            spare = (entry, moved1, built, first)
            break
        entry["result"] = "chosen"
        if chosen is not None:
            chosen[0]["result"] = "a wider region moves less"
        chosen = (entry, moved1, built, first)
        spent = time.perf_counter() - t0
        if (
            moved1 <= WIDEN_UNTIL * bound.bound
            or spent > WIDEN_TIME_SHARE * config.solve.time_limit_s
            or region.all()
        ):
            break

    def finish(chosen, limit_s: float):
        """Pass 2 on a chosen region: the lexicographic plan, or failing that stage 1's own
        plan, each checked against the whole book; ``None`` when neither passes."""
        entry, _, (sub, free, group, _), first = chosen
        region = np.zeros(p.num_reps, bool)
        region[group] = True
        res = solve_lexicographic(
            p,
            config.solve,
            region=region,
            tightest=config.tolerance,
            slack=rb.disruption_slack,
            frontier=frontier,
            time_limit_s=max(limit_s, 0.0),
            # Time for the capacity-aware bound after the plan, if this plan will need it.
            hold_back=lambda moved: reserve if moved > 1.02 * bound.bound else 0.0,
            first=first,
        )
        entry["stages"] = [vars(s) for s in res.stages]
        entry["result"] = res.status
        if res.has_plan:
            report = check_plan(p, res.assignment)
            if report.ok:
                fronts = [
                    (band, f if f.size and check_plan(p, f).ok else None)
                    for band, f in zip(res.frontier_bands, res.frontier, strict=True)
                ]
                return res.assignment, report, fronts, res, region
            entry["result"] = "failed the check: " + report.describe(3)
        if first.has_plan:
            full = p.current_rep.astype(np.int64).copy()
            full[free] = group[np.asarray(first.assignment)]
            report = check_plan(p, full)
            if report.ok:
                entry["result"] += "; kept stage 1's plan, which passes"
                return full, report, [], res, region
        return None

    if chosen is not None:
        left = config.solve.time_limit_s - (time.perf_counter() - t0)
        plan = finish(chosen, left - after_solve_s(p.num_units))
    if plan is None and spare is not None:
        left = config.solve.time_limit_s - (time.perf_counter() - t0)
        plan = finish(spare, left - after_solve_s(p.num_units))
    # A region's plan that fails the whole-book check is a fault of the region's model,
    # not of the changes: wider regions, up to the whole book, get the time that is left.
    while plan is None and reached < rb.max_hops and not reach[rep_owner].all():
        reached += 1
        reach = reach | b.adjacency[reach].any(axis=0)
        region = reach[rep_owner]
        left = config.solve.time_limit_s - (time.perf_counter() - t0)
        if left <= after_solve_s(p.num_units):
            break
        entry = {"hops": reached, "reps": int(region.sum()), "fallback": True}
        tries.append(entry)
        built = region_subproblem(p, region)
        if built is None:
            entry["result"] = "an orphan has no candidate in the region"
            continue
        moved1, first = least_disruption(built[0], config.solve, 0.5 * left)
        entry.update(least_disruption=moved1, free_accounts=int(built[1].size))
        if not np.isfinite(moved1):
            entry["result"] = "no plan in the region"
            continue
        left = config.solve.time_limit_s - (time.perf_counter() - t0)
        plan = finish((entry, moved1, built, first), left - after_solve_s(p.num_units))
    if plan is None:
        raise InfeasibleError(
            [
                Finding(
                    "region",
                    f"No plan found within {rb.max_hops} hop(s) of the changed reps "
                    f"(tries: {json.dumps(tries, default=json_default)[:600]}).",
                    "raise [rebalance] max_hops or --time-limit, widen the tolerance, or set "
                    "neighbours_only = false.",
                )
            ]
        )
    full, report, fronts, res, region = plan
    left = config.solve.time_limit_s - (time.perf_counter() - t0)
    moved = moved_potential(p, full)[1]
    if left > 0.5 and moved > 1.02 * bound.bound:
        # The LP duals of the plan's region one hop wider, priced over the whole book: a
        # bound with capacity in about a second (a leaver at 100,000 x 300: 22,407,047 in
        # 1.3 s, as high as the staged relaxation's 16 s one; the transshipment LP said
        # 13,554,347).
        owners = np.zeros(b.owner_ids.size, bool)
        owners[rep_owner[region]] = True
        owners |= seeds
        wider = (owners | b.adjacency[owners].any(axis=0))[rep_owner]
        value, secs = region_dual_bound(p, wider, time_limit_s=min(left - 0.5, 10.0))
        if value > bound.bound:
            bound = replace(
                bound,
                lp=value,
                method=f"Lagrangian bound from the LP duals of a {int(wider.sum())}-rep region",
            )
        bound = replace(bound, raised_s=bound.raised_s + secs)
        left = config.solve.time_limit_s - (time.perf_counter() - t0)
    # A plan within 2 % of the transshipment bound needs no better one; elsewhere the
    # bound that counts capacity is worth the time left (a leaver at 100,000 x 300 moved
    # 2.20 x the transshipment bound, with capacity binding).
    # The staged relaxation needs about 16 s to beat the transshipment bound at 100,000
    # x 300: with less time left it cannot, and it would only overrun the limit (by 1.5 s
    # on a 10 s limit).
    need = 1.0 if p.num_units < EXACT_BOUND_UNITS else 0.5 * BOUND_RESERVE_S
    if left > need and moved > 1.02 * bound.bound:
        xy = previous.inputs.accounts[["lon", "lat"]].to_numpy(float)
        bound = _lp_bound(p, bound, min(left - 0.5, 60.0), unit_xy=xy)
    return build_result(
        previous,
        b,
        changes,
        changes_file,
        config,
        full,
        report,
        bound,
        tries,
        res,
        fronts,
        time.perf_counter() - t0,
    )


def rebalance_files(
    plan: str | Path | None,
    changes: str | Path,
    *,
    accounts: str | Path | None = None,
    reps: str | Path | None = None,
    history: str | Path | None = None,
    alignment: str | Path | None = None,
    config: PlanConfig | str | Path | None = None,
    out: str | Path | None = None,
    frontier: int = 0,
    **overrides,
) -> Rebalance:
    """Load, rebalance and (with ``out``) write; the Python face of ``territory-opt
    rebalance``. ``overrides`` are :meth:`PlanConfig.with_overrides` keywords
    (``tolerance``, ``time_limit_s``, ``seed``, ``workers``, ``quota_total``)."""
    previous = load_previous_plan(
        plan, accounts=accounts, reps=reps, history=history, alignment=alignment, config=config
    )
    cfg = previous.config.with_overrides(**overrides)
    result = rebalance(previous, changes, cfg, frontier=frontier)
    if out is not None:
        result.write(out)
    return result

"""Why a plan cannot exist, in words and arithmetic, before and after solving."""

from __future__ import annotations

import math

import numpy as np

from solvers.cpsat.solve import Conflict
from solvers.lp import Relaxation

from .errors import Finding
from .problem import PlanningProblem

__all__ = ["precheck", "explain_conflicts", "explain_relaxation", "indivisibility_limit"]


def _money(x: float) -> str:
    return f"{x:,.0f}"


def indivisibility_limit(pp: PlanningProblem) -> float:
    """Tightest potential band (as a share of target) that the largest accounts allow.

    An account larger than ``target x (1 + t)`` for every rep it can go to breaks any band
    of half-width ``t``; the limit is the largest such ``t`` needed over all accounts.
    """
    p = pp.problem
    target = p.measure_target[p.cand_rep, 0]
    with np.errstate(divide="ignore", invalid="ignore"):
        need = np.where(target > 0, pp.potential[p.pair_unit] / target - 1.0, np.inf)
    best = np.minimum.reduceat(need, p.cand_indptr[:-1]) if p.num_pairs else np.zeros(0)
    return float(max(0.0, best.max(initial=0.0)))


def precheck(pp: PlanningProblem, tolerance: float) -> list[Finding]:
    """Arithmetic checks that prove infeasibility cheaply, each with its fix."""
    p = pp.problem
    out: list[Finding] = []
    wl_min = np.minimum.reduceat(p.pair_workload_h, p.cand_indptr[:-1])
    for pool in np.unique(pp.rep_pool):
        reps = pp.rep_pool == pool
        accs = pp.account_pool == pool
        need, have = wl_min[accs].sum(), p.capacity_h[reps].sum()
        if need > have:
            per_rep = have / max(1, reps.sum())
            if have <= 0:
                out.append(
                    Finding(
                        "capacity",
                        f"Reps{'' if pool == 'all' else f' of segment {pool!r}'} "
                        f"have no capacity but their accounts need {need:,.0f} h.",
                        "give them capacity_h or fte above zero.",
                    )
                )
                continue
            more = math.ceil((need - have) / per_rep) if per_rep > 0 else 0
            seg = "" if pool == "all" else f" of segment '{pool}'"
            out.append(
                Finding(
                    "capacity",
                    f"Total workload {need:,.0f} h (each account with its nearest eligible rep) "
                    f"exceeds total capacity {have:,.0f} h across {reps.sum()} reps{seg} by "
                    f"{need - have:,.0f} h.",
                    f"add {more} rep(s) or raise capacity by {100 * (need / have - 1):.1f} %.",
                )
            )
    limit = indivisibility_limit(pp)
    if limit > tolerance:
        target = p.measure_target[p.cand_rep, 0]
        worst = int(
            np.argmax(
                np.minimum.reduceat(
                    pp.potential[p.pair_unit] - target * (1 + tolerance), p.cand_indptr[:-1]
                )
            )
        )
        out.append(
            Finding(
                "band",
                f"Account '{pp.account_ids[worst]}' has potential {_money(pp.potential[worst])}, "
                f"above the band maximum (target x {1 + tolerance:.6g}) of every rep it can go "
                f"to; the tightest band any plan can meet is +-{100 * limit:.2f} %.",
                f"widen the tolerance to at least {limit:.4f}, or split the account.",
            )
        )
    fixed = p.fixed_rep >= 0
    locked_pot = np.bincount(p.fixed_rep[fixed], weights=pp.potential[fixed], minlength=p.num_reps)
    for i in np.flatnonzero(locked_pot > p.measure_hi[:, 0] * (1 + 1e-12)):
        out.append(
            Finding(
                "band",
                f"Rep '{pp.rep_ids[i]}' has locked accounts with potential "
                f"{_money(locked_pot[i])}, above its band maximum {_money(p.measure_hi[i, 0])} by "
                f"{_money(locked_pot[i] - p.measure_hi[i, 0])}.",
                "unlock some of its accounts or widen the tolerance.",
            )
        )
    reach = np.bincount(p.cand_rep, weights=pp.potential[p.pair_unit], minlength=p.num_reps)
    for i in np.flatnonzero(reach < p.measure_lo[:, 0] * (1 - 1e-12)):
        out.append(
            Finding(
                "reach",
                f"Rep '{pp.rep_ids[i]}' can reach accounts worth at most {_money(reach[i])} "
                f"(its candidates), below its band minimum {_money(p.measure_lo[i, 0])} by "
                f"{_money(p.measure_lo[i, 0] - reach[i])}.",
                "raise num_candidates or max_travel_km, or move the rep's home base.",
            )
        )
    pair_fixed = p.pair_index(np.flatnonzero(fixed), p.fixed_rep[fixed])
    locked_wl = np.bincount(
        p.fixed_rep[fixed], weights=p.pair_workload_h[pair_fixed], minlength=p.num_reps
    )
    for i in np.flatnonzero(locked_wl > p.capacity_h):
        out.append(
            Finding(
                "capacity",
                f"Rep '{pp.rep_ids[i]}' has locked accounts needing {locked_wl[i]:,.0f} h, above "
                f"its capacity {p.capacity_h[i]:,.0f} h by "
                f"{locked_wl[i] - p.capacity_h[i]:,.0f} h.",
                "unlock some of its accounts or raise its capacity.",
            )
        )
    return out


def explain_conflicts(pp: PlanningProblem, conflicts: list[Conflict]) -> list[Finding]:
    """CP-SAT's infeasible core in words."""
    p = pp.problem
    out = []
    for c in conflicts:
        if c.rule.startswith("band"):
            side = "minimum" if c.rule.endswith("lo") else "maximum"
            lim = p.measure_lo if side == "minimum" else p.measure_hi
            out.append(
                Finding(
                    "band",
                    f"Rep '{pp.rep_ids[c.rep]}': the {p.measure_names[c.measure]} band "
                    f"{side} {_money(lim[c.rep, c.measure])} is part of a set of rules that "
                    "cannot hold together.",
                    "widen the tolerance or the rep's candidate set (num_candidates).",
                )
            )
        elif c.rule == "capacity":
            out.append(
                Finding(
                    "capacity",
                    f"Rep '{pp.rep_ids[c.rep]}': capacity {p.capacity_h[c.rep]:,.0f} h "
                    "is part of a set of rules that cannot hold together.",
                    "raise capacity or add a rep nearby.",
                )
            )
        else:
            out.append(
                Finding(
                    "locks",
                    "The locked accounts are part of the conflict.",
                    "unlock some accounts.",
                )
            )
    return out


def explain_relaxation(pp: PlanningProblem, relax: Relaxation, limit: int = 12) -> list[Finding]:
    """The least relaxation (elastic LP) in words: which rep, which limit, by how much.

    Relaxing the named limits by the named amounts makes even fractional plans possible,
    so they are where the settings conflict with the book.
    """
    p = pp.problem
    rows = []
    for j in range(p.num_measures):
        for i in np.flatnonzero(relax.band_short[:, j] > 1e-6 * p.measure_target[:, j]):
            rows.append((relax.band_short[i, j] / p.measure_target[i, j], "short", i, j))
        for i in np.flatnonzero(relax.band_over[:, j] > 1e-6 * p.measure_target[:, j]):
            rows.append((relax.band_over[i, j] / p.measure_target[i, j], "over", i, j))
    for i in np.flatnonzero(relax.capacity_over > 1e-6 * p.capacity_h):
        rows.append((relax.capacity_over[i] / p.capacity_h[i], "capacity", i, -1))
    rows.sort(key=lambda t: -t[0])
    out = []
    for share, kind, i, j in rows[:limit]:
        rep = pp.rep_ids[i]
        if kind == "capacity":
            out.append(
                Finding(
                    "capacity",
                    f"Rep '{rep}': even the best fractional plan needs "
                    f"{p.capacity_h[i] + relax.capacity_over[i]:,.0f} h, above its capacity "
                    f"{p.capacity_h[i]:,.0f} h by {relax.capacity_over[i]:,.0f} h "
                    f"({100 * share:.1f} %).",
                    f"raise its capacity by {100 * share:.1f} %, add a rep nearby, or widen the "
                    "potential tolerance.",
                )
            )
        else:
            name = p.measure_names[j]
            side = "minimum" if kind == "short" else "maximum"
            limit_v = p.measure_lo[i, j] if kind == "short" else p.measure_hi[i, j]
            amount = relax.band_short[i, j] if kind == "short" else relax.band_over[i, j]
            word = "below" if kind == "short" else "above"
            out.append(
                Finding(
                    "band",
                    f"Rep '{rep}': even the best fractional plan puts its {name} {amount:,.0f} "
                    f"{word} its band {side} of {limit_v:,.0f} ({100 * share:.2f} % of target).",
                    "widen the tolerance by at least that share, or raise num_candidates / "
                    "rep_reach so the rep can reach more accounts.",
                )
            )
    if len(rows) > limit:
        out.append(
            Finding(
                "band",
                f"... and {len(rows) - limit} more limit(s) would have to give.",
                "see the limits above.",
            )
        )
    return out

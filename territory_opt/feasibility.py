"""Why a plan cannot exist, in words and arithmetic, before and after solving."""

from __future__ import annotations

import math

import numpy as np

from solvers.cpsat.solve import Conflict
from solvers.lp import Relaxation

from .errors import Finding
from .problem import PlanningProblem

__all__ = [
    "precheck",
    "explain_conflicts",
    "explain_relaxation",
    "indivisibility_limit",
    "indivisibility_limits",
    "transfer_findings",
]

# The settings key behind each keep measure, per rep and overall.
_TRANSFER_KEY = {
    "accounts": ("max_accounts_share_per_rep", "max_accounts_share_total"),
    "potential": ("max_potential_share_per_rep", "max_potential_share_total"),
}
# The balance measure each keep measure counts, when that measure is balanced.
_BAND_OF_KEEP = {"accounts": "account_count", "potential": "potential"}


def _money(x: float) -> str:
    return f"{x:,.0f}"


def _band_fix(p, j: int) -> str:
    """The setting that widens measure ``j``'s band."""
    return "tolerance" if j == 0 else f"balance.{p.measure_names[j]}"


def _measure_limit(p, j: int) -> tuple[float, int]:
    """Tightest band half-width of measure ``j`` the largest units allow, and the unit that
    sets it (-1 if none)."""
    target = p.measure_target[p.cand_rep, j]
    with np.errstate(divide="ignore", invalid="ignore"):
        need = np.where(target > 0, p.unit_measure[p.pair_unit, j] / target - 1.0, np.inf)
        need = np.where(p.unit_measure[p.pair_unit, j] > 0, need, -1.0)
    if not p.num_pairs:
        return 0.0, -1
    best = np.minimum.reduceat(need, p.cand_indptr[:-1])
    u = int(np.argmax(best))
    return float(max(0.0, best[u])), (u if best[u] > 0 else -1)


def indivisibility_limit(pp: PlanningProblem) -> float:
    """Tightest potential band (as a share of target) that the largest accounts allow.

    An account larger than ``target x (1 + t)`` for every rep it can go to breaks any band
    of half-width ``t``; the limit is the largest such ``t`` needed over all accounts.
    """
    return _measure_limit(pp.problem, 0)[0]


def indivisibility_limits(pp: PlanningProblem) -> dict[str, float]:
    """:func:`indivisibility_limit` for every balance measure, by name (infinite when an
    account with a positive amount can only go to reps whose target is zero)."""
    p = pp.problem
    return {name: _measure_limit(p, j)[0] for j, name in enumerate(p.measure_names)}


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
    for j in range(1, p.num_measures):
        name = p.measure_names[j]
        lim, u = _measure_limit(p, j)
        with np.errstate(divide="ignore", invalid="ignore"):
            width = np.where(
                p.measure_target[:, j] > 0, p.measure_hi[:, j] / p.measure_target[:, j] - 1, 0
            )
        tol_j = float(width.max(initial=0.0))
        if u >= 0 and lim > tol_j + 1e-12:
            out.append(
                Finding(
                    "band",
                    f"Account '{pp.account_ids[u]}' has {name} {p.unit_measure[u, j]:,.4g}, above "
                    f"the {name} band maximum of every rep it can go to; the tightest {name} "
                    f"band any plan can meet is +-{100 * lim:.2f} %.",
                    f"widen balance.{name} to at least {lim:.4f}.",
                )
            )
    fixed = p.fixed_rep >= 0
    for j in range(p.num_measures):
        name = p.measure_names[j]
        fixed_sum = np.bincount(
            p.fixed_rep[fixed], weights=p.unit_measure[fixed, j], minlength=p.num_reps
        )
        hi = p.measure_hi[:, j]
        for i in np.flatnonzero(fixed_sum > hi * (1 + 1e-12) + 1e-9):
            out.append(
                Finding(
                    "band",
                    f"Rep '{pp.rep_ids[i]}' has locked and named accounts with {name} "
                    f"{_money(fixed_sum[i])}, above its band maximum {_money(hi[i])} by "
                    f"{_money(fixed_sum[i] - hi[i])}.",
                    "unlock or un-name some of its accounts (named_accounts), or widen "
                    f"{_band_fix(p, j)} to at least "
                    f"{fixed_sum[i] / p.measure_target[i, j] - 1:.4f}."
                    if p.measure_target[i, j] > 0
                    else "unlock or un-name some of its accounts (named_accounts).",
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
                f"Rep '{pp.rep_ids[i]}' has locked and named accounts needing "
                f"{locked_wl[i]:,.0f} h, above its capacity {p.capacity_h[i]:,.0f} h by "
                f"{locked_wl[i] - p.capacity_h[i]:,.0f} h.",
                "unlock or un-name some of its accounts, or raise its capacity.",
            )
        )
    out += transfer_findings(pp)
    return out


def transfer_findings(pp: PlanningProblem) -> list[Finding]:
    """Transfer limits that cannot hold, with the arithmetic.

    Per rep: it must keep more of its book than can stay with it at all (accounts named
    or locked elsewhere, forbidden pairs, other segments), or more than its band maximum
    allows. Overall: more must stay than the reps can keep within their band maxima.
    """
    p = pp.problem
    out: list[Finding] = []
    if not p.num_keep:
        return out
    r = p.num_reps
    book = p.current_book()
    cur = p.current_rep
    has = cur >= 0
    # Book units that can stay: their current rep is a candidate and nothing fixes them
    # elsewhere.
    can = np.zeros(p.num_units, dtype=bool)
    idx = np.flatnonzero(has)
    can[idx] = p.pair_index(idx, cur[idx]) >= 0
    can &= (p.fixed_rep < 0) | (p.fixed_rep == cur)
    fixed = p.fixed_rep >= 0
    from_elsewhere = fixed & (p.fixed_rep != cur)
    for t, name in enumerate(p.keep_names):
        key_rep, key_total = _TRANSFER_KEY.get(name, (f"keep[{name}]", f"keep[{name}] total"))
        stayable = np.bincount(cur[can], weights=p.keep_measure[can, t], minlength=r)
        need = p.keep_min[:, t]
        band = _BAND_OF_KEEP.get(name)
        j = p.measure_names.index(band) if band in p.measure_names else -1
        cap_keep = stayable.copy()
        if j >= 0:
            other = np.bincount(
                p.fixed_rep[from_elsewhere],
                weights=p.unit_measure[from_elsewhere, j],
                minlength=r,
            )
            room = np.maximum(p.measure_hi[:, j] - other, 0.0)
            cap_keep = np.minimum(cap_keep, room)
        for i in np.flatnonzero(need > 0):
            rep = pp.rep_ids[i]
            share_kept = need[i] / book[i, t] if book[i, t] > 0 else 1.0
            if need[i] > stayable[i] * (1 + 1e-12) + 1e-9:
                allowed = 1 - stayable[i] / book[i, t]
                out.append(
                    Finding(
                        "transfer",
                        f"Rep '{rep}' must keep at least {100 * share_kept:.1f} % of its current "
                        f"{name} {_money(book[i, t])} ({_money(need[i])}), but only "
                        f"{_money(stayable[i])} of its book can stay with it (the rest is named "
                        "or locked to other reps, forbidden, or not eligible).",
                        f"relax transfer.{key_rep} to at least {allowed:.4f}.",
                    )
                )
            elif j >= 0 and need[i] > cap_keep[i] * (1 + 1e-12) + 1e-9:
                hi = p.measure_hi[i, j]
                extra = hi - cap_keep[i]
                allowed = 1 - cap_keep[i] / book[i, t]
                lower = need[i] + extra
                widen = lower / p.measure_target[i, j] - 1 if p.measure_target[i, j] > 0 else 0
                also = (
                    f" plus {_money(extra)} named or locked to it from other books"
                    if extra > 1e-9
                    else ""
                )
                out.append(
                    Finding(
                        "transfer",
                        f"Rep '{rep}' must keep at least {100 * share_kept:.1f} % of its current "
                        f"{name} {_money(book[i, t])}, that is {_money(need[i])}{also}, but its "
                        f"{band} band maximum is {_money(hi)}: the two cannot both hold.",
                        f"relax transfer.{key_rep} to at least {allowed:.4f}, or widen "
                        f"{_band_fix(p, j)} to at least {widen:.4f}.",
                    )
                )
        total_need = p.keep_min_total[t]
        total_book = book[:, t].sum()
        if total_need > 0:
            most = float(np.minimum(cap_keep, stayable).sum())
            if total_need > most * (1 + 1e-12) + 1e-9:
                within = " within their band maxima" if j >= 0 else ""
                out.append(
                    Finding(
                        "transfer",
                        f"At most {_money(most)} of the current {name} {_money(total_book)} can "
                        f"stay with its current rep{within}, but transfer.{key_total} requires "
                        f"{_money(total_need)} ({100 * total_need / total_book:.1f} %) to stay.",
                        f"relax transfer.{key_total} to at least {1 - most / total_book:.4f}"
                        + (f", or widen {_band_fix(p, j)}." if j >= 0 else "."),
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
                    f"widen {_band_fix(p, c.measure)} or the rep's candidate set (num_candidates).",
                )
            )
        elif c.rule == "transfer":
            name = p.keep_names[c.measure]
            key_rep, key_total = _TRANSFER_KEY.get(name, (f"keep[{name}]",) * 2)
            if c.rep >= 0:
                what = (
                    f"Rep '{pp.rep_ids[c.rep]}': the transfer limit (keep at least "
                    f"{_money(p.keep_min[c.rep, c.measure])} of its current {name})"
                )
                key = key_rep
            else:
                what = (
                    f"The overall transfer limit (at least {_money(p.keep_min_total[c.measure])} "
                    f"of {name} stays with its current rep)"
                )
                key = key_total
            out.append(
                Finding(
                    "transfer",
                    f"{what} is part of a set of rules that cannot hold together.",
                    f"raise transfer.{key}, or widen the bands it conflicts with.",
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
    keep_short = relax.keep_short if relax.keep_short.size else np.zeros((p.num_reps, 0))
    for t in range(keep_short.shape[1]):
        for i in np.flatnonzero(keep_short[:, t] > 1e-6 * np.maximum(p.keep_min[:, t], 1.0)):
            rows.append((keep_short[i, t] / p.keep_min[i, t], "keep", i, t))
        if relax.keep_total_short.size and relax.keep_total_short[t] > 1e-6 * max(
            p.keep_min_total[t], 1.0
        ):
            rows.append((relax.keep_total_short[t] / p.keep_min_total[t], "keep", -1, t))
    rows.sort(key=lambda t: -t[0])
    out = []
    book = p.current_book() if p.num_keep else np.zeros((p.num_reps, 0))
    for share, kind, i, j in rows[:limit]:
        rep = pp.rep_ids[i]
        if kind == "keep":
            name = p.keep_names[j]
            key_rep, key_total = _TRANSFER_KEY.get(name, (f"keep[{name}]",) * 2)
            short = relax.keep_short[i, j] if i >= 0 else relax.keep_total_short[j]
            need = p.keep_min[i, j] if i >= 0 else p.keep_min_total[j]
            base = book[i, j] if i >= 0 else book[:, j].sum()
            who = (
                f"Rep '{rep}': even the best fractional plan keeps"
                if i >= 0
                else ("Overall, even the best fractional plan keeps")
            )
            allowed = 1 - (need - short) / base if base > 0 else 1.0
            out.append(
                Finding(
                    "transfer",
                    f"{who} only {_money(need - short)} of the current {name}"
                    f"{' of its book' if i >= 0 else ''} ({_money(base)}) with its current rep, "
                    f"{_money(short)} short of the transfer minimum {_money(need)} "
                    f"({100 * share:.1f} %).",
                    f"relax transfer.{key_rep if i >= 0 else key_total} to at least "
                    f"{allowed:.4f}, or widen the bands that force the moves.",
                )
            )
        elif kind == "capacity":
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
                    f"widen {_band_fix(p, j)} by at least that share, or raise num_candidates "
                    "/ rep_reach so the rep can reach more accounts.",
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

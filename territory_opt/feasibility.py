"""Why a plan cannot exist, in words and arithmetic, before and after solving."""

from __future__ import annotations

import math

import numpy as np
import scipy.sparse as sp

from solvers.cpsat.solve import Conflict
from solvers.lp import Relaxation
from solvers.mathopt_lp import solve_lp

from .errors import Finding
from .problem import PlanningProblem

__all__ = [
    "precheck",
    "explain_conflicts",
    "explain_relaxation",
    "indivisibility_limit",
    "indivisibility_limits",
    "transfer_findings",
    "transfer_capacity_findings",
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
    if not out:
        out += transfer_capacity_findings(pp)
    return out


def _allowed_share(p, book, i: int, t: int, alpha: float) -> float:
    """The transfer share that leaves rep ``i`` keeping ``alpha`` of its keep minimum of
    keep measure ``t``, rounded up to the 4 decimals a message shows."""
    keep = alpha * p.keep_min[i, t]
    if p.keep_names[t] == "accounts":
        # Kept accounts are whole (balance.keep_limits rounds them up): the share must
        # bring them down to the whole number that fits, and a hair past it.
        keep = np.floor(keep + 1e-9) - 1e-6
    return min(1.0, math.ceil((1 - keep / book[i, t]) * 1e4) / 1e4)


def transfer_capacity_findings(pp: PlanningProblem) -> list[Finding]:
    """Reps whose transfer limits alone need more hours than their capacity.

    A rep must keep at least ``keep_min`` of each keep measure of its current book, and
    what it keeps must fit under its band maxima and its capacity (with whatever is named
    or locked to it from other books). The least hours that keeping can take is an LP over
    its current book (each account kept in part or whole, at its hours with this rep); when
    that exceeds the capacity, no plan exists. The fix comes from a second LP: the largest
    share of the keep minimums that fits, turned into the transfer share to allow, beside
    the capacity that would let the current limits hold.
    """
    p = pp.problem
    if not p.num_keep or not np.any(np.isfinite(p.capacity_h)):
        return []
    r, n = p.num_reps, p.num_units
    cur = p.current_rep.astype(np.int64)
    has = cur >= 0
    idx = np.flatnonzero(has)
    stay_pair = np.full(n, -1, dtype=np.int64)
    stay_pair[idx] = p.pair_index(idx, cur[idx])
    can = (stay_pair >= 0) & ((p.fixed_rep < 0) | (p.fixed_rep == cur))
    hours = np.where(can, p.pair_workload_h[np.maximum(stay_pair, 0)], 0.0)
    # What other books' named and locked accounts already put on each rep.
    inward = (p.fixed_rep >= 0) & (p.fixed_rep != cur)
    in_units = np.flatnonzero(inward)
    in_reps = p.fixed_rep[in_units].astype(np.int64)
    in_hours = np.bincount(in_reps, p.pair_workload_h[p.pair_index(in_units, in_reps)], minlength=r)
    room_h = p.capacity_h - in_hours
    book_h = np.bincount(cur[can], hours[can], minlength=r)
    # Only reps whose whole stayable book does not fit can fail.
    suspects = np.flatnonzero((p.keep_min.max(axis=1) > 0) & (book_h > room_h * (1 + 1e-9)))
    book = p.current_book()
    out: list[Finding] = []
    for i in suspects:
        units = np.flatnonzero(can & (cur == i))
        if units.size == 0:
            continue
        rows, lo, hi = [], [], []
        for t in range(p.num_keep):
            if p.keep_min[i, t] > 0:
                rows.append(p.keep_measure[units, t])
                lo.append(p.keep_min[i, t])
                hi.append(np.inf)
        for j in range(p.num_measures):
            meas = p.unit_measure[units, j]
            # Keeping less never lowers a non-negative measure's total: a valid cap.
            if np.isfinite(p.measure_hi[i, j]) and np.all(meas >= 0):
                rows.append(meas)
                lo.append(-np.inf)
                hi.append(p.measure_hi[i, j] - p.unit_measure[in_units[in_reps == i], j].sum())
        a = sp.csr_matrix(np.vstack(rows))
        locked = (p.fixed_rep[units] == i).astype(float)
        least = solve_lp(hours[units], a, np.array(lo), np.array(hi), locked, np.ones(units.size))
        if least.status != "OPTIMAL":
            continue  # keeping itself is impossible: transfer_findings says why
        need_h = float(hours[units] @ least.x)
        if need_h <= room_h[i] * (1 + 1e-9) + 1e-6:
            continue
        # The largest share alpha of every keep minimum that fits: maximise alpha with the
        # keep rows as (row - alpha * keep_min >= 0) and hours within the room.
        k = len(keeps := [t for t in range(p.num_keep) if p.keep_min[i, t] > 0])
        col = np.r_[-np.array(lo[:k]), np.zeros(len(lo) - k), 0.0]
        a2 = sp.hstack([sp.vstack([a, sp.csr_matrix(hours[units])]), sp.csr_matrix(col[:, None])])
        lo2 = np.r_[np.zeros(k), np.array(lo[k:]), -np.inf]
        hi2 = np.r_[np.full(k, np.inf), np.array(hi[k:]), room_h[i]]
        cost = np.r_[np.zeros(units.size), -1.0]
        fit = solve_lp(cost, a2, lo2, hi2, np.r_[locked, 0.0], np.r_[np.ones(units.size), 1.0])
        alpha = float(fit.x[-1]) if fit.status == "OPTIMAL" else 0.0
        rep = pp.rep_ids[i]
        what = " and ".join(
            f"{100 * p.keep_min[i, t] / book[i, t]:.1f} % of its current {p.keep_names[t]}"
            for t in keeps
        )

        fixes = ", ".join(
            f"transfer.{_TRANSFER_KEY.get(p.keep_names[t], (f'keep[{p.keep_names[t]}]',))[0]} "
            f"to at least {_allowed_share(p, book, i, t, alpha):.4f}"
            for t in keeps
        )
        out.append(
            Finding(
                "transfer",
                f"Rep '{rep}' must keep at least {what} within its band maximum; the least "
                f"workload that takes is {need_h:,.1f} h (its current accounts at its own "
                f"base), above its capacity {p.capacity_h[i]:,.1f} h"
                + (f" less {in_hours[i]:,.1f} h named or locked to it" if in_hours[i] else "")
                + f" by {need_h - room_h[i]:,.1f} h.",
                f"relax {fixes}; or raise rep '{rep}' capacity_h to at least "
                f"{need_h + in_hours[i]:,.1f}.",
            )
        )
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

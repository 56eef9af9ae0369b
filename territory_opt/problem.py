"""From validated frames to the solver's arrays: candidates, costs, workloads, bands."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

from solvers.pairspace import PairSpace, unit_vectors
from solvers.problem import AlignmentProblem

from .balance import (
    apply_pair_rules,
    balance_bands,
    fixed_reps,
    keep_limits,
    pool_targets,
    target_weights,
)
from .config import PlanConfig
from .errors import InputError, InputProblem
from .geo import haversine_km, nearest
from .workload import capacity_h, visits_per_year, workload_h

__all__ = ["PlanningProblem", "build_problem"]


@dataclass(frozen=True, eq=False)
class PlanningProblem:
    """The solver's problem plus what the domain needs to read its answer.

    ``account_ids`` and ``rep_ids`` give the order of units and reps; ``pair_travel_km`` is
    the great-circle distance of each candidate pair; ``pool`` is each rep's segment pool
    (``"all"`` without segments). ``space`` knows every eligible pair's cost and workload,
    so that the engine can price pairs beyond the candidates (column generation).
    """

    problem: AlignmentProblem
    account_ids: np.ndarray
    rep_ids: np.ndarray
    potential: np.ndarray
    visits: np.ndarray
    pair_travel_km: np.ndarray
    rep_pool: np.ndarray
    account_pool: np.ndarray
    space: PairSpace | None = None

    def with_problem(self, problem: AlignmentProblem) -> PlanningProblem:
        """The same planning problem over ``problem``'s candidates (an enlargement the
        solver made): travel is recomputed for every pair."""
        if problem is self.problem or problem is None:
            return self
        travel = haversine_km(
            self.space.unit_lat[problem.pair_unit],
            self.space.unit_lon[problem.pair_unit],
            self.space.rep_lat[problem.cand_rep],
            self.space.rep_lon[problem.cand_rep],
        )
        return replace(self, problem=problem, pair_travel_km=travel)


def _targets(pot, rep_pool, acc_pool, weights) -> np.ndarray:
    """Each rep's share of its pool's potential equals its share of the pool's ``weights``
    (capacity, or the reps' ``target_weight``: see :mod:`territory_opt.balance`)."""
    return pool_targets(pot, rep_pool, acc_pool, weights)


def build_problem(
    accounts: pd.DataFrame, reps: pd.DataFrame, potential: pd.Series, config: PlanConfig
) -> PlanningProblem:
    """Candidate pairs (nearest eligible reps, current and locked rep), costs and bands.

    Targets are proportional to capacity within each segment pool: a rep's target share of
    its pool's potential equals its share of the pool's capacity (or of the pool's
    ``target_weight``). Extra balance measures, named accounts, forbidden pairs and
    transfer limits come from the settings (:mod:`territory_opt.balance`).
    """
    n, r = len(accounts), len(reps)
    rep_ids = reps["rep_id"].to_numpy(str)
    rep_index = pd.Series(np.arange(r), index=rep_ids)
    pot = potential.reindex(accounts.index).to_numpy(float)
    segmented = "segment" in reps and reps["segment"].notna().any()
    rep_pool = reps["segment"].astype(str).to_numpy() if segmented else np.full(r, "all")
    acc_pool = accounts["segment"].astype(str).to_numpy() if segmented else np.full(n, "all")
    cur = accounts["current_rep_id"].map(rep_index).fillna(-1).to_numpy(np.int64)
    locked = accounts["locked"].to_numpy(bool)
    fixed = np.where(locked, cur, -1)

    lat, lon = accounts["lat"].to_numpy(float), accounts["lon"].to_numpy(float)
    rlat, rlon = reps["lat"].to_numpy(float), reps["lon"].to_numpy(float)
    rows: list[np.ndarray] = []
    cols: list[np.ndarray] = []
    problems: list[InputProblem] = []
    for pool in np.unique(rep_pool):
        reps_in = np.flatnonzero(rep_pool == pool)
        accs_in = np.flatnonzero(acc_pool == pool)
        if accs_in.size == 0:
            for i in reps_in:
                problems.append(
                    InputProblem(
                        "reps",
                        f"rep '{rep_ids[i]}' (segment '{pool}') can reach no account: no "
                        "account has that segment",
                        "remove the rep or fix its segment",
                        row=int(i) + 1,
                        column="segment",
                    )
                )
            continue
        idx, dist = nearest(
            lat[accs_in], lon[accs_in], rlat[reps_in], rlon[reps_in], config.num_candidates
        )
        keep = dist <= config.max_travel_km
        keep[:, 0] = True  # the nearest eligible rep is always a candidate
        rows.append(np.repeat(accs_in, keep.sum(axis=1)))
        cols.append(reps_in[idx[keep]])
    if problems:
        raise InputError(problems)
    # Rep-side candidates: each rep also reaches its nearest accounts until they hold
    # ``rep_reach`` x its target, so reps far from the crowd can still fill their band.
    # The same per-rep weights as the bands (target_weight, else capacity), so a part-time
    # rep reaches what its own band asks for.
    pot_target = _targets(pot, rep_pool, acc_pool, target_weights(reps, config.workload))
    rows_r, cols_r = _rep_reach(lat, lon, rlat, rlon, pot, rep_pool, acc_pool, pot_target, config)
    rows += rows_r
    cols += cols_r
    # Current and locked reps are candidates too, when eligible (same pool).
    has_cur = (cur >= 0) & (rep_pool[np.maximum(cur, 0)] == acc_pool)
    rows.append(np.flatnonzero(has_cur))
    cols.append(cur[has_cur])
    unit = np.concatenate(rows)
    rep = np.concatenate(cols)
    # Settings' pair rules: named accounts' reps become candidates, forbidden pairs go.
    unit, rep = apply_pair_rules(accounts, rep_ids, rep_pool, acc_pool, config, unit, rep)
    order = np.lexsort((rep, unit))
    unit, rep = unit[order], rep[order]
    first = np.r_[True, (np.diff(unit) != 0) | (np.diff(rep) != 0)]
    unit, rep = unit[first], rep[first]
    reached = np.bincount(rep, minlength=r)
    lonely = np.flatnonzero(reached == 0)
    if lonely.size:
        raise InputError(
            [
                InputProblem(
                    "reps",
                    f"rep '{rep_ids[i]}' is not among the {config.num_candidates} nearest "
                    f"reps of any account within {config.max_travel_km:g} km, so it can reach no "
                    "account",
                    "check its home base, or raise num_candidates / max_travel_km",
                    row=int(i) + 1,
                    column="lat",
                )
                for i in lonely
            ]
        )
    indptr = np.r_[0, np.cumsum(np.bincount(unit, minlength=n))]

    travel = haversine_km(lat[unit], lon[unit], rlat[rep], rlon[rep])
    visits = visits_per_year(accounts, config.workload)
    pair_wl = workload_h(visits[unit], travel, config.workload)
    cap = capacity_h(reps, config.workload)

    # Bands of every balance measure around per-rep targets; locked and named accounts
    # fixed; transfer limits against the current alignment (territory_opt.balance).
    bal = balance_bands(accounts, reps, pot, rep_pool, acc_pool, config)
    problem = AlignmentProblem(
        cand_indptr=indptr,
        cand_rep=rep,
        pair_cost=pot[unit] * travel,
        pair_workload_h=pair_wl,
        unit_measure=bal.unit_measure,
        measure_lo=bal.lo,
        measure_hi=bal.hi,
        measure_target=bal.target,
        capacity_h=cap,
        fixed_rep=fixed_reps(accounts, rep_ids, fixed, config),
        current_rep=cur,
        measure_names=bal.names,
        **keep_limits(cur, pot, r, config),
    )
    pools, codes = np.unique(np.r_[rep_pool, acc_pool], return_inverse=True)
    forbidden = np.zeros(0, np.int64)
    if config.forbidden_pairs:
        acc_pos = pd.Series(np.arange(n), index=accounts["account_id"].astype(str))
        fu = acc_pos[[a for a, _ in config.forbidden_pairs]].to_numpy(np.int64)
        fr = rep_index[[q for _, q in config.forbidden_pairs]].to_numpy(np.int64)
        forbidden = fu * r + fr
    space = PairSpace(
        unit_lat=lat,
        unit_lon=lon,
        rep_lat=rlat,
        rep_lon=rlon,
        cost_per_km=pot,
        hours_fixed=workload_h(visits, np.zeros(n), config.workload),
        hours_per_km=workload_h(visits, np.ones(n), config.workload)
        - workload_h(visits, np.zeros(n), config.workload),
        unit_pool=codes[r:],
        rep_pool=codes[:r],
        max_km=config.max_travel_km,
        forbidden=forbidden,
    )
    return PlanningProblem(
        space=space,
        problem=problem,
        account_ids=accounts["account_id"].to_numpy(str),
        rep_ids=rep_ids,
        potential=pot,
        visits=visits,
        pair_travel_km=travel,
        rep_pool=rep_pool,
        account_pool=acc_pool,
    )


def _rep_reach(lat, lon, rlat, rlon, pot, rep_pool, acc_pool, pot_target, config):
    """Rep-side candidates: each rep also reaches its nearest accounts until they hold
    ``rep_reach`` x its target, so reps far from the crowd can still fill their band.

    Nearest accounts come from a k-d tree on unit vectors (chord order is great-circle
    order); a rep whose first ``k`` accounts hold too little is searched exhaustively."""
    rows, cols = [], []
    for pool in np.unique(rep_pool):
        reps_in = np.flatnonzero(rep_pool == pool)
        accs_in = np.flatnonzero(acc_pool == pool)
        if accs_in.size == 0:
            continue
        tree = cKDTree(unit_vectors(lat[accs_in], lon[accs_in]))
        p_in = pot[accs_in]
        need = config.rep_reach * pot_target[reps_in]
        mean = max(float(p_in.mean()), 1e-12)
        k = int(min(accs_in.size, np.ceil(3 * need.max() / mean) + 16))
        _, idx = tree.query(unit_vectors(rlat[reps_in], rlon[reps_in]), k=k)
        idx = np.asarray(idx).reshape(reps_in.size, k)
        cum = np.cumsum(p_in[idx], axis=1)
        for row, i in enumerate(reps_in):
            take = int(np.searchsorted(cum[row], need[row])) + 1
            if take <= k:
                chosen = accs_in[idx[row, : min(take, k)]]
            else:
                km = haversine_km(lat[accs_in], lon[accs_in], rlat[i], rlon[i])
                order = np.argsort(km, kind="stable")
                t = int(np.searchsorted(np.cumsum(p_in[order]), need[row])) + 1
                chosen = accs_in[order[:t]]
            rows.append(chosen)
            cols.append(np.full(chosen.size, i))
    return rows, cols

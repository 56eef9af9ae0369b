"""Balance measures, per-rep targets, named accounts, forbidden pairs and transfer limits.

The modelling rules a plan's settings add on top of the candidate pairs, turned into the
arrays of :class:`solvers.problem.AlignmentProblem`. :func:`territory_opt.problem.build_problem`
calls these few functions; each raises one :class:`InputError` listing every problem with
the settings it finds.

Targets: within each segment pool (``"all"`` without segments) a rep's target of every
balance measure is the pool's total times the rep's share of the pool's target weights.
The weight is the reps column ``target_weight`` when given, else the rep's capacity (hours
per year), so by default targets follow capacity. ``target_weight`` expresses part-time
reps (0.5 for a half-time rep among 1.0s), ramping reps (0.6 in a first year) or seniority
(1.2 for a senior rep); the weights only matter relative to the others in the same pool.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .config import PlanConfig, WorkloadSettings
from .errors import InputError, InputProblem
from .workload import capacity_h, visits_per_year

__all__ = [
    "Balance",
    "balance_bands",
    "pool_targets",
    "target_weights",
    "apply_pair_rules",
    "fixed_reps",
    "keep_limits",
    "measure_values",
]

CONFIG = "config"


def target_weights(reps: pd.DataFrame, workload: WorkloadSettings) -> np.ndarray:
    """Each rep's weight in its pool's targets: ``target_weight``, else capacity (hours)."""
    if "target_weight" in reps and reps["target_weight"].notna().any():
        return reps["target_weight"].to_numpy(float)
    return capacity_h(reps, workload)


def pool_targets(
    values: np.ndarray, rep_pool: np.ndarray, acc_pool: np.ndarray, weights: np.ndarray
) -> np.ndarray:
    """Each rep's target: its pool's total of ``values`` times its share of the pool's
    weights (equal shares when every weight in the pool is zero)."""
    target = np.zeros(rep_pool.size)
    for pool in np.unique(rep_pool):
        in_pool = rep_pool == pool
        total_w = weights[in_pool].sum()
        share = (
            weights[in_pool] / total_w if total_w > 0 else np.full(in_pool.sum(), 1 / in_pool.sum())
        )
        target[in_pool] = values[acc_pool == pool].sum() * share
    return target


def measure_values(
    accounts: pd.DataFrame, potential: np.ndarray, config: PlanConfig
) -> tuple[tuple[str, ...], np.ndarray]:
    """Names and ``(num_accounts, num_measures)`` values: potential, then ``config.balance``.

    ``account_count`` is 1 per account; ``workload_h`` the visit hours per year (visits x
    minutes per visit, without travel, which depends on the rep and is bounded by capacity);
    any other name is a numeric accounts column.
    """
    names = ["potential"]
    cols = [np.asarray(potential, float)]
    problems: list[InputProblem] = []
    for name in config.balance:
        if name == "account_count":
            values = np.ones(len(accounts))
        elif name == "workload_h":
            visits = visits_per_year(accounts, config.workload)
            values = visits * config.workload.minutes_per_visit / 60.0
        elif name not in accounts.columns:
            problems.append(
                InputProblem(
                    CONFIG,
                    f"balance measure '{name}' is neither account_count, workload_h nor an "
                    f"accounts column (columns: {', '.join(map(str, accounts.columns))})",
                    "use one of those names, or add the column to the accounts",
                )
            )
            continue
        else:
            raw = accounts[name]
            num = pd.to_numeric(raw, errors="coerce")
            bad = int((num.isna() & raw.notna()).sum())
            missing = int(raw.isna().sum())
            negative = int((num < 0).sum())
            for count, what, fix in (
                (bad, "not a number", "write numbers in it"),
                (missing, "missing", "fill it in (0 where nothing applies)"),
                (negative, "negative", "use values >= 0"),
            ):
                if count:
                    problems.append(
                        InputProblem(
                            CONFIG,
                            f"balance measure '{name}': accounts column '{name}' is {what} in "
                            f"{count} row(s)",
                            fix,
                            column=name,
                        )
                    )
            values = num.to_numpy(float)
        names.append(name)
        cols.append(values)
    if problems:
        raise InputError(problems)
    return tuple(names), np.column_stack(cols)


@dataclass(frozen=True, eq=False)
class Balance:
    """Every balance measure's values, per-rep targets and bands.

    ``unit_measure`` is ``(num_accounts, num_measures)``; ``lo``, ``hi`` and ``target`` are
    ``(num_reps, num_measures)``; ``tolerance`` is each measure's band half-width as a share
    of target; ``weights`` each rep's target weight.
    """

    names: tuple[str, ...]
    unit_measure: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    target: np.ndarray
    tolerance: np.ndarray
    weights: np.ndarray


def balance_bands(
    accounts: pd.DataFrame,
    reps: pd.DataFrame,
    potential: np.ndarray,
    rep_pool: np.ndarray,
    acc_pool: np.ndarray,
    config: PlanConfig,
) -> Balance:
    """Values, targets and bands of potential (``tolerance``) and every ``config.balance``
    measure (its own half-width)."""
    names, values = measure_values(accounts, potential, config)
    weights = target_weights(reps, config.workload)
    target = np.column_stack(
        [pool_targets(values[:, j], rep_pool, acc_pool, weights) for j in range(len(names))]
    )
    tol = np.array([config.tolerance] + [float(config.balance[n]) for n in names[1:]])
    lo = np.maximum(target * (1 - tol), 0.0)
    hi = target * (1 + tol)
    return Balance(names, values, lo, hi, target, tol, weights)


def _rule_problems(
    accounts: pd.DataFrame,
    rep_ids: np.ndarray,
    rep_pool: np.ndarray,
    acc_pool: np.ndarray,
    config: PlanConfig,
) -> list[InputProblem]:
    """Unknown ids and contradictions among named accounts, locks and forbidden pairs."""
    out: list[InputProblem] = []
    acc_pos = pd.Series(np.arange(len(accounts)), index=accounts["account_id"].astype(str))
    rep_pos = pd.Series(np.arange(rep_ids.size), index=rep_ids)
    locked = accounts["locked"].to_numpy(bool)
    current = accounts["current_rep_id"].to_numpy(object)
    for acc, rep in config.named_accounts.items():
        where = f"named_accounts: '{acc}' = '{rep}'"
        if acc not in acc_pos.index:
            out.append(InputProblem(CONFIG, f"{where}: unknown account_id", "fix the id"))
        if rep not in rep_pos.index:
            out.append(InputProblem(CONFIG, f"{where}: unknown rep_id", "fix the id"))
        if acc not in acc_pos.index or rep not in rep_pos.index:
            continue
        u, r = acc_pos[acc], rep_pos[rep]
        if locked[u] and current[u] != rep:
            out.append(
                InputProblem(
                    CONFIG,
                    f"{where}: the account is locked to its current rep '{current[u]}'",
                    "name its current rep, or unlock it in the accounts file",
                )
            )
        if acc_pool[u] != rep_pool[r]:
            out.append(
                InputProblem(
                    CONFIG,
                    f"{where}: the account's segment '{acc_pool[u]}' is not the rep's "
                    f"segment '{rep_pool[r]}'",
                    "name a rep of the account's segment",
                )
            )
    for k, (acc, rep) in enumerate(config.forbidden_pairs):
        where = f"forbidden_pairs[{k}] = ['{acc}', '{rep}']"
        if acc not in acc_pos.index:
            out.append(InputProblem(CONFIG, f"{where}: unknown account_id", "fix the id"))
        if rep not in rep_pos.index:
            out.append(InputProblem(CONFIG, f"{where}: unknown rep_id", "fix the id"))
        if acc not in acc_pos.index or rep not in rep_pos.index:
            continue
        if config.named_accounts.get(acc) == rep:
            out.append(
                InputProblem(
                    CONFIG,
                    f"{where}: the same pair is in named_accounts",
                    "drop one of the two",
                )
            )
        u = acc_pos[acc]
        if locked[u] and current[u] == rep:
            out.append(
                InputProblem(
                    CONFIG,
                    f"{where}: the account is locked to that rep",
                    "drop the pair, or unlock the account in the accounts file",
                )
            )
    return out


def apply_pair_rules(
    accounts: pd.DataFrame,
    rep_ids: np.ndarray,
    rep_pool: np.ndarray,
    acc_pool: np.ndarray,
    config: PlanConfig,
    unit: np.ndarray,
    rep: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """The candidate (account, rep) index pairs with each named pair added and every
    forbidden pair removed (repeats are left for the caller to drop).

    Raises :class:`InputError` for unknown ids, contradictions with locks or named
    accounts, and accounts the forbidden pairs leave without any candidate.
    """
    problems = _rule_problems(accounts, rep_ids, rep_pool, acc_pool, config)
    if problems:
        raise InputError(problems)
    acc_pos = pd.Series(np.arange(len(accounts)), index=accounts["account_id"].astype(str))
    rep_pos = pd.Series(np.arange(rep_ids.size), index=rep_ids)
    if config.named_accounts:
        named_u = acc_pos[list(config.named_accounts)].to_numpy()
        named_r = rep_pos[list(config.named_accounts.values())].to_numpy()
        unit = np.r_[unit, named_u].astype(np.int64)
        rep = np.r_[rep, named_r].astype(np.int64)
    if config.forbidden_pairs:
        fu = acc_pos[[a for a, _ in config.forbidden_pairs]].to_numpy()
        fr = rep_pos[[r for _, r in config.forbidden_pairs]].to_numpy()
        key = unit.astype(np.int64) * rep_ids.size + rep
        drop = np.isin(key, fu.astype(np.int64) * rep_ids.size + fr)
        left = np.bincount(unit[~drop], minlength=len(accounts))
        lost = np.unique(unit[drop][left[unit[drop]] == 0])
        if lost.size:
            raise InputError(
                [
                    InputProblem(
                        CONFIG,
                        f"forbidden_pairs leave account '{accounts['account_id'].iloc[u]}' "
                        "without any candidate rep (every rep it could go to is forbidden)",
                        "drop one of its forbidden pairs, or raise num_candidates",
                    )
                    for u in lost
                ]
            )
        unit, rep = unit[~drop], rep[~drop]
    return unit, rep


def fixed_reps(
    accounts: pd.DataFrame, rep_ids: np.ndarray, locked_fixed: np.ndarray, config: PlanConfig
) -> np.ndarray:
    """Rep index each account is fixed to: its locked rep, or its named rep, else -1.

    Call after :func:`apply_pair_rules`, which checks the ids and the contradictions.
    """
    fixed = np.asarray(locked_fixed, dtype=np.int64).copy()
    if config.named_accounts:
        acc_pos = pd.Series(np.arange(len(accounts)), index=accounts["account_id"].astype(str))
        rep_pos = pd.Series(np.arange(rep_ids.size), index=rep_ids)
        fixed[acc_pos[list(config.named_accounts)].to_numpy()] = rep_pos[
            list(config.named_accounts.values())
        ].to_numpy()
    return fixed


def keep_limits(
    current_rep: np.ndarray, potential: np.ndarray, num_reps: int, config: PlanConfig
) -> dict[str, object]:
    """The ``keep_*`` arguments of :class:`AlignmentProblem` from ``config.transfer``.

    Keep measures: ``accounts`` (1 per account) and ``potential``. A rep whose current book
    holds B may lose at most ``share x B``, so it keeps at least ``(1 - share) x B``; for
    accounts that is rounded up to whole accounts. Empty when no limit is set.
    """
    ts = config.transfer
    if not ts.active:
        return {}
    n = current_rep.size
    measure = np.column_stack([np.ones(n), np.asarray(potential, float)])
    has = current_rep >= 0
    book = np.column_stack(
        [np.bincount(current_rep[has], weights=measure[has, t], minlength=num_reps) for t in (0, 1)]
    )
    shares_rep = (ts.max_accounts_share_per_rep, ts.max_potential_share_per_rep)
    shares_total = (ts.max_accounts_share_total, ts.max_potential_share_total)
    keep_min = np.zeros((num_reps, 2))
    keep_total = np.zeros(2)
    for t in (0, 1):
        if shares_rep[t] is not None:
            keep_min[:, t] = (1 - shares_rep[t]) * book[:, t]
        if shares_total[t] is not None:
            keep_total[t] = (1 - shares_total[t]) * book[:, t].sum()
    # Whole accounts: keeping 7.000000001 accounts means keeping 7.
    keep_min[:, 0] = np.ceil(keep_min[:, 0] - 1e-9)
    keep_total[0] = np.ceil(keep_total[0] - 1e-9)
    return {
        "keep_measure": measure,
        "keep_min": np.maximum(keep_min, 0.0),
        "keep_min_total": np.maximum(keep_total, 0.0),
        "keep_names": ("accounts", "potential"),
    }

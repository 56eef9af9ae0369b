"""Independent verification of a plan against an :class:`AlignmentProblem`.

Written from the problem's definition only (it shares no code with any model), so that a
bug in a model cannot hide itself. Every solver's output goes through :func:`check_plan`
before anything is written, and every test asserts on its figures.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .problem import AlignmentProblem

__all__ = ["CheckReport", "Violation", "check_plan", "PlanCheckError"]

# Sums of floats in a different order differ in the last bits; a band breached by less than
# this share of its limit is rounding, not a violation.
_REL_TOL = 1e-9


@dataclass(frozen=True)
class Violation:
    """One broken rule. ``rep``/``unit``/``measure`` are indices or -1 / '' when not relevant."""

    rule: str
    message: str
    rep: int = -1
    unit: int = -1
    measure: str = ""
    amount: float = 0.0

    def __str__(self) -> str:
        return f"[{self.rule}] {self.message}"


@dataclass(frozen=True, eq=False)
class CheckReport:
    """Recomputed figures of a plan and every rule it breaks.

    ``rep_measure`` is ``(num_reps, num_measures)``; ``rep_workload_h`` and ``rep_units``
    are per rep; ``objective`` is the recomputed objective (sum of pair costs).
    """

    ok: bool
    violations: tuple[Violation, ...]
    objective: float
    rep_measure: np.ndarray
    rep_workload_h: np.ndarray
    rep_units: np.ndarray
    max_band_dev: np.ndarray = field(default_factory=lambda: np.zeros(0))
    rep_kept: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    kept_total: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def raise_if_failed(self) -> None:
        if not self.ok:
            raise PlanCheckError(self)

    def describe(self, limit: int = 20) -> str:
        if self.ok:
            return "plan passes every check"
        head = [str(v) for v in self.violations[:limit]]
        more = len(self.violations) - limit
        if more > 0:
            head.append(f"... and {more} more")
        return "\n".join(head)


class PlanCheckError(RuntimeError):
    """A plan failed the independent check; nothing should be written."""

    def __init__(self, report: CheckReport) -> None:
        self.report = report
        super().__init__(
            f"plan failed the independent check ({len(report.violations)} violation(s)):\n"
            + report.describe()
        )


def _limit_tol(limit: np.ndarray) -> np.ndarray:
    return _REL_TOL * np.maximum(1.0, np.abs(np.where(np.isfinite(limit), limit, 0.0)))


def check_plan(
    problem: AlignmentProblem,
    assignment: np.ndarray,
    *,
    reported_objective: float | None = None,
) -> CheckReport:
    """Verify ``assignment`` (rep index per unit) against every hard rule of ``problem``.

    Rules: one rep per unit, and it is a candidate; locked units on their rep; every
    measure inside every rep's band; workload within capacity; every transfer limit (the
    share of each rep's current book that stays with it, and overall); and, when given,
    the reported objective equals the recomputed one.
    """
    n, r, m = problem.num_units, problem.num_reps, problem.num_measures
    violations: list[Violation] = []
    a = np.asarray(assignment)
    empty = np.zeros((r, m))
    if a.shape != (n,):
        v = Violation("shape", f"plan has shape {a.shape}; expected one rep per unit ({n},)")
        return CheckReport(False, (v,), float("nan"), empty, np.zeros(r), np.zeros(r, int))
    a = a.astype(np.int64)

    bad = np.flatnonzero((a < 0) | (a >= r))
    for u in bad[:50]:
        violations.append(Violation("assigned", f"unit {u} has no rep (value {a[u]})", unit=u))
    if bad.size:
        return CheckReport(
            False, tuple(violations), float("nan"), empty, np.zeros(r), np.zeros(r, int)
        )

    # Each unit's rep must be one of its candidates.
    pair = problem.pair_index(np.arange(n), a)
    not_cand = np.flatnonzero(pair < 0)
    for u in not_cand[:50]:
        violations.append(
            Violation(
                "candidate",
                f"unit {u} is on rep {a[u]}, not one of its candidates",
                rep=int(a[u]),
                unit=int(u),
            )
        )

    fixed = np.flatnonzero((problem.fixed_rep >= 0) & (problem.fixed_rep != a))
    for u in fixed[:50]:
        violations.append(
            Violation(
                "locked",
                f"unit {u} is locked to rep {problem.fixed_rep[u]} but is on rep {a[u]}",
                rep=int(a[u]),
                unit=int(u),
            )
        )

    rep_units = np.bincount(a, minlength=r)
    rep_measure = np.zeros((r, m))
    for j in range(m):
        rep_measure[:, j] = np.bincount(a, weights=problem.unit_measure[:, j], minlength=r)
    for j, name in enumerate(problem.measure_names):
        lo, hi = problem.measure_lo[:, j], problem.measure_hi[:, j]
        vals = rep_measure[:, j]
        under = np.flatnonzero(vals < lo - _limit_tol(lo))
        over = np.flatnonzero(vals > hi + _limit_tol(hi))
        for i in under:
            violations.append(
                Violation(
                    "band",
                    f"rep {i}: {name} {vals[i]:,.2f} below band "
                    f"minimum {lo[i]:,.2f} by {lo[i] - vals[i]:,.2f}",
                    rep=int(i),
                    measure=name,
                    amount=float(lo[i] - vals[i]),
                )
            )
        for i in over:
            violations.append(
                Violation(
                    "band",
                    f"rep {i}: {name} {vals[i]:,.2f} above band "
                    f"maximum {hi[i]:,.2f} by {vals[i] - hi[i]:,.2f}",
                    rep=int(i),
                    measure=name,
                    amount=float(vals[i] - hi[i]),
                )
            )

    valid = pair >= 0
    rep_workload = np.bincount(a[valid], weights=problem.pair_workload_h[pair[valid]], minlength=r)
    cap = problem.capacity_h
    over_cap = np.flatnonzero(rep_workload > cap + _limit_tol(cap))
    for i in over_cap:
        violations.append(
            Violation(
                "capacity",
                f"rep {i}: workload {rep_workload[i]:,.1f} h "
                f"above capacity {cap[i]:,.1f} h by {rep_workload[i] - cap[i]:,.1f} h",
                rep=int(i),
                measure="workload_h",
                amount=float(rep_workload[i] - cap[i]),
            )
        )

    # Transfer limits, recomputed from the definition: a unit stays when its rep is its
    # current rep; each rep keeps the part of its current book that stays with it.
    cur = problem.current_rep.astype(np.int64)
    stays = (cur >= 0) & (a == cur)
    t_num = problem.keep_measure.shape[1]
    rep_kept = np.zeros((r, t_num))
    for t in range(t_num):
        rep_kept[:, t] = np.bincount(a[stays], weights=problem.keep_measure[stays, t], minlength=r)
    kept_total = rep_kept.sum(axis=0)
    for t, name in enumerate(problem.keep_names):
        need = problem.keep_min[:, t]
        short = np.flatnonzero(rep_kept[:, t] < need - _limit_tol(need))
        for i in short:
            violations.append(
                Violation(
                    "transfer",
                    f"rep {i}: keeps {rep_kept[i, t]:,.2f} of its current {name}, below the "
                    f"transfer minimum {need[i]:,.2f} by {need[i] - rep_kept[i, t]:,.2f}",
                    rep=int(i),
                    measure=name,
                    amount=float(need[i] - rep_kept[i, t]),
                )
            )
        total_need = problem.keep_min_total[t]
        if kept_total[t] < total_need - _limit_tol(np.array(total_need)):
            violations.append(
                Violation(
                    "transfer",
                    f"overall: {kept_total[t]:,.2f} of {name} stays with its current rep, below "
                    f"the transfer minimum {total_need:,.2f} by {total_need - kept_total[t]:,.2f}",
                    measure=name,
                    amount=float(total_need - kept_total[t]),
                )
            )

    objective = float(problem.pair_cost[pair[valid]].sum()) if valid.all() else float("nan")
    if reported_objective is not None and np.isfinite(objective):
        if abs(reported_objective - objective) > 1e-6 * max(1.0, abs(objective)):
            violations.append(
                Violation(
                    "objective",
                    f"reported objective {reported_objective:,.3f}"
                    f" differs from recomputed {objective:,.3f}",
                )
            )

    target = problem.measure_target
    with np.errstate(divide="ignore", invalid="ignore"):
        dev = np.where(target > 0, np.abs(rep_measure - target) / target, 0.0)
    max_dev = dev.max(axis=0) if r else np.zeros(m)
    return CheckReport(
        ok=not violations,
        violations=tuple(violations),
        objective=objective,
        rep_measure=rep_measure,
        rep_workload_h=rep_workload,
        rep_units=rep_units,
        max_band_dev=max_dev,
        rep_kept=rep_kept,
        kept_total=kept_total,
    )

"""Least-disruption realignment: a lower bound on what must move, region sub-problems and a
lexicographic CP-SAT solve (disruption, then balance, then travel).

A rebalance starts from a current alignment (``problem.current_rep``; ``-1`` marks an
orphan, an account whose rep is gone, which must move). Disruption is the potential
(measure 0) of the accounts that end on a rep other than their current one, orphans
included.

- :func:`disruption_bound` is a lower bound on the disruption of *any* plan of the
  problem: the optimum of a transshipment LP whose flows are potential moved from one
  rep's book to another rep. A flow from book ``s`` to rep ``r`` is at most the potential
  of ``s``'s unlocked accounts that have ``r`` as a candidate; each rep's potential after
  the flows lies in its band; each rep keeps its potential transfer minimum, and overall
  the potential transfer minimum stays. Every plan induces such flows with the same total,
  so the LP optimum is a valid bound (capacity, other measures and indivisibility are
  dropped, so it can only be lower). The arithmetic bound -- what the reps' bands force
  into or out of them, ``max(sum of required inflow, orphans + sum of required outflow)``
  -- is reported beside it; the LP is never below it.
- :func:`region_subproblem` frees only the accounts of a group of reps (and the orphans)
  and fixes everyone else on their current rep, as an :class:`AlignmentProblem` of its
  own with the fixed loads taken off each limit.
- :func:`solve_lexicographic` solves a (sub-)problem in stages with CP-SAT: least moved
  potential; then, with moved potential at most ``(1 + slack)`` times that, least
  relative imbalance ``sum_r |potential_r - target_r| / target_r``; then, with imbalance
  held, least travel cost (``pair_cost``). A list of disruption caps gives a frontier.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
import scipy.sparse as sp
from ortools.sat.python import cp_model

from .align import _relax
from .align import _round_and_repair as round_and_repair
from .check import check_plan
from .cpsat import solve_cpsat
from .cpsat.assignment import add_assign_once
from .cpsat.bands import add_bands
from .cpsat.capacity import add_capacity
from .cpsat.locks import add_locks
from .cpsat.solve import set_parameters
from .cpsat.transfer import add_transfer
from .cpsat.variables import new_pair_vars
from .greedy import repair, solve_greedy
from .lns import rep_neighbours, restricted, subproblem
from .lp import solve_relaxation
from .mathopt_lp import solve_lp
from .problem import AlignmentProblem
from .result import Result
from .settings import SolveSettings

__all__ = [
    "DisruptionBound",
    "disruption_bound",
    "least_disruption",
    "moved_potential",
    "region_subproblem",
    "Stage",
    "LexResult",
    "solve_lexicographic",
]

log = logging.getLogger(__name__)


def moved_potential(problem: AlignmentProblem, assignment: np.ndarray) -> tuple[int, float]:
    """Number of accounts and potential (measure 0) on a rep other than their current one
    (orphans, whose current rep is -1, always count)."""
    moved = np.asarray(assignment) != problem.current_rep
    return int(moved.sum()), float(problem.unit_measure[moved, 0].sum())


@dataclass(frozen=True)
class DisruptionBound:
    """``lp``: the transshipment LP bound (``nan`` when the LP was not solved to
    optimality; ``inf`` when it is infeasible: no plan exists), or a stronger LP bound
    (``method`` says which); ``arithmetic``: what the bands force in or out; ``bound``: the
    larger valid one. ``required_in`` and ``required_out`` are per rep."""

    lp: float
    arithmetic: float
    status: str
    runtime_s: float
    required_in: np.ndarray
    required_out: np.ndarray
    orphan_potential: float
    method: str = "transshipment LP over all reps"
    raised_s: float = 0.0  # seconds spent raising it after the plan (a stronger LP)

    @property
    def bound(self) -> float:
        if self.status == "INFEASIBLE":
            return float("inf")
        if np.isfinite(self.lp):
            return max(self.lp, self.arithmetic)
        return self.arithmetic


def _potential_keep(problem: AlignmentProblem) -> int:
    """Index of the keep measure named ``potential``, or -1."""
    return problem.keep_names.index("potential") if "potential" in problem.keep_names else -1


def disruption_bound(
    problem: AlignmentProblem, *, reps: np.ndarray | None = None, time_limit_s: float = 30.0
) -> DisruptionBound:
    """Lower bound on the moved potential of any plan (see the module docstring).

    With ``reps`` (a boolean mask), flows run only among those reps (everyone else keeps
    its book): a bound for plans that move accounts only within that group, and a quick
    necessary condition for the group's sub-problem to be feasible.
    """
    t0 = time.perf_counter()
    r = problem.num_reps
    pot = problem.unit_measure[:, 0]
    cur = problem.current_rep.astype(np.int64)
    orphan = cur < 0
    src = np.where(orphan, r, cur)  # source node r holds every orphan
    book = np.bincount(src, weights=pot, minlength=r + 1)
    lo, hi = problem.measure_lo[:, 0], problem.measure_hi[:, 0]
    has_book = book[:r]
    required_in = np.maximum(np.where(np.isfinite(lo), lo, 0) - has_book, 0)
    required_out = np.maximum(has_book - np.where(np.isfinite(hi), hi, np.inf), 0)
    orphan_pot = float(book[r])
    arithmetic = max(float(required_in.sum()), orphan_pot + float(required_out.sum()))

    # Flow capacity A[s, d]: potential of s's unlocked accounts that may go to d != s.
    pu = problem.pair_unit
    movable = (problem.fixed_rep[pu] < 0) & (problem.cand_rep != cur[pu])
    if reps is not None:
        inside = np.r_[np.asarray(reps, bool), True]
        movable &= inside[src[pu]] & inside[problem.cand_rep]
    key = src[pu[movable]] * r + problem.cand_rep[movable]
    ukey, inv = np.unique(key, return_inverse=True)
    cap = np.bincount(inv, weights=pot[pu[movable]])
    s_of, d_of = ukey // r, ukey % r
    free_book = np.bincount(
        src[problem.fixed_rep < 0], weights=pot[problem.fixed_rep < 0], minlength=r + 1
    )
    nv = ukey.size
    rows, cols, vals, rlo, rhi = [], [], [], [], []
    nrow = 0
    # Band of every rep: book - out + in within [lo, hi].
    rows += [d_of, s_of[s_of < r]]
    cols += [np.arange(nv), np.flatnonzero(s_of < r)]
    vals += [np.ones(nv), -np.ones(int((s_of < r).sum()))]
    rlo.append(lo - has_book)
    rhi.append(hi - has_book)
    nrow += r
    # Out of each book at most its unlocked part; the orphans all leave.
    rows.append(nrow + s_of)
    cols.append(np.arange(nv))
    vals.append(np.ones(nv))
    out_hi = free_book.copy()
    out_lo = np.zeros(r + 1)
    out_lo[r] = orphan_pot
    t = _potential_keep(problem)
    if t >= 0:
        # Transfer minimum in potential: book - out >= keep_min (kept counts only stayers).
        kbook = np.bincount(cur[~orphan], weights=problem.keep_measure[~orphan, t], minlength=r)
        out_hi[:r] = np.minimum(out_hi[:r], np.maximum(kbook - problem.keep_min[:, t], 0) + 1e-9)
    rlo.append(out_lo)
    rhi.append(out_hi)
    nrow += r + 1
    if t >= 0 and problem.keep_min_total[t] > 0:
        kbook = float(problem.keep_measure[~orphan, t].sum())
        real = np.flatnonzero(s_of < r)
        rows.append(np.full(real.size, nrow))
        cols.append(real)
        vals.append(np.ones(real.size))
        rlo.append(np.array([-np.inf]))
        rhi.append(np.array([kbook - problem.keep_min_total[t] + 1e-9]))
        nrow += 1
    matrix = sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(nrow, nv)
    )
    row_lo = np.concatenate(rlo)
    row_hi = np.concatenate(rhi)
    if reps is not None:
        # Reps outside the group keep their book: their band rows do not bind.
        out_of = np.flatnonzero(~np.asarray(reps, bool))
        row_lo[out_of], row_hi[out_of] = -np.inf, np.inf
    res = solve_lp(
        np.ones(nv), matrix, row_lo, row_hi, np.zeros(nv), cap, time_limit_s=time_limit_s
    )
    if res.status == "OPTIMAL":
        lp = float(res.x.sum())
    elif res.status == "INFEASIBLE":
        lp = float("inf")
    else:
        lp = float("nan")
    return DisruptionBound(
        lp=lp,
        arithmetic=arithmetic,
        status=res.status,
        runtime_s=time.perf_counter() - t0,
        required_in=required_in,
        required_out=required_out,
        orphan_potential=orphan_pot,
    )


def region_subproblem(
    problem: AlignmentProblem, reps: np.ndarray
) -> tuple[AlignmentProblem, np.ndarray, np.ndarray, np.ndarray] | None:
    """The accounts of the reps in ``reps`` (a boolean mask) and every orphan, free to move
    among those reps; everyone else fixed on their current rep.

    Returns ``(sub, free units, group, sub pairs' indices in problem)``; ``group`` holds
    the sub-problem's reps (full indices). ``None`` when an orphan has no candidate in the
    group (the group is too small). The sub-problem's bands, capacity and transfer limits
    are the full ones less the fixed accounts' loads; its ``current_rep`` is local (-1 for
    orphans) and its ``measure_target`` the full target less the fixed load.
    """
    reps = np.asarray(reps, bool)
    group = np.flatnonzero(reps)
    cur = problem.current_rep.astype(np.int64)
    pu = problem.pair_unit
    orphan = cur < 0
    free_unit = (orphan | reps[np.maximum(cur, 0)] & ~orphan) & (problem.fixed_rep < 0)
    pair_ok = free_unit[pu] & reps[problem.cand_rep]
    options = np.bincount(pu[pair_ok], minlength=problem.num_units)
    if np.any(orphan & (options == 0)):
        return None
    free = np.flatnonzero(free_unit & (options >= 1))
    pairs = np.flatnonzero(pair_ok & (options[pu] >= 1))
    return restricted(problem, cur, free, pairs, group), free, group, pairs


@dataclass(frozen=True)
class Stage:
    """One lexicographic stage: its name, CP-SAT status, objective and CP-SAT bound (in
    the stage's own units: potential, relative deviation, or pair cost), and seconds."""

    name: str
    status: str
    objective: float
    bound: float
    runtime_s: float


@dataclass(frozen=True, eq=False)
class LexResult:
    """``assignment`` (rep index per unit, -1 without a plan), the stages run, and for a
    frontier one assignment per disruption cap (``frontier``)."""

    assignment: np.ndarray
    status: str
    stages: tuple[Stage, ...]
    frontier: tuple[np.ndarray, ...] = ()
    frontier_caps: tuple[float, ...] = ()
    stats: dict = field(default_factory=dict)

    @property
    def has_plan(self) -> bool:
        return bool(self.assignment.size) and bool(np.all(self.assignment >= 0))


MIN_STAGE_S = 0.5  # the balance and travel stages run only with at least this left
_POT_SCALE = 2**20  # the largest account's potential maps to this integer


class _Model:
    """The rule modules of :mod:`solvers.cpsat` plus the three stage expressions."""

    def __init__(self, problem: AlignmentProblem, weight: np.ndarray) -> None:
        self.problem = problem
        m = cp_model.CpModel()
        v = new_pair_vars(m, problem)
        add_assign_once(m, problem, v)
        add_bands(m, problem, v)
        add_capacity(m, problem, v)
        add_locks(m, problem, v)
        add_transfer(m, problem, v)
        pot = problem.unit_measure[:, 0]
        self.q_pot = max(float(pot.max(initial=0.0)), 1e-12) / _POT_SCALE
        pot_i = np.rint(pot / self.q_pot).astype(np.int64)
        self.pot_i = pot_i
        pu = problem.pair_unit
        move = np.flatnonzero(problem.cand_rep != problem.current_rep[pu])
        orphan_int = int(pot_i[problem.current_rep < 0].sum())
        # Moved potential = orphans + sum over non-stay pairs of a non-orphan unit.
        non_orphan_move = move[problem.current_rep[pu[move]] >= 0]
        self.moved = (
            cp_model.LinearExpr.weighted_sum(
                [v.x[int(p)] for p in non_orphan_move], [int(c) for c in pot_i[pu[non_orphan_move]]]
            )
            + orphan_int
        )
        # Imbalance: sum_r weight_r * |load_r - target_r| (integer potential units).
        target = np.rint(problem.measure_target[:, 0] / self.q_pot).astype(np.int64)
        total = int(pot_i.sum())
        w = np.asarray(weight, float)
        self.w_int = np.maximum(np.rint(1000.0 * w / max(w.max(initial=0.0), 1e-300)), 1).astype(
            np.int64
        )
        devs = []
        for r in range(problem.num_reps):
            pairs = v.by_rep[r]
            load = cp_model.LinearExpr.weighted_sum(
                [v.x[int(p)] for p in pairs], [int(c) for c in pot_i[pu[pairs]]]
            )
            d = m.new_int_var(0, total + abs(int(target[r])), f"dev{r}")
            m.add(d >= load - int(target[r]))
            m.add(d >= int(target[r]) - load)
            devs.append(d)
        self.devs, self.target_i = devs, target
        self.imbalance = cp_model.LinearExpr.weighted_sum(devs, [int(c) for c in self.w_int])
        self.q_cost = max(float(problem.pair_cost.max(initial=0.0)), 1e-12) / 2**24
        cost_i = np.rint(problem.pair_cost / self.q_cost).astype(np.int64)
        self.travel = cp_model.LinearExpr.weighted_sum(v.x, [int(c) for c in cost_i])
        self.model = m
        self.v = v
        self.switches: list[cp_model.IntVar] = []
        self.active: set[int] = set()

    def add_switched(self, ct_builder) -> int:
        """A constraint that holds only while switched on (by assumption); returns its id."""
        lit = self.model.new_bool_var(f"switch{len(self.switches)}")
        ct_builder().only_enforce_if(lit)
        self.switches.append(lit)
        self.active.add(len(self.switches) - 1)
        return len(self.switches) - 1

    def switch_off(self, k: int) -> None:
        self.active.discard(k)

    def hint(self, assignment: np.ndarray) -> None:
        self.model.clear_hints()
        p = self.problem
        idx = p.pair_index(np.arange(p.num_units), assignment)
        chosen = np.zeros(p.num_pairs, bool)
        chosen[idx[idx >= 0]] = True
        for k, x in enumerate(self.v.x):
            self.model.add_hint(x, bool(chosen[k]))
        # A complete hint: CP-SAT need not search for the deviations' values.
        load = np.bincount(assignment, weights=self.pot_i, minlength=p.num_reps)
        for r, d in enumerate(self.devs):
            self.model.add_hint(d, int(abs(round(load[r]) - int(self.target_i[r]))))
        for k, lit in enumerate(self.switches):
            self.model.add_hint(lit, k in self.active)

    def solve(self, settings: SolveSettings, limit_s: float, dtime: float):
        solver = cp_model.CpSolver()
        set_parameters(solver, settings, max(0.05, limit_s), max(0.05, dtime))
        solver.log_callback = lambda line: log.debug("cp-sat: %s", line)
        self.model.clear_assumptions()
        self.model.add_assumptions([self.switches[k] for k in sorted(self.active)])
        status = solver.solve(self.model)
        if status in (cp_model.OPTIMAL, cp_model.FEASIBLE):
            values = solver.boolean_values(self.v.x).to_numpy().astype(bool)
            a = np.full(self.problem.num_units, -1, dtype=np.int64)
            a[self.problem.pair_unit[values]] = self.problem.cand_rep[values]
            return solver, status, a
        if status == cp_model.MODEL_INVALID:
            raise RuntimeError(f"CP-SAT rejected the rebalance model: {self.model.validate()}")
        return solver, status, None


def _least_disruption(
    problem: AlignmentProblem, settings: SolveSettings, limit_s: float, dlimit: float
) -> Result:
    """Stage 1 on a problem whose pair costs are disruption: the LP relaxation (bound and
    a nearly integral start), rounding and single-move repair; where reps still break a
    limit, CP-SAT re-solves only the reps in trouble and their closest neighbours (the
    rest fixed), widening the group twice, then the whole problem from the start."""
    t0 = time.perf_counter()

    def left() -> float:
        return limit_s - (time.perf_counter() - t0)

    lp = solve_relaxation(problem, time_limit_s=max(0.1, 0.5 * left()))
    stats: dict = {"lp_status": lp.status, "lp_s": lp.runtime_s}
    if lp.status == "INFEASIBLE":
        return Result(np.full(problem.num_units, -1), "INFEASIBLE", np.nan, np.inf, 0.0, stats)
    bound = lp.bound if lp.feasible else -np.inf
    found: list[np.ndarray] = []

    def consider(plan: np.ndarray, phase: str) -> bool:
        ok = check_plan(problem, plan).ok
        if ok and not found:
            found.append(plan.copy())
        return ok

    if lp.feasible:
        # The engine's rounding: where rounding breaks a rep's limit, tighten that limit
        # by what it broke it by and solve the relaxation again (a few rounds).
        stats["rounding"], _ = round_and_repair(
            problem,
            lp,
            consider,
            lambda: 0.6 * left(),
            lambda tightened, limit, previous: _relax(tightened, limit, None),
            max_rounds=8,
        )
        if found:
            report = check_plan(problem, found[0])
            return Result(
                found[0], "FEASIBLE", report.objective, bound, time.perf_counter() - t0, stats
            )
        start = repair(problem, lp.rounded(problem), exchanges=False)
    else:
        start = solve_greedy(problem).assignment
    report = check_plan(problem, start)
    stats["start_violations"] = len(report.violations)
    if report.ok:
        return Result(start, "FEASIBLE", report.objective, bound, time.perf_counter() - t0, stats)
    neighbours = rep_neighbours(problem)
    split = lp.split_units(problem) if lp.feasible else np.zeros(0, dtype=np.int64)
    trouble = {v.rep for v in report.violations if v.rep >= 0}
    trouble |= set(problem.cand_rep[np.isin(problem.pair_unit, split) & (lp.x > 1e-6)].tolist())
    focus = np.array(sorted(trouble), dtype=np.int64)
    for width in (2, 4, None):
        if left() <= 0.2:
            break
        if width is None:
            group = np.arange(problem.num_reps)
        else:
            near = [neighbours[r][:width] for r in focus]
            group = np.unique(np.concatenate([focus, *near]).astype(np.int64))
        built = subproblem(problem, start, group)
        if built is None:
            continue
        sub, free, _ = built
        local = np.full(problem.num_reps, -1, dtype=np.int64)
        local[group] = np.arange(group.size)
        share = 0.4 if width is not None else 1.0
        res = solve_cpsat(
            sub,
            replace(settings, deterministic_time=max(0.05, share * dlimit)),
            hint=local[start[free]],
            time_limit_s=max(0.1, share * left()),
        )
        stats.setdefault("focus", []).append(
            {"reps": int(group.size), "free": int(free.size), "status": res.status}
        )
        if res.has_plan:
            plan = start.copy()
            plan[free] = group[res.assignment]
            report = check_plan(problem, plan)
            if report.ok:
                return Result(
                    plan, "FEASIBLE", report.objective, bound, time.perf_counter() - t0, stats
                )
    return Result(np.full(problem.num_units, -1), "UNKNOWN", np.nan, bound, 0.0, stats)


def _disruption_costs(problem: AlignmentProblem) -> AlignmentProblem:
    """Stage 1's problem: a pair costs the account's potential when it moves, plus a hair
    of travel to break ties."""
    pot = problem.unit_measure[:, 0]
    pu = problem.pair_unit
    moves = problem.cand_rep != problem.current_rep[pu]
    tie = 1e-4 * float(pot.sum()) / max(float(problem.pair_cost.sum()), 1e-300)
    return replace(problem, pair_cost=pot[pu] * moves + tie * problem.pair_cost)


def least_disruption(
    problem: AlignmentProblem, settings: SolveSettings, time_limit_s: float
) -> tuple[float, Result]:
    """Stage 1 of :func:`solve_lexicographic` alone, to compare regions: the potential its
    first checked plan moves (``inf`` without one) and the stage's result (its ``bound`` is
    the LP bound; pass it on as ``first``). Uses the deterministic time stage 1 gets there."""
    first = _least_disruption(
        _disruption_costs(problem),
        settings,
        max(time_limit_s, 0.1),
        0.5 * settings.effective_deterministic_time,
    )
    if not first.has_plan:
        return float("inf"), first
    return moved_potential(problem, np.asarray(first.assignment))[1], first


def solve_lexicographic(
    problem: AlignmentProblem,
    settings: SolveSettings,
    *,
    balance_weight: np.ndarray,
    slack: float = 0.02,
    balance_slack: float = 0.01,
    frontier: int = 0,
    time_limit_s: float | None = None,
    hold_back: Callable[[float], float] | None = None,
    first: Result | None = None,
) -> LexResult:
    """Least disruption, then least imbalance, then least travel (see the module docstring).

    ``balance_weight`` (per rep) weights each rep's absolute potential deviation, e.g.
    ``1 / full target`` for relative deviations. With ``frontier = N >= 2``, N plans follow:
    the disruption cap runs evenly from ``(1 + slack)`` x least to the disruption of the
    best-balanced plan the transfer limits allow; each plan minimises imbalance, then
    travel, under its cap. Deterministic for a given seed and worker count when every stage
    ends on its deterministic limit or its gap (``settings.deterministic_time``, split
    over the stages like the wall clock). ``hold_back`` (stage 1's moved potential in,
    seconds out) keeps time back from the later stages for the caller. ``first`` is stage
    1's result from :func:`least_disruption` on the same problem, if the caller has it.
    """
    t0 = time.perf_counter()
    limit = settings.time_limit_s if time_limit_s is None else time_limit_s
    dlimit = settings.effective_deterministic_time
    extra = max(frontier, 0) * 2
    shares = np.array([0.5, 0.3, 0.2] + [0.3] * extra)
    shares = shares / shares.sum()

    def left() -> float:
        return limit - (time.perf_counter() - t0)

    stats: dict = {"num_pairs": problem.num_pairs}
    stages: list[Stage] = []
    empty = np.full(problem.num_units, -1, dtype=np.int64)

    def run(name: str, expr, share: float, scale: float, hint=None):
        model.model.minimize(expr)
        if hint is not None:
            model.hint(hint)
        ts = time.perf_counter()
        solver, status, a = model.solve(settings, share * max(left(), 0.05), share * dlimit)
        obj = solver.objective_value * scale if a is not None else float("nan")
        bnd = solver.best_objective_bound * scale if a is not None else float("nan")
        stages.append(Stage(name, solver.status_name(status), obj, bnd, time.perf_counter() - ts))
        return status, a, solver

    disrupt = _disruption_costs(problem)
    ts = time.perf_counter()
    # Feasibility and least disruption come first: stage 1 may use all the time left (it
    # returns as soon as it has a checked plan); the later stages share what remains.
    if first is None:
        first = _least_disruption(disrupt, settings, max(left(), 1.0), shares[0] * dlimit)
    else:
        ts -= first.runtime_s  # the caller ran stage 1: its time still counts as stage 1's
    stats["disruption"] = first.stats
    if not first.has_plan:
        stages.append(
            Stage("disruption", first.status, float("nan"), first.bound, time.perf_counter() - ts)
        )
        return LexResult(empty, first.status, tuple(stages), stats=stats)
    a1 = np.asarray(first.assignment, dtype=np.int64)
    _, moved1 = moved_potential(problem, a1)
    stages.append(Stage("disruption", first.status, moved1, first.bound, time.perf_counter() - ts))
    stats["disruption"] = {k: v for k, v in first.stats.items() if k != "polish"}
    if hold_back is not None:
        limit -= max(0.0, hold_back(moved1))
    if left() < MIN_STAGE_S:
        stages.append(Stage("balance", "SKIPPED (no time left)", np.nan, np.nan, 0.0))
        return LexResult(a1, "FEASIBLE", tuple(stages), stats=stats)
    build_t = time.perf_counter()
    model = _Model(problem, balance_weight)
    stats["build_s"] = time.perf_counter() - build_t
    best_moved = int(model.pot_i[a1 != problem.current_rep].sum())
    cap = int(np.floor(best_moved * (1 + slack)))
    cap_ct = model.add_switched(lambda: model.model.add(model.moved <= cap))

    def balance_then_travel(hint: np.ndarray, tag: str, share2: float, share3: float):
        if left() < MIN_STAGE_S:
            stages.append(Stage(f"balance{tag}", "SKIPPED (no time left)", np.nan, np.nan, 0.0))
            return hint
        _, a2, s2 = run(f"balance{tag}", model.imbalance, share2, 1.0 / 1000.0, hint)
        if a2 is None:
            return hint
        best_imb = int(round(s2.objective_value))
        imb_cap = int(np.floor(best_imb * (1 + balance_slack)))
        imb_ct = model.add_switched(lambda: model.model.add(model.imbalance <= imb_cap))
        _, a3, _ = run(f"travel{tag}", model.travel, share3, model.q_cost, a2)
        model.switch_off(imb_ct)
        return a3 if a3 is not None else a2

    rest = shares[1:].sum()
    plan = balance_then_travel(a1, "", shares[1] / rest, shares[2] / (rest - shares[1]))
    result_frontier: list[np.ndarray] = []
    caps: list[float] = []
    if frontier >= 2:
        # The best-balanced plan the hard limits allow fixes the far end of the frontier.
        model.switch_off(cap_ct)
        _, far, sfar = run("balance-free", model.imbalance, shares[3], 1.0 / 1000.0, plan)
        far_moved = best_moved
        if far is not None:
            far_moved = max(best_moved, int(model.pot_i[far != problem.current_rep].sum()))
        for k, c in enumerate(np.linspace(cap, max(cap, far_moved), frontier)):
            ck = model.add_switched(lambda c=c: model.model.add(model.moved <= int(np.floor(c))))
            hint = plan if k == 0 else result_frontier[-1]
            ak = balance_then_travel(
                hint, f"@{k}", shares[3 + 2 * k] * 0.6, shares[3 + 2 * k] * 0.4
            )
            model.switch_off(ck)
            result_frontier.append(ak)
            caps.append(float(c) * model.q_pot)
    stats["stages_s"] = time.perf_counter() - t0
    stats["moved_quantum"] = model.q_pot
    return LexResult(
        plan,
        "FEASIBLE",
        tuple(stages),
        tuple(result_frontier),
        tuple(caps),
        stats,
    )

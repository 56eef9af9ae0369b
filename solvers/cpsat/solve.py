"""Build the CP-SAT model, solve it with progress and interrupt, explain infeasibility."""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from ortools.sat.python import cp_model

from ..problem import AlignmentProblem
from ..result import ProgressEvent, Result
from ..settings import SolveSettings
from .assignment import add_assign_once
from .bands import add_bands, band_keys
from .capacity import add_capacity
from .locks import add_locks
from .objective import add_objective
from .transfer import add_transfer, transfer_keys
from .variables import PairVars, new_pair_vars

__all__ = ["solve_cpsat", "build_model", "explain_infeasibility", "set_parameters", "Conflict"]

log = logging.getLogger(__name__)

ProgressFn = Callable[[ProgressEvent], None]


@dataclass(frozen=True)
class Conflict:
    """One constraint group in an infeasible core: ``rule`` is 'band-lo', 'band-hi',
    'capacity', 'locks' or 'transfer'; ``rep`` and ``measure`` index into the problem (-1
    if n/a). For 'transfer', ``measure`` indexes the keep measures and ``rep`` is -1 for
    the overall limit."""

    rule: str
    rep: int = -1
    measure: int = -1


@dataclass(eq=False)
class _Built:
    model: cp_model.CpModel
    vars: PairVars
    objective_q: float
    literals: dict[object, cp_model.IntVar]


def build_model(problem: AlignmentProblem, *, explain: bool = False) -> _Built:
    """The full model. With ``explain``, every rule group hangs on an assumption literal."""
    model = cp_model.CpModel()
    v = new_pair_vars(model, problem)
    add_assign_once(model, problem, v)
    literals: dict[object, cp_model.IntVar] = {}
    if explain:
        for key in band_keys(problem):
            literals[("band",) + key] = model.new_bool_var(f"band_{key}")
        for r in np.flatnonzero(np.isfinite(problem.capacity_h)):
            literals[("capacity", int(r))] = model.new_bool_var(f"cap_{r}")
        literals[("locks",)] = model.new_bool_var("locks")
        for key in transfer_keys(problem):
            literals[("transfer",) + key] = model.new_bool_var(f"transfer_{key}")
        add_bands(model, problem, v, {k[1:]: lit for k, lit in literals.items() if k[0] == "band"})
        add_capacity(
            model, problem, v, {k[1]: lit for k, lit in literals.items() if k[0] == "capacity"}
        )
        add_locks(model, problem, v, literals[("locks",)])
        add_transfer(
            model, problem, v, {k[1:]: lit for k, lit in literals.items() if k[0] == "transfer"}
        )
        model.add_assumptions(list(literals.values()))
        return _Built(model, v, 1.0, literals)
    add_bands(model, problem, v)
    add_capacity(model, problem, v)
    add_locks(model, problem, v)
    add_transfer(model, problem, v)
    q = add_objective(model, problem, v)
    return _Built(model, v, q.q, literals)


def set_parameters(
    solver: cp_model.CpSolver,
    settings: SolveSettings,
    time_limit: float,
    deterministic_time: float | None = None,
) -> None:
    """CP-SAT's parameters from the settings: wall-clock limit ``time_limit`` (s), the
    deterministic limit (the settings' unless given), seed, workers, gap, logging and the
    settings' raw ``cp_sat`` overrides."""
    p = solver.parameters
    p.max_time_in_seconds = max(0.01, time_limit)
    p.max_deterministic_time = (
        settings.effective_deterministic_time if deterministic_time is None else deterministic_time
    )
    p.random_seed = settings.seed
    p.num_workers = settings.num_workers
    # Interleaved workers make multi-worker search reproducible for a given seed.
    p.interleave_search = settings.num_workers > 1
    p.relative_gap_limit = settings.relative_gap
    p.log_search_progress = settings.log_search
    p.log_to_stdout = False
    for key, value in settings.cp_sat.items():
        setattr(p, key, value)


class _Progress(cp_model.CpSolverSolutionCallback):
    def __init__(
        self, fn: ProgressFn | None, q: float, t0: float, phase: str, stop_at: float = -np.inf
    ) -> None:
        super().__init__()
        self._fn, self._q, self._t0, self._phase = fn, q, t0, phase
        self._stop_at = stop_at
        self.num_solutions = 0
        self.best = float("inf")
        self.bound = float("-inf")
        self.stopped_at_target = False

    def on_solution_callback(self) -> None:
        self.num_solutions += 1
        self.best = self.objective_value * self._q
        self.bound = self.best_objective_bound * self._q
        self.emit()
        if self.best <= self._stop_at:
            self.stopped_at_target = True
            self.stop_search()

    def on_bound(self, bound: float) -> None:
        self.bound = bound * self._q
        self.emit()

    def emit(self) -> None:
        if self._fn is not None:
            self._fn(
                ProgressEvent(time.perf_counter() - self._t0, self.best, self.bound, self._phase)
            )


class _Interrupt:
    """Ctrl-C during the solve stops the search; the best plan so far comes back."""

    def __init__(self, solver: cp_model.CpSolver) -> None:
        self._solver = solver
        self.interrupted = False
        self._previous = None

    def __enter__(self) -> _Interrupt:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        self.interrupted = True
        log.warning("interrupt: stopping the search, keeping the best plan so far")
        self._solver.stop_search()

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


def solve_cpsat(
    problem: AlignmentProblem,
    settings: SolveSettings,
    *,
    hint: np.ndarray | None = None,
    progress: ProgressFn | None = None,
    time_limit_s: float | None = None,
    stop_at: float = -np.inf,
) -> Result:
    """Solve the alignment with CP-SAT, warm-started from ``hint`` (rep index per unit).

    ``time_limit_s`` overrides the settings' wall-clock limit (the driver passes what is
    left of the overall budget). The search stops at the first plan whose objective is at
    most ``stop_at`` (a caller that knows a bound elsewhere: good enough is good enough).
    """
    t0 = time.perf_counter()
    built = build_model(problem)
    if hint is not None:
        hint = np.asarray(hint)
        chosen = np.zeros(problem.num_pairs, dtype=bool)
        ok = hint >= 0
        idx = problem.pair_index(np.flatnonzero(ok), hint[ok])
        chosen[idx[idx >= 0]] = True
        for p, x in enumerate(built.vars.x):
            built.model.add_hint(x, bool(chosen[p]))
    build_s = time.perf_counter() - t0
    limit = (time_limit_s if time_limit_s is not None else settings.time_limit_s) - build_s
    solver = cp_model.CpSolver()
    set_parameters(solver, settings, limit)
    solver.log_callback = lambda line: log.debug("cp-sat: %s", line)
    cb = _Progress(progress, built.objective_q, t0, "cp-sat", stop_at)
    solver.best_bound_callback = cb.on_bound
    with _Interrupt(solver) as interrupt:
        status = solver.solve(built.model, cb)
    runtime = time.perf_counter() - t0
    name = solver.status_name(status)
    stats = {
        "solver": "cp-sat",
        "build_s": build_s,
        "solve_s": solver.wall_time,
        "deterministic_time": solver.deterministic_time,
        "num_pairs": problem.num_pairs,
        "num_solutions": cb.num_solutions,
        "num_branches": solver.num_branches,
        "num_conflicts": solver.num_conflicts,
        "objective_quantum": built.objective_q,
        "interrupted": interrupt.interrupted,
        "stop_reason": _stop_reason(
            name, solver, settings, limit, interrupt.interrupted, cb.stopped_at_target
        ),
    }
    if status in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        values = solver.boolean_values(built.vars.x).to_numpy().astype(bool)
        assignment = np.full(problem.num_units, -1, dtype=np.int64)
        assignment[problem.pair_unit[values]] = problem.cand_rep[values]
        objective = float(problem.pair_cost[values].sum())
        # Scaling tightens every limit a little (so scaled plans are float-feasible), which
        # makes CP-SAT's optimum and bound those of a slightly smaller problem: neither is
        # proof about the real one. The engine's bound comes from the LP relaxation.
        stats["scaled_bound"] = solver.best_objective_bound * built.objective_q
        stats["scaled_status"] = name
        return Result(assignment, "FEASIBLE", objective, float("-inf"), runtime, stats)
    empty = np.full(problem.num_units, -1, dtype=np.int64)
    out = "INFEASIBLE" if status == cp_model.INFEASIBLE else "UNKNOWN"
    if status == cp_model.MODEL_INVALID:
        raise RuntimeError(f"CP-SAT rejected the model: {built.model.validate()}")
    return Result(empty, out, float("nan"), float("-inf"), runtime, stats)


def _stop_reason(name, solver, settings, limit, interrupted, at_target=False) -> str:
    if interrupted:
        return "interrupted"
    if at_target:
        return "objective target reached"
    if name in ("OPTIMAL", "INFEASIBLE"):
        return "proven" if name == "INFEASIBLE" else "gap limit reached or optimal"
    if solver.wall_time >= 0.98 * limit:
        return "wall-clock limit"
    if solver.deterministic_time >= 0.98 * settings.effective_deterministic_time:
        return "deterministic limit"
    return "stopped"


def explain_infeasibility(
    problem: AlignmentProblem, settings: SolveSettings, time_limit_s: float = 30.0
) -> list[Conflict] | None:
    """The rule groups of an infeasible core, or ``None`` if none was found in time.

    Solves a feasibility version (no objective) where each band side, each capacity, the
    locks and each transfer limit sit on assumption literals; CP-SAT returns a subset of
    them that cannot hold together.
    """
    built = build_model(problem, explain=True)
    solver = cp_model.CpSolver()
    set_parameters(solver, settings, time_limit_s)
    # Cores from assumptions come from the single-worker search.
    solver.parameters.num_workers = 1
    solver.parameters.interleave_search = False
    status = solver.solve(built.model)
    if status != cp_model.INFEASIBLE:
        return None
    by_index = {lit.index: key for key, lit in built.literals.items()}
    out = []
    for idx in solver.sufficient_assumptions_for_infeasibility():
        key = by_index.get(idx)
        if key is None:
            continue
        if key[0] == "band":
            out.append(Conflict(f"band-{key[1]}", rep=key[2], measure=key[3]))
        elif key[0] == "capacity":
            out.append(Conflict("capacity", rep=key[1]))
        elif key[0] == "transfer":
            out.append(Conflict("transfer", rep=key[1], measure=key[2]))
        else:
            out.append(Conflict("locks"))
    return out

"""The annual plan, end to end: inputs -> potential -> problem -> solve -> check -> outputs."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from solvers.align import solve
from solvers.check import CheckReport, check_plan
from solvers.cpsat.solve import explain_infeasibility
from solvers.lp import solve_elastic
from solvers.result import ProgressEvent, Result

from .atomic import atomic_dir
from .config import PlanConfig
from .errors import Finding, InfeasibleError
from .feasibility import explain_conflicts, explain_relaxation, indivisibility_limit, precheck
from .io import Inputs, load_inputs
from .manifest import finite_or_none, header, json_default, sha256_file
from .potential import estimate_potential
from .problem import PlanningProblem, build_problem
from .report import assignment_table, render_map, summary_text, territory_table
from .verify import after_solve_s, verify_tables

__all__ = ["Plan", "plan", "plan_files"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class Plan:
    """A checked plan and everything written about it."""

    assignments: pd.DataFrame
    territories: pd.DataFrame
    manifest: dict[str, Any]
    result: Result
    check: CheckReport
    planning: PlanningProblem
    inputs: Inputs

    def summary(self) -> str:
        return summary_text(self.territories, self.manifest)

    def write(self, out_dir: str | Path, *, boundaries=None) -> Path:
        """Write every output at once (nothing partial on failure); returns the folder."""
        out_dir = Path(out_dir)
        with atomic_dir(out_dir) as tmp:
            self.assignments.to_csv(tmp / "assignments.csv", index=False, float_format="%.6f")
            self.territories.to_csv(tmp / "territories.csv", index=False, float_format="%.6f")
            render_map(
                self.inputs.accounts,
                self.inputs.reps,
                self.assignments,
                tmp / "map.png",
                boundaries=boundaries,
            )
            (tmp / "summary.txt").write_text(self.summary() + "\n")
            with open(tmp / "manifest.json", "w") as f:
                json.dump(self.manifest, f, indent=2, default=json_default)
                f.write("\n")
        return out_dir


def plan(
    inputs: Inputs,
    config: PlanConfig | None = None,
    *,
    progress: Callable[[ProgressEvent], None] | None = None,
) -> Plan:
    """Optimise, check and report an alignment of ``inputs`` under ``config``.

    Raises :class:`InfeasibleError` with the arithmetic when no plan can exist, and
    :class:`solvers.check.PlanCheckError` if a plan fails the independent check.
    """
    config = config or PlanConfig()
    t0 = time.perf_counter()
    potential, method = estimate_potential(inputs.accounts, inputs.history, config.potential)
    pp, result, widenings = _solve_widening(inputs, potential, config, progress, t0)
    t_solved = time.perf_counter()
    report = check_plan(pp.problem, result.assignment, reported_objective=result.objective)
    report.raise_if_failed()

    quota_total = config.quota_total or float(pp.potential.sum())
    assignments = assignment_table(pp, result.assignment)
    territories = territory_table(pp, assignments, quota_total)
    errors = verify_tables(
        assignments, territories, inputs.accounts, inputs.reps, config, quota_total
    )
    if errors:
        raise RuntimeError("output tables failed verification: " + "; ".join(errors))
    manifest = _manifest(
        inputs,
        config,
        pp,
        result,
        report,
        assignments,
        method,
        quota_total,
        time.perf_counter() - t0,
    )
    manifest["plan"]["candidate_widenings"] = widenings
    manifest["plan"]["candidate_pairs"] = pp.problem.num_pairs
    log.info(
        "plan done in %.1f s (check, tables and manifest after the solve: %.1f s)",
        time.perf_counter() - t0,
        time.perf_counter() - t_solved,
    )
    return Plan(assignments, territories, manifest, result, report, pp, inputs)


def _solve_widening(inputs, potential, config, progress, t0):
    """Solve; where the candidates prove too narrow, widen them and solve again.

    Each widening doubles ``rep_reach`` and adds 4 to ``num_candidates``, up to
    ``max_widenings`` times.

    Too narrow means the reach precheck fails or the relaxation is infeasible; any other
    finding (capacity, whales, locks) cannot be fixed by wider candidates and is raised.
    """
    widenings = []
    cfg = config
    for attempt in range(config.max_widenings + 1):
        pp = build_problem(inputs.accounts, inputs.reps, potential, cfg)
        findings = precheck(pp, cfg.tolerance)
        hard = [f for f in findings if f.rule != "reach"]
        if hard:
            raise InfeasibleError(hard)
        last = attempt == config.max_widenings
        left = (
            config.solve.time_limit_s
            - (time.perf_counter() - t0)
            - after_solve_s(pp.problem.num_units)
        )
        if left <= 0:
            raise InfeasibleError(
                [
                    Finding(
                        "time",
                        "The time limit ran out while widening candidates.",
                        "raise --time-limit.",
                    )
                ]
            )
        if findings and not last:
            result = None
        else:
            result = solve(
                pp.problem,
                replace(cfg.solve, time_limit_s=left),
                progress=progress,
                unit_xy=inputs.accounts[["lon", "lat"]].to_numpy(float),
                space=pp.space,
                # Widening is cheaper than pricing every pair: price only on the last try.
                price_if_infeasible=last,
            )
            # Column generation may have added candidate pairs: the plan refers to them.
            pp = pp.with_problem(result.problem)
            if result.has_plan or last or result.stats.get("lp_status") != "INFEASIBLE":
                break
        widenings.append(
            {
                "num_candidates": cfg.num_candidates,
                "rep_reach": cfg.rep_reach,
                "reason": "reach precheck" if result is None else "LP infeasible",
            }
        )
        log.info("candidates too narrow (%s); widening", widenings[-1]["reason"])
        cfg = replace(cfg, num_candidates=cfg.num_candidates + 4, rep_reach=2 * cfg.rep_reach)
    if not result.has_plan:
        findings = _explain(pp, cfg, result) + precheck(pp, cfg.tolerance)
        raise InfeasibleError(findings)
    return pp, result, widenings


def _explain(pp: PlanningProblem, config: PlanConfig, result: Result) -> list[Finding]:
    if result.stats.get("lp_status") == "INFEASIBLE":
        relax = solve_elastic(pp.problem, time_limit_s=min(120.0, config.solve.time_limit_s))
        findings = explain_relaxation(pp, relax)
        if findings:
            return findings
    if result.status == "INFEASIBLE":
        conflicts = explain_infeasibility(
            pp.problem, config.solve, time_limit_s=min(60.0, config.solve.time_limit_s)
        )
        if conflicts:
            return explain_conflicts(pp, conflicts)
        return [
            Finding(
                "solver",
                "CP-SAT proved the model infeasible, but no small set of "
                "conflicting rules was isolated in time.",
                "widen the tolerance or num_candidates and try again.",
            )
        ]
    return [
        Finding(
            "time",
            f"No plan found within {config.solve.time_limit_s:g} s (status {result.status}).",
            "raise --time-limit, or widen the tolerance.",
        )
    ]


def _manifest(inputs, config, pp, result, report, assignments, method, quota_total, runtime):
    current = pp.problem.current_rep
    before_dev = float("nan")
    if np.all(current >= 0):
        before = np.bincount(current, weights=pp.potential, minlength=pp.problem.num_reps)
        target = pp.problem.measure_target[:, 0]
        before_dev = float(np.max(np.abs(before - target) / target) * 100)
    moved = assignments["moved"].to_numpy()
    files = {
        name: {"path": path, "sha256": sha256_file(path)}
        for name, path in inputs.sources.items()
        if Path(path).exists()
    }
    stats = {k: v for k, v in result.stats.items() if k != "polish"}
    return {
        **header(config, files),
        "solver": {
            "status": result.status,
            "objective": finite_or_none(result.objective),
            "objective_units": "potential x km (currency*km)",
            "bound": finite_or_none(result.bound),
            "gap": finite_or_none(result.gap),
            "runtime_s": result.runtime_s,
            "stats": stats,
            "stop_reason": result.stats.get("stop_reason"),
            # A plan stopped by the clock or by Ctrl-C depends on when that happened.
            # An LNS sub-problem cut off by its own clock may end elsewhere on a busier day.
            "reproducible": result.stats.get("stop_reason")
            not in ("wall-clock limit", "interrupted")
            and not result.stats.get("lns", {}).get("sub_time_limit_hits", 0),
        },
        "check": {
            "result": "passed" if report.ok else "FAILED",
            "violations": len(report.violations),
            "objective_recomputed": report.objective,
            "max_potential_dev_pct": float(report.max_band_dev[0] * 100),
        },
        "plan": {
            "accounts": int(len(assignments)),
            "reps": int(pp.problem.num_reps),
            "potential_method": method,
            "potential_total": float(pp.potential.sum()),
            "quota_total": quota_total,
            "indivisibility_limit": indivisibility_limit(pp),
            "before_worst_dev_pct": before_dev,
            "moved_accounts": int(moved.sum()),
            "moved_potential": float(pp.potential[moved].sum()),
            "moved_potential_pct": float(100 * pp.potential[moved].sum() / pp.potential.sum()),
            "travel_km_mean": float(assignments["travel_km"].mean()),
            "runtime_s": runtime,
        },
    }


def plan_files(
    accounts: str | Path,
    reps: str | Path,
    history: str | Path | None = None,
    *,
    config: PlanConfig | str | Path | None = None,
    out: str | Path | None = None,
    progress: Callable[[ProgressEvent], None] | None = None,
    boundaries=None,
) -> Plan:
    """Load, validate, plan and (with ``out``) write; the Python face of ``territory-opt plan``."""
    if config is None or isinstance(config, str | Path):
        config = PlanConfig.from_file(config) if config else PlanConfig()
    inputs = load_inputs(accounts, reps, history, columns=config.columns)
    result = plan(inputs, config, progress=progress)
    if out is not None:
        result.write(out, boundaries=boundaries)
    return result

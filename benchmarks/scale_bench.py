"""Scale benchmark (issue #3): our engine against the baselines a user would pick, same books.

For each size and scenario one book is generated (``territory_opt.scale_book``), written to
Parquet, and every method runs on it in its own fresh process (spawn), so its peak RSS is its
own, under a memory cap (``RLIMIT_AS``) and a hard wall-clock limit:

- ``ours``: ``territory_opt.pipeline.plan`` (build + solve + check), band +-2 %, potential from
  the column; medians over ``--repeats``;
- ``naive-cpsat``: CP-SAT over every account-rep pair, n x r Booleans (``baselines.py``);
  where it stops (building, with how many pairs; solving, with CP-SAT's status) is reported;
- ``greedy-ls``: greedy plus repair (``solvers/greedy.py``), then shift/swap local search;
- ``mip-highs`` / ``mip-scip``: ``solvers.lp.solve_mip`` on the sparse k-nearest problem
  ``territory_opt.problem.build_problem`` builds (SCIP only where OR-Tools has it).

Scenarios, each with no current alignment unless said:

- ``cap3``: capacity three times the workload of a potential-balanced nearest-rep plan (it
  does not bind);
- ``cap1.15``: capacity 1.15 times that workload (it binds);
- ``drift15``: capacity as cap1.15; the current alignment is last year's balanced plan after
  a year of potential drift, and each rep keeps at least 85 % of its current accounts and
  potential (a 15 % per-rep transfer limit).

Every plan is scored by ``baselines.score_plan`` against the book itself; "checked" means
every band, capacity and (drift15) transfer limit holds. Gaps are against our proven bound
(the LP over our candidate pairs) and, where a method has one, its own bound.

    python benchmarks/scale_bench.py --quick                         # 5,000 x 30, ~2 min
    python benchmarks/scale_bench.py --sizes 100000x300,1000000x1000 --repeats 3 --time-limit 120
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import queue as queue_mod
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SCENARIOS = ("cap3", "cap1.15", "drift15")
# Capacity as a multiple of the workload of a potential-balanced nearest-rep plan.
CAPACITY_RATIO = {"cap3": 3.0, "cap1.15": 1.15, "drift15": 1.15}
METHODS = ("ours", "naive-cpsat", "greedy-ls", "mip-highs", "mip-scip")
TRANSFER_SHARE = 0.15
TOLERANCE = 0.02


# --- in the child -----------------------------------------------------------------------------


def _child(method: str, job: dict, progress_path: str, out) -> None:
    """Run one method on one book; put a result dict on ``out``."""
    cap = int(job["mem_gb"] * 2**30)
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    sys.path.insert(0, str(HERE))
    import logging
    import warnings

    logging.disable(logging.WARNING)  # the library's warnings would interleave the table
    warnings.simplefilter("ignore")

    def progress(phase: str, pairs: int = 0) -> None:
        with open(progress_path, "a") as f:
            f.write(f"{time.perf_counter() - t0:.1f} {phase} {pairs}\n")

    t0 = time.perf_counter()
    row: dict = {"method": method}
    try:
        row |= _run_method(method, job, progress)
    except MemoryError:
        row["error"] = "out of memory (RLIMIT_AS)"
    except Exception as exc:  # a failing method is a result, not a crash
        lines = [x.strip(" -") for x in str(exc).splitlines() if x.strip()] or [""]
        first = " ".join(lines[:2]) if lines[0].endswith(":") else lines[0]
        row["error"] = f"{type(exc).__name__}: {first}"[:300]
    row["time_s"] = row.get("time_s", time.perf_counter() - t0)
    row["rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out.put(row)


def _inputs_and_book(job: dict):
    import pandas as pd
    from baselines import Book

    from territory_opt.config import WorkloadSettings
    from territory_opt.io import validate_inputs
    from territory_opt.workload import visits_per_year

    accounts = pd.read_parquet(job["accounts"])
    reps = pd.read_parquet(job["reps"])
    inputs = validate_inputs(accounts, reps)
    a, r = inputs.accounts, inputs.reps
    drift = job["scenario"] == "drift15"
    current = (
        a["current_rep_id"].map(pd.Series(np.arange(len(r)), index=r["rep_id"])).to_numpy()
        if drift
        else np.full(len(a), -1)
    )
    book = Book(
        lat=a["lat"].to_numpy(float),
        lon=a["lon"].to_numpy(float),
        potential=a["potential"].to_numpy(float),
        visits=visits_per_year(a, WorkloadSettings()),
        rep_lat=r["lat"].to_numpy(float),
        rep_lon=r["lon"].to_numpy(float),
        capacity_h=r["capacity_h"].to_numpy(float),
        current=np.asarray(current, dtype=np.int64),
        tolerance=TOLERANCE,
        transfer_share=TRANSFER_SHARE if drift else None,
    )
    return inputs, book


def _config(job: dict, time_limit_s: float):
    """Our settings; the transfer limit where ``territory_opt.config`` has it already."""
    from territory_opt import config as c

    extra = {}
    pending = False
    if job["scenario"] == "drift15":
        if hasattr(c, "TransferSettings"):
            extra["transfer"] = c.TransferSettings(
                max_accounts_share_per_rep=TRANSFER_SHARE,
                max_potential_share_per_rep=TRANSFER_SHARE,
            )
        else:
            pending = True
    cfg = c.PlanConfig(
        tolerance=TOLERANCE,
        potential=c.PotentialSettings(method="column"),
        solve=c.SolveSettings(time_limit_s=time_limit_s, seed=job["seed"]),
        **extra,
    )
    return cfg, pending


def _run_method(method: str, job: dict, progress) -> dict:
    from baselines import score_plan

    progress("loading")
    inputs, book = _inputs_and_book(job)
    limit = job["time_limit"]
    t0 = time.perf_counter()
    if method == "ours":
        from territory_opt.pipeline import plan

        cfg, pending = _config(job, limit)
        progress("planning")
        res = plan(inputs, cfg)
        elapsed = time.perf_counter() - t0
        row = {
            "time_s": elapsed,
            "plan": res.result.assignment,
            "bound": float(res.result.bound),
            "own_bound": float(res.result.bound),
            "status": res.result.status,
            "product_check": bool(res.check.ok),
            "widenings": len(res.manifest["plan"].get("candidate_widenings", [])),
            "pairs": int(res.manifest["plan"].get("candidate_pairs", 0)),
            "transfer_pending": pending,
        }
    elif method == "naive-cpsat":
        from baselines import solve_naive_cpsat

        out = solve_naive_cpsat(book, time_limit_s=limit, progress=lambda ph, n: progress(ph, n))
        row = {
            "time_s": time.perf_counter() - t0,
            "plan": out["plan"],
            "own_bound": out["bound"],
            "status": out["status"],
            "note": f"built {book.num_units * book.num_reps:,} pairs in {out['build_s']:.1f} s",
        }
    else:
        from solvers.check import check_plan
        from territory_opt.potential import estimate_potential
        from territory_opt.problem import build_problem

        cfg, pending = _config(job, limit)
        progress("building sparse problem")
        potential, _ = estimate_potential(inputs.accounts, None, cfg.potential)
        pp = build_problem(inputs.accounts, inputs.reps, potential, cfg)
        problem = pp.problem
        built = time.perf_counter() - t0
        left = max(1.0, limit - built)
        if method == "greedy-ls":
            from baselines import local_search

            from solvers.greedy import repair, solve_greedy

            progress("greedy", problem.num_pairs)
            has_cur = bool(np.all(problem.current_rep >= 0))
            # Repair searches exchanges once single moves run out; it gets the method's time
            # limit like everything else (unlimited, it ran past 240 s).
            clock = lambda: limit - (time.perf_counter() - t0)  # noqa: E731
            start = repair(problem, problem.current_rep, time_left=clock) if has_cur else None
            if start is None:
                start = solve_greedy(problem, time_left=clock).assignment
            progress("local search", problem.num_pairs)
            left = max(0.5, limit - (time.perf_counter() - t0))
            keep = 1 - TRANSFER_SHARE if job["scenario"] == "drift15" else None
            plan_, stats = local_search(problem, start, time_limit_s=left, keep_share=keep)
            row = {
                "plan": plan_,
                "own_bound": float("nan"),
                "status": "clock" if stats["stopped_by_clock"] else "local optimum",
                "note": (
                    f"moves: {stats['repair_moves']} repair, {stats['shift_moves']} shift, "
                    f"{stats['swap_moves']} swap"
                ),
            }
        else:
            from solvers.lp import solve_mip

            backend = method.split("-", 1)[1]
            progress(f"solving {backend}", problem.num_pairs)
            sol = solve_mip(problem, time_limit_s=left, backend=backend)
            plan_ = None
            if sol.feasible:
                plan_ = np.full(problem.num_units, -1)
                chosen = sol.x > 0.5
                plan_[problem.pair_unit[chosen]] = problem.cand_rep[chosen]
            row = {"plan": plan_, "own_bound": float(sol.bound), "status": sol.status}
        row["time_s"] = time.perf_counter() - t0
        row["pairs"] = problem.num_pairs
        row["build_s"] = built
        row["transfer_pending"] = pending
        if row["plan"] is not None and np.all(row["plan"] >= 0):
            row["product_check"] = bool(check_plan(problem, row["plan"]).ok)
    plan_ = row.pop("plan")
    if plan_ is not None:
        row |= {k: v for k, v in score_plan(book, plan_).items() if k != "assigned"}
    return row


# --- in the parent ----------------------------------------------------------------------------


def _vm_hwm_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def _last_progress(path: Path) -> str:
    try:
        lines = path.read_text().strip().splitlines()
    except OSError:
        return "starting"
    if not lines:
        return "starting"
    t, phase_and_pairs = lines[-1].split(" ", 1)
    phase, pairs = phase_and_pairs.rsplit(" ", 1)
    return f"{phase} ({int(pairs):,} pairs)" if int(pairs) else phase


def run_one(method: str, job: dict, scratch: Path) -> dict:
    """One method in a fresh process, killed at ``hard_limit`` seconds."""
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    progress = scratch / f"progress-{method}-{time.monotonic_ns()}.txt"
    proc = ctx.Process(target=_child, args=(method, job, str(progress), out))
    t0 = time.perf_counter()
    proc.start()
    hard = job["hard_limit"]
    hwm = float("nan")
    row = None
    while row is None:
        try:
            row = out.get(timeout=1.0)
        except queue_mod.Empty:
            hwm = max(_vm_hwm_mb(proc.pid), hwm) if not np.isnan(hwm) else _vm_hwm_mb(proc.pid)
            elapsed = time.perf_counter() - t0
            if not proc.is_alive():
                row = {
                    "method": method,
                    "error": f"died (exit code {proc.exitcode}) during {_last_progress(progress)}",
                    "time_s": elapsed,
                    "rss_mb": hwm,
                }
            elif elapsed > hard:
                proc.kill()
                row = {
                    "method": method,
                    "error": f"killed at {hard:.0f} s during {_last_progress(progress)}",
                    "time_s": elapsed,
                    "rss_mb": hwm,
                }
    proc.join(timeout=30)
    if proc.is_alive():
        proc.kill()
        proc.join()
    if row.get("error", "").startswith("out of memory"):
        row["error"] += f" during {_last_progress(progress)}"
    return row


def _fmt(x, spec: str, none: str = "-") -> str:
    if x is None or (isinstance(x, float) and not np.isfinite(x)):
        return none
    return format(x, spec)


def _gap(obj, bound) -> float:
    if obj is None or bound is None or not np.isfinite(obj) or not np.isfinite(bound):
        return float("nan")
    return 100 * (obj - bound) / obj


def summarise(size: str, scenario: str, rows: list[dict], ours_runs: list[dict]) -> list[str]:
    ok_runs = [r for r in ours_runs if "error" not in r]
    ours_time = statistics.median(r["time_s"] for r in ok_runs) if ok_runs else float("nan")
    bound = max((r.get("bound", float("nan")) for r in ok_runs), default=float("nan"))
    lines = []
    for r in rows:
        checked = "yes" if r.get("ok") else ("no plan" if "objective" not in r else "NO")
        if "error" in r:
            checked = "no plan"
        note = r.get("error") or r.get("note") or ""
        status = r.get("status", "")
        if r.get("transfer_pending"):
            note = (note + "; " if note else "") + "transfer limit pending in config"
        if r["method"] == "ours" and ok_runs:
            note = (
                f"bound {bound:,.5g}; {r.get('widenings', 0)} widening(s); "
                f"{len(ok_runs)} run(s)" + ("; " + note if note else "")
            )
        moved = _fmt(r.get("max_moved_pct"), ".1f") if scenario == "drift15" else ""
        lines.append(
            f"| {size} | {scenario} | {r['method']} | {_fmt(r.get('time_s'), ',.1f')} | "
            f"{_fmt(r.get('rss_mb'), ',.0f')} | {checked} | "
            f"{_fmt(r.get('worst_dev_pct'), '.2f')} | "
            f"{_fmt(r.get('worst_util'), '.3f')} | {moved} | "
            f"{_fmt(_gap(r.get('objective'), bound), '.3f')} | "
            f"{_fmt(_gap(r.get('objective'), r.get('own_bound')), '.3f')} | "
            f"{_fmt(r.get('time_s', float('nan')) / ours_time, '.2f')} | {status} | {note} |"
        )
    return lines


HEADER = (
    "| book | scenario | method | time s | peak MB | checked plan | worst dev % | max util | "
    "max moved % | gap % (our bound) | gap % (own bound) | time / ours | status | note |\n"
    "|---|---|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---|---|"
)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="5,000 x 30, 10 s per method")
    ap.add_argument("--sizes", default="100000x300", help="accounts x reps, comma-separated")
    ap.add_argument("--scenarios", default=",".join(SCENARIOS))
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--repeats", type=int, default=3, help="runs of ours (median reported)")
    ap.add_argument("--baseline-repeats", type=int, default=1)
    ap.add_argument("--time-limit", type=float, default=120.0, help="seconds per method")
    ap.add_argument(
        "--hard-limit",
        type=float,
        default=None,
        help="kill a method after this many seconds (default 1.5 x time limit + 60)",
    )
    ap.add_argument("--mem-gb", type=float, default=16.0, help="address-space cap per method")
    ap.add_argument("--geography", default="georgia", help="georgia or us48")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--drift", type=float, default=0.2, help="log-sd of potential drift")
    ap.add_argument("--json", type=Path, default=None, help="also write every row here")
    args = ap.parse_args(argv)
    if args.quick:
        args.sizes, args.time_limit, args.repeats = "5000x30", 10.0, 1
    hard = args.hard_limit or 1.5 * args.time_limit + 60
    methods = args.methods.split(",")
    if "mip-scip" in methods:
        from ortools.linear_solver.python import model_builder as mb

        if not mb.Solver("scip").solver_is_supported():
            print("SCIP is not in this OR-Tools build; mip-scip left out", file=sys.stderr)
            methods.remove("mip-scip")

    from territory_opt.scale_book import generate_scale_book

    print(HEADER, flush=True)
    everything = []
    with tempfile.TemporaryDirectory(prefix="scale_bench_") as tmp:
        scratch = Path(tmp)
        for size in args.sizes.split(","):
            n, r = (int(x) for x in size.split("x"))
            for scenario in args.scenarios.split(","):
                t0 = time.perf_counter()
                book = generate_scale_book(
                    n,
                    r,
                    seed=args.seed,
                    geography=args.geography,
                    capacity_ratio=CAPACITY_RATIO[scenario],
                    drift=args.drift if scenario == "drift15" else None,
                )
                gen_s = time.perf_counter() - t0
                folder = scratch / f"{size}-{scenario}"
                paths = book.write(folder)
                figures = book.figures
                del book  # the parent keeps only the figures
                job = {
                    "accounts": str(paths["accounts"]),
                    "reps": str(paths["reps"]),
                    "scenario": scenario,
                    "time_limit": args.time_limit,
                    "hard_limit": hard,
                    "mem_gb": args.mem_gb,
                    "seed": args.seed,
                }
                rows, ours_runs = [], []
                for method in methods:
                    reps = args.repeats if method == "ours" else args.baseline_repeats
                    runs = [run_one(method, job, scratch) for _ in range(reps)]
                    if method == "ours":
                        ours_runs = runs
                    row = dict(runs[0])
                    done = [x for x in runs if "error" not in x]
                    if len(runs) > 1 and done:
                        row["time_s"] = statistics.median(x["time_s"] for x in done)
                        row["rss_mb"] = statistics.median(x["rss_mb"] for x in done)
                    rows.append(row)
                    everything.append({"size": size, "scenario": scenario} | row)
                size_label = f"{n:,} x {r:,}"
                for line in summarise(size_label, scenario, rows, ours_runs):
                    print(line, flush=True)
                fig = {k: v for k, v in figures.items() if k not in ("num_accounts", "num_reps")}
                print(
                    f"<!-- {size_label} {scenario}: generated in {gen_s:.1f} s; "
                    f"{json.dumps(fig, default=float)} -->",
                    flush=True,
                )
                for f in folder.iterdir():
                    f.unlink()
                folder.rmdir()
    if args.json:
        args.json.write_text(json.dumps(everything, indent=1, default=float))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main())

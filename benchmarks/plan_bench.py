"""Annual plan benchmark: our engine against baselines on the same problems, in one run.

For each book size (default 1,000 and 20,000 accounts; the 20,000 one is the shipped demo),
our full pipeline runs first; the baselines then solve the very problem it built (same
candidates, bands and capacities):

- ``greedy``: largest-first greedy plus single-move repair (what a hand-rolled script does),
- ``cp-sat``: the plain CP-SAT model over the sparse candidates, warm-started from greedy,
- ``mip``: HiGHS branch and bound on the same sparse model.

Each method runs in a fresh process so its peak memory (max RSS) is its own. Gaps are
measured against our proven LP bound. Run: ``python benchmarks/plan_bench.py``.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _ours(files: dict, time_limit: float, queue) -> None:
    from territory_opt.config import PlanConfig
    from territory_opt.io import load_inputs
    from territory_opt.pipeline import plan

    cfg = PlanConfig.from_file(files["config"]).with_overrides(time_limit_s=time_limit)
    inputs = load_inputs(files["accounts"], files["reps"], files["history"])
    t0 = time.perf_counter()
    res = plan(inputs, cfg)
    elapsed = time.perf_counter() - t0
    queue.put(
        {
            "method": "ours",
            "time_s": elapsed,
            "rss_mb": _rss_mb(),
            "ok": res.check.ok,
            "objective": res.check.objective,
            "bound": res.result.bound,
            "worst_dev_pct": float(res.territories["potential_dev_pct"].abs().max()),
            "problem": res.planning.problem,
            "tolerance_pct": 100 * cfg.tolerance,
            "widenings": len(res.manifest["plan"]["candidate_widenings"]),
        }
    )


def _baseline(method: str, problem, time_limit: float, queue) -> None:
    from solvers.check import check_plan
    from solvers.cpsat import solve_cpsat
    from solvers.greedy import solve_greedy
    from solvers.lp import solve_mip
    from solvers.settings import SolveSettings

    t0 = time.perf_counter()
    if method == "greedy":
        plan = solve_greedy(problem).assignment
    elif method == "cp-sat":
        hint = solve_greedy(problem).assignment
        left = time_limit - (time.perf_counter() - t0)
        plan = solve_cpsat(problem, SolveSettings(time_limit_s=left), hint=hint).assignment
    else:
        sol = solve_mip(problem, time_limit_s=time_limit)
        plan = np.full(problem.num_units, -1)
        if sol.feasible:
            chosen = sol.x > 0.5
            plan[problem.pair_unit[chosen]] = problem.cand_rep[chosen]
    elapsed = time.perf_counter() - t0
    row = {
        "method": method,
        "time_s": elapsed,
        "rss_mb": _rss_mb(),
        "ok": False,
        "objective": float("nan"),
        "worst_dev_pct": float("nan"),
    }
    if np.all(plan >= 0):
        rep = check_plan(problem, plan)
        row.update(
            ok=rep.ok, objective=rep.objective, worst_dev_pct=float(100 * rep.max_band_dev[0])
        )
    queue.put(row)


def _run(target, *args) -> dict:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=target, args=(*args, queue))
    proc.start()
    while True:
        try:
            out = queue.get(timeout=5)
            break
        except Exception:  # queue.Empty: is the child still alive?
            if not proc.is_alive():
                return {
                    "method": args[0] if isinstance(args[0], str) else "ours",
                    "failed": f"exit code {proc.exitcode}",
                }
    proc.join()
    return out


def _book(num_accounts: int, num_reps: int, folder: Path) -> dict:
    from territory_opt.demo import demo_files
    from territory_opt.synthetic import generate_book

    files = demo_files()
    if num_accounts == 20_000 and num_reps == 60:
        return files
    generate_book(num_accounts, num_reps, seed=11).write(folder)
    return {name: folder / f"{name}.csv" for name in ("accounts", "reps", "history")} | {
        "config": files["config"]
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000x10,20000x60", help="accounts x reps, comma-separated")
    ap.add_argument("--time-limit", type=float, default=120.0, help="seconds per method")
    ap.add_argument("--baselines", default="greedy,cp-sat,mip")
    args = ap.parse_args()
    print(
        f"{'book':>12} {'method':>7} {'time s':>8} {'peak MB':>8} {'checked':>8} "
        f"{'worst dev %':>11} {'gap %':>8} {'time ratio':>10}"
    )
    for size in args.sizes.split(","):
        n, r = (int(x) for x in size.split("x"))
        with tempfile.TemporaryDirectory() as tmp:
            files = _book(n, r, Path(tmp))
            ours = _run(_ours, files, args.time_limit)
            if "failed" in ours:
                print(f"{n:>6,}x{r:<5} ours failed ({ours['failed']}); see the error above")
                continue
            rows = [ours] + [
                _run(_baseline, m, ours["problem"], args.time_limit)
                for m in args.baselines.split(",")
            ]
        bound = ours["bound"]
        for row in rows:
            if "failed" in row:
                print(f"{n:>6,}x{r:<5} {row['method']:>7} failed ({row['failed']})")
                continue
            gap = 100 * (row["objective"] - bound) / row["objective"] if row["ok"] else float("nan")
            ratio = row["time_s"] / ours["time_s"]
            print(
                f"{n:>6,}x{r:<5} {row['method']:>7} {row['time_s']:8.1f} {row['rss_mb']:8.0f} "
                f"{'yes' if row['ok'] else 'NO':>8} {row['worst_dev_pct']:11.2f} {gap:8.3f} "
                f"{ratio:10.2f}"
            )
        print(
            f"{'':>12} band +-{ours['tolerance_pct']:.0f} %; bound = our LP bound "
            f"{bound:,.4g}; candidate widenings {ours['widenings']}; time ratio = "
            "method / ours"
        )
        sys.stdout.flush()


if __name__ == "__main__":
    main()

"""Benchmark: quota-test resampling run serially versus on a 2-worker Dask local cluster.

Runs the same quota test (default 1,000 bootstrap resamples and 1,000 permutations, 4
algorithms, half of the territories sampled) on the demo book:

- serially in this process;
- on a warm ``LocalCluster(n_workers=2, threads_per_worker=1, processes=True)`` that is
  started once and passed in as a client (start-up time reported separately);
- with ``backend="local"``, which starts and stops its own cluster (the cold, one-shot cost a
  CLI user pays).

It prints the wall-clock seconds of each phase (prepare = loading + validation + backtest;
connect = cluster start or connect; resample = bootstrap + permutations), the Dask/serial
ratios and whether all numbers are identical (they must be: same seed, same chunks).

The demo book has no plan folder yet, so the plan is the current alignment
(``accounts.csv`` ``current_rep_id``) with potential from ``truth.csv`` (``--potential
truth``, as the issue suggests for benchmarking; the datasets README reserves truth for
scoring estimators) or each account's mean yearly bookings (``--potential bookings``).
``--plan DIR`` uses a real plan folder instead. Without ``datasets/demo`` a synthetic book of
the same size is generated.

Usage::

    python benchmarks/quota_test_bench.py [--data datasets/demo] [--repeats 3]
"""

from __future__ import annotations

import argparse
import logging
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from territory_opt.quota_tests import (
    PlanFrames,
    plan_from_current_alignment,
    run_quota_test,
    synthetic_quota_frames,
)

ALGORITHMS = "headcount,potential,blended:0.5,history"
REPO = Path(__file__).resolve().parents[1]


def load_book(args: argparse.Namespace) -> tuple[PlanFrames, pd.DataFrame, pd.DataFrame, str]:
    data = Path(args.data)
    if args.plan:
        plan = PlanFrames.from_dir(args.plan)
        return plan, pd.read_csv(data / "history.csv"), pd.read_csv(data / "reps.csv"), args.plan
    if (data / "history.csv").is_file():
        accounts = pd.read_csv(data / "accounts.csv")
        history = pd.read_csv(data / "history.csv")
        reps = pd.read_csv(data / "reps.csv")
        if args.potential == "truth":
            truth = pd.read_csv(data / "truth.csv")
            plan = plan_from_current_alignment(
                history, truth, accounts=accounts, potential_col="true_potential"
            )
        else:
            plan = plan_from_current_alignment(history, None, accounts=accounts)
        return plan, history, reps, f"{data} (current alignment, {args.potential} potential)"
    frames = synthetic_quota_frames(num_reps=60, num_accounts=20_000, seed=0)
    plan = PlanFrames(assignments=frames["assignments"])
    return plan, frames["history"], frames["reps"], "synthetic (datasets/demo not found)"


def timed_run(plan, history, reps, args, backend):
    start = time.perf_counter()
    result = run_quota_test(
        plan,
        history,
        ALGORITHMS,
        reps=reps,
        sample_frac=args.sample_frac,
        seed=args.seed,
        backend=backend,
        n_boot=args.n_boot,
        n_perm=args.n_perm,
        chunk_size=args.chunk_size,
    )
    return result, time.perf_counter() - start


def same_numbers(a, b) -> bool:
    frames = ("metrics", "effects", "power", "quotas", "sample")
    return all(getattr(a, f).equals(getattr(b, f)) for f in frames)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(REPO / "datasets" / "demo"))
    parser.add_argument("--plan", default=None, help="plan folder (assignments.csv, ...)")
    parser.add_argument("--potential", choices=["truth", "bookings"], default="truth")
    parser.add_argument("--n-boot", type=int, default=1000)
    parser.add_argument("--n-perm", type=int, default=1000)
    parser.add_argument("--sample-frac", type=float, default=0.5)
    parser.add_argument("--chunk-size", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3, help="best of N for each backend")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # distributed configures its own INFO-level handlers; cluster chatter is not the result.
    for name in (
        "distributed",
        "distributed.scheduler",
        "distributed.nanny",
        "distributed.core",
        "distributed.http.proxy",
    ):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.simplefilter("ignore")  # sample-size notes are in the verdict, not timed here

    from distributed import Client, LocalCluster

    plan, history, reps, source = load_book(args)
    print(f"book: {source}")
    print(
        f"      {plan.assignments.shape[0]:,} accounts, {len(reps)} reps, "
        f"{len(history):,} history rows; {ALGORITHMS}; {args.n_boot:,} resamples + "
        f"{args.n_perm:,} permutations; sample_frac {args.sample_frac}; chunks of "
        f"{args.chunk_size}; best of {args.repeats}"
    )

    rows = []
    serial_runs = [timed_run(plan, history, reps, args, "serial") for _ in range(args.repeats)]
    serial, _ = serial_runs[0]
    best = min(serial_runs, key=lambda r: r[0].settings["timings_s"]["resample"])
    rows.append(("serial", best[0].settings["timings_s"], best[1]))

    start = time.perf_counter()
    cluster = LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    )
    client = Client(cluster)
    cluster_start = time.perf_counter() - start
    try:
        warm_runs = [timed_run(plan, history, reps, args, client) for _ in range(args.repeats)]
    finally:
        client.close()
        cluster.close()
    best = min(warm_runs, key=lambda r: r[0].settings["timings_s"]["resample"])
    timings = {**best[0].settings["timings_s"], "connect": cluster_start}
    rows.append(("dask 2x1 warm", timings, best[1]))

    cold, cold_total = timed_run(plan, history, reps, args, "local")
    rows.append(("dask 2x1 cold", cold.settings["timings_s"], cold_total))

    print()
    print(f"{'backend':<15} {'prepare s':>10} {'connect s':>10} {'resample s':>11} {'total s':>9}")
    for name, t, total in rows:
        print(
            f"{name:<15} {t['prepare']:>10.2f} {t['connect']:>10.2f} {t['resample']:>11.2f} "
            f"{total:>9.2f}"
        )
    serial_t = rows[0][1]["resample"]
    warm_t = rows[1][1]["resample"]
    print()
    print(f"resample time ratio dask warm / serial: {warm_t / serial_t:.2f}")
    print(f"end-to-end ratio dask cold / serial:    {cold_total / rows[0][2]:.2f}")

    agree = [same_numbers(serial, r) for r, _ in serial_runs + warm_runs] + [
        same_numbers(serial, cold)
    ]
    print(f"numbers identical across all {len(agree)} runs: {'yes' if all(agree) else 'NO'}")
    fair = serial.effects.query(
        "algorithm == 'potential' and metric == 'fairness_abs_corr_potential'"
    ).iloc[0]
    print(
        f"check: potential vs headcount |corr| change {fair['diff']:+.3f} "
        f"[{fair['ci_low']:+.3f}, {fair['ci_high']:+.3f}], p = {fair['p_value']:.4f}"
    )
    return 0 if all(agree) and np.isfinite(fair["diff"]) else 1


if __name__ == "__main__":
    raise SystemExit(main())

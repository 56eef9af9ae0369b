"""Districting benchmark: free-centre, contiguous, population x hops (Hess model).

Reads the 11 state county graphs of Zhang, Validi, Buchanan and Hicks (2022) from the shared
benchmark folder (networkx adjacency JSON, never copied into the project), solves each with
``solvers.districting.solve_districting``, verifies every plan with the independent checker and
prints one row per state against the published proven optimum and the paper's Gurobi times.

Run: ``python benchmarks/districting_hops.py [--bench-dir DIR] [--time-limit 60]
[--states AL,AR] [--backend highs|cpsat] [--workers 2] [--seed 0] [--no-deterministic]``.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import math
import sys
from pathlib import Path

import networkx as nx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from solvers.check_districting import check_problem_plan
from solvers.districting import (
    DistrictingProblem,
    DistrictingSettings,
    solve_districting,
)

DEFAULT_BENCH_DIR = (
    Path(__file__).resolve().parents[1].parent / "shared" / "bench" / "districting-hops"
)
POPULATION_FIELD = "P0010001"


def load_state(bench_dir: Path, row: dict) -> DistrictingProblem:
    """Build the problem of one reference row; bounds are recomputed and compared."""
    with open(bench_dir / row["file"]) as f:
        graph = nx.adjacency_graph(json.load(f))
    nodes = sorted(graph.nodes)
    index = {v: i for i, v in enumerate(nodes)}
    population = np.array([graph.nodes[v][POPULATION_FIELD] for v in nodes], dtype=np.int64)
    edges = [(index[u], index[v]) for u, v in graph.edges]
    k = int(row["k"])
    total = int(population.sum())
    # Integer arithmetic for ceil(0.995 P / k) and floor(1.005 P / k).
    lower, upper = -(-995 * total // (1000 * k)), 1005 * total // (1000 * k)
    if (lower, upper) != (int(row["L"]), int(row["U"])):
        raise ValueError(
            f"{row['state']}: bounds {lower},{upper} != reference {row['L']},{row['U']}"
        )
    return DistrictingProblem.from_edges(len(nodes), edges, population, k, lower, upper)


def _fmt_s(value: float) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.1f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bench-dir", type=Path, default=DEFAULT_BENCH_DIR)
    parser.add_argument("--time-limit", type=float, default=60.0, help="seconds per state")
    parser.add_argument("--states", default="", help="comma-separated, e.g. AL,AR (default all)")
    parser.add_argument("--backend", default="highs", choices=["highs", "cpsat"])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--heuristic-share", type=float, default=None)
    parser.add_argument(
        "--deterministic",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="CP-SAT: interleaved (reproducible) search, or --no-deterministic for its portfolio",
    )
    parser.add_argument("--verbose", action="store_true", help="log solver progress")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING)

    with open(args.bench_dir / "reference.csv") as f:
        rows = list(csv.DictReader(f))
    wanted = {s.strip().upper() for s in args.states.split(",") if s.strip()}
    if wanted:
        rows = [r for r in rows if r["state"] in wanted]
    extra = {} if args.heuristic_share is None else {"heuristic_share": args.heuristic_share}
    settings = DistrictingSettings(
        time_limit_s=args.time_limit,
        seed=args.seed,
        num_workers=args.workers,
        backend=args.backend,
        log_search_progress=args.verbose,
        deterministic=args.deterministic,
        **extra,
    )

    header = (
        "| state | units | k | objective | proven | t optimal value s | t proof s "
        "| published optimum | paper s (no warm / warm) | ours / published | checked |"
    )
    print(
        f"backend={args.backend} workers={args.workers} seed={args.seed} "
        f"deterministic={args.deterministic} time limit={args.time_limit:g} s"
    )
    print(header)
    print("|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---|")
    reached = proven = 0
    for row in rows:
        problem = load_state(args.bench_dir, row)
        result = solve_districting(problem, settings)
        published = int(row["optimal_objective"])
        check = check_problem_plan(problem, result.centre_of, result.objective)
        if result.objective is None:
            checked = "no plan"
        else:
            checked = "yes" if check.ok else "NO: " + "; ".join(check.violations)
        is_proven = result.status == "OPTIMAL"
        hit = result.objective == published and check.ok
        reached += hit
        proven += is_proven and hit
        ratio = "-" if result.objective is None else f"{result.objective / published:.4f}"
        obj = "-" if result.objective is None else f"{result.objective:,}"
        t_opt = result.time_to_best_s if hit else math.nan
        t_proof = result.runtime_s if is_proven else math.nan
        proof_note = "yes" if is_proven else f"no (gap {result.gap:.2%})"
        print(
            f"| {row['state']} | {problem.num_units} | {problem.k} | {obj} | {proof_note} "
            f"| {_fmt_s(t_opt)} | {_fmt_s(t_proof)} | {published:,} "
            f"| {float(row['paper_seconds_no_warm_start']):.2f} / "
            f"{float(row['paper_seconds_warm_start']):.2f} | {ratio} "
            f"| {checked} |",
            flush=True,
        )
        if is_proven and result.objective != published:
            print(f"  !! {row['state']}: proven {result.objective:,} != published {published:,}")
    print(
        f"\nsummary: published optimum reached in {reached}/{len(rows)} states, "
        f"reached and proven within {args.time_limit:g} s in {proven}/{len(rows)}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

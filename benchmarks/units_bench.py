"""Contiguous unit alignment at national scale, with baselines measured in the same run.

Instance (fixed by ``--seed``): hexagonal cells over the real outline of the 48 contiguous
US states (``us48.shp`` bundled with libpysal's ``us_income`` example; no county polygons
ship with any package we can install offline, so the cells stand in for a county map of the
same size), rook adjacency with every island bridged, a seeded log-normal potential per cell
(currency/yr), and ``--territories`` rep homes placed by potential-weighted k-means and
snapped to distinct cells. Band +-``--tolerance`` around equal targets; compactness cost =
potential x km from the cell to the rep's home cell. Every plan is verified by
``solvers/check_units.py`` (contiguity with networkx, bands, objective).

Methods, each given the same wall-clock limit:

- ``ours``: region growing + flow-guided balancing + cost moves, LP bound, then LNS windows
  with separator cuts (``solve_units``, strategy ``lns``).
- ``ours, construction alone``: region growing (ranked by cost per weight) + flow-guided
  balancing + cost moves (no CP-SAT): the first checked plan ``ours`` starts from.
- ``growing + single moves``: the previous construction, region growing (ranked by cost)
  and single boundary moves (squared-deviation diffusion, then cost), without the
  flow-guided chains.
- ``plain``: the whole CP-SAT model with flow contiguity, no warm start, no LNS.

``--compare`` instead times the whole model with flow against cuts on small grids;
``--sweep`` runs ``ours`` on the same geography with other seeds (potential and homes).

    /tmp/venv/bin/python benchmarks/units_bench.py                 # 3,000 x 100, 120 s each
    /tmp/venv/bin/python benchmarks/units_bench.py --compare
    /tmp/venv/bin/python benchmarks/units_bench.py --sweep --time-limit 60
"""

from __future__ import annotations

import argparse
import time
import warnings

import geopandas as gpd
import numpy as np

from solvers.check_units import check_unit_problem_plan
from solvers.contiguity import (
    ContiguitySettings,
    UnitProblem,
    _Index,
    _local_search,
    balance_territories,
    grow_territories,
    solve_units,
)
from territory_opt.adjacency import unit_graph
from territory_opt.units import hex_units, load_units


def us48_cells(cell_km: float) -> gpd.GeoDataFrame:
    import libpysal

    states = gpd.read_file(libpysal.examples.get_path("us48.shp"))
    # The shapefile has no .prj; its bounds (-124.7..-67.0, 25.0..49.4) are lon/lat degrees.
    states = states.set_crs(4326)
    return hex_units(states[["geometry"]], cell_km)


def national_instance(
    cell_km: float, k: int, tolerance: float, seed: int, num_candidates: int = 8
) -> tuple[UnitProblem, dict]:
    """The benchmark instance and facts about it (units, bridges, CRS, build time)."""
    t0 = time.perf_counter()
    cells = us48_cells(cell_km)
    units = load_units(cells)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        graph = unit_graph(units.projected, kind="rook")
    ids = units.ids
    pos = {u: i for i, u in enumerate(ids)}
    edges = np.array([(pos[a], pos[b]) for a, b in graph.graph.edges()], dtype=np.int64)
    rng = np.random.default_rng(seed)
    potential = rng.lognormal(mean=np.log(100_000.0), sigma=0.4, size=len(ids))
    weight = np.round(potential).astype(np.int64)  # whole currency units
    c = units.projected.geometry.centroid
    xy = np.c_[c.x.to_numpy(), c.y.to_numpy()] / 1000.0  # km
    from sklearn.cluster import KMeans

    km = KMeans(n_clusters=k, n_init=1, random_state=seed).fit(xy, sample_weight=potential)
    roots: list[int] = []
    for centre in km.cluster_centers_:
        order = np.argsort(np.linalg.norm(xy - centre, axis=1))
        roots.append(int(next(i for i in order if i not in roots)))
    roots_arr = np.array(roots)
    dist_km = np.linalg.norm(xy[:, None, :] - xy[roots_arr][None, :, :], axis=2)
    cost = np.round(potential[:, None] / 1000.0 * dist_km)  # k-currency x km
    target = weight.sum() / k
    lower = np.full(k, int(np.ceil((1 - tolerance) * target)))
    upper = np.full(k, int(np.floor((1 + tolerance) * target)))
    problem = UnitProblem.build(
        edges, weight, roots_arr, lower, upper, cost, num_candidates=num_candidates
    )
    facts = {
        "units": len(ids),
        "edges": len(edges),
        "bridges": len(graph.bridges),
        "crs": units.crs_note,
        "largest_cell_pct_of_target": float(100 * weight.max() / target),
        "build_s": time.perf_counter() - t0,
    }
    return problem, facts


def _row(name, p, plan, objective, bound, seconds, extra=""):
    ok = plan is not None and bool(np.all(plan >= 0))
    check = check_unit_problem_plan(p, plan, objective) if ok else None
    loads = check.loads if check else None
    dev = (
        float(np.max(np.abs(loads - (p.lower + p.upper) / 2) / ((p.lower + p.upper) / 2)) * 100)
        if loads is not None
        else float("nan")
    )
    gap = (objective - bound) / objective * 100 if ok and np.isfinite(bound) else float("nan")
    verdict = "yes" if check and check.ok else ("no plan" if not ok else "**no**")
    pieces = int(check.num_pieces.max()) if check else 0
    obj = f"{objective:,.0f}" if ok else "-"
    return (
        f"| {name} | {seconds:.1f} | {verdict} | {obj} | {gap:.2f} | {dev:.2f} | {pieces} |"
        f" {extra} |"
    )


def run(args) -> None:
    p, facts = national_instance(args.cell_km, args.territories, args.tolerance, args.seed)
    print(
        f"instance: {facts['units']:,} units, {facts['edges']:,} edges, {facts['bridges']} "
        f"bridges, {p.num_territories} territories, {p.num_pairs:,} candidate pairs, largest "
        f"cell {facts['largest_cell_pct_of_target']:.1f} % of a target; CRS {facts['crs']}; "
        f"built in {facts['build_s']:.1f} s"
    )
    print(
        "| method | time s | checked plan | objective (k-currency x km) | gap % | worst dev % "
        "| max pieces | notes |"
    )
    print("|---|---:|---|---:|---:|---:|---:|---|")
    settings = ContiguitySettings(
        time_limit_s=args.time_limit, seed=args.seed, num_workers=args.workers, strategy="lns"
    )
    t = time.perf_counter()
    ours = solve_units(p, settings)
    t_ours = time.perf_counter() - t
    st = ours.stats
    print(
        _row(
            "**ours**",
            p,
            ours.assignment,
            ours.objective,
            ours.bound,
            t_ours,
            f"{ours.status}; first checked plan after {st.get('time_to_first_s', float('nan')):.1f}"
            " s, "
            f"{st.get('lns_windows')} windows, {st.get('cut_rounds', 0)} cut rounds, best "
            f"after {st.get('time_to_best_s', float('nan')):.1f} s",
        ),
        flush=True,
    )
    bound = ours.bound
    t = time.perf_counter()
    ix = _Index(p)
    plan = grow_territories(p, ix, per_weight=True)  # ours' first growing order
    plan, bst = balance_territories(p, plan, args.time_limit)
    plan = _local_search(p, ix, plan, time.monotonic() + args.time_limit, balance=False)
    t_b = time.perf_counter() - t
    print(
        _row(
            "ours, construction alone",
            p,
            plan,
            ix.objective(plan),
            bound,
            t_b,
            f"{bst['balance_rounds']} flow rounds, {bst['balance_moves']} units moved, band "
            f"violation {ix.violation(plan):,}",
        ),
        flush=True,
    )
    t = time.perf_counter()
    plan = grow_territories(p, ix)
    if np.all(plan >= 0):
        plan = _local_search(p, ix, plan, time.monotonic() + args.time_limit)
    t_c = time.perf_counter() - t
    viol = ix.violation(plan) if np.all(plan >= 0) else None
    print(
        _row(
            "growing + single moves",
            p,
            plan,
            ix.objective(plan) if viol is not None else 0,
            bound,
            t_c,
            f"band violation {viol:,} (currency)" if viol is not None else "units left",
        ),
        flush=True,
    )
    if not args.skip_plain:
        t = time.perf_counter()
        plain = solve_units(
            p,
            ContiguitySettings(
                time_limit_s=args.time_limit,
                seed=args.seed,
                num_workers=args.workers,
                strategy="full",
                contiguity="flow",
                warm_start=False,
            ),
        )
        print(
            _row(
                "plain CP-SAT (flow, no warm start)",
                p,
                plain.assignment,
                plain.objective,
                bound,
                time.perf_counter() - t,
                plain.status,
            ),
            flush=True,
        )
    print(f"\nproven lower bound (LP relaxation, no contiguity): {bound:,.0f}")


def sweep(args) -> None:
    """``ours`` on the same geography with other seeds (potential and rep homes)."""
    print(
        "| seed | candidates | first checked plan s | time s | checked plan | gap % "
        "| worst dev % | status |"
    )
    print("|---:|---:|---:|---:|---|---:|---:|---|")
    for seed in args.seeds:
        p, _ = national_instance(
            args.cell_km, args.territories, args.tolerance, seed, args.candidates
        )
        s = ContiguitySettings(
            time_limit_s=args.time_limit, seed=seed, num_workers=args.workers, strategy="lns"
        )
        t = time.perf_counter()
        r = solve_units(p, s)
        sec = time.perf_counter() - t
        check = check_unit_problem_plan(p, r.assignment, r.objective) if r.has_plan else None
        mid = (p.lower + p.upper) / 2
        dev = float(np.max(np.abs(check.loads - mid) / mid) * 100) if check else float("nan")
        first = f"{r.stats['time_to_first_s']:.1f}" if r.has_plan else "-"
        print(
            f"| {seed} | {args.candidates} | {first} | {sec:.1f} | "
            f"{'yes' if check and check.ok else 'no plan'} | "
            f"{100 * r.gap if r.has_plan else float('nan'):.2f} | {dev:.2f} | {r.status} |",
            flush=True,
        )


def _grid(side: int, k: int, seed: int) -> UnitProblem:
    rng = np.random.default_rng(seed)
    n = side * side
    edges = [(y * side + x, y * side + x + 1) for y in range(side) for x in range(side - 1)]
    edges += [(y * side + x, (y + 1) * side + x) for y in range(side - 1) for x in range(side)]
    w = rng.integers(50, 150, n)
    roots = rng.choice(n, k, replace=False)
    xy = np.c_[np.arange(n) % side, np.arange(n) // side].astype(float)
    d = np.linalg.norm(xy[:, None, :] - xy[roots][None, :, :], axis=2)
    target = w.sum() / k
    lo = np.full(k, int(np.ceil(0.95 * target)))
    up = np.full(k, int(np.floor(1.05 * target)))
    return UnitProblem.build(
        edges, w, roots, lo, up, np.round(w[:, None] * d * 10), num_candidates=min(k, 6)
    )


def compare(args) -> None:
    print(
        "| grid | territories | pairs | formulation | status | time s | objective | gap % "
        "| cut rounds |"
    )
    print("|---|---:|---:|---|---|---:|---:|---:|---:|")
    for side, k in ((10, 4), (15, 6), (20, 8)):
        p = _grid(side, k, args.seed)
        for contiguity in ("flow", "cuts"):
            s = ContiguitySettings(
                time_limit_s=args.time_limit,
                seed=args.seed,
                num_workers=args.workers,
                strategy="full",
                contiguity=contiguity,
                relative_gap=0.0,
            )
            t = time.perf_counter()
            r = solve_units(p, s)
            sec = time.perf_counter() - t
            check = check_unit_problem_plan(p, r.assignment, r.objective) if r.has_plan else None
            assert check is None or check.ok, check.violations
            print(
                f"| {side}x{side} | {k} | {p.num_pairs:,} | {contiguity} | {r.status} | "
                f"{sec:.1f} | {r.objective:,.0f} | {100 * r.gap:.3f} | "
                f"{r.stats.get('cut_rounds', 0)} |",
                flush=True,
            )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cell-km", type=float, default=60.0, help="hex width; 60 km gives ~3,000")
    ap.add_argument("--territories", type=int, default=100)
    ap.add_argument("--tolerance", type=float, default=0.05)
    ap.add_argument("--time-limit", type=float, default=120.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--skip-plain", action="store_true", help="leave out the plain model")
    ap.add_argument("--compare", action="store_true", help="flow against cuts on grids")
    ap.add_argument("--sweep", action="store_true", help="ours on other seeds")
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    ap.add_argument("--candidates", type=int, default=8, help="nearest homes per cell")
    args = ap.parse_args()
    if args.compare:
        compare(args)
    elif args.sweep:
        sweep(args)
    else:
        run(args)


if __name__ == "__main__":
    main()

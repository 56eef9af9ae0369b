"""Plans on geographic units: contiguous territories grown from each rep's home unit.

Flow: units file -> validated polygons in a projected CRS (``units.load_units``) -> accounts
joined to units (``unit_id`` column, else point-in-polygon) -> unit adjacency graph, islands
bridged and reported (``adjacency.unit_graph``) -> per segment: each rep's home unit,
named accounts fixed to their rep, unit potential = sum of the other accounts' potential,
integer arrays (``solvers.contiguity.UnitProblem``) -> solve -> independent checks (the
solver-agnostic ``solvers.check_units`` and, here, networkx on the unit ids plus the band in
currency) -> tables, dissolved territory polygons, map, manifest.

Segments: each segment's reps split the whole map among themselves, using that segment's
accounts only, so every unit has one territory per segment. ``UnitSettings.segment`` plans
one segment alone.

Mixed mode: accounts marked ``locked`` stay with their current rep on their own (named
accounts); their potential counts in that rep's band. All other accounts move with their unit.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import geopandas as gpd
import networkx as nx
import numpy as np
import pandas as pd

from solvers.check_units import check_unit_problem_plan
from solvers.contiguity import ContiguitySettings, UnitProblem, precheck, solve_units
from solvers.result import ProgressEvent, Result

from .adjacency import unit_graph
from .atomic import atomic_dir
from .config import PlanConfig
from .errors import Finding, InfeasibleError, InputError, InputProblem
from .geo import haversine_km
from .io import Inputs, load_inputs
from .manifest import finite_or_none, header, json_default, sha256_file
from .potential import estimate_potential
from .units import Units, join_accounts, load_units, polsby_popper
from .workload import capacity_h

__all__ = ["UnitPlan", "UnitPlanCheckError", "plan_units", "plan_units_files"]

log = logging.getLogger(__name__)

# Potential is scaled so that each segment's total is this many integer units: rounding then
# moves a territory's total by under 1e-6 of its target, and the band is shrunk by the worst
# case so the plan holds the band in currency too.
_WEIGHT_RESOLUTION = 1e9
# Largest integer compactness cost of one unit-territory pair.
_COST_RESOLUTION = 1e7
# In the compactness cost every unit weighs at least this share of the mean unit potential,
# so units without accounts still go to a nearby rep instead of anywhere.
_COST_FLOOR = 0.01


class UnitPlanCheckError(RuntimeError):
    """A unit plan failed the independent check; nothing should be written."""


@dataclass(frozen=True, eq=False)
class UnitPlan:
    """A checked unit plan: accounts and units to reps, territory table, dissolved
    territories (EPSG:4326) and manifest."""

    assignments: pd.DataFrame
    territories: pd.DataFrame
    unit_assignments: pd.DataFrame
    shapes: gpd.GeoDataFrame
    manifest: dict[str, Any]
    results: dict[str, Result]
    units: Units
    reps: pd.DataFrame

    def summary(self) -> str:
        t = self.territories
        lines = [
            f"Unit plan for {len(self.assignments):,} accounts, {len(t)} reps and "
            f"{self.manifest['units']['count']:,} units ({self.manifest['units']['adjacency']} "
            f"adjacency, {len(self.manifest['units']['bridges'])} bridge(s))",
        ]
        for seg, s in self.manifest["solver"].items():
            gap = "-" if s["gap"] is None else f"{100 * s['gap']:.2f} %"
            lines.append(
                f"  {seg:<12} {s['status']} in {s['runtime_s']:.1f} s; objective "
                f"{s['objective']:,.4g} {s['objective_units']}, bound {s['bound']:,.4g}, gap {gap}"
            )
        dev = t["potential_dev_pct"].abs().max()
        lines += [
            f"  check        {self.manifest['check']['result']}",
            f"  potential    worst deviation from target {dev:.2f} % "
            f"(band +-{100 * self.manifest['config']['tolerance']:.1f} %)",
            f"  contiguity   {int((t['contiguous'] == 'yes').sum())} of {len(t)} territories "
            f"connected in the unit graph; {int((t['num_pieces'] > 1).sum())} with more than "
            "one polygon piece (bridged islands)",
            f"  compactness  Polsby-Popper median {t['polsby_popper'].median():.3f} (1 = disc)",
            f"  named        {int(self.assignments['named'].sum()):,} accounts kept with "
            "their rep on their own",
        ]
        return "\n".join(lines)

    def write(self, out_dir: str | Path) -> Path:
        """Write every output at once (nothing partial on failure); returns the folder."""
        out_dir = Path(out_dir)
        with atomic_dir(out_dir) as tmp:
            self.assignments.to_csv(tmp / "assignments.csv", index=False, float_format="%.6f")
            self.territories.to_csv(tmp / "territories.csv", index=False, float_format="%.6f")
            self.unit_assignments.to_csv(tmp / "unit_assignments.csv", index=False)
            self.shapes.to_file(tmp / "territories.gpkg", layer="territories", engine="pyogrio")
            self.shapes.to_file(tmp / "territories.geojson", driver="GeoJSON", engine="pyogrio")
            render_unit_map(self.shapes, self.units, self.reps, tmp / "map.png")
            (tmp / "summary.txt").write_text(self.summary() + "\n")
            with open(tmp / "manifest.json", "w") as f:
                json.dump(self.manifest, f, indent=2, default=json_default)
                f.write("\n")
        return out_dir


# --------------------------------------------------------------------------------------------
# Checks of the geography against the accounts and reps
# --------------------------------------------------------------------------------------------


def _check_declared_crs(source, name: str) -> None:
    """Coordinates that cannot be in the declared geographic CRS are an error (before any
    projection is attempted)."""
    if isinstance(source, gpd.GeoDataFrame):
        frame = source
    elif Path(source).exists():
        frame = gpd.read_file(source, engine="pyogrio")
    else:
        return  # load_units reports the missing file
    if frame.crs is None or frame.empty or not frame.crs.is_geographic:
        return
    minx, miny, maxx, maxy = frame.total_bounds
    if min(minx, miny) < -180.5 or max(maxx, maxy) > 180.5 or miny < -90.5 or maxy > 90.5:
        raise InputError(
            [
                InputProblem(
                    name,
                    f"the file declares the geographic CRS {frame.crs.to_string()} but its "
                    f"coordinates span x {minx:,.0f}..{maxx:,.0f}, y {miny:,.0f}..{maxy:,.0f}, "
                    "which are not degrees",
                    "save the file with the projected CRS its coordinates are in",
                )
            ]
        )


def _check_crs(units: Units, name: str, accounts: pd.DataFrame) -> None:
    """Units and accounts must overlap: a wrong CRS is an error, never a silent empty join."""
    frame = units.frame
    lon0, lat0, lon1, lat1 = frame.to_crs(4326).total_bounds
    alon, alat = accounts["lon"].to_numpy(float), accounts["lat"].to_numpy(float)
    inside = (alon >= lon0) & (alon <= lon1) & (alat >= lat0) & (alat <= lat1)
    if len(accounts) and not inside.any():
        raise InputError(
            [
                InputProblem(
                    name,
                    f"no account lies within the units' extent (units: lon {lon0:.3f}..{lon1:.3f}"
                    f", lat {lat0:.3f}..{lat1:.3f}; accounts: lon {alon.min():.3f}.."
                    f"{alon.max():.3f}, lat {alat.min():.3f}..{alat.max():.3f})",
                    "check the units file's CRS (it may be declared wrongly) or that both "
                    "files cover the same area",
                )
            ]
        )


def _home_units(reps: pd.DataFrame, units: Units) -> pd.Series:
    """The unit holding each rep's home base; a home in no unit is an error."""
    pts = gpd.GeoDataFrame(
        {"_row": np.arange(len(reps))},
        geometry=gpd.points_from_xy(reps["lon"], reps["lat"]),
        crs=4326,
    ).to_crs(units.frame.crs)
    hits = gpd.sjoin(pts, units.frame[["geometry"]], how="left", predicate="intersects")
    hits = hits[~hits["_row"].duplicated(keep="first")]
    unit = hits["index_right"].to_numpy()
    problems = [
        InputProblem(
            "reps",
            f"rep '{reps['rep_id'].iloc[i]}' has its home base at ({reps['lat'].iloc[i]:.5f}, "
            f"{reps['lon'].iloc[i]:.5f}), which falls in no unit",
            "fix the home coordinates or add the missing unit to the units file",
            row=int(i) + 1,
            column="lat",
        )
        for i in np.flatnonzero(pd.isna(unit))
    ]
    if problems:
        raise InputError(problems)
    return pd.Series(unit.astype(str), index=reps.index, name="home_unit")


def _graph_pieces_error(graph: nx.Graph, name: str) -> InputError:
    pieces = sorted(nx.connected_components(graph), key=len, reverse=True)
    listed = "; ".join(f"{len(p)} unit(s) e.g. {', '.join(sorted(p)[:3])}" for p in pieces[1:6])
    return InputError(
        [
            InputProblem(
                name,
                f"the unit graph has {len(pieces)} separate pieces (largest {len(pieces[0])} "
                f"units; others: {listed})",
                "allow bridging (units.bridge = true, the default) or add the missing units",
            )
        ]
    )


def _named_reps(accounts: pd.DataFrame, reps: pd.DataFrame, config: PlanConfig) -> pd.Series:
    """The rep of each named account ('' for the others): ``[named_accounts]`` from the
    config, else ``locked`` accounts' current rep. Unknown ids are errors, listed at once."""
    named = pd.Series("", index=accounts.index, dtype=object)
    if "locked" in accounts:
        locked = accounts["locked"].to_numpy(bool)
        named[locked] = accounts["current_rep_id"].astype(str).to_numpy()[locked]
    problems = []
    for acc, rep in config.named_accounts.items():
        where = f"[named_accounts] '{acc}' = '{rep}'"
        if acc not in accounts.index:
            problems.append(InputProblem("config", f"{where}: no such account", "fix the id"))
        elif rep not in reps.index:
            problems.append(InputProblem("config", f"{where}: no such rep", "fix the id"))
        else:
            named[acc] = rep
    if "segment" in reps and "segment" in accounts:
        rep_seg = reps["segment"].astype(str).to_dict()
        acc_seg = accounts["segment"].astype(str)
        for acc in named.index[(named != "").to_numpy()]:
            if rep_seg.get(named[acc]) != acc_seg[acc] and len(problems) < 20:
                problems.append(
                    InputProblem(
                        "accounts",
                        f"named account '{acc}' ({acc_seg[acc]}) goes to rep '{named[acc]}' "
                        f"of segment {rep_seg.get(named[acc])}",
                        "name a rep of the account's segment",
                    )
                )
    if problems:
        raise InputError(problems)
    return named


# --------------------------------------------------------------------------------------------
# One segment
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class _Segment:
    name: str
    rep_ids: np.ndarray
    roots: np.ndarray  # unit index per rep
    rehomed: list[str]
    problem: UnitProblem
    weight_scale: float  # currency per integer weight unit
    cost_scale: float  # compactness units per integer cost unit
    cost_units: str
    target: np.ndarray  # currency/yr per rep
    lower: np.ndarray
    upper: np.ndarray
    named_potential: np.ndarray  # currency/yr per rep


def _distinct_roots(
    rep_ids: np.ndarray, home: np.ndarray, home_km: np.ndarray, xy_km: np.ndarray, ids: np.ndarray
) -> tuple[np.ndarray, list[str]]:
    """Each rep's root unit: its home unit, or, when another rep already roots it, the
    nearest unit that no rep roots (a unit belongs to one territory). Every move is reported.
    """
    taken: set[int] = set()
    roots = np.empty(len(rep_ids), dtype=np.int64)
    notes: list[str] = []
    for r in range(len(rep_ids)):
        if home[r] not in taken:
            roots[r] = home[r]
        else:
            order = np.argsort(np.linalg.norm(xy_km - home_km[r], axis=1), kind="stable")
            roots[r] = next(int(u) for u in order if int(u) not in taken)
            km = float(np.linalg.norm(xy_km[roots[r]] - home_km[r]))
            notes.append(
                f"rep '{rep_ids[r]}': home unit {ids[home[r]]} already roots another rep's "
                f"territory; rooted at the nearest free unit {ids[roots[r]]} ({km:.1f} km away)"
            )
        taken.add(int(roots[r]))
    return roots, notes


def _hops(graph_edges: np.ndarray, n: int, roots: np.ndarray) -> np.ndarray:
    g = nx.Graph()
    g.add_nodes_from(range(n))
    g.add_edges_from(graph_edges.tolist())
    out = np.full((n, len(roots)), np.inf)
    for t, r in enumerate(roots.tolist()):
        for u, d in nx.single_source_shortest_path_length(g, r).items():
            out[u, t] = d
    return out


def _build_segment(
    name: str,
    accounts: pd.DataFrame,
    potential: pd.Series,
    reps: pd.DataFrame,
    unit_of: pd.Series,
    named_of: pd.Series,
    units: Units,
    edges: np.ndarray,
    config: PlanConfig,
    *,
    num_candidates: int | None = None,
) -> _Segment:
    s = config.units
    ids = units.ids
    pos = pd.Series(np.arange(len(ids)), index=ids)
    n = len(ids)
    rep_ids = reps["rep_id"].to_numpy(str)
    home = pos.loc[_home_units(reps, units).to_numpy()].to_numpy()
    c = units.projected.geometry.centroid
    xy_km = np.c_[c.x.to_numpy(), c.y.to_numpy()] / 1000.0
    home_pts = gpd.GeoSeries(gpd.points_from_xy(reps["lon"], reps["lat"]), crs=4326).to_crs(
        units.projected.crs
    )
    home_km = np.c_[home_pts.x.to_numpy(), home_pts.y.to_numpy()] / 1000.0
    roots, rehomed = _distinct_roots(rep_ids, home, home_km, xy_km, ids)

    rep_pos = pd.Series(np.arange(len(rep_ids)), index=rep_ids)
    named_to = named_of.loc[accounts.index].to_numpy(str)
    named = named_to != ""
    pot = potential.loc[accounts.index].to_numpy(float)
    named_rep = rep_pos.loc[named_to[named]].to_numpy()
    named_pot = np.bincount(named_rep, weights=pot[named], minlength=len(rep_ids))
    unit_idx = pos.loc[unit_of.loc[accounts.index].to_numpy()].to_numpy()
    unit_pot = np.bincount(unit_idx[~named], weights=pot[~named], minlength=n)

    total = float(pot.sum())
    if not total > 0:
        raise InfeasibleError(
            [Finding("potential", f"Segment '{name}' has no potential to divide.", "check it.")]
        )
    cap = capacity_h(reps, config.workload)
    target = total * cap / cap.sum()
    lower, upper = (1 - config.tolerance) * target, (1 + config.tolerance) * target
    q = total / _WEIGHT_RESOLUTION
    weight = np.round(unit_pot / q).astype(np.int64)
    base = np.round(named_pot / q).astype(np.int64)
    # Worst rounding drift of a territory's total: half a unit per unit and for its base.
    slack = 0.5 * (n + 1)
    lo_int = np.ceil(lower / q + slack).astype(np.int64)
    up_int = np.floor(upper / q - slack).astype(np.int64)

    cost_weight = np.maximum(unit_pot, _COST_FLOOR * unit_pot.mean())
    if s.compactness == "distance":
        dist = np.linalg.norm(xy_km[:, None, :] - home_km[None, :, :], axis=2)
        units_label = "currency x km"
    else:
        dist = _hops(edges, n, roots)
        units_label = "currency x hops"
    raw = cost_weight[:, None] * dist
    finite = np.isfinite(raw)
    cq = max(float(raw[finite].max()) / _COST_RESOLUTION, 1e-12)
    cost = np.where(finite, np.round(raw / cq), np.inf)
    problem = UnitProblem.build(
        edges,
        weight,
        roots,
        lo_int,
        up_int,
        cost,
        base=base,
        num_candidates=num_candidates or s.num_candidates,
    )
    return _Segment(
        name, rep_ids, roots, rehomed, problem, q, cq, units_label, target, lower, upper, named_pot
    )


def _named(p: UnitProblem, seg: _Segment, ids: np.ndarray) -> list[Finding]:
    """The solver's precheck, in the user's words (rep and unit ids, currency)."""
    out = []
    for reason in precheck(p):
        out.append(
            Finding(
                "units",
                f"Segment '{seg.name}': {reason} (weights in units of "
                f"{seg.weight_scale:,.4g} currency; territories numbered as reps "
                f"{', '.join(seg.rep_ids[:5])}{' ...' if len(seg.rep_ids) > 5 else ''}).",
                "use smaller units, fewer reps, a wider tolerance or more candidates "
                "(units.num_candidates).",
            )
        )
    return out


def _segment_settings(config: PlanConfig, t0: float, segments_left: int) -> ContiguitySettings:
    """Solver settings for the next segment: an equal share of the time that is left."""
    left = config.solve.time_limit_s - (time.perf_counter() - t0)
    share = left / segments_left
    if share <= 0:
        raise InfeasibleError(
            [
                Finding(
                    "time",
                    "The time limit ran out before every segment was planned.",
                    "raise --time-limit.",
                )
            ]
        )
    return ContiguitySettings(
        time_limit_s=share,
        seed=config.solve.seed,
        num_workers=config.solve.num_workers,
        relative_gap=config.solve.relative_gap,
        contiguity=config.units.contiguity,
        log_search=config.solve.log_search,
    )


# --------------------------------------------------------------------------------------------
# Entry points
# --------------------------------------------------------------------------------------------


def plan_units(
    inputs: Inputs,
    units_source: str | Path | gpd.GeoDataFrame,
    config: PlanConfig | None = None,
    *,
    progress: Callable[[ProgressEvent], None] | None = None,
) -> UnitPlan:
    """Optimise, check and report a contiguous unit plan of ``inputs`` on ``units_source``.

    Raises :class:`InputError` for bad geography or inputs (every problem at once),
    :class:`InfeasibleError` when no plan exists or none was found in time, and
    :class:`UnitPlanCheckError` if a plan fails the independent checks.
    """
    config = config or PlanConfig()
    s = config.units
    t0 = time.perf_counter()
    name = "units" if isinstance(units_source, gpd.GeoDataFrame) else str(units_source)
    _check_declared_crs(units_source, name)
    units = load_units(units_source, id_col=s.id_col, repair=s.repair_geometry)
    accounts, reps = inputs.accounts, inputs.reps
    _check_crs(units, name, accounts)
    unit_of = join_accounts(accounts, units)
    ug = unit_graph(units.projected, kind=s.adjacency, bridge=s.bridge)
    if nx.number_connected_components(ug.graph) > 1:
        raise _graph_pieces_error(ug.graph, name)
    ids = units.ids
    pos = {u: i for i, u in enumerate(ids)}
    edges = np.array([(pos[a], pos[b]) for a, b in ug.graph.edges()], dtype=np.int64).reshape(-1, 2)
    potential, method = estimate_potential(accounts, inputs.history, config.potential)
    named_of = _named_reps(accounts, reps, config)

    has_seg = "segment" in reps and reps["segment"].notna().any()
    segments = sorted(reps["segment"].dropna().astype(str).unique()) if has_seg else ["all"]
    if s.segment is not None:
        if s.segment not in segments:
            raise InputError(
                [
                    InputProblem(
                        "reps",
                        f"segment '{s.segment}' has no reps (segments: {', '.join(segments)})",
                        "pick one of those segments",
                        column="segment",
                    )
                ]
            )
        segments = [s.segment]

    rows, terr_rows, unit_rows, results, solver_m, checks, notes = [], [], [], {}, {}, {}, []
    for k, seg_name in enumerate(segments):
        seg_acc = _segment_accounts(accounts, seg_name)
        seg_reps = reps if seg_name == "all" else reps[reps["segment"].astype(str) == seg_name]
        wrapped = None
        if progress is not None:

            def wrapped(ev: ProgressEvent, _seg=seg_name) -> None:
                progress(replace(ev, phase=f"{_seg}:{ev.phase}"))

        num_candidates = s.num_candidates
        while True:
            seg = _build_segment(
                seg_name,
                seg_acc,
                potential,
                seg_reps,
                unit_of,
                named_of,
                units,
                edges,
                config,
                num_candidates=num_candidates,
            )
            num_reps = len(seg.rep_ids)
            findings = _named(seg.problem, seg, ids)
            result = None
            if not findings:
                settings = _segment_settings(config, t0, len(segments) - k)
                result = solve_units(seg.problem, settings, wrapped)
            if (result is None or result.status == "INFEASIBLE") and num_candidates < num_reps:
                # Proven only for these candidate pairs: widen them before giving up.
                wider = min(2 * num_candidates, num_reps)
                why = (
                    "; ".join(f.message for f in findings)
                    if findings
                    else "; ".join(result.stats.get("infeasibility", ["proven by the solver"]))
                )
                note = (
                    f"Segment '{seg_name}': no plan with the {num_candidates} nearest reps as "
                    f"candidates per unit ({why}); widened to {wider}"
                )
                notes.append(note)
                log.warning("%s", note)
                num_candidates = wider
                continue
            if findings:
                raise InfeasibleError(findings)
            break
        notes += seg.rehomed
        for line in seg.rehomed:
            log.warning("%s", line)
        if not result.has_plan:
            raise InfeasibleError(_no_plan(seg, result, settings))
        report = check_unit_problem_plan(seg.problem, result.assignment, result.objective)
        if not report.ok:
            raise UnitPlanCheckError(
                f"segment '{seg_name}': plan failed the independent check: "
                + "; ".join(report.violations[:10])
            )
        results[seg_name] = result
        checks[seg_name] = report
        solver_m[seg_name] = {
            "status": result.status,
            "objective": result.objective * seg.cost_scale,
            "objective_units": seg.cost_units,
            "bound": finite_or_none(result.bound * seg.cost_scale),
            "gap": finite_or_none(result.gap),
            "runtime_s": result.runtime_s,
            "reproducible": result.runtime_s < settings.time_limit_s - 0.5,
            "stats": result.stats,
            "scales": {"weight_currency": seg.weight_scale, "cost": seg.cost_scale},
            "rehomed_reps": seg.rehomed,
            "num_candidates": num_candidates,
        }
        a, t = _tables(seg, seg_acc, potential, seg_reps, unit_of, named_of, ids, result.assignment)
        rows.append(a)
        terr_rows.append(t)
        unit_rows.append(
            pd.DataFrame(
                {"unit_id": ids, "segment": seg_name, "rep_id": seg.rep_ids[result.assignment]}
            )
        )

    assignments = pd.concat(rows, ignore_index=True)
    territories = pd.concat(terr_rows, ignore_index=True)
    territories, shapes = _geometry(territories, assignments, units, ug.graph, reps)
    errors = _verify(assignments, territories, accounts, config)
    if errors:
        raise UnitPlanCheckError("unit plan failed verification: " + "; ".join(errors[:10]))
    manifest = _manifest(
        inputs,
        name,
        units_source,
        config,
        units,
        ug,
        method,
        solver_m,
        checks,
        assignments,
        notes,
        time.perf_counter() - t0,
    )
    unit_table = pd.concat(unit_rows, ignore_index=True)
    return UnitPlan(assignments, territories, unit_table, shapes, manifest, results, units, reps)


def _no_plan(seg: _Segment, result: Result, settings: ContiguitySettings) -> list[Finding]:
    st = result.stats
    if result.status == "INFEASIBLE":
        reasons = st.get("infeasibility") or ["proven by the solver"]
        return [
            Finding(
                "contiguity",
                f"Segment '{seg.name}': no contiguous plan within the band exists: "
                + "; ".join(reasons),
                "use smaller units, a wider tolerance or more candidates.",
            )
        ]
    left = st.get("repair_violation_left")
    extra = ""
    if left:
        extra = (
            f" The best contiguous plan found still misses the bands by "
            f"{left * seg.weight_scale:,.0f} currency in total."
        )
    return [
        Finding(
            "time",
            f"Segment '{seg.name}': no contiguous plan within the band found in "
            f"{settings.time_limit_s:.0f} s (status {result.status}).{extra}",
            "raise --time-limit, widen the tolerance, or use smaller units.",
        )
    ]


def _tables(seg, acc, potential, reps, unit_of, named_of, ids, assignment):
    rep_of_unit = pd.Series(seg.rep_ids[assignment], index=ids)
    named_to = named_of.loc[acc.index].to_numpy(str)
    named = named_to != ""
    unit = unit_of.loc[acc.index].to_numpy(str)
    current = (
        acc["current_rep_id"].fillna("").astype(str).to_numpy()
        if "current_rep_id" in acc
        else np.full(len(acc), "")
    )
    rep = np.where(named, named_to, rep_of_unit.loc[unit].to_numpy(str))
    home = reps.loc[rep]
    travel = haversine_km(
        acc["lat"].to_numpy(float),
        acc["lon"].to_numpy(float),
        home["lat"].to_numpy(float),
        home["lon"].to_numpy(float),
    )
    a = pd.DataFrame(
        {
            "account_id": acc["account_id"].to_numpy(str),
            "rep_id": rep,
            "segment": seg.name,
            "unit_id": unit,
            "potential": potential.loc[acc.index].to_numpy(float),
            "named": named,
            "travel_km": travel,
            "previous_rep_id": current,
            "moved": (current != "") & (current != rep),
        }
    )
    g = a.groupby("rep_id")
    idx = pd.Index(seg.rep_ids)
    pot = g["potential"].sum().reindex(idx).fillna(0.0).to_numpy()
    t = pd.DataFrame(
        {
            "rep_id": seg.rep_ids,
            "segment": seg.name,
            "home_unit": ids[seg.roots],
            "units": np.bincount(assignment, minlength=len(seg.rep_ids)),
            "accounts": g.size().reindex(idx).fillna(0).astype(int).to_numpy(),
            "named_accounts": g["named"].sum().reindex(idx).fillna(0).astype(int).to_numpy(),
            "potential": pot,
            "target_potential": seg.target,
            "potential_dev_pct": 100 * (pot - seg.target) / seg.target,
            "travel_km_mean": g["travel_km"].mean().reindex(idx).to_numpy(),
        }
    )
    t["_units"] = [list(ids[assignment == r]) for r in range(len(seg.rep_ids))]
    return a, t


def _geometry(territories, assignments, units, graph, reps):
    """Dissolved territories with contiguity, pieces and Polsby-Popper (projected CRS)."""
    proj = units.projected
    geoms, contiguous, pieces = [], [], []
    for members in territories["_units"]:
        sub = graph.subgraph(members)
        contiguous.append("yes" if members and nx.is_connected(sub) else "no")
        shape = proj.geometry.loc[members].union_all()
        geoms.append(shape)
        pieces.append(len(getattr(shape, "geoms", [shape])))
    gs = gpd.GeoSeries(geoms, crs=proj.crs)
    territories = territories.drop(columns="_units").assign(
        contiguous=contiguous,
        num_pieces=pieces,
        polsby_popper=polsby_popper(gs),
        area_km2=gs.area.to_numpy() / 1e6,
    )
    shapes = gpd.GeoDataFrame(
        territories[
            [
                "rep_id",
                "segment",
                "home_unit",
                "units",
                "potential",
                "potential_dev_pct",
                "contiguous",
                "num_pieces",
                "polsby_popper",
                "area_km2",
            ]
        ].reset_index(drop=True),
        geometry=gs.to_crs(4326).reset_index(drop=True),
        crs=4326,
    )
    return territories, shapes


def _segment_accounts(accounts: pd.DataFrame, seg: str) -> pd.DataFrame:
    return accounts if seg == "all" else accounts[accounts["segment"].astype(str) == seg]


def _verify(assignments, territories, accounts, config) -> list[str]:
    """Recompute from the account table: every account once, bands in currency, one rep per
    unit; contiguity comes from ``_geometry`` (networkx on each territory's unit ids,
    independent of the solver's arrays)."""
    errors = []
    for seg, a in assignments.groupby("segment"):
        if a["account_id"].duplicated().any():
            errors.append(f"segment {seg}: an account is assigned twice")
        t = territories[territories["segment"] == seg].set_index("rep_id")
        pot = a.groupby("rep_id")["potential"].sum().reindex(t.index).fillna(0.0)
        target = t["target_potential"]
        tol = 1e-6 * target
        bad = (pot < (1 - config.tolerance) * target - tol) | (
            pot > (1 + config.tolerance) * target + tol
        )
        for rep in t.index[bad.to_numpy()]:
            errors.append(
                f"rep {rep}: potential {pot[rep]:,.2f} outside +-{config.tolerance:.0%} of "
                f"target {target[rep]:,.2f}"
            )
        moving = a[~a["named"]]
        unit_rep = moving.groupby("unit_id")["rep_id"].nunique()
        if (unit_rep > 1).any():
            errors.append(f"segment {seg}: a unit's accounts went to several reps")
    expected = sum(len(_segment_accounts(accounts, seg)) for seg in assignments["segment"].unique())
    if expected != len(assignments):
        errors.append(f"{len(assignments):,} accounts assigned, {expected:,} expected")
    if (territories["contiguous"] != "yes").any():
        bad = territories.loc[territories["contiguous"] != "yes", "rep_id"].tolist()
        errors.append(f"territories not connected in the unit graph: {bad[:10]}")
    return errors


def _manifest(
    inputs, name, source, config, units, ug, method, solver_m, checks, assignments, notes, runtime
):
    files = {
        k: {"path": path, "sha256": sha256_file(path)}
        for k, path in inputs.sources.items()
        if path and Path(path).exists()
    }
    if not isinstance(source, gpd.GeoDataFrame) and Path(source).exists():
        files["units"] = {"path": str(source), "sha256": sha256_file(source)}
    return {
        **header(config, files),
        "units": {
            "source": name,
            "count": len(units.ids),
            "crs_source": units.frame.crs.to_string(),
            "crs_projected": units.crs_note,
            "adjacency": ug.kind,
            "edges": ug.graph.number_of_edges(),
            "bridges": [str(b) for b in ug.bridges],
            "repaired_geometries": list(units.repaired),
        },
        "solver": solver_m,
        "check": {
            "result": "passed",
            "segments": {
                seg: {"objective_recomputed": c.objective, "max_pieces": int(c.num_pieces.max())}
                for seg, c in checks.items()
            },
        },
        "warnings": notes + [f"bridged {b}" for b in ug.bridges],
        "plan": {
            "accounts": int(len(assignments)),
            "named_accounts": int(assignments["named"].sum()),
            "potential_method": method,
            "moved_accounts": int(assignments["moved"].sum()),
            "runtime_s": runtime,
        },
    }


def render_unit_map(shapes: gpd.GeoDataFrame, units: Units, reps: pd.DataFrame, path) -> None:
    """Territories filled by rep with their boundaries, unit borders faint, rep bases as
    stars; one panel per segment. No pyplot, so no global matplotlib state changes."""
    from matplotlib import colormaps
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    segments = sorted(shapes["segment"].unique())
    fig = Figure(figsize=(7.5 * len(segments), 8.0), dpi=100)
    FigureCanvasAgg(fig)
    unit_lines = units.frame.to_crs(4326).boundary
    for k, seg in enumerate(segments):
        ax = fig.add_subplot(1, len(segments), k + 1)
        sh = shapes[shapes["segment"] == seg]
        hues = np.random.default_rng(0).permutation(len(sh)) / max(1, len(sh))
        unit_lines.plot(ax=ax, color="0.85", linewidth=0.2)
        sh.plot(ax=ax, color=colormaps["tab20"](hues), alpha=0.75, edgecolor="black", linewidth=0.8)
        these = reps.loc[sh["rep_id"].to_numpy()]
        ax.scatter(these["lon"], these["lat"], s=60, marker="*", c="black", label="rep base")
        ax.set_title(f"Contiguous territories: {seg} ({len(sh)} reps)")
        ax.set_xlabel("longitude")
        ax.set_ylabel("latitude")
        ax.set_aspect(1 / np.cos(np.radians(float(these["lat"].mean()))))
        ax.legend(loc="lower left")
    fig.savefig(path, bbox_inches="tight")


def plan_units_files(
    accounts: str | Path,
    reps: str | Path,
    units: str | Path,
    history: str | Path | None = None,
    *,
    config: PlanConfig | str | Path | None = None,
    out: str | Path | None = None,
    progress: Callable[[ProgressEvent], None] | None = None,
) -> UnitPlan:
    """Load, validate, plan on units and (with ``out``) write: ``territory-opt plan --units``."""
    if config is None or isinstance(config, str | Path):
        config = PlanConfig.from_file(config) if config else PlanConfig()
    inputs = load_inputs(accounts, reps, history, columns=config.columns)
    result = plan_units(inputs, units, config, progress=progress)
    if out is not None:
        result.write(out)
    return result

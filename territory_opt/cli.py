"""Command line: ``territory-opt plan | demo | validate | quota-test | capacity | rebalance``."""

from __future__ import annotations

import logging
import sys
import time
import tomllib
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.logging import RichHandler

from solvers.check import PlanCheckError
from solvers.result import ProgressEvent

from .config import PlanConfig
from .errors import InfeasibleError, InputError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Sales territory planning: optimised, checked, explainable.",
)
# soft_wrap: summaries piped to a file or CI log keep one line per figure.
out_console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)

EXIT_INPUT, EXIT_INFEASIBLE, EXIT_CHECK = 2, 3, 4

Opt = typer.Option


class _LiveProgress:
    """Shows elapsed time, phase, best objective, bound and gap while the solver runs."""

    def __init__(self, console: Console) -> None:
        self._console = console
        self._status = console.status("starting the solve ...")
        self._last = 0.0
        self._logged = 0.0

    def __enter__(self):
        self._status.__enter__()
        return self

    def __exit__(self, *exc):
        self._status.__exit__(*exc)

    def __call__(self, ev: ProgressEvent) -> None:
        now = time.monotonic()
        if now - self._last < 0.2:  # bound callbacks can fire thousands of times a second
            return
        self._last = now
        obj = "-" if ev.objective == float("inf") else f"{ev.objective:,.4g}"
        gap = "-" if ev.gap == float("inf") else f"{100 * ev.gap:.2f} %"
        text = (
            f"{ev.phase:>7} {ev.elapsed_s:6.1f} s  objective {obj}  "
            f"bound {ev.bound:,.4g}  gap {gap}"
        )
        self._status.update(text)
        if not self._console.is_terminal and now - self._logged >= 5.0:
            # No live line without a terminal: a log line every few seconds instead.
            self._logged = now
            logging.getLogger("territory_opt").info("%s", text)


def _logging(verbose: bool) -> None:
    """Our loggers at INFO (DEBUG with -v); everyone else's (Dask, matplotlib) at WARNING."""
    handler = RichHandler(console=err_console, show_path=False, show_time=False)
    # Libraries such as Dask set INFO on their own loggers; show only their warnings.
    handler.addFilter(
        lambda r: (
            r.levelno >= logging.WARNING or r.name.split(".")[0] in ("territory_opt", "solvers")
        )
    )
    logging.basicConfig(level=logging.WARNING, format="%(message)s", handlers=[handler])
    for ours in ("territory_opt", "solvers"):
        logging.getLogger(ours).setLevel(logging.DEBUG if verbose else logging.INFO)


def _config(config: Path | None, **overrides) -> PlanConfig:
    base = PlanConfig.from_file(config) if config else PlanConfig()
    return base.with_overrides(**overrides)


def _fail(exc: Exception, code: int) -> None:
    err_console.print("[bold red]error:[/]", end=" ")
    # Messages hold rule tags like [band]: print them as text, not markup.
    err_console.print(str(exc), markup=False, highlight=False)
    err_console.print("Nothing was written.")
    raise typer.Exit(code)


@contextmanager
def _exit_codes(check_error: type[Exception] = PlanCheckError):
    """Turn the library's errors into the command's exit codes: bad input, no plan can
    exist, a plan failed its check (``check_error``), bad settings."""
    try:
        yield
    except InputError as exc:
        _fail(exc, EXIT_INPUT)
    except InfeasibleError as exc:
        _fail(exc, EXIT_INFEASIBLE)
    except check_error as exc:
        _fail(exc, EXIT_CHECK)
    except ValueError as exc:
        _fail(exc, EXIT_INPUT)


def _run_plan(accounts, reps, history, cfg: PlanConfig, out: Path, boundaries=None) -> None:
    from .io import load_inputs
    from .pipeline import plan

    with _exit_codes():
        inputs = load_inputs(accounts, reps, history, columns=cfg.columns)
        with _LiveProgress(err_console) as progress:
            result = plan(inputs, cfg, progress=progress)
        geo = None
        if boundaries is not None:
            import geopandas as gpd

            geo = gpd.read_file(boundaries)
        result.write(out, boundaries=geo)
    out_console.print(result.summary(), highlight=False)
    out_console.print(
        f"Wrote {out}/: assignments.csv, territories.csv, manifest.json, map.png, summary.txt"
    )


@app.command()
def plan(
    accounts: Annotated[Path, Opt(help="Accounts file (CSV or Parquet).")],
    reps: Annotated[Path, Opt(help="Reps file (CSV or Parquet).")],
    out: Annotated[Path, Opt(help="Output folder (written atomically).")],
    history: Annotated[Path | None, Opt(help="Bookings history (CSV or Parquet).")] = None,
    config: Annotated[Path | None, Opt(help="Settings (TOML).")] = None,
    quota_total: Annotated[float | None, Opt(help="Quota to distribute (currency).")] = None,
    tolerance: Annotated[float | None, Opt(help="Potential band half-width (0.05 = 5 %).")] = None,
    time_limit: Annotated[float | None, Opt(help="Wall-clock limit, seconds.")] = None,
    seed: Annotated[int | None, Opt(help="Random seed.")] = None,
    workers: Annotated[int | None, Opt(help="Solver workers.")] = None,
    boundaries: Annotated[Path | None, Opt(help="Polygons to draw on the map.")] = None,
    units: Annotated[
        Path | None,
        Opt(help="Unit polygons (GeoPackage, GeoJSON, Shapefile): plan contiguous territories."),
    ] = None,
    adjacency: Annotated[str | None, Opt(help="With --units: rook or queen.")] = None,
    unit_id_col: Annotated[str | None, Opt(help="With --units: the unit id column.")] = None,
    repair_geometry: Annotated[
        bool, Opt("--repair-geometry", help="With --units: make_valid invalid polygons.")
    ] = False,
    segment: Annotated[str | None, Opt(help="With --units: plan only this segment.")] = None,
    verbose: Annotated[bool, Opt("--verbose", "-v")] = False,
) -> None:
    """Optimise the annual territory plan and write checked outputs.

    With --units, territories are built from whole units (ZIP codes, counties, cells),
    each contiguous and grown from the unit holding the rep's home base.
    """
    _logging(verbose)
    try:
        cfg = _config(
            config,
            quota_total=quota_total,
            tolerance=tolerance,
            time_limit_s=time_limit,
            seed=seed,
            workers=workers,
        )
        if units is not None:
            from dataclasses import replace

            given = {"adjacency": adjacency, "id_col": unit_id_col, "segment": segment}
            given = {k: v for k, v in given.items() if v is not None}
            if repair_geometry:
                given["repair_geometry"] = True
            cfg = replace(cfg, units=replace(cfg.units, **given))
    except ValueError as exc:
        _fail(exc, EXIT_INPUT)
    if units is not None:
        _run_unit_plan(accounts, reps, history, units, cfg, out)
    else:
        _run_plan(accounts, reps, history, cfg, out, boundaries)


def _run_unit_plan(accounts, reps, history, units, cfg: PlanConfig, out: Path) -> None:
    from .io import load_inputs
    from .unit_plan import UnitPlanCheckError, plan_units

    with _exit_codes(UnitPlanCheckError):
        inputs = load_inputs(accounts, reps, history, columns=cfg.columns)
        with _LiveProgress(err_console) as progress:
            result = plan_units(inputs, units, cfg, progress=progress)
        result.write(out)
    out_console.print(result.summary(), highlight=False)
    out_console.print(
        f"Wrote {out}/: assignments.csv, territories.csv, unit_assignments.csv, "
        "territories.gpkg, territories.geojson, map.png, manifest.json, summary.txt"
    )


@app.command()
def demo(
    out: Annotated[Path, Opt(help="Output folder.")] = Path("out/demo"),
    time_limit: Annotated[float | None, Opt(help="Wall-clock limit, seconds.")] = None,
    seed: Annotated[int | None, Opt(help="Random seed.")] = None,
    workers: Annotated[int | None, Opt(help="Solver workers.")] = None,
    verbose: Annotated[bool, Opt("--verbose", "-v")] = False,
) -> None:
    """Run the annual plan on the shipped demo book (Georgia, 20,000 accounts, 60 reps)."""
    from .demo import boundaries_path, demo_files

    _logging(verbose)
    files = demo_files()
    cfg = _config(files["config"], time_limit_s=time_limit, seed=seed, workers=workers)
    _run_plan(files["accounts"], files["reps"], files["history"], cfg, out, boundaries_path())


@app.command()
def validate(
    accounts: Annotated[Path, Opt(help="Accounts file (CSV or Parquet).")],
    reps: Annotated[Path, Opt(help="Reps file (CSV or Parquet).")],
    history: Annotated[Path | None, Opt(help="Bookings history.")] = None,
    config: Annotated[Path | None, Opt(help="Settings (TOML).")] = None,
) -> None:
    """Check the inputs and the settings' arithmetic without solving."""
    from .feasibility import precheck
    from .io import load_inputs
    from .potential import estimate_potential
    from .problem import build_problem

    _logging(False)
    try:
        cfg = _config(config)
        inputs = load_inputs(accounts, reps, history, columns=cfg.columns)
        potential, method = estimate_potential(inputs.accounts, inputs.history, cfg.potential)
        pp = build_problem(inputs.accounts, inputs.reps, potential, cfg)
    except (InputError, ValueError) as exc:
        _fail(exc, EXIT_INPUT)
    findings = [f for f in precheck(pp, cfg.tolerance) if f.rule != "reach"]
    if findings:
        _fail(InfeasibleError(findings), EXIT_INFEASIBLE)
    out_console.print(
        f"inputs valid: {len(inputs.accounts):,} accounts, {len(inputs.reps)} reps"
        f"{'' if inputs.history is None else f', {len(inputs.history):,} history rows'}; "
        f"potential via {method}; {pp.problem.num_pairs:,} candidate pairs; no arithmetic "
        "obstacle found"
    )


@app.command("quota-test")
def quota_test(
    plan_dir: Annotated[Path, Opt("--plan", help="A plan's output folder.")],
    history: Annotated[Path, Opt(help="Bookings history (CSV or Parquet).")],
    out: Annotated[Path, Opt(help="Output folder.")],
    algorithms: Annotated[str, Opt(help="e.g. headcount,potential,blended:0.5")] = (
        "headcount,potential"
    ),
    reps: Annotated[Path | None, Opt(help="Reps file (default: the plan's).")] = None,
    sample_frac: Annotated[float, Opt(help="Share of territories in the pilot.")] = 0.3,
    seed: Annotated[int, Opt(help="Random seed.")] = 0,
    backend: Annotated[
        str,
        Opt(
            help="local (a Dask cluster on this machine), serial, or a Dask scheduler "
            "address such as tcp://host:8786."
        ),
    ] = "local",
    n_boot: Annotated[int | None, Opt(help="Bootstrap resamples.")] = None,
    config: Annotated[Path | None, Opt(help="TOML with \\[quota_test] and \\[comp_plan].")] = None,
) -> None:
    """Pilot quota algorithms on a sample of territories and backtest them on history.

    Resamples run on Dask: by default a local cluster on this machine, or the cluster at a
    given scheduler address; the same seed gives the same numbers on any backend.
    """
    from .quota_backtest import CompPlan
    from .quota_tests import QuotaTestSettings, run_quota_test

    _logging(False)
    try:
        tables = {}
        if config:
            with open(config, "rb") as f:
                tables = tomllib.load(f)
        unknown = sorted(set(tables) - {"quota_test", "comp_plan"})
        if unknown:
            raise ValueError(
                f"{config}: unknown table(s) {unknown}; use [quota_test] and [comp_plan]"
            )
        settings = QuotaTestSettings.from_dict(tables.get("quota_test", {}))
        comp_plan = CompPlan.from_dict(tables["comp_plan"]) if "comp_plan" in tables else None
        extra = {} if n_boot is None else {"n_boot": n_boot}
        result = run_quota_test(
            plan_dir,
            history,
            algorithms,
            reps=reps,
            sample_frac=sample_frac,
            seed=seed,
            backend=backend,
            settings=settings,
            comp_plan=comp_plan,
            **extra,
        )
        result.write(out)
    except (InputError, ValueError, TypeError, OSError) as exc:
        _fail(exc, EXIT_INPUT)
    out_console.print(result.verdict, markup=False, highlight=False)
    out_console.print(f"Wrote {out}/")


@app.command()
def districts(
    graph: Annotated[Path, Opt(help="Unit graph, networkx adjacency JSON.")],
    population_field: Annotated[str, Opt(help="Node attribute holding population.")],
    k: Annotated[int, Opt(help="Number of districts.")],
    out: Annotated[Path, Opt(help="Output folder.")],
    tolerance: Annotated[float, Opt(help="Population band half-width (0.005 = 0.5 %).")] = 0.005,
    objective: Annotated[str, Opt(help="Objective: hops (population x hops to centre).")] = (
        "hops"
    ),
    time_limit: Annotated[float, Opt(help="Wall-clock limit, seconds.")] = 60.0,
    seed: Annotated[int, Opt(help="Random seed.")] = 0,
    workers: Annotated[int, Opt(help="Solver workers.")] = 2,
    id_field: Annotated[str | None, Opt(help="Node attribute to write as unit_id.")] = None,
) -> None:
    """Free-centre contiguous districts: choose k centres, balance population, minimise hops."""
    from solvers.districting import DistrictingInputError, DistrictingSettings

    from .districts import plan_districts

    _logging(False)
    settings = DistrictingSettings(time_limit_s=time_limit, seed=seed, num_workers=workers)
    try:
        with _LiveProgress(err_console) as show:

            def progress(elapsed: float, obj: float, bound: float) -> None:
                show(ProgressEvent(elapsed, obj, bound, "solve"))

            result = plan_districts(
                graph,
                population_field=population_field,
                k=k,
                tolerance=tolerance,
                settings=settings,
                objective=objective,
                id_field=id_field,
                progress=progress,
            )
        result.write(out)
    except (InputError, DistrictingInputError, ValueError) as exc:
        _fail(exc, EXIT_INPUT)
    except InfeasibleError as exc:
        _fail(exc, EXIT_INFEASIBLE)
    except RuntimeError as exc:
        _fail(exc, EXIT_CHECK)
    m = result.manifest
    out_console.print(
        f"{len(result.assignments)} units in {k} districts: {m['status']}, objective "
        f"{m['objective']:,} person-hops, bound {m['bound']:,.0f}, gap {100 * m['gap']:.2f} %, "
        f"{m['runtime_s']:.1f} s; check {m['check']['result']}",
        highlight=False,
    )
    out_console.print(f"Wrote {out}/: assignments.csv, manifest.json")


@app.command()
def capacity(
    accounts: Annotated[Path, Opt(help="Accounts file (CSV or Parquet).")],
    reps: Annotated[Path, Opt(help="Reps file (CSV or Parquet).")],
    out: Annotated[Path, Opt(help="Output folder (written atomically).")],
    history: Annotated[Path | None, Opt(help="Bookings history (CSV or Parquet).")] = None,
    config: Annotated[Path | None, Opt(help="Settings (TOML, with \\[capacity]).")] = None,
    segment: Annotated[
        str | None, Opt(help="Segments to analyse, comma-separated (default: all).")
    ] = None,
    span: Annotated[int | None, Opt(help="Curve: current - span .. current + span reps.")] = None,
    coverage: Annotated[float | None, Opt(help="Share of potential to cover (0.9).")] = None,
    must_cover: Annotated[str | None, Opt(help="Tiers always covered, e.g. A,B.")] = None,
    utilisation: Annotated[
        float | None, Opt(help="Share of productive hours the workload may fill.")
    ] = None,
    time_limit: Annotated[float | None, Opt(help="Seconds per curve solve.")] = None,
    plan_start: Annotated[str | None, Opt(help="First month of the plan year, YYYY-MM.")] = None,
    ramp_months: Annotated[int | None, Opt(help="Months to full productivity.")] = None,
    attrition: Annotated[float | None, Opt(help="Expected annual attrition (0.15).")] = None,
    target_fte: Annotated[
        float | None, Opt(help="Effective FTE the hiring plan keeps (one segment).")
    ] = None,
    seed: Annotated[int | None, Opt(help="Random seed.")] = None,
    workers: Annotated[int | None, Opt(help="Solver workers.")] = None,
    verbose: Annotated[bool, Opt("--verbose", "-v")] = False,
) -> None:
    """How many reps the book needs, the value of each rep, where new ones sit, when to hire.

    Writes capacity.csv (workload build-up), workload_by_tier.csv, curve.csv (checked solves
    per rep count), new_reps.csv, hiring.csv, capacity.png, manifest.json and summary.txt.
    """
    from .capacity_plan import run_capacity_cli

    _logging(verbose)
    with _exit_codes():
        cfg = _config(config, seed=seed, workers=workers)
        result = run_capacity_cli(
            accounts,
            reps,
            history,
            cfg,
            segment=segment,
            span=span,
            coverage=coverage,
            must_cover=must_cover,
            utilisation=utilisation,
            time_limit=time_limit,
            plan_start=plan_start,
            ramp_months=ramp_months,
            attrition=attrition,
            target_fte=target_fte,
        )
        result.write(out)
    out_console.print(result.summary(), highlight=False)
    out_console.print(
        f"Wrote {out}/: capacity.csv, workload_by_tier.csv, curve.csv, new_reps.csv, "
        "hiring.csv, capacity.png, manifest.json, summary.txt"
    )


@app.command()
def rebalance(
    changes: Annotated[Path, Opt(help="Changes (CSV): change,rep_id,lat,lon,start_date,...")],
    out: Annotated[Path, Opt(help="Output folder (written atomically).")],
    plan_dir: Annotated[Path | None, Opt("--plan", help="An earlier plan's output folder.")] = None,
    accounts: Annotated[Path | None, Opt(help="Accounts file (default: the plan's).")] = None,
    reps: Annotated[Path | None, Opt(help="Reps file (default: the plan's).")] = None,
    history: Annotated[Path | None, Opt(help="Bookings history (default: the plan's).")] = None,
    alignment: Annotated[
        Path | None, Opt(help="Alignment CSV (account_id, rep_id), instead of --plan.")
    ] = None,
    config: Annotated[Path | None, Opt(help="Settings (TOML; default: the plan's).")] = None,
    frontier: Annotated[int, Opt(help="N plans from least disruption to best balance.")] = 0,
    quota_total: Annotated[float | None, Opt(help="Quota to distribute (currency).")] = None,
    tolerance: Annotated[float | None, Opt(help="Potential band half-width (0.05 = 5 %).")] = None,
    time_limit: Annotated[float | None, Opt(help="Wall-clock limit, seconds.")] = None,
    seed: Annotated[int | None, Opt(help="Random seed.")] = None,
    workers: Annotated[int | None, Opt(help="Solver workers.")] = None,
    verbose: Annotated[bool, Opt("--verbose", "-v")] = False,
) -> None:
    """Answer a hire, leaver, leave or FTE change with the plan that moves least.

    Budgets and protected accounts come from \\[rebalance] in the config; every move
    is explained in moves.csv and diff.md.
    """
    from .rebalance import rebalance_files

    _logging(verbose)
    with _exit_codes():
        cfg = PlanConfig.from_file(config) if config else None
        with err_console.status("rebalancing ..."):
            result = rebalance_files(
                plan_dir,
                changes,
                accounts=accounts,
                reps=reps,
                history=history,
                alignment=alignment,
                config=cfg,
                out=out,
                frontier=frontier,
                quota_total=quota_total,
                tolerance=tolerance,
                time_limit_s=time_limit,
                seed=seed,
                workers=workers,
            )
    out_console.print(result.summary(), highlight=False)
    extra = ", frontier.csv, frontier.png, frontier/" if frontier >= 2 else ""
    out_console.print(
        f"Wrote {out}/: assignments.csv, territories.csv, moves.csv, rep_changes.csv, diff.md, "
        f"reps.csv, manifest.json, summary.txt{extra}"
    )


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        err_console.print("interrupted; nothing was written.")
        sys.exit(130)

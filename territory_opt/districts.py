"""Free-centre districting of a unit graph: read the graph, solve, check, write.

The graph comes as networkx adjacency JSON (``networkx.adjacency_data``) with a population
field on every node. Bounds follow the published districting convention:
``L = ceil((1 - tolerance) P / k)``, ``U = floor((1 + tolerance) P / k)``.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np
import pandas as pd

from solvers.check_districting import check_problem_plan
from solvers.districting import (
    DistrictingProblem,
    DistrictingResult,
    DistrictingSettings,
    solve_districting,
)

from . import __version__
from .atomic import atomic_dir
from .errors import Finding, InfeasibleError, InputError, InputProblem
from .manifest import sha256_file, versions

__all__ = ["DistrictPlan", "read_graph", "plan_districts"]


def read_graph(path: str | Path, population_field: str) -> tuple[nx.Graph, np.ndarray]:
    """The graph and the population (persons) of each node, in node order."""
    path = Path(path)
    if not path.exists():
        raise InputError([InputProblem(str(path), "file not found", "check the path")])
    try:
        graph = nx.adjacency_graph(json.loads(path.read_text()))
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(
            [
                InputProblem(
                    str(path),
                    f"not networkx adjacency JSON ({exc})",
                    "write it with networkx.adjacency_data",
                )
            ]
        ) from exc
    problems = []
    pops = []
    for i, (node, data) in enumerate(graph.nodes(data=True)):
        value = data.get(population_field)
        if value is None or not float(value).is_integer() or float(value) < 0:
            problems.append(
                InputProblem(
                    str(path),
                    f"node {node!r} has population {value!r}",
                    f"give every node a whole '{population_field}' >= 0",
                    row=i + 1,
                    column=population_field,
                )
            )
        else:
            pops.append(int(value))
    if problems:
        raise InputError(problems)
    return graph, np.asarray(pops, dtype=np.int64)


@dataclass(frozen=True, eq=False)
class DistrictPlan:
    """A checked districting: ``assignments`` (``unit_id``, ``centre_id``) and its manifest."""

    assignments: pd.DataFrame
    manifest: dict[str, Any]
    result: DistrictingResult

    def write(self, out_dir: str | Path) -> Path:
        with atomic_dir(out_dir) as tmp:
            self.assignments.to_csv(tmp / "assignments.csv", index=False)
            (tmp / "manifest.json").write_text(json.dumps(self.manifest, indent=2) + "\n")
        return Path(out_dir)


def plan_districts(
    graph_path: str | Path,
    *,
    population_field: str,
    k: int,
    tolerance: float,
    settings: DistrictingSettings | None = None,
    objective: str = "hops",
    id_field: str | None = None,
    progress=None,
) -> DistrictPlan:
    """Solve and independently check a free-centre districting of the graph in ``graph_path``."""
    if objective != "hops":
        raise ValueError(f"objective {objective!r} is not supported; use 'hops'")
    if not 0 <= tolerance < 1:
        raise ValueError(f"tolerance must be in [0, 1), got {tolerance}")
    settings = settings or DistrictingSettings()
    t0 = time.perf_counter()
    graph, population = read_graph(graph_path, population_field)
    nodes = list(graph.nodes())
    index = {node: i for i, node in enumerate(nodes)}
    edges = np.array([(index[a], index[b]) for a, b in graph.edges()], dtype=np.int64)
    total = int(population.sum())
    lower = math.ceil((1 - tolerance) * total / k)
    upper = math.floor((1 + tolerance) * total / k)
    problem = DistrictingProblem.from_edges(len(nodes), edges, population, k, lower, upper)
    result = solve_districting(problem, settings, progress)
    if result.status == "INFEASIBLE":
        raise InfeasibleError(
            [
                Finding(
                    "balance",
                    f"No {k} connected districts can each hold between {lower:,} and "
                    f"{upper:,} persons (total {total:,}, tolerance +-{100 * tolerance:g} %): "
                    "proven by the solver.",
                    "widen the tolerance or change k.",
                )
            ]
        )
    if result.centre_of is None or np.any(np.asarray(result.centre_of) < 0):
        raise InfeasibleError(
            [
                Finding(
                    "time",
                    f"No districting found within {settings.time_limit_s:g} s (status "
                    f"{result.status}).",
                    "raise --time-limit.",
                )
            ]
        )
    centre_of = np.asarray(result.centre_of)
    report = check_problem_plan(problem, centre_of, int(result.objective))
    # A second, independent check on the original graph with networkx.
    errors = list(report.violations)
    for centre in np.unique(centre_of):
        members = [nodes[i] for i in np.flatnonzero(centre_of == centre)]
        if not nx.is_connected(graph.subgraph(members)):
            errors.append(f"district of {nodes[centre]!r} is not connected")
        pop = int(population[centre_of == centre].sum())
        if not lower <= pop <= upper:
            errors.append(
                f"district of {nodes[centre]!r} has population {pop}, outside [{lower}, {upper}]"
            )
    if errors:
        raise RuntimeError("districting failed the independent check: " + "; ".join(errors))
    if id_field is None:
        ids = [str(n) for n in nodes]
    else:
        missing = [n for n in nodes if id_field not in graph.nodes[n]]
        if missing:
            raise InputError(
                [
                    InputProblem(
                        str(graph_path),
                        f"{len(missing)} node(s) have no '{id_field}', e.g. node {missing[0]!r}",
                        "give every node that field or drop --id-field",
                        column=id_field,
                    )
                ]
            )
        ids = [str(graph.nodes[n][id_field]) for n in nodes]
    assignments = pd.DataFrame({"unit_id": ids, "centre_id": [ids[c] for c in centre_of]})
    manifest = {
        "territory_opt": __version__,
        "inputs": {"graph": {"path": str(graph_path), "sha256": sha256_file(graph_path)}},
        "settings": {
            "population_field": population_field,
            "k": k,
            "tolerance": tolerance,
            "lower": lower,
            "upper": upper,
            "objective": objective,
            "time_limit_s": settings.time_limit_s,
            "seed": settings.seed,
            "num_workers": settings.num_workers,
            "backend": settings.backend,
        },
        "versions": versions(),
        "status": result.status,
        "objective": int(result.objective),
        "objective_units": "persons x hops",
        "bound": float(result.bound),
        "gap": float(result.gap),
        "runtime_s": time.perf_counter() - t0,
        "time_to_best_s": result.time_to_best_s,
        "check": {"result": "passed", "objective_recomputed": report.objective},
    }
    return DistrictPlan(assignments, manifest, result)

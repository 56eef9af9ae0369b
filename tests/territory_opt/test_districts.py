"""``territory-opt districts``: free-centre districting of a graph file, checked and written."""

from __future__ import annotations

import itertools
import json

import networkx as nx
import pandas as pd
import pytest
from typer.testing import CliRunner

from territory_opt.cli import app
from territory_opt.districts import plan_districts
from territory_opt.errors import InfeasibleError


def _grid_file(tmp_path, population=None):
    """A 3x3 grid, every unit 100 persons (unless given), node attribute ``geoid``::

    0 - 1 - 2
    |   |   |
    3 - 4 - 5
    |   |   |
    6 - 7 - 8
    """
    g = nx.grid_2d_graph(3, 3)
    g = nx.convert_node_labels_to_integers(g, ordering="sorted")
    for i in g.nodes:
        g.nodes[i]["pop"] = 100 if population is None else population[i]
        g.nodes[i]["geoid"] = f"G{i}"
    path = tmp_path / "grid.json"
    path.write_text(json.dumps(nx.adjacency_data(g)))
    return path, g


def _brute_force(g, pops, k):
    """Least person-hops over all choices of k centres and connected balanced districts."""
    hops = dict(nx.all_pairs_shortest_path_length(g))
    best = None
    nodes = list(g.nodes)
    for centres in itertools.combinations(nodes, k):
        for assign in itertools.product(centres, repeat=len(nodes)):
            if any(assign[c] != c for c in centres):
                continue
            ok = True
            for c in centres:
                members = [n for n in nodes if assign[n] == c]
                if sum(pops[n] for n in members) != sum(pops) // k or not nx.is_connected(
                    g.subgraph(members)
                ):
                    ok = False
                    break
            if ok:
                cost = sum(pops[n] * hops[n][assign[n]] for n in nodes)
                best = cost if best is None else min(best, cost)
    return best


def test_three_districts_on_a_grid_match_brute_force(tmp_path):
    path, g = _grid_file(tmp_path)
    result = plan_districts(path, population_field="pop", k=3, tolerance=0.0)
    assert result.manifest["status"] == "OPTIMAL"
    assert result.manifest["objective"] == _brute_force(g, [100] * 9, 3)
    a = result.assignments
    assert sorted(a["unit_id"]) == [str(i) for i in range(9)]
    for centre, members in a.groupby("centre_id")["unit_id"]:
        assert centre in set(members)
        assert len(members) == 3
        assert nx.is_connected(g.subgraph([int(m) for m in members]))


def test_cli_writes_assignments_and_manifest(tmp_path):
    path, _ = _grid_file(tmp_path)
    out = tmp_path / "out"
    res = CliRunner().invoke(
        app,
        [
            "districts",
            "--graph",
            str(path),
            "--population-field",
            "pop",
            "--k",
            "3",
            "--tolerance",
            "0",
            "--objective",
            "hops",
            "--id-field",
            "geoid",
            "--out",
            str(out),
        ],
    )
    assert res.exit_code == 0, res.output
    a = pd.read_csv(out / "assignments.csv")
    assert list(a.columns) == ["unit_id", "centre_id"]
    assert set(a["unit_id"]) == {f"G{i}" for i in range(9)}
    m = json.loads((out / "manifest.json").read_text())
    for key in ("objective", "bound", "status", "runtime_s"):
        assert key in m
    assert m["check"]["result"] == "passed"


def test_missing_population_is_an_input_error_and_nothing_is_written(tmp_path):
    path, g = _grid_file(tmp_path)
    data = nx.adjacency_data(g)
    del data["nodes"][4]["pop"]
    path.write_text(json.dumps(data))
    out = tmp_path / "out"
    res = CliRunner().invoke(
        app,
        [
            "districts",
            "--graph",
            str(path),
            "--population-field",
            "pop",
            "--k",
            "3",
            "--out",
            str(out),
        ],
    )
    assert res.exit_code == 2
    assert "node 4" in res.output and "pop" in res.output
    assert not out.exists()


def test_impossible_balance_is_explained(tmp_path):
    """Nine units of 100 into 2 districts within +-0.5 %: 450 each is impossible."""
    path, _ = _grid_file(tmp_path)
    with pytest.raises(
        InfeasibleError, match="No 2 connected districts can each hold between 448 and 452"
    ):
        plan_districts(path, population_field="pop", k=2, tolerance=0.005)


def test_unknown_objective_is_refused(tmp_path):
    path, _ = _grid_file(tmp_path)
    with pytest.raises(ValueError, match="objective 'compactness' is not supported"):
        plan_districts(path, population_field="pop", k=3, tolerance=0.0, objective="compactness")

"""Independent checker for rooted contiguous unit alignments.

Written from the problem definition in ``solvers.contiguity``'s docstring and sharing no code
with the model or its helpers: contiguity is tested with networkx connected components on the
units assigned to each territory, loads and the objective are recomputed with numpy.

A plan is a vector ``assignment`` (unit -> territory index). It is accepted when every unit
is assigned to exactly one territory through a candidate pair, each territory holds its root,
``base + sum of unit weights`` lies in the band of every territory, every territory is one
connected piece of the unit graph, and the reported objective equals the recomputed one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import networkx as nx
import numpy as np

__all__ = ["UnitCheck", "check_units", "check_unit_problem_plan"]


@dataclasses.dataclass(frozen=True)
class UnitCheck:
    """Outcome of :func:`check_units`.

    Attributes:
        ok: True when every hard constraint holds (and the objective matches, if given).
        violations: one human-readable line per violated constraint.
        objective: recomputed total cost (caller's units); ``None`` if some unit uses a
            pair that is not a candidate.
        loads: base + unit weight per territory, shape (k,).
        num_pieces: connected pieces of each territory in the unit graph, shape (k,).
    """

    ok: bool
    violations: list[str]
    objective: int | None
    loads: np.ndarray
    num_pieces: np.ndarray


def check_units(
    weight: Sequence[int] | np.ndarray,
    edges: Sequence[tuple[int, int]] | np.ndarray,
    root: Sequence[int] | np.ndarray,
    lower: Sequence[int] | np.ndarray,
    upper: Sequence[int] | np.ndarray,
    base: Sequence[int] | np.ndarray,
    pair_unit: Sequence[int] | np.ndarray,
    pair_terr: Sequence[int] | np.ndarray,
    pair_cost: Sequence[int] | np.ndarray,
    assignment: Sequence[int] | np.ndarray,
    expected_objective: float | None = None,
) -> UnitCheck:
    """Check ``assignment`` against the definition and recompute its objective."""
    w = np.asarray(weight, dtype=np.int64)
    n, k = w.shape[0], len(root)
    plan = np.asarray(assignment, dtype=np.int64)
    violations: list[str] = []
    empty = np.zeros(k, dtype=np.int64)
    if plan.shape != (n,):
        return UnitCheck(
            False, [f"plan has shape {plan.shape}, expected ({n},)"], None, empty, empty
        )
    bad = np.flatnonzero((plan < 0) | (plan >= k))
    if bad.size:
        msg = f"{bad.size} unit(s) have no territory, e.g. unit {bad[0]} -> {plan[bad[0]]}"
        return UnitCheck(False, [msg], None, empty, empty)

    cost = {
        (int(i), int(t)): int(c) for i, t, c in zip(pair_unit, pair_terr, pair_cost, strict=True)
    }
    objective: int | None = 0
    not_candidate = [i for i in range(n) if (i, int(plan[i])) not in cost]
    if not_candidate:
        violations.append(
            f"{len(not_candidate)} unit(s) sit in a territory that is not a candidate, e.g. "
            f"unit {not_candidate[0]} in territory {plan[not_candidate[0]]}"
        )
        objective = None
    else:
        objective = sum(cost[i, int(plan[i])] for i in range(n))

    loads = np.asarray(base, dtype=np.int64) + np.bincount(plan, weights=w, minlength=k).astype(
        np.int64
    )
    lo, up = np.asarray(lower, dtype=np.int64), np.asarray(upper, dtype=np.int64)
    for t in range(k):
        if loads[t] < lo[t]:
            violations.append(
                f"territory {t} holds {loads[t]:,} < lower {lo[t]:,} "
                f"(short by {lo[t] - loads[t]:,})"
            )
        if loads[t] > up[t]:
            violations.append(
                f"territory {t} holds {loads[t]:,} > upper {up[t]:,} (over by {loads[t] - up[t]:,})"
            )

    graph = nx.Graph()
    graph.add_nodes_from(range(n))
    graph.add_edges_from((int(a), int(b)) for a, b in np.asarray(edges).reshape(-1, 2))
    pieces = np.zeros(k, dtype=np.int64)
    for t, r in enumerate(np.asarray(root).tolist()):
        if plan[r] != t:
            violations.append(f"territory {t} does not hold its root unit {r}")
        members = np.flatnonzero(plan == t).tolist()
        pieces[t] = nx.number_connected_components(graph.subgraph(members)) if members else 0
        if pieces[t] > 1:
            violations.append(f"territory {t} is split into {pieces[t]} pieces")

    if (
        expected_objective is not None
        and objective is not None
        and round(float(expected_objective)) != objective
    ):
        violations.append(
            f"reported objective {float(expected_objective):,.0f} != recomputed {objective:,}"
        )
    return UnitCheck(not violations, violations, objective, loads, pieces)


def check_unit_problem_plan(problem, assignment, expected_objective=None) -> UnitCheck:
    """:func:`check_units` with the arrays read off a ``UnitProblem`` (nothing else is used)."""
    p = problem
    rows = np.repeat(np.arange(len(p.weight)), np.diff(p.adj_indptr))
    edges = np.c_[rows, p.adj_indices]
    return check_units(
        p.weight,
        edges,
        p.root,
        p.lower,
        p.upper,
        p.base,
        p.pair_unit,
        p.pair_terr,
        p.pair_cost,
        assignment,
        expected_objective,
    )

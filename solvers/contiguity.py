"""Contiguous unit alignment with fixed roots: every territory grows from its rep's home unit.

Problem (arrays only): a connected graph of ``n`` units with integer weights (scaled
potential), ``k`` territories each rooted at a fixed unit (the unit holding the rep's home
base), an inclusive band ``[lower[t], upper[t]]`` on ``base[t] + sum of its units' weights``
(``base`` is weight already assigned to the territory outside the units, e.g. named
accounts), and candidate pairs ``(unit, territory)`` with integer costs. Assign every unit to
one candidate territory so that every territory holds its root, lies in its band and is
connected in the unit graph, at least total cost. The cost is the compactness measure the
caller chose, typically potential x km (or potential x hops) from the unit to the root.

Method (chosen by measurement, see ``benchmarks/README.md``, section "Contiguous units"):

1. Preprocessing: for each territory a node-weighted Dijkstra from its root over its
   candidate units; a unit whose lightest root path already exceeds ``upper`` cannot join
   (the territory would contain that path), so the pair is dropped. What is left is checked
   with the arithmetic (total weight against the sum of the bands, units without a
   territory, roots heavier than their band).
2. Bound: the LP relaxation of the assignment with bands and no contiguity (HiGHS through
   MathOpt). Contiguity only adds constraints, so its optimum is a proven lower bound.
3. Construction: multi-source region growing from the roots (the lightest territory, relative
   to its target, takes its cheapest adjacent free unit), then flow-guided balancing
   (``solvers.contiguity_balance``): a min-cost flow on the territory graph plans how much
   weight crosses each border, so surplus travels to deficits along chains of territories,
   and boundary units (with any branch of the donor that hangs on them) move accordingly,
   every donor staying connected. Then single-unit boundary moves cut cost within the bands.
   Every territory it builds is connected by construction.
4. Exact model: CP-SAT with rooted contiguity, either a single-commodity flow per territory
   (``contiguity="flow"``) or lazily separated vertex-separator cuts re-solved until no
   territory is split (``"cuts"``). Small instances are solved whole, warm-started from the
   construction. Large ones are solved by large-neighbourhood search: the same model on a
   window of a few neighbouring territories with the rest fixed, first minimising band
   violation (if the construction left any), then cost.

The SHIR-style rule "a unit may join only if a neighbour closer to the root has" is not used:
it is not a valid contiguity constraint (it cuts off connected territories that are not
shortest-path closed).

Determinism: CP-SAT is seeded, interleaves its workers when there are several, and each
window stops on a deterministic-time limit; the same seed and workers give the same plan,
unless the overall wall-clock limit ends the search.
"""

from __future__ import annotations

import dataclasses
import datetime
import heapq
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import Literal

import numpy as np
from ortools.math_opt.python import mathopt
from ortools.sat.python import cp_model

from .check_units import check_unit_problem_plan
from .contiguity_balance import balance_plan
from .result import ProgressEvent, Result, relative_gap

__all__ = [
    "UnitInputError",
    "UnitProblem",
    "ContiguitySettings",
    "solve_units",
    "grow_territories",
    "balance_territories",
    "lp_bound",
    "stray_pieces",
]

logger = logging.getLogger(__name__)

Contiguity = Literal["flow", "cuts"]
Strategy = Literal["auto", "full", "lns"]
ProgressCallback = Callable[[ProgressEvent], None]


class UnitInputError(ValueError):
    """Raised once with every problem found in a unit alignment instance."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__(
            "invalid unit alignment problem:\n" + "\n".join(f"  - {p}" for p in self.problems)
        )


# --------------------------------------------------------------------------------------------
# Problem data
# --------------------------------------------------------------------------------------------


def _csr_from_edges(n: int, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    both = np.concatenate([edges, edges[:, ::-1]]) if edges.size else np.zeros((0, 2), np.int64)
    both = np.unique(both, axis=0)
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.add.at(indptr, both[:, 0] + 1, 1)
    return np.cumsum(indptr), both[:, 1].astype(np.int64)


def _int_array(values, name: str, problems: list[str]) -> np.ndarray:
    arr = np.asarray(values)
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            problems.append(f"{name} must hold whole numbers; scale and round it first")
            return np.zeros(0, dtype=np.int64)
    elif arr.dtype.kind not in "iu" and arr.size:
        problems.append(f"{name} must hold integers, got dtype {arr.dtype}")
        return np.zeros(0, dtype=np.int64)
    return arr.astype(np.int64)


@dataclasses.dataclass(frozen=True)
class UnitProblem:
    """Immutable instance, validated when built (use :meth:`build`).

    Attributes:
        weight: band measure per unit (scaled potential, an integer), shape (n,).
        adj_indptr, adj_indices: symmetric CSR adjacency of the unit graph.
        root: home unit of each territory, distinct, shape (k,).
        lower, upper: inclusive band of each territory on ``base + sum of unit weights``.
        base: weight fixed to each territory outside the units (named accounts), shape (k,).
        pair_unit, pair_terr, pair_cost: candidate pairs sorted by (territory, unit), and
            their integer cost (compactness units chosen by the caller).
    """

    weight: np.ndarray
    adj_indptr: np.ndarray
    adj_indices: np.ndarray
    root: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    base: np.ndarray
    pair_unit: np.ndarray
    pair_terr: np.ndarray
    pair_cost: np.ndarray

    @classmethod
    def build(
        cls,
        edges: Iterable[tuple[int, int]] | np.ndarray,
        weight: Sequence[int] | np.ndarray,
        root: Sequence[int] | np.ndarray,
        lower: Sequence[int] | np.ndarray,
        upper: Sequence[int] | np.ndarray,
        cost: np.ndarray,
        *,
        base: Sequence[int] | np.ndarray | None = None,
        num_candidates: int | None = None,
    ) -> UnitProblem:
        """Build from an edge list and a dense ``(n, k)`` cost matrix.

        ``cost[i, t]`` is the (integer) cost of unit ``i`` in territory ``t``; ``inf`` or a
        negative value forbids the pair. With ``num_candidates``, each unit keeps only its
        that many cheapest territories (its root pair always stays). Pairs that no connected
        territory within ``upper`` can hold are then dropped (see the module docstring).

        Raises:
            UnitInputError: listing every problem (shapes, ids, duplicate roots, bands).
        """
        problems: list[str] = []
        w = _int_array(weight, "weight", problems)
        n = int(w.shape[0])
        r = _int_array(root, "root", problems)
        k = int(r.shape[0])
        lo = _int_array(lower, "lower", problems)
        up = _int_array(upper, "upper", problems)
        b = _int_array(np.zeros(k, np.int64) if base is None else base, "base", problems)
        e = np.asarray(list(edges) if not isinstance(edges, np.ndarray) else edges)
        e = e.reshape(-1, 2).astype(np.int64) if e.size else np.zeros((0, 2), np.int64)
        c = np.asarray(cost, dtype=float)
        if problems:
            raise UnitInputError(problems)
        if n == 0 or k == 0:
            raise UnitInputError([f"need at least one unit and one territory, got {n} and {k}"])
        if c.shape != (n, k):
            problems.append(f"cost has shape {c.shape}, expected ({n}, {k})")
        for name, arr in (("lower", lo), ("upper", up), ("base", b)):
            if arr.shape != (k,):
                problems.append(f"{name} has shape {arr.shape}, expected ({k},)")
        if np.any(w < 0):
            problems.append(f"weights must be >= 0; negative at units {np.flatnonzero(w < 0)[:10]}")
        if e.size and (e.min() < 0 or e.max() >= n):
            problems.append(f"edges must name units in [0, {n - 1}]")
        if e.size and np.any(e[:, 0] == e[:, 1]):
            problems.append("edges contain self-loops")
        if r.size and (r.min() < 0 or r.max() >= n):
            problems.append(f"roots must name units in [0, {n - 1}]")
        elif np.unique(r).size != k:
            vals, counts = np.unique(r, return_counts=True)
            problems.append(
                f"roots must be distinct (a unit belongs to one territory); unit(s) "
                f"{vals[counts > 1][:10].tolist()} root several territories"
            )
        if problems:
            raise UnitInputError(problems)
        if np.any(lo > up):
            t = int(np.flatnonzero(lo > up)[0])
            problems.append(f"territory {t}: lower {lo[t]:,} exceeds upper {up[t]:,}")
        if num_candidates is not None and num_candidates < 1:
            problems.append(f"num_candidates must be >= 1, got {num_candidates}")
        if problems:
            raise UnitInputError(problems)

        allowed = np.isfinite(c) & (c >= 0)
        if num_candidates is not None and num_candidates < k:
            ranked = np.argsort(np.where(allowed, c, np.inf), axis=1, kind="stable")
            keep = np.zeros_like(allowed)
            np.put_along_axis(keep, ranked[:, :num_candidates], True, axis=1)
            allowed &= keep
        allowed[r, np.arange(k)] = True
        allowed[r, :] = False  # a root unit belongs to its own territory only
        allowed[r, np.arange(k)] = True
        indptr, indices = _csr_from_edges(n, e)
        allowed = _prune_by_weight_paths(allowed, w, indptr, indices, r, up - b)
        terr, unit = np.nonzero(allowed.T)  # sorted by (territory, unit)
        pc = np.where(np.isfinite(c[unit, terr]), c[unit, terr], 0.0)
        if np.any(pc != np.round(pc)):
            raise UnitInputError(["cost must hold whole numbers; scale and round it first"])
        return cls(w, indptr, indices, r, lo, up, b, unit, terr, pc.astype(np.int64))

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            arr = np.asarray(getattr(self, f.name), dtype=np.int64)
            arr.setflags(write=False)
            object.__setattr__(self, f.name, arr)

    @property
    def num_units(self) -> int:
        return int(self.weight.shape[0])

    @property
    def num_territories(self) -> int:
        return int(self.root.shape[0])

    @property
    def num_pairs(self) -> int:
        return int(self.pair_unit.shape[0])

    def neighbours(self, unit: int) -> np.ndarray:
        return self.adj_indices[self.adj_indptr[unit] : self.adj_indptr[unit + 1]]

    def edges(self) -> np.ndarray:
        """Each undirected edge once, as (u, v) with u < v."""
        rows = np.repeat(np.arange(self.num_units), np.diff(self.adj_indptr))
        keep = rows < self.adj_indices
        return np.c_[rows[keep], self.adj_indices[keep]]


def _prune_by_weight_paths(
    allowed: np.ndarray,
    w: np.ndarray,
    indptr: np.ndarray,
    indices: np.ndarray,
    root: np.ndarray,
    room: np.ndarray,
) -> np.ndarray:
    """Drop pairs (i, t) whose lightest root-to-i path over t's candidates exceeds ``room``.

    The territory would contain such a path, so its weight is a lower bound on the
    territory's unit weight; unreachable units are dropped too.
    """
    n, k = allowed.shape
    out = np.zeros_like(allowed)
    for t in range(k):
        ok = allowed[:, t]
        s = int(root[t])
        dist = {s: int(w[s])}
        heap = [(int(w[s]), s)]
        while heap:
            d, u = heapq.heappop(heap)
            if d > dist[u] or d > room[t]:
                continue
            out[u, t] = True
            for v in indices[indptr[u] : indptr[u + 1]].tolist():
                if ok[v]:
                    nd = d + int(w[v])
                    if nd < dist.get(v, math.inf):
                        dist[v] = nd
                        heapq.heappush(heap, (nd, v))
        out[s, t] = True  # a root too heavy for its band is reported by the precheck
    return out


def precheck(problem: UnitProblem) -> list[str]:
    """Reasons, with the arithmetic, why no plan can exist; empty when none is evident."""
    p = problem
    out: list[str] = []
    total = int(p.weight.sum() + p.base.sum())
    if total < int(p.lower.sum()):
        out.append(
            f"total weight {total:,} is below the sum of the lower band limits "
            f"{int(p.lower.sum()):,} (short by {int(p.lower.sum()) - total:,})"
        )
    if total > int(p.upper.sum()):
        out.append(
            f"total weight {total:,} exceeds the sum of the upper band limits "
            f"{int(p.upper.sum()):,} (over by {total - int(p.upper.sum()):,})"
        )
    has = np.zeros(p.num_units, dtype=bool)
    has[p.pair_unit] = True
    orphans = np.flatnonzero(~has)
    if orphans.size:
        out.append(
            f"{orphans.size} unit(s), e.g. unit {orphans[0]} "
            f"(weight {int(p.weight[orphans[0]]):,}), cannot join any territory: "
            "no candidate territory reaches them by a connected "
            "path within its upper band limit"
        )
    heavy = np.flatnonzero(p.base + p.weight[p.root] > p.upper)
    for t in heavy[:10].tolist():
        out.append(
            f"territory {t}: its home unit {int(p.root[t])} weighs {int(p.weight[p.root[t]]):,}"
            f" (plus {int(p.base[t]):,} fixed) above its upper limit {int(p.upper[t]):,}"
        )
    reach = np.bincount(p.pair_terr, weights=p.weight[p.pair_unit], minlength=p.num_territories)
    short = np.flatnonzero(reach + p.base < p.lower)
    for t in short[:10].tolist():
        out.append(
            f"territory {t}: all units it can reach weigh {int(reach[t] + p.base[t]):,} with its "
            f"fixed weight, below its lower limit {int(p.lower[t]):,}"
        )
    return out


# --------------------------------------------------------------------------------------------
# Settings
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ContiguitySettings:
    """Solver settings.

    Attributes:
        time_limit_s: wall-clock limit for the whole solve (seconds); always honoured.
        seed: random seed of CP-SAT.
        num_workers: CP-SAT workers (interleaved, so reproducible, when more than one).
        relative_gap: stop once (objective - bound) / objective is at most this.
        contiguity: ``"flow"`` (single-commodity flow from each root) or ``"cuts"`` (vertex
            separator cuts added for every split territory, then re-solved).
        strategy: ``"full"`` solves one model of the whole instance, ``"lns"`` improves
            windows of neighbouring territories, ``"auto"`` picks ``full`` up to
            ``full_max_pairs`` candidate pairs.
        full_max_pairs: size limit of ``auto``'s whole model.
        window: territories per LNS window.
        window_det_s: CP-SAT deterministic-time limit per window (reproducible).
        warm_start: start from the construction heuristic (hint to the whole model; the
            LNS needs it).
        log_search: forward CP-SAT's log to this module's logger at DEBUG level.
    """

    time_limit_s: float = 60.0
    seed: int = 0
    num_workers: int = 2
    relative_gap: float = 0.01
    contiguity: Contiguity = "cuts"
    strategy: Strategy = "auto"
    full_max_pairs: int = 4000
    window: int = 4
    window_det_s: float = 1.0
    warm_start: bool = True
    log_search: bool = False

    def __post_init__(self) -> None:
        bad = []
        if not self.time_limit_s > 0:
            bad.append(f"time_limit_s must be > 0, got {self.time_limit_s}")
        if self.num_workers < 1:
            bad.append(f"num_workers must be >= 1, got {self.num_workers}")
        if not 0 <= self.relative_gap < 1:
            bad.append(f"relative_gap must be in [0, 1), got {self.relative_gap}")
        if self.contiguity not in ("flow", "cuts"):
            bad.append(f"contiguity must be 'flow' or 'cuts', got {self.contiguity!r}")
        if self.strategy not in ("auto", "full", "lns"):
            bad.append(f"strategy must be 'auto', 'full' or 'lns', got {self.strategy!r}")
        if self.window < 2:
            bad.append(f"window must be >= 2 territories, got {self.window}")
        if bad:
            raise ValueError("invalid ContiguitySettings: " + "; ".join(bad))


# --------------------------------------------------------------------------------------------
# Plan helpers (the solver's own; the independent checker is solvers.check_units)
# --------------------------------------------------------------------------------------------


class _Index:
    """Per-unit candidate lookups and neighbour lists, built once."""

    def __init__(self, p: UnitProblem) -> None:
        self.p = p
        self.nbrs = [p.neighbours(u).tolist() for u in range(p.num_units)]
        self.cost: list[dict[int, int]] = [{} for _ in range(p.num_units)]
        for i, t, c in zip(
            p.pair_unit.tolist(), p.pair_terr.tolist(), p.pair_cost.tolist(), strict=True
        ):
            self.cost[i][t] = c
        self.w = p.weight.tolist()
        self.root_of = {int(r): t for t, r in enumerate(p.root.tolist())}

    def loads(self, plan: np.ndarray) -> np.ndarray:
        return self.p.base + np.bincount(plan, weights=self.p.weight, minlength=len(self.p.root))

    def violation(self, plan: np.ndarray) -> int:
        load = self.loads(plan)
        return int(
            np.maximum(0, self.p.lower - load).sum() + np.maximum(0, load - self.p.upper).sum()
        )

    def objective(self, plan: np.ndarray) -> int:
        return int(sum(self.cost[i][int(t)] for i, t in enumerate(plan.tolist())))


def stray_pieces(p: UnitProblem, plan: np.ndarray) -> list[tuple[int, list[int]]]:
    """Connected pieces of territories that do not hold their root: (territory, units)."""
    nbrs = [p.neighbours(u) for u in range(p.num_units)]
    pieces = []
    seen = np.zeros(p.num_units, dtype=bool)
    for t, r in enumerate(p.root.tolist()):
        members = plan == t
        for s in [r, *np.flatnonzero(members).tolist()]:
            if seen[s] or not members[s]:
                continue
            seen[s] = True
            comp, queue = [s], deque([s])
            while queue:
                u = queue.popleft()
                for v in nbrs[u].tolist():
                    if members[v] and not seen[v]:
                        seen[v] = True
                        comp.append(v)
                        queue.append(v)
            if s != r:
                pieces.append((t, comp))
    return pieces


def _connected_without(
    nbrs: list[list[int]], plan: np.ndarray, t: int, root: int, drop: int
) -> bool:
    """Does territory ``t`` stay connected when unit ``drop`` leaves it?"""
    members = np.flatnonzero(plan == t)
    if members.size <= 1:
        return True
    seen = {root, drop}
    queue = deque([root])
    count = 1
    while queue:
        u = queue.popleft()
        for v in nbrs[u]:
            if v not in seen and plan[v] == t:
                seen.add(v)
                count += 1
                queue.append(v)
    return count == members.size - 1


# --------------------------------------------------------------------------------------------
# Construction heuristic
# --------------------------------------------------------------------------------------------


def grow_territories(
    p: UnitProblem, index: _Index | None = None, per_weight: bool = False
) -> np.ndarray:
    """Multi-source region growing; returns a plan, -1 for units no territory reached.

    The territory lightest relative to its target (mid-band) takes its cheapest free
    adjacent candidate unit, until it reaches its target; then every unit still free joins
    the lightest adjacent territory that may take it. Territories stay connected throughout.
    With ``per_weight`` units are ranked by cost per unit of weight instead (km, when the
    cost is weight x km), so light far units do not draw territories into long arms.
    """
    ix = index or _Index(p)
    floor = max(1.0, 0.01 * float(p.weight.mean()))

    def rank(v: int, t: int) -> float:
        return ix.cost[v][t] / (ix.w[v] + floor) if per_weight else ix.cost[v][t]

    n, k = p.num_units, p.num_territories
    plan = np.full(n, -1, dtype=np.int64)
    target = (p.lower + p.upper) / 2.0
    load = p.base.astype(float).copy()
    frontier: list[list[tuple[int, int]]] = [[] for _ in range(k)]

    def take(u: int, t: int) -> None:
        plan[u] = t
        load[t] += ix.w[u]
        for v in ix.nbrs[u]:
            if plan[v] < 0 and t in ix.cost[v]:
                heapq.heappush(frontier[t], (rank(v, t), v))

    for t, r in enumerate(p.root.tolist()):
        plan[r] = t
        load[t] += ix.w[r]
    for t, r in enumerate(p.root.tolist()):
        take(r, t)
        load[t] -= ix.w[r]  # counted once above
    turn = [(load[t] / max(target[t], 1.0), t) for t in range(k)]
    heapq.heapify(turn)
    while turn:
        _, t = heapq.heappop(turn)
        if load[t] >= target[t]:
            continue
        while frontier[t] and plan[frontier[t][0][1]] >= 0:
            heapq.heappop(frontier[t])
        if not frontier[t]:
            continue
        _, u = heapq.heappop(frontier[t])
        take(u, t)
        heapq.heappush(turn, (load[t] / max(target[t], 1.0), t))
    # Fill: free units join the lightest adjacent territory (breadth-first from the owned).
    changed = True
    while changed:
        changed = False
        for u in np.flatnonzero(plan < 0).tolist():
            options = {int(plan[v]) for v in ix.nbrs[u] if plan[v] >= 0} & ix.cost[u].keys()
            if options:
                t = min(options, key=lambda s: (load[s] / max(target[s], 1.0), s))
                plan[u] = t
                load[t] += ix.w[u]
                changed = True
    return plan


def balance_territories(
    problem: UnitProblem, plan: np.ndarray, time_limit_s: float = 10.0
) -> tuple[np.ndarray, dict]:
    """Bring a complete plan of connected territories into the bands by flow-guided chains
    of boundary moves (``solvers.contiguity_balance``); returns (plan, stats).

    The plan returned has the least band violation found (``stats["balance_violation"]``);
    every territory stays connected and keeps its root.
    """
    return balance_plan(problem, _Index(problem), plan, time.monotonic() + time_limit_s)


def _local_search(
    p: UnitProblem, ix: _Index, plan: np.ndarray, deadline: float, balance: bool = True
) -> np.ndarray:
    """Single boundary-unit moves that keep the donor connected.

    A move of unit u from territory a to an adjacent territory b is scored by its change in
    band violation first, then, in the balancing pass, the change in the sum of squared
    relative deviations from target (this diffuses excess through chains of neighbours, which
    violation alone cannot see), or, in the cost pass, the change in cost. Improving moves are
    taken until none is left; the balancing pass runs first when ``balance`` is true.
    """
    plan = plan.copy()
    load = ix.loads(plan).astype(np.int64)
    lo, up = p.lower, p.upper
    target = np.maximum((lo + up) / 2.0, 1.0)

    def viol(t: int, value: int) -> int:
        return max(0, int(lo[t]) - value) + max(0, value - int(up[t]))

    def sq(t: int, value: int) -> float:
        return ((value - target[t]) / target[t]) ** 2

    for mode in ("balance", "cost") if balance else ("cost",):
        improved = True
        while improved and time.monotonic() < deadline:
            improved = False
            for u in range(p.num_units):
                a = int(plan[u])
                if u in ix.root_of or a < 0:
                    continue
                targets = {int(plan[v]) for v in ix.nbrs[u]} - {a, -1}
                best = None
                wu = ix.w[u]
                for b in sorted(targets):
                    if b not in ix.cost[u]:
                        continue
                    dv = (
                        viol(a, load[a] - wu)
                        + viol(b, load[b] + wu)
                        - viol(a, load[a])
                        - viol(b, load[b])
                    )
                    if mode == "balance":
                        d2 = (
                            sq(a, load[a] - wu)
                            + sq(b, load[b] + wu)
                            - sq(a, load[a])
                            - sq(b, load[b])
                        )
                        key = (dv, d2 if d2 < -1e-12 else 0.0)
                    else:
                        key = (dv, ix.cost[u][b] - ix.cost[u][a])
                    if key < (0, 0) and (best is None or key < best[:2]):
                        best = (*key, b)
                if best is None:
                    continue
                if not _connected_without(ix.nbrs, plan, a, int(p.root[a]), u):
                    continue
                b = best[2]
                plan[u] = b
                load[a] -= wu
                load[b] += wu
                improved = True
    return plan


# --------------------------------------------------------------------------------------------
# Bound
# --------------------------------------------------------------------------------------------


def lp_bound(p: UnitProblem, time_limit_s: float = 30.0) -> tuple[str, float]:
    """LP relaxation of the assignment with bands, no contiguity: (status, lower bound).

    Status ``INFEASIBLE`` proves that no plan exists (even split units cannot fill the bands).
    """
    m = mathopt.Model(name="unit_lp")
    x = [m.add_variable(lb=0.0, ub=1.0) for _ in range(p.num_pairs)]
    by_unit: list[list[int]] = [[] for _ in range(p.num_units)]
    by_terr: list[list[int]] = [[] for _ in range(p.num_territories)]
    for q, (i, t) in enumerate(zip(p.pair_unit.tolist(), p.pair_terr.tolist(), strict=True)):
        by_unit[i].append(q)
        by_terr[t].append(q)
    for qs in by_unit:
        m.add_linear_constraint(mathopt.fast_sum(x[q] for q in qs) == 1)
    w = p.weight.tolist()
    units = p.pair_unit.tolist()
    for t, qs in enumerate(by_terr):
        load = mathopt.fast_sum(w[units[q]] * x[q] for q in qs)
        m.add_linear_constraint(load >= int(p.lower[t] - p.base[t]))
        m.add_linear_constraint(load <= int(p.upper[t] - p.base[t]))
    m.minimize(mathopt.fast_sum(c * v for c, v in zip(p.pair_cost.tolist(), x, strict=True)))
    params = mathopt.SolveParameters(
        time_limit=datetime.timedelta(seconds=max(0.1, time_limit_s)), enable_output=False
    )
    res = mathopt.solve(m, mathopt.SolverType.HIGHS, params=params)
    reason = res.termination.reason
    if reason in (
        mathopt.TerminationReason.INFEASIBLE,
        mathopt.TerminationReason.INFEASIBLE_OR_UNBOUNDED,
    ):
        return "INFEASIBLE", math.inf
    if reason == mathopt.TerminationReason.OPTIMAL:
        # Dual bound, rounded up to the integer objective after a margin for LP round-off.
        bound = res.best_objective_bound()
        return "OPTIMAL", float(math.ceil(bound - 1e-9 * abs(bound) - 1e-6))
    return "UNKNOWN", -math.inf


# --------------------------------------------------------------------------------------------
# CP-SAT model over a window of territories
# --------------------------------------------------------------------------------------------


def _lexicographic(violation: list, x: dict, ix: _Index, units: Sequence[int]):
    """Band violation first, cost second: ``violation * M + coarse cost``.

    The cost term keeps repaired territories compact, so they are rarely split and need few
    separator rounds. ``M`` exceeds the window's whole (coarsened) cost range, so a unit less
    violation always wins; the cost is divided by a power of ten until ``M`` times the largest
    violation stays far inside 64-bit integers.
    """
    span = sum(max(ix.cost[i].values()) - min(ix.cost[i].values()) for i in units)
    worst = sum(v.proto.domain[-1] for v in violation) + 1
    q = 1
    while (span // q + 1) * worst > 2**52:
        q *= 10
    big = span // q + 1
    cost = sum((ix.cost[i][t] // q) * v for (i, t), v in x.items())
    return big * sum(violation) + cost


class _Window:
    """CP-SAT model of the territories ``terrs`` over the units they hold in ``plan``.

    With ``terrs`` = all territories and all units free it is the whole problem. Units
    outside the window stay where they are, so each territory of the window must be
    connected using its window units only, which keeps it connected in the whole graph.
    """

    def __init__(
        self,
        p: UnitProblem,
        ix: _Index,
        terrs: Sequence[int],
        units: Sequence[int],
        contiguity: Contiguity,
        soft: bool,
    ) -> None:
        self.p, self.ix, self.terrs, self.units = p, ix, list(terrs), list(units)
        self.contiguity = contiguity
        m = self.model = cp_model.CpModel()
        in_w = set(self.terrs)
        self.x: dict[tuple[int, int], cp_model.IntVar] = {}
        for i in self.units:
            for t in sorted(ix.cost[i].keys() & in_w):
                self.x[i, t] = m.new_bool_var(f"x{i}_{t}")
        x = self.x
        self.members = {t: [] for t in self.terrs}
        for i, t in x:
            self.members[t].append(i)
        for i in self.units:
            m.add_exactly_one([x[i, t] for t in ix.cost[i].keys() & in_w])
        self.violation = []
        self.slack: dict[int, tuple] = {}
        for t in self.terrs:
            r = int(p.root[t])
            m.add(x[r, t] == 1)
            load = sum(ix.w[i] * x[i, t] for i in self.members[t]) + int(p.base[t])
            if soft:
                over = m.new_int_var(0, int(p.weight.sum() + p.base[t]), f"over{t}")
                under = m.new_int_var(0, int(p.lower[t]), f"under{t}")
                m.add(load - over <= int(p.upper[t]))
                m.add(load + under >= int(p.lower[t]))
                self.violation += [over, under]
                self.slack[t] = (over, under)
            else:
                m.add_linear_constraint(load, int(p.lower[t]), int(p.upper[t]))
            # Valid for every connected territory: a member other than the root has a
            # neighbour in the territory (cheap, helps both formulations propagate).
            mem = set(self.members[t])
            for v in self.members[t]:
                if v == r:
                    continue
                lits = [x[u, t] for u in ix.nbrs[v] if u in mem]
                if lits:
                    m.add_bool_or(lits).only_enforce_if(x[v, t])
                else:
                    m.add(x[v, t] == 0)
        self.flow: dict[tuple[int, int, int], cp_model.IntVar] = {}
        self.num_cuts = 0
        if contiguity == "flow":
            self._add_flow()
        else:
            self._add_layer_cuts()
        if soft:
            m.minimize(_lexicographic(self.violation, x, ix, self.units))
        else:
            m.minimize(sum(ix.cost[i][t] * v for (i, t), v in x.items()))

    def _add_flow(self) -> None:
        """Single-commodity flow from the root: each member consumes one unit of flow.

        Flow may enter unit v only if v is in the territory; conservation then forces every
        member to be reached from the root through members.
        """
        m, x, ix = self.model, self.x, self.ix
        for t in self.terrs:
            r = int(self.p.root[t])
            mem = set(self.members[t])
            big = max(1, len(mem) - 1)
            inflow: dict[int, list] = {v: [] for v in mem}
            outflow: dict[int, list] = {v: [] for v in mem}
            for u in mem:
                for v in ix.nbrs[u]:
                    if v in mem and v != r:
                        f = m.new_int_var(0, big, f"f{t}_{u}_{v}")
                        self.flow[t, u, v] = f
                        m.add(f == 0).only_enforce_if(x[v, t].Not())
                        inflow[v].append(f)
                        outflow[u].append(f)
            for v in mem:
                if v != r:
                    m.add(sum(inflow[v]) - sum(outflow[v]) == x[v, t])

    def _add_layer_cuts(self) -> None:
        """Static separator cuts from BFS layers around each root, within its members.

        For a member i at BFS distance d >= 2 from root r, the units at distance d - 1 that
        border i's side (the units reachable from i through distances >= d) separate i from
        r, so ``x[i, t] <= sum of x[s, t]`` over them holds for every connected territory.
        """
        m, x, nbrs = self.model, self.x, self.ix.nbrs
        for t in self.terrs:
            r = int(self.p.root[t])
            mem = set(self.members[t])
            dist = {r: 0}
            queue = deque([r])
            while queue:
                u = queue.popleft()
                for v in nbrs[u]:
                    if v in mem and v not in dist:
                        dist[v] = dist[u] + 1
                        queue.append(v)
            for i, d in dist.items():
                if d < 2:
                    continue
                side, queue = {i}, deque([i])
                while queue:
                    u = queue.popleft()
                    for v in nbrs[u]:
                        if v not in side and dist.get(v, -1) >= d:
                            side.add(v)
                            queue.append(v)
                sep = sorted({v for u in side for v in nbrs[u] if dist.get(v) == d - 1})
                m.add_bool_or([x[s_, t] for s_ in sep]).only_enforce_if(x[i, t])
                self.num_cuts += 1

    def add_separator_cuts(self, pieces: list[tuple[int, list[int]]]) -> int:
        """For a stray piece C of territory t: x[i, t] <= sum of x[s, t] over a separator S.

        S is the part of C's neighbourhood N(C) adjacent to the root's side of G - C - N(C)
        (or the root itself): every path from C to the root leaves N(C) last through S.
        """
        added = 0
        for t, piece in pieces:
            r = int(self.p.root[t])
            mem = set(self.members[t])
            in_c = set(piece)
            boundary = {v for u in piece for v in self.ix.nbrs[u] if v not in in_c and v in mem}
            side, queue = {r}, deque([r])
            while queue:
                u = queue.popleft()
                for v in self.ix.nbrs[u]:
                    if v in mem and v not in side and v not in boundary and v not in in_c:
                        side.add(v)
                        queue.append(v)
            sep = sorted(s for s in boundary if s == r or any(v in side for v in self.ix.nbrs[s]))
            for i in piece:
                lits = [self.x[s, t] for s in sep]
                if lits:
                    self.model.add_bool_or(lits).only_enforce_if(self.x[i, t])
                else:
                    self.model.add(self.x[i, t] == 0)
                added += 1
        self.num_cuts += added
        return added

    def hint(self, plan: np.ndarray) -> None:
        m = self.model
        m.clear_hints()
        for (i, t), v in self.x.items():
            m.add_hint(v, bool(plan[i] == t))
        load = self.ix.loads(plan)
        for t, (over, under) in self.slack.items():
            # A complete hint: CP-SAT would otherwise search for the slacks' values.
            m.add_hint(over, max(0, int(load[t] - self.p.upper[t])))
            m.add_hint(under, max(0, int(self.p.lower[t] - load[t])))
        if self.flow:
            # Flow along a BFS tree of each territory: the subtree size on each tree arc.
            for t in self.terrs:
                r = int(self.p.root[t])
                parent, order, queue = {r: -1}, [r], deque([r])
                while queue:
                    u = queue.popleft()
                    for v in self.ix.nbrs[u]:
                        if v not in parent and plan[v] == t and (v, t) in self.x:
                            parent[v] = u
                            order.append(v)
                            queue.append(v)
                size = dict.fromkeys(order, 1)
                for v in reversed(order[1:]):
                    size[parent[v]] += size[v]
                for (tt, u, v), f in self.flow.items():
                    if tt == t:
                        m.add_hint(f, size[v] if parent.get(v) == u else 0)

    def solve(
        self, settings: ContiguitySettings, wall_s: float, det_s: float | None, workers: int
    ) -> tuple[str, dict[int, int] | None, float, float]:
        """(status, unit -> territory of the window's units, objective, bound)."""
        solver = cp_model.CpSolver()
        prm = solver.parameters
        prm.num_workers = workers
        prm.random_seed = settings.seed
        prm.max_time_in_seconds = max(0.01, wall_s)
        if det_s is not None:
            prm.max_deterministic_time = det_s
        if workers > 1:
            prm.interleave_search = True  # subsolvers take turns in a fixed order
        if settings.log_search:
            prm.log_search_progress = True
            prm.log_to_stdout = False
            solver.log_callback = logger.debug
        status = solver.solve(self.model)
        if status == cp_model.INFEASIBLE:
            return "INFEASIBLE", None, math.inf, math.inf
        if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
            return "UNKNOWN", None, math.inf, solver.best_objective_bound
        assign = {i: t for (i, t), v in self.x.items() if solver.boolean_value(v)}
        name = "OPTIMAL" if status == cp_model.OPTIMAL else "FEASIBLE"
        return name, assign, solver.objective_value, solver.best_objective_bound


def _reattach(p: UnitProblem, ix: _Index, plan: np.ndarray, pieces) -> np.ndarray | None:
    """Move each stray piece's units to adjacent other territories; None if some cannot go.

    Units join, breadth-first from the piece's border, the lightest (relative to its target)
    adjacent territory that may take them, so every territory ends connected.
    """
    plan = plan.copy()
    target = (p.lower + p.upper) / 2.0
    load = ix.loads(plan).astype(float)
    for t, piece in pieces:
        left = set(piece)
        while left:
            moved = False
            for u in sorted(left):
                options = {int(plan[v]) for v in ix.nbrs[u] if v not in left} - {t}
                options &= ix.cost[u].keys()
                if options:
                    s = min(options, key=lambda o: (load[o] / max(target[o], 1.0), o))
                    plan[u] = s
                    load[t] -= ix.w[u]
                    load[s] += ix.w[u]
                    left.discard(u)
                    moved = True
            if not moved:
                return None
    return plan if not stray_pieces(p, plan) else None


def _solve_window(
    p: UnitProblem,
    ix: _Index,
    plan: np.ndarray | None,
    terrs: Sequence[int],
    settings: ContiguitySettings,
    soft: bool,
    wall_s: float,
    det_s: float | None,
    stats: dict,
    max_rounds: int | None = None,
) -> tuple[str, np.ndarray | None, float]:
    """Solve one window: (status, best connected plan found or None, CP-SAT bound).

    ``plan`` gives the window's units (those of ``terrs``) and the hint; ``None`` means the
    whole instance without a hint. With cuts, a split solution gets separator cuts for its
    stray pieces and is solved again (up to ``max_rounds`` solves); meanwhile the pieces are
    reattached to neighbours, and the best connected plan so far becomes the next hint.
    ``OPTIMAL`` means the window's optimum is connected; the bound is valid for the window.
    """
    stop = time.monotonic() + wall_s
    if plan is None:
        units = list(range(p.num_units))
        base_plan = np.full(p.num_units, -1, dtype=np.int64)
    else:
        units = np.flatnonzero(np.isin(plan, terrs)).tolist()
        base_plan = plan
    win = _Window(p, ix, terrs, units, settings.contiguity, soft)
    if plan is not None:
        win.hint(plan)
    in_window = set(terrs)
    # Windows are small: one worker is deterministic without interleaving, which cost
    # 5-30x the time on windows of 4-6 territories (see benchmarks/README.md).
    workers = settings.num_workers if plan is None or len(terrs) == p.num_territories else 1
    best, best_key, bound, rounds = None, None, -math.inf, 0
    while True:
        status, assign, _, bnd = win.solve(settings, stop - time.monotonic(), det_s, workers)
        rounds += 1
        stats["cp_sat_solves"] = stats.get("cp_sat_solves", 0) + 1
        if assign is None:
            return (status if best is None else "FEASIBLE"), best, bnd
        bound = max(bound, bnd)
        new = base_plan.copy()
        for i, t in assign.items():
            new[i] = t
        pieces = [pc for pc in stray_pieces(p, new) if pc[0] in in_window]
        candidate = new if not pieces else _reattach(p, ix, new, pieces)
        if candidate is not None:
            key = (ix.violation(candidate), ix.objective(candidate))
            if best_key is None or key < best_key:
                best, best_key = candidate, key
        if not pieces:
            return status, best, bound
        # Only the cut formulation can return split territories; its bound stays valid.
        stats["cuts"] = stats.get("cuts", 0) + win.add_separator_cuts(pieces)
        stats["cut_rounds"] = stats.get("cut_rounds", 0) + 1
        if time.monotonic() >= stop - 0.01 or (max_rounds is not None and rounds >= max_rounds):
            return ("UNKNOWN" if best is None else "FEASIBLE"), best, bound
        win.hint(best if best is not None else (plan if plan is not None else new))


# --------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------


class _Tracker:
    def __init__(self, start: float, progress: ProgressCallback | None) -> None:
        self.start, self.progress = start, progress
        self.plan: np.ndarray | None = None
        self.objective = math.inf
        self.bound = -math.inf
        self.time_to_best = math.nan
        self.time_to_first = math.nan

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def offer(self, plan: np.ndarray, objective: int, phase: str) -> bool:
        if objective < self.objective:
            if self.plan is None:
                self.time_to_first = self.elapsed()
            self.plan, self.objective = plan.copy(), objective
            self.time_to_best = self.elapsed()
            logger.info("%.1f s: %s plan, objective %s", self.elapsed(), phase, f"{objective:,}")
            self._tell(phase)
            return True
        return False

    def raise_bound(self, bound: float, phase: str) -> None:
        if bound > self.bound:
            self.bound = bound
            self._tell(phase)

    def _tell(self, phase: str) -> None:
        if self.progress is not None:
            self.progress(ProgressEvent(self.elapsed(), float(self.objective), self.bound, phase))

    def gap(self) -> float:
        return relative_gap(self.objective, self.bound)


def _territory_graph(p: UnitProblem, plan: np.ndarray) -> list[list[int]]:
    e = p.edges()
    a, b = plan[e[:, 0]], plan[e[:, 1]]
    diff = a != b
    pairs = np.unique(np.c_[a[diff], b[diff]], axis=0)
    out: list[set[int]] = [set() for _ in range(p.num_territories)]
    for s, t in pairs.tolist():
        out[s].add(t)
        out[t].add(s)
    return [sorted(x) for x in out]


def _window_of(tg: list[list[int]], seed: int, size: int) -> list[int]:
    """The seed and its nearest territories in the territory graph (BFS, by index)."""
    seen, queue = [seed], deque([seed])
    while queue and len(seen) < size:
        u = queue.popleft()
        for v in tg[u]:
            if v not in seen:
                seen.append(v)
                queue.append(v)
                if len(seen) == size:
                    break
    return sorted(seen)


def _chain_window(
    tg: list[list[int]], load: np.ndarray, p: UnitProblem, seed: int, size: int
) -> list[int]:
    """Territories on a shortest territory-graph path from ``seed`` (outside its band) to
    the nearest territory on the other side of its own band's middle (one that can take
    weight when ``seed`` is over, give when under), then the window is padded breadth-first
    around the path up to ``size`` territories (at least the path)."""
    mid = (p.lower + p.upper) / 2.0
    over = load[seed] > p.upper[seed]
    parent = {seed: -1}
    queue = deque([seed])
    end = -1
    while queue:
        u = queue.popleft()
        if u != seed and (load[u] < mid[u] if over else load[u] > mid[u]):
            end = u
            break
        for v in tg[u]:
            if v not in parent:
                parent[v] = u
                queue.append(v)
    path = []
    while end >= 0:
        path.append(end)
        end = parent[end]
    chosen = path or [seed]
    seen = set(chosen)
    queue = deque(chosen)
    while queue and len(seen) < size:
        u = queue.popleft()
        for v in tg[u]:
            if v not in seen:
                seen.add(v)
                queue.append(v)
                if len(seen) >= size:
                    break
    return sorted(seen)


def solve_units(
    problem: UnitProblem,
    settings: ContiguitySettings | None = None,
    progress: ProgressCallback | None = None,
) -> Result:
    """Solve a rooted contiguous unit alignment (see the module docstring).

    Returns a :class:`solvers.result.Result`: ``assignment`` is the territory index of each
    unit (-1 everywhere without a plan), ``objective`` its cost, ``bound`` a proven lower
    bound, ``status`` ``OPTIMAL`` (within ``relative_gap``), ``FEASIBLE``, ``INFEASIBLE``
    (proven) or ``UNKNOWN``. ``stats`` holds phase times, the band violation left by the
    construction and, without a plan, the least violation found. A plan is returned only
    after ``solvers.check_units`` accepted it (``stats["checked"]``).
    """
    s = settings or ContiguitySettings()
    p = problem
    start = time.monotonic()
    deadline = start + s.time_limit_s
    tr = _Tracker(start, progress)
    stats: dict = {"contiguity": s.contiguity, "candidate_pairs": p.num_pairs}
    reasons = precheck(p)
    if reasons:
        stats["infeasibility"] = reasons
        return _result(p, tr, "INFEASIBLE", stats)
    ix = _Index(p)

    lp_status, bound = lp_bound(p, time_limit_s=max(0.1, 0.25 * s.time_limit_s))
    stats["lp_status"] = lp_status
    stats["lp_s"] = round(tr.elapsed(), 2)
    if lp_status == "INFEASIBLE":
        stats["infeasibility"] = [
            "the bands cannot be met even with units split between territories (LP "
            "relaxation infeasible): widen the tolerance or the candidates"
        ]
        return _result(p, tr, "INFEASIBLE", stats)
    tr.raise_bound(bound, "bound")

    strategy = s.strategy
    if strategy == "auto":
        strategy = "full" if p.num_pairs <= s.full_max_pairs else "lns"
    stats["strategy"] = strategy
    plan = None
    if s.warm_start or strategy == "lns":
        # Region growing ranked by cost per weight, then by cost: the first plan the
        # balancing brings into every band wins, else the one with the least violation.
        plan, best_key, unassigned = None, None, []
        for per_weight in (True, False):
            grown = grow_territories(p, ix, per_weight=per_weight)
            unassigned.append(int((grown < 0).sum()))
            if unassigned[-1]:
                continue
            balanced, bstats = balance_plan(p, ix, grown, deadline)
            key = (bstats["balance_violation"], not per_weight)
            if best_key is None or key < best_key:
                plan, best_key = balanced, key
                stats.update(
                    bstats,
                    grow_violation=ix.violation(grown),
                    grow="per_weight" if per_weight else "cost",
                )
            if key[0] == 0:
                break
        stats["grow_unassigned"] = min(unassigned)
        if plan is not None:
            if ix.violation(plan) > 0:
                # Diffusion by single moves, then the flow-guided chains again from there.
                plan = _local_search(p, ix, plan, deadline)
                plan, bstats = balance_plan(p, ix, plan, deadline)
                stats["balance_violation"] = bstats["balance_violation"]
            plan = _local_search(p, ix, plan, deadline, balance=False)
            stats["heuristic_violation"] = ix.violation(plan)
            if stats["heuristic_violation"] == 0:
                tr.offer(plan, ix.objective(plan), "construction")
        stats["heuristic_s"] = round(tr.elapsed(), 2)

    status = "UNKNOWN"
    if strategy == "full":
        status = _solve_full(p, ix, plan, s, tr, deadline, stats)
    elif plan is not None:
        status = _lns(p, ix, plan, s, tr, deadline, stats)
    if status not in ("INFEASIBLE", "OPTIMAL") and tr.plan is not None:
        status = "OPTIMAL" if tr.gap() <= s.relative_gap else "FEASIBLE"
    return _result(p, tr, status, stats)


def _solve_full(p, ix, plan, s, tr, deadline, stats) -> str:
    """One model of the whole instance, hinted with the construction when there is one."""
    terrs = list(range(p.num_territories))
    status, new, bnd = _solve_window(
        p, ix, plan, terrs, s, False, deadline - time.monotonic(), None, stats
    )
    if status == "INFEASIBLE":
        return "INFEASIBLE"
    if new is not None and ix.violation(new) == 0:
        tr.offer(new, ix.objective(new), "cp-sat")
        if status == "OPTIMAL":
            tr.raise_bound(float(ix.objective(new)), "cp-sat")
            return "OPTIMAL"
    if math.isfinite(bnd):
        tr.raise_bound(float(math.ceil(bnd - 1e-6)), "cp-sat")
    return "UNKNOWN"


def _lns(p, ix, plan, s, tr, deadline, stats) -> str:
    """Windows of neighbouring territories: repair bands first, then cut cost."""
    plan = plan.copy()
    stats["lns_windows"] = 0
    stats["lns_improved"] = 0
    # Phase 1: band repair (soft bands, minimise violation).
    violation = ix.violation(plan)
    stalled = 0
    while violation > 0 and time.monotonic() < deadline - 0.05:
        load = ix.loads(plan)
        bad = np.flatnonzero((load < p.lower) | (load > p.upper))
        tg = _territory_graph(p, plan)
        size = s.window + 2 * stalled
        before = violation
        for seed in bad.tolist():
            if time.monotonic() >= deadline - 0.05 or violation == 0:
                break
            # The chain of territories to the nearest one that can absorb the violation,
            # padded with neighbours: the window can pass weight along it.
            terrs = _chain_window(tg, ix.loads(plan), p, seed, size)
            status, new, _ = _solve_window(
                p, ix, plan, terrs, s, True, deadline - time.monotonic(), s.window_det_s, stats, 3
            )
            stats["lns_windows"] += 1
            if new is not None and ix.violation(new) < violation:
                plan, violation = new, ix.violation(new)
                tg = _territory_graph(p, plan)
        if violation >= before:
            stalled += 1
            if size >= p.num_territories:
                break
        logger.info("%.1f s: band repair, violation %s", tr.elapsed(), f"{violation:,}")
    stats["repair_violation_left"] = violation
    if violation > 0:
        return "UNKNOWN"
    plan = _local_search(p, ix, plan, deadline)
    tr.offer(plan, ix.objective(plan), "repair")
    # Phase 2: cost, window by window, until a whole pass improves nothing.
    size = s.window
    while time.monotonic() < deadline - 0.05 and tr.gap() > s.relative_gap:
        improved = False
        for seed in range(p.num_territories):
            if time.monotonic() >= deadline - 0.05 or tr.gap() <= s.relative_gap:
                break
            tg = _territory_graph(p, plan)
            terrs = _window_of(tg, seed, size)
            current = ix.objective(plan)
            status, new, _ = _solve_window(
                p, ix, plan, terrs, s, False, deadline - time.monotonic(), s.window_det_s, stats, 3
            )
            stats["lns_windows"] += 1
            # A reattached split solution may miss a band: take only plans within every band.
            if new is not None and ix.violation(new) == 0 and ix.objective(new) < current:
                plan = new
                improved = True
                stats["lns_improved"] += 1
                tr.offer(plan, ix.objective(plan), "lns")
        if not improved:
            if size >= min(p.num_territories, 2 * s.window):
                break
            size += 1
    return "UNKNOWN"


def _result(p: UnitProblem, tr: _Tracker, status: str, stats: dict) -> Result:
    stats["time_to_best_s"] = tr.time_to_best
    stats["time_to_first_s"] = tr.time_to_first
    if tr.plan is None:
        assignment = np.full(p.num_units, -1, dtype=np.int64)
        bound = math.inf if status == "INFEASIBLE" else tr.bound
        return Result(assignment, status, math.inf, bound, tr.elapsed(), stats)
    # Every plan passes the independent checker before it leaves the solver; a failure here
    # is a bug in the solver, never a property of the instance.
    report = check_unit_problem_plan(p, tr.plan, tr.objective)
    if not report.ok:
        raise RuntimeError(
            "solve_units built a plan that fails solvers.check_units: "
            + "; ".join(report.violations[:5])
        )
    stats["checked"] = True
    return Result(tr.plan, status, float(tr.objective), tr.bound, tr.elapsed(), stats)

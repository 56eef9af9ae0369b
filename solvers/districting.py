"""Free-centre contiguous districting (Hess model), minimising population x hops to the centre.

Problem: a connected graph of ``n`` units with integer populations (persons), ``k`` districts
and inclusive population bounds ``[lower, upper]``. Choose ``k`` centre units and assign every
unit to one centre so that every district's population lies in the bounds, every district is
connected, and ``sum_i population[i] * hops(i, centre(i))`` is minimal, where ``hops`` is the
unweighted shortest-path length (edges) in the whole graph.

Method (chosen by measurement, see ``benchmarks/README.md``):

1. Preprocessing on arrays: hop matrix (BFS) and "population distance" matrix (node-weighted
   Dijkstra: the least population of any path joining two units, both ends included). Unit
   ``i`` can only join centre ``j`` if that least population is ``<= upper``, because the
   district must contain such a path; centres that cannot gather ``lower`` are dropped.
2. Incumbent first: the Hess model restricted to shortest-path-closed districts (every member
   other than the centre has a neighbour one hop closer to the centre in the same district).
   Such districts are connected, so every plan found is feasible. The rule is *not* valid as a
   constraint: it cuts off the optimum of NM and AR in the benchmark, and on a wheel graph it
   admits no plan at all (see the tests). It is only a primal heuristic, but a strong one.
3. Proof: the Hess model with valid contiguity cuts (every member other than the centre has a
   neighbour in the district; ``i``-``j`` vertex separators from the BFS layers around ``j``
   in the subgraph of paths of population ``<= upper``), solved by HiGHS (or CP-SAT with
   ``backend="cpsat"``) with the incumbent as hint. If its optimum has a disconnected
   district, (a) a repair keeps its centres and solves the small fixed-centre problem exactly,
   which often yields the optimum at once, and (b) minimal vertex separators of the stray
   pieces are added as cuts for every centre, and the MIP is solved again. The relaxation
   optimum is a lower bound, so the incumbent is optimal once the bound reaches it.

Determinism: HiGHS is seeded and single-threaded (MathOpt does not expose HiGHS threads);
CP-SAT is seeded, uses ``interleave_search`` with several workers when ``deterministic`` and
stops its incumbent phase on deterministic time. HiGHS offers no deterministic work limit (its
work here is at the root node, so node limits do not help), so a HiGHS phase stopped by its
wall-clock cap can end at a different incumbent on a loaded machine. That incumbent only
seeds later rounds: a run that ends with a proof always returns the same objective, and the
same plan unless several optimal plans tie.
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

__all__ = [
    "DistrictingInputError",
    "DistrictingProblem",
    "DistrictingResult",
    "DistrictingSettings",
    "solve_districting",
]

logger = logging.getLogger(__name__)

Backend = Literal["highs", "cpsat"]
ProgressCallback = Callable[[float, float, float], None]
_BACKENDS = ("highs", "cpsat")
# Fraction of the time limit one fixed-centre repair may use (it usually needs well under 1 s).
_REPAIR_SHARE = 0.1


class DistrictingInputError(ValueError):
    """Raised once with every problem found in a districting instance, each with its fix."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__(
            "invalid districting problem:\n" + "\n".join(f"  - {p}" for p in self.problems)
        )


# --------------------------------------------------------------------------------------------
# Problem data
# --------------------------------------------------------------------------------------------


def _as_int_array(values: object, name: str, problems: list[str]) -> np.ndarray:
    """Convert to int64, reporting non-integral or non-numeric input instead of truncating."""
    arr = np.asarray(values)
    if arr.dtype.kind == "b" or arr.dtype.kind not in "iuf":
        problems.append(f"{name} must hold integers, got dtype {arr.dtype}")
        return np.zeros(0, dtype=np.int64)
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            problems.append(f"{name} must hold whole numbers; round it before building")
            return np.zeros(0, dtype=np.int64)
    return arr.astype(np.int64)


def _components(indptr: np.ndarray, indices: np.ndarray) -> list[np.ndarray]:
    """Connected components of a CSR graph, largest first."""
    n = indptr.shape[0] - 1
    label = np.full(n, -1, dtype=np.int64)
    comps: list[np.ndarray] = []
    for s in range(n):
        if label[s] >= 0:
            continue
        label[s] = len(comps)
        members = [s]
        queue = deque([s])
        while queue:
            u = queue.popleft()
            for v in indices[indptr[u] : indptr[u + 1]]:
                if label[v] < 0:
                    label[v] = len(comps)
                    members.append(int(v))
                    queue.append(int(v))
        comps.append(np.array(sorted(members), dtype=np.int64))
    return sorted(comps, key=len, reverse=True)


def _validate_csr(indptr: np.ndarray, indices: np.ndarray, n: int) -> list[str]:
    problems: list[str] = []
    if indptr.shape != (n + 1,):
        return [f"adj_indptr has shape {indptr.shape}, expected ({n + 1},) for {n} units"]
    if indptr[0] != 0 or np.any(np.diff(indptr) < 0) or indptr[-1] != indices.shape[0]:
        return ["adj_indptr must start at 0, never decrease and end at len(adj_indices)"]
    if indices.size and (indices.min() < 0 or indices.max() >= n):
        return [f"adj_indices must lie in [0, {n - 1}]"]
    rows = np.repeat(np.arange(n, dtype=np.int64), np.diff(indptr))
    if np.any(rows == indices):
        problems.append(f"adjacency has self-loops at units {np.unique(rows[rows == indices])}")
    keys = rows * n + indices
    if np.unique(keys).size != keys.size:
        problems.append("adjacency lists repeat a neighbour; build with from_edges to dedupe")
    if not np.array_equal(np.sort(keys), np.sort(indices * n + rows)):
        problems.append("adjacency is not symmetric; build with from_edges to symmetrise")
    return problems


def _validate(
    pop: np.ndarray, indptr: np.ndarray, indices: np.ndarray, k: int, lower: int, upper: int
) -> list[str]:
    """Every problem of an instance at once; infeasibility comes with the arithmetic."""
    problems: list[str] = []
    n = pop.shape[0]
    if pop.ndim != 1 or n == 0:
        return [f"population must be a non-empty 1-D array, got shape {pop.shape}"]
    negative = np.flatnonzero(pop < 0)
    if negative.size:
        problems.append(f"population must be >= 0; negative at units {negative[:10].tolist()}")
    csr_problems = _validate_csr(indptr, indices, n)
    problems += csr_problems
    if not csr_problems:
        comps = _components(indptr, indices)
        if len(comps) > 1:
            stray = np.concatenate(comps[1:])
            problems.append(
                f"unit graph is not connected: {len(comps)} components; units outside the "
                f"largest one: {stray[:10].tolist()}{' ...' if stray.size > 10 else ''} "
                f"(add the missing adjacencies, e.g. ferry links, or solve components apart)"
            )
    if k < 1 or k > n:
        problems.append(f"k={k} districts is impossible with {n} units; use 1 <= k <= {n}")
    if lower < 0 or upper < 0:
        problems.append(f"bounds must be >= 0, got lower={lower:,} upper={upper:,}")
    if lower > upper:
        problems.append(f"lower={lower:,} exceeds upper={upper:,}; swap or widen the bounds")
    total = int(pop.sum())
    if 1 <= k and k * lower > total:
        problems.append(
            f"total population {total:,} < k x lower = {k} x {lower:,} = {k * lower:,} "
            f"(short by {k * lower - total:,}): lower 'lower' to at most {total // k:,} or "
            f"use at most {total // lower if lower else n} districts"
        )
    if 1 <= k and k * upper < total:
        need = -(-total // upper) if upper else "more"
        problems.append(
            f"total population {total:,} > k x upper = {k} x {upper:,} = {k * upper:,} "
            f"(over by {total - k * upper:,}): raise 'upper' to at least {-(-total // k):,} "
            f"or use at least {need} districts"
        )
    too_big = np.flatnonzero(pop > upper)
    if too_big.size:
        worst = int(too_big[np.argmax(pop[too_big])])
        problems.append(
            f"{too_big.size} unit(s) exceed upper={upper:,} on their own, e.g. unit {worst} "
            f"with {int(pop[worst]):,}: raise 'upper' to at least {int(pop[worst]):,} or split it"
        )
    return problems


@dataclasses.dataclass(frozen=True)
class DistrictingProblem:
    """Immutable districting instance; validated when built, varied with ``dataclasses.replace``.

    Attributes:
        population: persons per unit, int64, shape (n,).
        adj_indptr, adj_indices: symmetric CSR adjacency (int64) of the unit graph: the
            neighbours of unit ``u`` are ``adj_indices[adj_indptr[u]:adj_indptr[u + 1]]``.
        k: number of districts.
        lower, upper: inclusive district population bounds (persons).
    """

    population: np.ndarray
    adj_indptr: np.ndarray
    adj_indices: np.ndarray
    k: int
    lower: int
    upper: int

    def __post_init__(self) -> None:
        problems: list[str] = []
        pop = _as_int_array(self.population, "population", problems)
        indptr = _as_int_array(self.adj_indptr, "adj_indptr", problems)
        indices = _as_int_array(self.adj_indices, "adj_indices", problems)
        for name in ("k", "lower", "upper"):
            value = getattr(self, name)
            if isinstance(value, bool) or not float(value).is_integer():
                problems.append(f"{name} must be a whole number, got {value!r}")
        if not problems:
            problems = _validate(
                pop, indptr, indices, int(self.k), int(self.lower), int(self.upper)
            )
        if problems:
            raise DistrictingInputError(problems)
        for name, arr in (("population", pop), ("adj_indptr", indptr), ("adj_indices", indices)):
            arr.setflags(write=False)
            object.__setattr__(self, name, arr)
        for name in ("k", "lower", "upper"):
            object.__setattr__(self, name, int(getattr(self, name)))

    @classmethod
    def from_edges(
        cls,
        num_units: int,
        edges: Iterable[tuple[int, int]] | np.ndarray,
        population: Sequence[int] | np.ndarray,
        k: int,
        lower: int,
        upper: int,
    ) -> DistrictingProblem:
        """Build from an undirected edge list; duplicate edges are merged.

        Raises:
            DistrictingInputError: listing every problem (edges out of range, self-loops,
                disconnected graph, bounds that make the instance infeasible, ...).
        """
        problems: list[str] = []
        edge_arr = np.asarray(list(edges) if not isinstance(edges, np.ndarray) else edges)
        edge_arr = edge_arr.reshape(-1, 2) if edge_arr.size else np.zeros((0, 2), np.int64)
        edge_arr = _as_int_array(edge_arr, "edges", problems).reshape(-1, 2)
        pop = _as_int_array(population, "population", problems)
        if pop.shape != (num_units,) and not problems:
            problems.append(f"population has shape {pop.shape}, expected ({num_units},)")
        bad = (edge_arr < 0) | (edge_arr >= num_units)
        if bad.any():
            rows = np.flatnonzero(bad.any(axis=1))
            problems.append(
                f"{rows.size} edge(s) name units outside [0, {num_units - 1}], "
                f"e.g. {tuple(edge_arr[rows[0]].tolist())}"
            )
            edge_arr = edge_arr[~bad.any(axis=1)]
        loops = edge_arr[:, 0] == edge_arr[:, 1]
        if loops.any():
            problems.append(f"edges contain self-loops at units {edge_arr[loops, 0][:10].tolist()}")
            edge_arr = edge_arr[~loops]
        if problems:
            raise DistrictingInputError(problems)
        both = np.concatenate([edge_arr, edge_arr[:, ::-1]])
        both = np.unique(both, axis=0)
        indptr = np.zeros(num_units + 1, dtype=np.int64)
        np.add.at(indptr, both[:, 0] + 1, 1)
        indptr = np.cumsum(indptr)
        return cls(pop, indptr, both[:, 1].astype(np.int64), k, lower, upper)

    @property
    def num_units(self) -> int:
        return int(self.population.shape[0])

    @property
    def total_population(self) -> int:
        return int(self.population.sum())

    def neighbours(self, unit: int) -> np.ndarray:
        return self.adj_indices[self.adj_indptr[unit] : self.adj_indptr[unit + 1]]


@dataclasses.dataclass(frozen=True)
class DistrictingSettings:
    """Solver settings.

    Attributes:
        time_limit_s: wall-clock limit for the whole solve (seconds).
        seed: random seed passed to CP-SAT and HiGHS.
        num_workers: CP-SAT worker threads (HiGHS is single-threaded).
        backend: solver of the exact phase: ``"highs"`` (MIP, default: fastest on the
            benchmark) or ``"cpsat"``.
        log_search_progress: forward the solvers' logs to this module's logger (INFO).
        heuristic_share: fraction of the time limit for the shortest-path-closed incumbent
            search that runs first (0 skips it).
        deterministic: CP-SAT with several workers uses ``interleave_search`` (reproducible,
            slower); False lets its parallel portfolio race (faster, not reproducible).
    """

    time_limit_s: float = 60.0
    seed: int = 0
    num_workers: int = 2
    backend: Backend = "highs"
    log_search_progress: bool = False
    heuristic_share: float = 0.15
    deterministic: bool = True

    def __post_init__(self) -> None:
        problems = []
        if not self.time_limit_s > 0:
            problems.append(f"time_limit_s must be > 0, got {self.time_limit_s}")
        if self.num_workers < 1:
            problems.append(f"num_workers must be >= 1, got {self.num_workers}")
        if self.backend not in _BACKENDS:
            problems.append(f"backend must be one of {_BACKENDS}, got {self.backend!r}")
        if not 0 <= self.heuristic_share <= 1:
            problems.append(f"heuristic_share must lie in [0, 1], got {self.heuristic_share}")
        if problems:
            raise ValueError("; ".join(problems))


@dataclasses.dataclass(frozen=True)
class DistrictingResult:
    """Outcome of :func:`solve_districting`.

    Attributes:
        centre_of: centre unit of every unit, int64 shape (n,); all -1 when no plan is known.
        centres: sorted centre units, int64 shape (k,) (empty without a plan).
        objective: sum of population x hops (person-hops) of the plan, ``None`` without one.
        bound: proven lower bound on the optimal objective (person-hops).
        status: ``OPTIMAL``, ``FEASIBLE`` (plan, not proven), ``INFEASIBLE`` or ``UNKNOWN``.
        gap: ``(objective - bound) / objective``; ``inf`` without a plan.
        runtime_s: wall-clock seconds of the whole solve.
        time_to_best_s: seconds until the returned plan's objective value was first reached.
        stats: counters and timings (cut rounds, cuts, phase times, model sizes).
    """

    centre_of: np.ndarray
    centres: np.ndarray
    objective: int | None
    bound: float
    status: str
    gap: float
    runtime_s: float
    time_to_best_s: float
    stats: dict

    def summary(self) -> str:
        obj = "-" if self.objective is None else f"{self.objective:,}"
        return (
            f"{self.status}: objective {obj}, bound {self.bound:,.0f}, gap {self.gap:.4%}, "
            f"{self.runtime_s:.1f} s (best after {self.time_to_best_s:.1f} s)"
        )


# --------------------------------------------------------------------------------------------
# Preprocessing
# --------------------------------------------------------------------------------------------


def _hop_matrix(indptr: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """All-pairs unweighted shortest-path lengths (edges), by one BFS per unit."""
    n = indptr.shape[0] - 1
    hops = np.full((n, n), -1, dtype=np.int64)
    nbrs = [indices[indptr[u] : indptr[u + 1]].tolist() for u in range(n)]
    for s in range(n):
        row = hops[s]
        row[s] = 0
        frontier = [s]
        depth = 0
        while frontier:
            depth += 1
            nxt = []
            for u in frontier:
                for v in nbrs[u]:
                    if row[v] < 0:
                        row[v] = depth
                        nxt.append(v)
            frontier = nxt
    return hops


def _population_distance_matrix(
    pop: np.ndarray, indptr: np.ndarray, indices: np.ndarray
) -> np.ndarray:
    """Least population (persons) over paths joining two units, both ends included.

    A district holding units ``i`` and ``j`` contains such a path, so it needs at least this
    population; node-weighted Dijkstra from every unit.
    """
    n = pop.shape[0]
    weights = pop.tolist()
    nbrs = [indices[indptr[u] : indptr[u + 1]].tolist() for u in range(n)]
    out = np.empty((n, n), dtype=np.int64)
    for s in range(n):
        dist = [math.inf] * n
        dist[s] = weights[s]
        heap = [(weights[s], s)]
        while heap:
            d, u = heapq.heappop(heap)
            if d > dist[u]:
                continue
            for v in nbrs[u]:
                nd = d + weights[v]
                if nd < dist[v]:
                    dist[v] = nd
                    heapq.heappush(heap, (nd, v))
        out[s] = dist
    return out


@dataclasses.dataclass(frozen=True)
class _Data:
    """Arrays shared by the model builders (all indices are unit ids)."""

    pop: np.ndarray
    nbrs: list[list[int]]
    k: int
    lower: int
    upper: int
    hops: np.ndarray  # (n, n) edges
    pop_dist: np.ndarray  # (n, n) persons
    candidate: np.ndarray  # (n, n) bool: candidate[i, j] <=> unit i may join centre j
    centres: np.ndarray  # candidate centre units
    cost: np.ndarray  # (n, n) person-hops: pop[i] * hops[i, j]

    @property
    def n(self) -> int:
        return int(self.pop.shape[0])


def _prepare(problem: DistrictingProblem) -> tuple[_Data, str | None]:
    """Distances and candidate pairs; returns a reason when infeasibility is already evident."""
    pop = problem.population
    indptr, indices = problem.adj_indptr, problem.adj_indices
    n = problem.num_units
    hops = _hop_matrix(indptr, indices)
    pop_dist = _population_distance_matrix(pop, indptr, indices)
    candidate = pop_dist.T <= problem.upper  # [i, j]: path i..j fits in one district
    reach = (pop[:, None] * candidate).sum(axis=0)
    is_centre = reach >= problem.lower
    candidate &= is_centre[None, :]
    data = _Data(
        pop=pop,
        nbrs=[indices[indptr[u] : indptr[u + 1]].tolist() for u in range(n)],
        k=problem.k,
        lower=problem.lower,
        upper=problem.upper,
        hops=hops,
        pop_dist=pop_dist,
        candidate=candidate,
        centres=np.flatnonzero(is_centre),
        cost=pop[:, None] * hops,
    )
    if data.centres.size < problem.k:
        return data, (
            f"only {data.centres.size} unit(s) can centre a district reaching lower="
            f"{problem.lower:,} within upper={problem.upper:,}; k={problem.k} are needed"
        )
    orphans = np.flatnonzero(~candidate.any(axis=1))
    if orphans.size:
        return data, (
            f"{orphans.size} unit(s), e.g. {orphans[0]}, cannot join any district of population "
            f"in [{problem.lower:,}, {problem.upper:,}]"
        )
    return data, None


def _shortest_path_pairs(data: _Data) -> dict[tuple[int, int], list[int]]:
    """Pairs (i, j) admissible for shortest-path-closed districts, with i's predecessors.

    Unit i can join centre j in a shortest-path-closed district only if some neighbour one hop
    closer to j can, and if the least population of a shortest j..i path fits ``upper``.
    """
    out: dict[tuple[int, int], list[int]] = {}
    for j in data.centres.tolist():
        order = np.argsort(data.hops[j], kind="stable").tolist()
        sp_pop = {j: int(data.pop[j])}
        out[j, j] = []
        for i in order[1:]:
            if not data.candidate[i, j]:
                continue
            d = data.hops[i, j]
            preds = [u for u in data.nbrs[i] if data.hops[u, j] == d - 1 and u in sp_pop]
            if not preds:
                continue
            least = min(sp_pop[u] for u in preds) + int(data.pop[i])
            if least > data.upper:
                continue
            sp_pop[i] = least
            out[i, j] = preds
    return out


def _layer_separator_cuts(data: _Data) -> list[tuple[int, int, list[int]]]:
    """Valid cuts ``x[i, j] <= sum_{u in S} x[u, j]`` with S an i-j vertex separator.

    Only paths of population <= upper can join i to j inside a district, so we search the
    subgraph of units lying on such a path; there, the BFS layer around j one hop short of i,
    restricted to the part adjacent to i's side, separates i from j. Unlike the
    shortest-path-closed rule these cuts hold for every feasible plan.
    """
    cuts = []
    pop, up, pd = data.pop, data.upper, data.pop_dist
    for j in data.centres.tolist():
        for i in np.flatnonzero(data.candidate[:, j]).tolist():
            if i == j or data.hops[i, j] < 2:
                continue
            inside = (pd[j] + pd[i] - pop <= up) & data.candidate[:, j]
            dist = {j: 0}
            queue = deque([j])
            while queue:
                u = queue.popleft()
                for v in data.nbrs[u]:
                    if inside[v] and v not in dist:
                        dist[v] = dist[u] + 1
                        queue.append(v)
            r = dist[i] - 1
            side = {i}
            queue = deque([i])
            while queue:
                u = queue.popleft()
                for v in data.nbrs[u]:
                    if v in dist and dist[v] > r and v not in side:
                        side.add(v)
                        queue.append(v)
            sep = sorted({v for u in side for v in data.nbrs[u] if dist.get(v) == r})
            cuts.append((i, j, sep))
    return cuts


def _neighbour_cuts(data: _Data) -> list[tuple[int, int, list[int]]]:
    """``x[i, j] <= sum of x[u, j]`` over neighbours u: no member other than j is alone."""
    cuts = []
    for j in data.centres.tolist():
        for i in np.flatnonzero(data.candidate[:, j]).tolist():
            if i != j:
                cuts.append((i, j, [u for u in data.nbrs[i] if data.candidate[u, j]]))
    return cuts


def _stray_pieces(data: _Data, centre_of: np.ndarray) -> list[tuple[int, list[int]]]:
    """Connected pieces of districts that do not contain their centre: (centre, units)."""
    pieces = []
    for c in np.unique(centre_of).tolist():
        members = centre_of == c
        seen = np.zeros(data.n, dtype=bool)
        for s in [c, *np.flatnonzero(members).tolist()]:
            if seen[s]:
                continue
            seen[s] = True
            comp = [s]
            queue = deque([s])
            while queue:
                u = queue.popleft()
                for v in data.nbrs[u]:
                    if members[v] and not seen[v]:
                        seen[v] = True
                        comp.append(v)
                        queue.append(v)
            if s != c:
                pieces.append((c, comp))
    return pieces


def _piece_separator_cuts(
    data: _Data, piece: list[int], centres: Iterable[int]
) -> list[tuple[int, int, list[int]]]:
    """For a stray piece C: ``x[i, j] <= sum_{s in S_j} x[s, j]`` for i in C, every centre j.

    ``S_j`` is the part of the piece's neighbourhood N(C) adjacent to j's side of G - N(C): a
    minimal vertex separator between C and j, valid for any centre outside ``C + N(C)``.
    """
    in_piece = np.zeros(data.n, dtype=bool)
    in_piece[piece] = True
    boundary = sorted({v for u in piece for v in data.nbrs[u] if not in_piece[v]})
    blocked = in_piece.copy()
    blocked[boundary] = True
    cuts = []
    side_of = np.full(data.n, -1, dtype=np.int64)
    for j in centres:
        if blocked[j]:
            continue
        if side_of[j] < 0:  # label j's component of G - C - N(C)
            queue = deque([j])
            side_of[j] = j
            while queue:
                u = queue.popleft()
                for v in data.nbrs[u]:
                    if not blocked[v] and side_of[v] < 0:
                        side_of[v] = j
                        queue.append(v)
        label = side_of[j]
        sep = [s for s in boundary if any(side_of[v] == label for v in data.nbrs[s])]
        for i in piece:
            if data.candidate[i, j]:
                cuts.append((i, j, [s for s in sep if data.candidate[s, j]]))
    return cuts


# --------------------------------------------------------------------------------------------
# Models: one Hess model class per backend, reused for relaxation, incumbent and repair
# --------------------------------------------------------------------------------------------

Cut = tuple[int, int, list[int]]


class _Tracker:
    """Keeps incumbent and bound, their timestamps, and forwards progress."""

    def __init__(self, start: float, progress: ProgressCallback | None) -> None:
        self.start = start
        self.progress = progress
        self.plan: np.ndarray | None = None
        self.objective: int | None = None
        self.bound = -math.inf
        self.time_to_best = math.nan

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def offer(self, plan: np.ndarray, objective: int, source: str) -> None:
        if self.objective is not None and objective >= self.objective:
            return
        self.plan, self.objective = plan.copy(), int(objective)
        self.time_to_best = self.elapsed()
        logger.info("%.1f s: incumbent %s from %s", self.time_to_best, f"{objective:,}", source)
        self._emit()

    def raise_bound(self, bound: float) -> None:
        if bound > self.bound:
            self.bound = bound
            self._emit()

    def proven(self) -> bool:
        return self.objective is not None and self.bound >= self.objective

    def _emit(self) -> None:
        if self.progress is not None:
            obj = math.inf if self.objective is None else float(self.objective)
            self.progress(self.elapsed(), obj, float(self.bound))


@dataclasses.dataclass
class _Solve:
    """One model solve: ``status`` OPTIMAL/FEASIBLE/INFEASIBLE/UNKNOWN, plan, bounds."""

    status: str
    plan: np.ndarray | None
    objective: float | None
    bound: float


def _log_highs(lines: Sequence[str]) -> None:
    for line in lines:
        logger.info("highs: %s", line)


class _HighsModel:
    """Hess MIP over the candidate pairs of ``data`` plus ``x[i,j] <= sum x[S,j]`` cuts (HiGHS)."""

    def __init__(self, data: _Data, cuts: Iterable[Cut]) -> None:
        self.data = data
        m = mathopt.Model(name="hess")
        cand = data.candidate
        centres = data.centres.tolist()
        self.x = {
            (i, j): m.add_binary_variable(name=f"x_{i}_{j}")
            for j in centres
            for i in np.flatnonzero(cand[:, j]).tolist()
        }
        x = self.x
        for i in range(data.n):
            m.add_linear_constraint(
                mathopt.fast_sum(x[i, j] for j in np.flatnonzero(cand[i]).tolist()) == 1
            )
        m.add_linear_constraint(mathopt.fast_sum(x[j, j] for j in centres) == data.k)
        for j in centres:
            members = np.flatnonzero(cand[:, j]).tolist()
            district_pop = mathopt.fast_sum(int(data.pop[i]) * x[i, j] for i in members)
            m.add_linear_constraint(district_pop - data.upper * x[j, j] <= 0)
            m.add_linear_constraint(district_pop - data.lower * x[j, j] >= 0)
            for i in members:
                if i != j:
                    m.add_linear_constraint(x[i, j] - x[j, j] <= 0)
        m.minimize(mathopt.fast_sum(int(data.cost[i, j]) * v for (i, j), v in x.items()))
        self.model = m
        self.cuts: list[Cut] = []
        for cut in cuts:
            self.add_cut(cut)

    def add_cut(self, cut: Cut) -> None:
        i, j, sep = cut
        if (i, j) not in self.x:
            return
        x = self.x
        self.model.add_linear_constraint(
            x[i, j] - mathopt.fast_sum(x[s, j] for s in sep if (s, j) in x) <= 0
        )
        self.cuts.append(cut)

    def solve(
        self,
        settings: DistrictingSettings,
        time_s: float,
        hint: np.ndarray | None,
        deterministic_s: float | None = None,
    ) -> _Solve:
        del deterministic_s  # HiGHS has no deterministic work limit
        params = mathopt.SolveParameters(
            time_limit=datetime.timedelta(seconds=max(0.05, time_s)),
            relative_gap_tolerance=0.0,
            absolute_gap_tolerance=0.5,  # integer objective: a gap below 1 proves optimality
            random_seed=settings.seed,
            enable_output=False,
        )
        model_params = None
        if hint is not None and all((i, int(hint[i])) in self.x for i in range(self.data.n)):
            values = {v: float(hint[i] == j) for (i, j), v in self.x.items()}
            model_params = mathopt.ModelSolveParameters(
                solution_hints=[mathopt.SolutionHint(variable_values=values)]
            )
        msg_cb = _log_highs if settings.log_search_progress else None
        result = mathopt.solve(
            self.model,
            mathopt.SolverType.HIGHS,
            params=params,
            model_params=model_params,
            msg_cb=msg_cb,
        )
        reason = result.termination.reason
        if reason in (
            mathopt.TerminationReason.INFEASIBLE,
            mathopt.TerminationReason.INFEASIBLE_OR_UNBOUNDED,
        ):
            return _Solve("INFEASIBLE", None, None, math.inf)
        bound = result.best_objective_bound()
        if not result.has_primal_feasible_solution():
            return _Solve("UNKNOWN", None, None, bound)
        values = result.variable_values()
        plan = np.full(self.data.n, -1, dtype=np.int64)
        for (i, j), v in self.x.items():
            if values[v] > 0.5:
                plan[i] = j
        obj = float(result.objective_value())
        if reason == mathopt.TerminationReason.OPTIMAL:
            return _Solve("OPTIMAL", plan, obj, obj)
        return _Solve("FEASIBLE", plan, obj, bound)


def _cpsat_solver(settings: DistrictingSettings, time_s: float) -> cp_model.CpSolver:
    solver = cp_model.CpSolver()
    params = solver.parameters
    params.num_workers = settings.num_workers
    params.random_seed = settings.seed
    params.max_time_in_seconds = max(0.01, time_s)
    if settings.deterministic and settings.num_workers > 1:
        params.interleave_search = True  # subsolvers take turns in a fixed order
    if settings.log_search_progress:
        params.log_search_progress = True
        params.log_to_stdout = False
        solver.log_callback = logger.info
    return solver


class _CpSatModel:
    """The same model in CP-SAT (``backend="cpsat"``); cuts become enforced clauses."""

    def __init__(self, data: _Data, cuts: Iterable[Cut]) -> None:
        self.data = data
        m = cp_model.CpModel()
        cand = data.candidate
        centres = data.centres.tolist()
        self.x = {
            (i, j): m.new_bool_var(f"x_{i}_{j}")
            for j in centres
            for i in np.flatnonzero(cand[:, j]).tolist()
        }
        x = self.x
        for i in range(data.n):
            m.add_exactly_one(x[i, j] for j in np.flatnonzero(cand[i]).tolist())
        m.add(sum(x[j, j] for j in centres) == data.k)
        for j in centres:
            members = np.flatnonzero(cand[:, j]).tolist()
            district_pop = sum(int(data.pop[i]) * x[i, j] for i in members)
            m.add(district_pop <= data.upper * x[j, j])
            m.add(district_pop >= data.lower * x[j, j])
            for i in members:
                if i != j:
                    m.add_implication(x[i, j], x[j, j])
        m.minimize(sum(int(data.cost[i, j]) * v for (i, j), v in x.items()))
        self.model = m
        self.cuts: list[Cut] = []
        for cut in cuts:
            self.add_cut(cut)

    def add_cut(self, cut: Cut) -> None:
        i, j, sep = cut
        if (i, j) not in self.x:
            return
        lits = [self.x[s, j] for s in sep if (s, j) in self.x]
        if lits:
            self.model.add_bool_or(lits).only_enforce_if(self.x[i, j])
        else:
            self.model.add(self.x[i, j] == 0)
        self.cuts.append(cut)

    def solve(
        self,
        settings: DistrictingSettings,
        time_s: float,
        hint: np.ndarray | None,
        deterministic_s: float | None = None,
    ) -> _Solve:
        self.model.clear_hints()
        if hint is not None:
            for (i, j), v in self.x.items():
                self.model.add_hint(v, bool(hint[i] == j))
        solver = _cpsat_solver(settings, time_s)
        if deterministic_s is not None:
            solver.parameters.max_deterministic_time = deterministic_s
        status = solver.solve(self.model)
        if status == cp_model.INFEASIBLE:
            return _Solve("INFEASIBLE", None, None, math.inf)
        if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
            return _Solve("UNKNOWN", None, None, solver.best_objective_bound)
        plan = np.full(self.data.n, -1, dtype=np.int64)
        for (i, j), v in self.x.items():
            if solver.boolean_value(v):
                plan[i] = j
        obj = float(solver.objective_value)
        if status == cp_model.OPTIMAL:
            return _Solve("OPTIMAL", plan, obj, obj)
        return _Solve("FEASIBLE", plan, obj, solver.best_objective_bound)


_MODELS = {"highs": _HighsModel, "cpsat": _CpSatModel}


def _plan_objective(data: _Data, plan: np.ndarray) -> int:
    return int(data.cost[np.arange(data.n), plan].sum())


def _integer_bound(data: _Data, solved: _Solve) -> float:
    """Lower bound on the integer objective implied by one relaxation solve.

    At OPTIMAL the solver's absolute gap is below 1, so the exact objective of the returned
    plan is a bound. Otherwise round the dual bound up, after a margin for LP round-off.
    """
    if solved.status == "OPTIMAL" and solved.plan is not None:
        return float(_plan_objective(data, solved.plan))
    if not math.isfinite(solved.bound):
        return solved.bound
    return float(math.ceil(solved.bound - 1e-9 * abs(solved.bound) - 1e-6))


def _shortest_path_incumbent(
    data: _Data, settings: DistrictingSettings, tracker: _Tracker, time_s: float
) -> str:
    """Best shortest-path-closed plan within ``time_s``; such plans are connected, so feasible."""
    pairs = _shortest_path_pairs(data)
    candidate = np.zeros_like(data.candidate)
    for i, j in pairs:
        candidate[i, j] = True
    restricted = dataclasses.replace(data, candidate=candidate)
    cuts = [(i, j, preds) for (i, j), preds in pairs.items() if i != j]
    model = _MODELS[settings.backend](restricted, cuts)
    solved = model.solve(settings, time_s, tracker.plan, deterministic_s=time_s)
    if solved.plan is not None:
        tracker.offer(solved.plan, _plan_objective(data, solved.plan), "shortest-path model")
    return solved.status


def _repair(
    data: _Data,
    plan: np.ndarray,
    cuts: list[Cut],
    settings: DistrictingSettings,
    tracker: _Tracker,
    time_s: float,
) -> str:
    """Keep the centres of a disconnected plan and solve the exact problem for them.

    With centres fixed the MIP is small and quick, so separator rounds are cheap here; the
    result is a connected plan (incumbent) or a proof that these centres admit none.
    """
    stop = time.monotonic() + time_s
    centres = np.unique(plan)
    keep = np.zeros(data.n, dtype=bool)
    keep[centres] = True
    restricted = dataclasses.replace(
        data, candidate=data.candidate & keep[None, :], centres=centres
    )
    centre_set = set(centres.tolist())
    model = _MODELS[settings.backend](restricted, (c for c in cuts if c[1] in centre_set))
    while (remaining := stop - time.monotonic()) > 0.05:
        solved = model.solve(settings, remaining, None)
        if solved.plan is None:
            return solved.status
        pieces = _stray_pieces(data, solved.plan)
        if not pieces:
            tracker.offer(solved.plan, _plan_objective(data, solved.plan), "fixed-centre repair")
            return "REPAIRED"
        if solved.status != "OPTIMAL":
            return "UNKNOWN"
        for _, piece in pieces:
            for cut in _piece_separator_cuts(data, piece, centres.tolist()):
                model.add_cut(cut)
    return "UNKNOWN"


# --------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------


def solve_districting(
    problem: DistrictingProblem,
    settings: DistrictingSettings | None = None,
    progress: ProgressCallback | None = None,
) -> DistrictingResult:
    """Solve a free-centre contiguous districting problem (see module docstring).

    Args:
        problem: the validated instance.
        settings: solver settings; defaults to ``DistrictingSettings()``.
        progress: optional callable ``(elapsed_s, objective, bound)`` called whenever the
            incumbent (person-hops; ``inf`` before the first plan) or the proven lower bound
            improves.

    Returns:
        A :class:`DistrictingResult`; verify it with ``solvers.check_districting``.
    """
    settings = settings or DistrictingSettings()
    start = time.monotonic()
    deadline = start + settings.time_limit_s
    tracker = _Tracker(start, progress)
    stats: dict = {"backend": settings.backend}

    data, infeasible = _prepare(problem)
    stats["candidate_pairs"] = int(data.candidate.sum())
    stats["candidate_centres"] = int(data.centres.size)
    if infeasible is not None:
        logger.info("infeasible before solving: %s", infeasible)
        stats["infeasibility"] = infeasible
        return _result(problem, tracker, "INFEASIBLE", stats)

    if settings.heuristic_share > 0:
        heuristic_s = settings.time_limit_s * settings.heuristic_share
        stats["heuristic"] = _shortest_path_incumbent(data, settings, tracker, heuristic_s)
        stats["heuristic_s"] = round(tracker.elapsed(), 2)

    relax = _MODELS[settings.backend](data, _neighbour_cuts(data) + _layer_separator_cuts(data))
    stats["static_cuts"] = len(relax.cuts)
    stats["rounds"] = []
    status = "UNKNOWN"
    while (remaining := deadline - time.monotonic()) > 0.05:
        solved = relax.solve(settings, remaining, tracker.plan)
        if solved.status == "INFEASIBLE":
            # The relaxation admits no plan, so neither does the problem.
            if tracker.plan is None:
                status = "INFEASIBLE"
            else:
                logger.warning("relaxation infeasible although a plan is known; stopping")
            break
        tracker.raise_bound(_integer_bound(data, solved))
        pieces = [] if solved.plan is None else _stray_pieces(data, solved.plan)
        stats["rounds"].append((solved.status, len(pieces), round(tracker.elapsed(), 2)))
        logger.info(
            "%.1f s: relaxation round %d %s, bound %s, %d stray piece(s)",
            tracker.elapsed(),
            len(stats["rounds"]),
            solved.status,
            f"{tracker.bound:,.0f}",
            len(pieces),
        )
        if solved.plan is not None and not pieces:
            tracker.offer(solved.plan, _plan_objective(data, solved.plan), "relaxation")
        if tracker.proven():
            status = "OPTIMAL"
            break
        if pieces:
            # The repair often finds the optimum at once (KS, AL), which then prunes the
            # next round through the hint.
            repair_s = min(deadline - time.monotonic(), _REPAIR_SHARE * settings.time_limit_s)
            stats.setdefault("repairs", []).append(
                _repair(data, solved.plan, relax.cuts, settings, tracker, repair_s)
            )
            if tracker.proven():
                status = "OPTIMAL"
                break
        if solved.status != "OPTIMAL":
            break  # the relaxation ran out of time
        for _, piece in pieces:
            for cut in _piece_separator_cuts(data, piece, data.centres.tolist()):
                relax.add_cut(cut)

    stats["cuts_total"] = len(relax.cuts)
    if status == "UNKNOWN" and tracker.plan is not None:
        status = "FEASIBLE"
    return _result(problem, tracker, status, stats)


def _result(
    problem: DistrictingProblem, tracker: _Tracker, status: str, stats: dict
) -> DistrictingResult:
    n = problem.num_units
    bound = tracker.bound
    if status == "INFEASIBLE":
        bound = math.inf
    if tracker.plan is None:
        plan = np.full(n, -1, dtype=np.int64)
        centres = np.zeros(0, dtype=np.int64)
        gap = math.inf
        time_to_best = math.nan
    else:
        plan = tracker.plan
        centres = np.unique(plan)
        obj = tracker.objective
        if status == "OPTIMAL":
            bound = float(obj)
        gap = max(0.0, (obj - bound) / obj) if obj else 0.0
        time_to_best = tracker.time_to_best
    plan.setflags(write=False)
    centres.setflags(write=False)
    return DistrictingResult(
        centre_of=plan,
        centres=centres,
        objective=tracker.objective,
        bound=float(bound),
        status=status,
        gap=gap,
        runtime_s=tracker.elapsed(),
        time_to_best_s=time_to_best,
        stats=stats,
    )

"""Flow-guided balancing of a contiguous unit plan: ejection chains planned by min-cost flow.

Single boundary moves cannot balance a plan whose surplus sits several territories away from
its deficit: every intermediate territory would first have to leave its band (or get worse)
before passing weight on. Here each round plans the transfers for all territories at once,
then carries them out unit by unit, keeping every territory connected:

1. Plan: a min-cost flow on the territory graph. The arc ``a -> b`` exists when ``a`` has a
   unit on its border with ``b`` that may join ``b`` (a candidate pair, not ``a``'s root);
   its capacity is the weight of those border units and its cost one per unit of weight, so
   weight travels along the fewest borders (ejection chains). A source feeds every territory
   above the inner band (must give, large negative cost) and, at a small cost, any territory
   with room above the inner band's lower end (may give); territories below the inner band
   must take, those with room may take. Only what leaves a band or is needed to fill one
   moves, and the flow goes through territories that are within their band.
2. Realise: for each arc with flow ``f``, border units of ``a`` move to ``b`` while the moved
   weight gets closer to ``f``; among the units that do, the one whose move raises the
   compactness cost least goes first; a unit moves only when ``a`` stays connected without it
   (a breadth-first search from ``a``'s root), and it borders ``b``, so ``b`` stays connected.
3. Repeat until every territory is within its band. Arcs whose flow could not be carried out
   (their border units are cut vertices of the donor, or too heavy) cost more next round, so
   the flow goes around them.

The inner band (``inner`` times the band's half width around its middle) leaves room for the
weight of single units, so a round rarely pushes a territory out of the band it was meant
to reach. The plan with the least band violation is returned. Deterministic: no randomness,
ties broken by index.
"""

from __future__ import annotations

import time
from collections import deque

import numpy as np
from ortools.graph.python import min_cost_flow

__all__ = ["balance_plan"]


def _cut_off(nbrs, plan: np.ndarray, t: int, root: int, drop: int, size: int) -> list[int]:
    """Units of territory ``t`` (``size`` units) that lose their path to ``root`` when unit
    ``drop`` leaves it (empty when ``t`` stays connected)."""
    if size <= 2:
        return []
    seen = {root, drop}
    queue = deque([root])
    while queue:
        u = queue.popleft()
        for v in nbrs[u]:
            if v not in seen and plan[v] == t:
                seen.add(v)
                queue.append(v)
    if len(seen) == size:
        return []
    return [u for u in np.flatnonzero(plan == t).tolist() if u not in seen]


def _violation(load: np.ndarray, lo: np.ndarray, up: np.ndarray) -> int:
    return int(np.maximum(0, lo - load).sum() + np.maximum(0, load - up).sum())


def _border_arcs(p, ix, plan: np.ndarray) -> dict[tuple[int, int], list[int]]:
    """(a, b) -> units of ``a`` on its border with ``b`` that may join ``b``."""
    arcs: dict[tuple[int, int], list[int]] = {}
    roots = ix.root_of
    for u in range(p.num_units):
        a = int(plan[u])
        if u in roots:
            continue
        seen = set()
        for v in ix.nbrs[u]:
            b = int(plan[v])
            if b != a and b not in seen and b in ix.cost[u]:
                seen.add(b)
                arcs.setdefault((a, b), []).append(u)
    return arcs


def _plan_flow(
    load: np.ndarray,
    inner_lo: np.ndarray,
    inner_up: np.ndarray,
    arcs: dict[tuple[int, int], list[int]],
    w: list[int],
    penalty: dict[tuple[int, int], int],
) -> dict[tuple[int, int], int]:
    """Weight to move along each territory arc (see the module docstring, step 1)."""
    k = load.shape[0]
    src, snk = k, k + 1
    must = k + 2  # larger than any path cost, so every reachable must-flow is routed
    surplus = np.maximum(0, load - inner_up)
    deficit = np.maximum(0, inner_lo - load)
    give = np.maximum(0, np.minimum(load, inner_up) - inner_lo)
    take = np.maximum(0, inner_up - np.maximum(load, inner_lo))
    big = int(surplus.sum() + deficit.sum())
    if big == 0:
        return {}
    must_cost = must * (1 + max(penalty.values(), default=0))
    tails, heads, caps, costs = [], [], [], []

    def arc(a: int, b: int, cap: int, cost: int) -> None:
        if cap > 0:
            tails.append(a)
            heads.append(b)
            caps.append(int(cap))
            costs.append(int(cost))

    arc(src, snk, big, 0)
    for t in range(k):
        arc(src, t, surplus[t], -must_cost)
        arc(src, t, give[t], 1)
        arc(t, snk, deficit[t], -must_cost)
        arc(t, snk, take[t], 1)
    keys = sorted(arcs)
    first = len(tails)
    for a, b in keys:
        tails.append(a)
        heads.append(b)
        caps.append(int(3 * sum(w[u] for u in arcs[a, b])))  # a few layers per round
        costs.append(1 + penalty.get((a, b), 0))
    mcf = min_cost_flow.SimpleMinCostFlow()
    mcf.add_arcs_with_capacity_and_unit_cost(
        np.array(tails, np.int64),
        np.array(heads, np.int64),
        np.array(caps, np.int64),
        np.array(costs, np.int64),
    )
    supplies = np.zeros(k + 2, np.int64)
    supplies[src], supplies[snk] = big, -big
    mcf.set_nodes_supplies(np.arange(k + 2, dtype=np.int64), supplies)
    if mcf.solve() != mcf.OPTIMAL:
        return {}
    flows = mcf.flows(np.arange(first, first + len(keys), dtype=np.int64))
    return {key: int(f) for key, f in zip(keys, flows.tolist(), strict=True) if f > 0}


def balance_plan(
    p,
    ix,
    plan: np.ndarray,
    deadline: float,
    *,
    inner: float = 0.5,
    max_rounds: int = 400,
    patience: int = 25,
) -> tuple[np.ndarray, dict]:
    """Flow-guided repair of a complete, connected plan; returns (best plan, stats).

    ``p`` is a ``solvers.contiguity.UnitProblem`` and ``ix`` its index (neighbour lists,
    candidate costs per unit, weights, roots). Every territory of the input must be connected
    and hold its root; every plan this makes is too. Stops once no territory is outside its
    band, after ``patience`` rounds without a better violation, or at ``deadline``.
    """
    plan = plan.copy()
    lo, up = p.lower.astype(np.int64), p.upper.astype(np.int64)
    mid = (lo + up) / 2.0
    half = (up - lo) / 2.0
    inner_lo = np.ceil(mid - inner * half).astype(np.int64)
    inner_up = np.floor(mid + inner * half).astype(np.int64)
    w = ix.w
    roots = p.root.tolist()
    load = ix.loads(plan).astype(np.int64)
    size = np.bincount(plan, minlength=p.num_territories)
    best, best_v = plan.copy(), _violation(load, lo, up)
    penalty: dict[tuple[int, int], int] = {}
    stats = {"balance_rounds": 0, "balance_moves": 0, "balance_start_violation": best_v}
    stale = 0
    for _ in range(max_rounds):
        if best_v == 0 or time.monotonic() >= deadline or stale >= patience:
            break
        stats["balance_rounds"] += 1
        arcs = _border_arcs(p, ix, plan)
        flow = _plan_flow(load, inner_lo, inner_up, arcs, w, penalty)
        if not flow:
            break
        # Largest transfers first; ties by territory index.
        for (a, b), f in sorted(flow.items(), key=lambda kv: (-kv[1], kv[0])):
            moved = 0
            while True:
                rem = f - moved
                options = []
                for u in np.flatnonzero(plan == a).tolist():
                    if u == roots[a] or w[u] >= 2 * rem or b not in ix.cost[u]:
                        continue
                    if any(plan[v] == b for v in ix.nbrs[u]):
                        options.append((ix.cost[u][b] - ix.cost[u].get(a, 0), u))
                done = False
                for _, u in sorted(options):
                    # u with the units that hang on it (its branch away from a's root):
                    # they border u, so b stays connected; a keeps its root side.
                    group = [u, *_cut_off(ix.nbrs, plan, a, roots[a], u, int(size[a]))]
                    gw = sum(w[g] for g in group)
                    if gw >= 2 * rem or any(b not in ix.cost[g] for g in group):
                        continue
                    plan[group] = b
                    load[a] -= gw
                    load[b] += gw
                    size[a] -= len(group)
                    size[b] += len(group)
                    moved += gw
                    stats["balance_moves"] += len(group)
                    done = True
                    break
                if not done:
                    break
            if moved < f / 2:
                penalty[a, b] = penalty.get((a, b), 0) + 2
        v = _violation(load, lo, up)
        if v < best_v:
            best, best_v, stale = plan.copy(), v, 0
        else:
            stale += 1
    stats["balance_violation"] = best_v
    return best, stats

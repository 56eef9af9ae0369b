"""Flow-guided balancing of a contiguous unit plan: ejection chains planned by min-cost flow.

Single boundary moves cannot balance a plan whose surplus sits several territories away from
its deficit: every intermediate territory would first have to leave its band (or get worse)
before passing weight on. Here each round plans the transfers for all territories at once,
then carries them out unit by unit, keeping every territory connected:

1. Plan: a min-cost flow on the territory graph. The arc ``a -> b`` exists when ``a`` has a
   unit on its border with ``b`` that may join ``b`` (a candidate pair, not ``a``'s root);
   its capacity is a few times (``layers``) the weight ``a`` can hand over there, and its
   cost one per unit of weight, so weight travels along the fewest borders (ejection
   chains). A source feeds every territory above the inner band (must give, large negative
   cost) and, at a small cost, any territory with room above the inner band's lower end (may
   give); territories below the inner band must take, those with room may take. Only what
   leaves a band or is needed to fill one moves, and the flow goes through territories that
   are within their band.
2. Realise: for each arc with flow ``f``, border units of ``a`` move to ``b`` while the moved
   weight gets closer to ``f``; among the units that do, the one whose move raises the
   compactness cost least goes first. A unit moves together with the branch that hangs on
   it (the units of ``a`` that would lose their path to ``a``'s root, found by a
   breadth-first search), all of them candidates of ``b``; so ``a`` stays connected, and the
   unit borders ``b``, so ``b`` does too.
3. Repeat until every territory is within its band. Arcs whose flow could not be carried out
   (their border units are cut vertices of the donor with heavy branches, or too heavy)
   cost more next round, so the flow goes around them. The capacity of an arc counts each
   border unit with the branch that hangs on it (Tarjan's low points), when that branch is
   light enough to hand over.

Transfers are realised either sources first (a territory passes on only its own surplus plus
what actually reached it, so a failed transfer upstream does not shift the deficit down the
chain) or all at once, largest first. The two fail in different places, so when one stalls
the next attempt, from the best plan so far and with fresh penalties, uses the other, a
different inner band, or bold moves (whole arms of a territory, see ``_ATTEMPTS``).

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


def _hanging_weight(nbrs, w: list[int], plan: np.ndarray, roots: list[int]) -> list[int]:
    """Per unit, the weight its territory loses besides the unit itself when it leaves: the
    units that then lose their path to the root (Tarjan's low points, one depth-first search
    from each root over its territory)."""
    n = len(plan)
    disc = [-1] * n
    low = [0] * n
    sub = [0] * n
    hang = [0] * n
    clock = 0
    for t, r in enumerate(roots):
        disc[r] = low[r] = clock
        clock += 1
        sub[r] = w[r]
        stack = [(r, -1, iter(nbrs[r]))]
        while stack:
            u, parent, it = stack[-1]
            for v in it:
                if plan[v] != t:
                    continue
                if disc[v] < 0:
                    disc[v] = low[v] = clock
                    clock += 1
                    sub[v] = w[v]
                    stack.append((v, u, iter(nbrs[v])))
                    break
                if v != parent and disc[v] < low[u]:
                    low[u] = disc[v]
            else:
                stack.pop()
                if stack:
                    pu = stack[-1][0]
                    low[pu] = min(low[pu], low[u])
                    sub[pu] += sub[u]
                    if low[u] >= disc[pu]:
                        hang[pu] += sub[u]
    return hang


def _border_caps(p, ix, plan: np.ndarray, limit: np.ndarray) -> dict[tuple[int, int], int]:
    """(a, b) -> the weight ``a`` can pass to ``b`` across their border: each unit of ``a``
    that borders ``b`` and may join it, with the branch that hangs on it, when that branch
    weighs at most ``limit[a]`` (``a`` keeps its root side)."""
    caps: dict[tuple[int, int], int] = {}
    roots = ix.root_of
    hang = _hanging_weight(ix.nbrs, ix.w, plan, p.root.tolist())
    for u in range(p.num_units):
        a = int(plan[u])
        if u in roots:
            continue
        seen = set()
        for v in ix.nbrs[u]:
            b = int(plan[v])
            if b != a and b not in seen and b in ix.cost[u]:
                seen.add(b)
                if hang[u] <= limit[a]:
                    caps[a, b] = caps.get((a, b), 0) + ix.w[u] + hang[u]
    return caps


def _plan_flow(
    load: np.ndarray,
    inner_lo: np.ndarray,
    inner_up: np.ndarray,
    caps_by_arc: dict[tuple[int, int], int],
    penalty: dict[tuple[int, int], int],
    layers: float,
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
    keys = sorted(key for key, cap in caps_by_arc.items() if cap > 0)
    first = len(tails)
    for a, b in keys:
        tails.append(a)
        heads.append(b)
        caps.append(int(layers * caps_by_arc[a, b]))  # the next layers open as units move
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


def _sources_first(flow: dict[tuple[int, int], int], k: int) -> list[tuple[int, int]]:
    """Arcs of an acyclic flow, every arc into a territory before any arc out of it (Kahn's
    order, ties by index); arcs left on a cycle, if any, follow in index order."""
    indeg = np.zeros(k, dtype=np.int64)
    out: dict[int, list[int]] = {}
    for a, b in sorted(flow):
        indeg[b] += 1
        out.setdefault(a, []).append(b)
    ready = sorted(t for t in out if indeg[t] == 0)
    order: list[tuple[int, int]] = []
    while ready:
        a = ready.pop(0)
        for b in out.get(a, []):
            order.append((a, b))
            indeg[b] -= 1
            if indeg[b] == 0 and b in out:
                ready.append(b)
                ready.sort()
    return order + sorted(set(flow) - set(order))


def _transfer(ix, plan, a, b, f, root, load, size, stats, extra=0.0) -> int:
    """Move border units of ``a`` (each with the branch hanging on it) to ``b`` while the
    moved weight gets closer to ``f`` (or overshoots it by at most ``extra``); cheapest
    compactness change first. Returns the weight moved."""
    w = ix.w
    moved = 0
    while True:
        rem = f - moved
        options = []
        for u in np.flatnonzero(plan == a).tolist():
            if u == root or w[u] >= 2 * rem + extra or b not in ix.cost[u]:
                continue
            if any(plan[v] == b for v in ix.nbrs[u]):
                options.append((ix.cost[u][b] - ix.cost[u].get(a, 0), u))
        for _, u in sorted(options):
            # u with the units that hang on it (its branch away from a's root): they border
            # u, so b stays connected; a keeps its root side.
            group = [u, *_cut_off(ix.nbrs, plan, a, root, u, int(size[a]))]
            gw = sum(w[g] for g in group)
            if gw >= 2 * rem + extra or any(b not in ix.cost[g] for g in group):
                continue
            plan[group] = b
            load[a] -= gw
            load[b] += gw
            size[a] -= len(group)
            size[b] += len(group)
            moved += gw
            stats["balance_moves"] += len(group)
            break
        else:
            return moved


# Attempts from the best plan so far, each with fresh arc penalties: (inner band fraction,
# realise sources first, boldness). Different inner bands change which territories may pass
# weight on; the two realisations fail in different places (see the module docstring).
# A bold attempt also moves branches of up to a whole target that overshoot a transfer by
# up to ``boldness`` x target: a territory grown away from a root on its border can then
# hand over its far arm, and the flow rebalances the rest.
_ATTEMPTS = (
    (0.5, True, 0.0),
    (0.5, False, 0.0),
    (0.8, True, 0.0),
    (0.5, True, 0.5),
    (0.3, False, 0.0),
    (0.5, False, 0.5),
    (0.95, True, 0.0),
    (0.7, False, 0.0),
)


def balance_plan(
    p,
    ix,
    plan: np.ndarray,
    deadline: float,
    *,
    branch: float = 0.5,
    layers: float = 2.0,
    patience: int = 12,
) -> tuple[np.ndarray, dict]:
    """Flow-guided repair of a complete, connected plan; returns (best plan, stats).

    ``p`` is a ``solvers.contiguity.UnitProblem`` and ``ix`` its index (neighbour lists,
    candidate costs per unit, weights, roots). Every territory of the input must be connected
    and hold its root; every plan this makes is too. Each attempt stops after ``patience``
    rounds without a better violation; all stop once no territory is outside its band, or at
    ``deadline``.
    """
    lo, up = p.lower.astype(np.int64), p.upper.astype(np.int64)
    best = plan.copy()
    best_v = _violation(ix.loads(best).astype(np.int64), lo, up)
    stats = {
        "balance_rounds": 0,
        "balance_moves": 0,
        "balance_attempts": 0,
        "balance_start_violation": best_v,
    }
    for inner, sources_first, bold in _ATTEMPTS:
        if best_v == 0 or time.monotonic() >= deadline:
            break
        stats["balance_attempts"] += 1
        plan, v = _attempt(
            p, ix, best, deadline, inner, branch, layers, patience, sources_first, bold, stats
        )
        if v < best_v:
            best, best_v = plan, v
    stats["balance_violation"] = best_v
    return best, stats


def _attempt(p, ix, plan, deadline, inner, branch, layers, patience, sources_first, bold, stats):
    """Rounds of plan-and-realise from ``plan``: (best plan, its violation)."""
    plan = plan.copy()
    lo, up = p.lower.astype(np.int64), p.upper.astype(np.int64)
    mid = (lo + up) / 2.0
    half = (up - lo) / 2.0
    inner_lo = np.ceil(mid - inner * half).astype(np.int64)
    inner_up = np.floor(mid + inner * half).astype(np.int64)
    limit = (1.0 if bold else branch) * mid
    extra = bold * mid
    roots = p.root.tolist()
    k = p.num_territories
    load = ix.loads(plan).astype(np.int64)
    size = np.bincount(plan, minlength=k)
    best, best_v = plan.copy(), _violation(load, lo, up)
    penalty: dict[tuple[int, int], int] = {}
    stale = 0
    while best_v > 0 and time.monotonic() < deadline and stale < patience:
        stats["balance_rounds"] += 1
        caps = _border_caps(p, ix, plan, limit)
        flow = _plan_flow(load, inner_lo, inner_up, caps, penalty, layers)
        if not flow:
            break
        if sources_first:
            # A territory passes on only what it has, its own surplus plus what actually
            # reached it, so a transfer that fails upstream does not shift the deficit
            # down the chain.
            out_f, in_f, got = np.zeros(k), np.zeros(k), np.zeros(k)
            for (a, b), f in flow.items():
                out_f[a] += f
                in_f[b] += f
            for a, b in _sources_first(flow, k):
                budget = max(0.0, out_f[a] - in_f[a] + got[a])
                f = int(flow[a, b] * min(1.0, budget / out_f[a]))
                moved = (
                    _transfer(ix, plan, a, b, f, roots[a], load, size, stats, extra[a]) if f else 0
                )
                got[b] += moved
                if moved < f / 2:
                    penalty[a, b] = penalty.get((a, b), 0) + 2
        else:
            # Every planned transfer at once, largest first; ties by territory index.
            for (a, b), f in sorted(flow.items(), key=lambda kv: (-kv[1], kv[0])):
                moved = _transfer(ix, plan, a, b, f, roots[a], load, size, stats, extra[a])
                if moved < f / 2:
                    penalty[a, b] = penalty.get((a, b), 0) + 2
        v = _violation(load, lo, up)
        if v < best_v:
            best, best_v, stale = plan.copy(), v, 0
        else:
            stale += 1
    return best, best_v

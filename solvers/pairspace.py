"""Every eligible unit-rep pair, without storing them: the space candidate pricing searches.

A problem stores only candidate pairs. When capacity binds, the relaxation's optimum sends
some units to their 40th or 60th nearest rep, which no fixed candidate list anticipates.
:class:`PairSpace` knows how any pair's cost and workload follow from great-circle distance,
so the engine can price all pairs against the relaxation's duals, a chunk of units at a time,
and add the few that pay (column generation).

Costs are linear in distance: ``cost = cost_per_km[u] * km`` (currency*km: potential x
distance) and ``workload_h = hours_fixed[u] + hours_per_km[u] * km``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["PairSpace", "haversine_km", "with_pairs"]

EARTH_RADIUS_KM = 6371.0088


def haversine_km(lat1, lon1, lat2, lon2) -> np.ndarray:
    """Great-circle distance in km (degrees in, broadcasting)."""
    la1, lo1, la2, lo2 = (np.radians(np.asarray(v, float)) for v in (lat1, lon1, lat2, lon2))
    h = np.sin((la2 - la1) / 2) ** 2 + np.cos(la1) * np.cos(la2) * np.sin((lo2 - lo1) / 2) ** 2
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.minimum(h, 1.0)))


def _frozen(a, dtype) -> np.ndarray:
    a = np.ascontiguousarray(np.asarray(a, dtype=dtype))
    a.setflags(write=False)
    return a


@dataclass(frozen=True, eq=False)
class PairSpace:
    """Geometry and per-unit coefficients from which any pair's cost and workload follow.

    Attributes
    ----------
    unit_lat, unit_lon, rep_lat, rep_lon:
        Degrees.
    cost_per_km:
        ``(num_units,)`` objective per km of distance (potential: currency*km per km).
    hours_fixed, hours_per_km:
        ``(num_units,)`` workload hours per year at distance 0, and added per km.
    unit_pool, rep_pool:
        Integer eligibility pools: a pair is eligible only within one pool (segments).
    max_km:
        Pairs farther apart are not eligible.
    forbidden:
        Sorted codes ``unit * num_reps + rep`` of pairs that are never eligible.
    """

    unit_lat: np.ndarray
    unit_lon: np.ndarray
    rep_lat: np.ndarray
    rep_lon: np.ndarray
    cost_per_km: np.ndarray
    hours_fixed: np.ndarray
    hours_per_km: np.ndarray
    unit_pool: np.ndarray
    rep_pool: np.ndarray
    max_km: float = np.inf
    forbidden: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    def __post_init__(self) -> None:
        for name in ("unit_lat", "unit_lon", "rep_lat", "rep_lon", "cost_per_km"):
            object.__setattr__(self, name, _frozen(getattr(self, name), np.float64))
        for name in ("hours_fixed", "hours_per_km"):
            object.__setattr__(self, name, _frozen(getattr(self, name), np.float64))
        for name in ("unit_pool", "rep_pool"):
            object.__setattr__(self, name, _frozen(getattr(self, name), np.int64))
        object.__setattr__(self, "forbidden", _frozen(np.sort(self.forbidden), np.int64))
        n, r = self.unit_lat.size, self.rep_lat.size
        bad = [
            name
            for name, size in (
                ("unit_lon", n),
                ("cost_per_km", n),
                ("hours_fixed", n),
                ("hours_per_km", n),
                ("unit_pool", n),
                ("rep_lon", r),
                ("rep_pool", r),
            )
            if getattr(self, name).size != size
        ]
        if bad:
            raise ValueError(f"invalid PairSpace: wrong length for {bad}")

    @property
    def num_units(self) -> int:
        return int(self.unit_lat.size)

    @property
    def num_reps(self) -> int:
        return int(self.rep_lat.size)

    def km(self, units: np.ndarray, reps: np.ndarray) -> np.ndarray:
        """Distance of each (unit, rep) pair, km."""
        return haversine_km(
            self.unit_lat[units], self.unit_lon[units], self.rep_lat[reps], self.rep_lon[reps]
        )

    def eligible(self, units: np.ndarray, reps: np.ndarray) -> np.ndarray:
        """Whether each (unit, rep) pair may be a candidate (pool, distance, forbidden)."""
        ok = self.unit_pool[units] == self.rep_pool[reps]
        ok &= self.km(units, reps) <= self.max_km
        if self.forbidden.size:
            ok &= ~np.isin(np.asarray(units, np.int64) * self.num_reps + reps, self.forbidden)
        return ok

    def pair_values(self, units: np.ndarray, reps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Cost and workload hours of each (unit, rep) pair."""
        km = self.km(units, reps)
        return self.cost_per_km[units] * km, self.hours_fixed[units] + self.hours_per_km[units] * km

    def price(
        self,
        unit_measure: np.ndarray,
        band_dual: np.ndarray,
        capacity_dual: np.ndarray,
        threshold: np.ndarray,
        *,
        per_unit: int = 2,
        chunk_pairs: int = 4_000_000,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Eligible pairs whose reduced cost is below each unit's ``threshold``.

        The reduced cost of pair (u, r) is ``cost - sum_m band_dual[r, m] * measure[u, m] -
        capacity_dual[r] * workload``. Returns ``(units, reps, least)``: at most ``per_unit``
        new pairs per unit (the cheapest), and per unit the least reduced cost over every
        eligible pair (``+inf`` for a unit with none), which is what the Lagrangian bound
        over all pairs needs.
        """
        n, r = self.num_units, self.num_reps
        least = np.full(n, np.inf)
        out_u: list[np.ndarray] = []
        out_r: list[np.ndarray] = []
        rep_const = None
        for pool in np.unique(self.rep_pool):
            reps = np.flatnonzero(self.rep_pool == pool)
            units = np.flatnonzero(self.unit_pool == pool)
            step = max(1, chunk_pairs // max(1, reps.size))
            for s in range(0, units.size, step):
                u = units[s : s + step]
                km = haversine_km(
                    self.unit_lat[u, None],
                    self.unit_lon[u, None],
                    self.rep_lat[None, reps],
                    self.rep_lon[None, reps],
                )
                rep_const = unit_measure[u] @ band_dual[reps].T
                rc = (
                    self.cost_per_km[u, None] * km
                    - rep_const
                    - capacity_dual[None, reps]
                    * (self.hours_fixed[u, None] + self.hours_per_km[u, None] * km)
                )
                rc[km > self.max_km] = np.inf
                if self.forbidden.size:
                    codes = u[:, None] * r + reps[None, :]
                    hit = np.isin(codes, self.forbidden)
                    rc[hit] = np.inf
                least[u] = rc.min(axis=1)
                k = min(per_unit, reps.size)
                idx = np.argpartition(rc, k - 1, axis=1)[:, :k]
                vals = np.take_along_axis(rc, idx, axis=1)
                ok = vals < threshold[u, None]
                out_u.append(np.broadcast_to(u[:, None], idx.shape)[ok])
                out_r.append(reps[idx[ok]])
        units = np.concatenate(out_u) if out_u else np.zeros(0, np.int64)
        reps = np.concatenate(out_r) if out_r else np.zeros(0, np.int64)
        return units, reps, least


def with_pairs(problem, space: PairSpace, units: np.ndarray, reps: np.ndarray):
    """The problem with extra candidate pairs (costs and workloads from ``space``)."""
    from dataclasses import replace

    old_u, old_r = problem.pair_unit.astype(np.int64), problem.cand_rep.astype(np.int64)
    cost, work = space.pair_values(units, reps)
    all_u = np.concatenate([old_u, np.asarray(units, np.int64)])
    all_r = np.concatenate([old_r, np.asarray(reps, np.int64)])
    all_c = np.concatenate([problem.pair_cost, cost])
    all_w = np.concatenate([problem.pair_workload_h, work])
    order = np.lexsort((all_r, all_u))
    all_u, all_r, all_c, all_w = all_u[order], all_r[order], all_c[order], all_w[order]
    first = np.r_[True, (np.diff(all_u) != 0) | (np.diff(all_r) != 0)]
    all_u, all_r, all_c, all_w = all_u[first], all_r[first], all_c[first], all_w[first]
    indptr = np.r_[0, np.cumsum(np.bincount(all_u, minlength=problem.num_units))]
    return replace(
        problem, cand_indptr=indptr, cand_rep=all_r, pair_cost=all_c, pair_workload_h=all_w
    )

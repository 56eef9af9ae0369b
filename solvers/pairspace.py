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
from functools import cached_property

import numpy as np

__all__ = ["PairSpace", "haversine_km", "unit_vectors", "with_pairs"]

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
        unit_xyz, rep_xyz = self._xyz
        # The reduced cost, rearranged so that one product of small matrices gives every
        # term that does not depend on distance:
        #   rc = km * (cost_per_km[u] - cap_dual[r] * hours_per_km[u])
        #        - [measure[u], hours_fixed[u]] . [band_dual[r], cap_dual[r]]
        unit_side = np.c_[unit_measure, self.hours_fixed]
        rep_side = np.c_[band_dual, capacity_dual]
        cos_max = np.cos(min(self.max_km / EARTH_RADIUS_KM, np.pi))
        for pool in np.unique(self.rep_pool):
            reps = np.flatnonzero(self.rep_pool == pool)
            units = np.flatnonzero(self.unit_pool == pool)
            step = max(1, chunk_pairs // max(1, reps.size))
            cap = capacity_dual[reps]
            for s in range(0, units.size, step):
                u = units[s : s + step]
                # Great-circle distance from the unit vectors' dot product: one matrix
                # product instead of trigonometry per pair (agrees with haversine_km to
                # well under a metre).
                dot = unit_xyz[u] @ rep_xyz[reps].T
                np.clip(dot, -1.0, 1.0, out=dot)
                far = dot < cos_max if np.isfinite(self.max_km) else None
                rc = np.arccos(dot, out=dot)
                rc *= EARTH_RADIUS_KM
                coef = np.multiply.outer(self.hours_per_km[u], -cap)
                coef += self.cost_per_km[u, None]
                rc *= coef
                rc -= unit_side[u] @ rep_side[reps].T
                if far is not None:
                    rc[far] = np.inf
                if self.forbidden.size:
                    codes = u[:, None] * r + reps[None, :]
                    rc[np.isin(codes, self.forbidden)] = np.inf
                k = min(per_unit, reps.size)
                rows = np.arange(u.size)
                for j in range(k):
                    # k passes of argmin: cheaper than a partition for the one or two
                    # columns wanted; the first pass gives the least reduced cost too.
                    idx = rc.argmin(axis=1)
                    vals = rc[rows, idx]
                    if j == 0:
                        least[u] = vals
                    ok = vals < threshold[u]
                    out_u.append(u[ok])
                    out_r.append(reps[idx[ok]])
                    rc[rows, idx] = np.inf
        units = np.concatenate(out_u) if out_u else np.zeros(0, np.int64)
        reps = np.concatenate(out_r) if out_r else np.zeros(0, np.int64)
        if units.size:
            order = np.lexsort((reps, units))
            units, reps = units[order], reps[order]
        return units, reps, least

    @cached_property
    def _xyz(self) -> tuple[np.ndarray, np.ndarray]:
        """Unit vectors of units and reps, made on the first pricing."""
        return (
            unit_vectors(self.unit_lat, self.unit_lon),
            unit_vectors(self.rep_lat, self.rep_lon),
        )


def unit_vectors(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """``(n, 3)`` points on the unit sphere for degrees ``lat``, ``lon``: their chord order
    is great-circle order (k-d trees), their dot product the cosine of the angle."""
    la, lo = np.radians(lat), np.radians(lon)
    return np.c_[np.cos(la) * np.cos(lo), np.cos(la) * np.sin(lo), np.sin(la)]


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

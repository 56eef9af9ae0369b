"""The unit adjacency graph: queen or rook contiguity, with islands bridged and reported."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import geopandas as gpd
import networkx as nx
import numpy as np

__all__ = ["Bridge", "UnitGraph", "unit_graph"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Bridge:
    """An edge added to join a separate piece (an island, or a unit across water)."""

    unit_a: str
    unit_b: str
    gap_km: float

    def __str__(self) -> str:
        return f"{self.unit_a} - {self.unit_b} ({self.gap_km:.1f} km apart)"


@dataclass(frozen=True, eq=False)
class UnitGraph:
    graph: nx.Graph
    bridges: tuple[Bridge, ...]
    kind: str


def unit_graph(
    projected: gpd.GeoDataFrame,
    *,
    kind: str = "rook",
    snap_m: float = 25.0,
    bridge: bool = True,
) -> UnitGraph:
    """Adjacency of units in a projected CRS (metres), indexed by unit id.

    ``queen``: units sharing at least a point; ``rook``: sharing a border of more than
    ``snap_m`` metres. Borders are compared after growing each unit by ``snap_m`` so
    digitising slivers do not cut real neighbours apart. When the graph has several pieces
    and ``bridge`` is true, each smaller piece is joined to its nearest unit in another piece,
    repeatedly, and every bridge is returned for the report.
    """
    if kind not in ("queen", "rook"):
        raise ValueError(f"kind must be 'queen' or 'rook', got {kind!r}")
    ids = projected.index.to_numpy(str)
    geoms = projected.geometry.reset_index(drop=True)
    grown = gpd.GeoDataFrame(geometry=geoms.buffer(snap_m), crs=projected.crs)
    pairs = gpd.sjoin(grown, grown, predicate="intersects")
    left, right = pairs.index.to_numpy(), pairs["index_right"].to_numpy()
    keep = left < right
    left, right = left[keep], right[keep]
    if kind == "rook" and left.size:
        shared = (
            grown.geometry.iloc[left]
            .reset_index(drop=True)
            .intersection(geoms.boundary.iloc[right].reset_index(drop=True))
            .length.to_numpy()
        )
        keep = shared > 2 * snap_m
        left, right = left[keep], right[keep]
    g = nx.Graph()
    g.add_nodes_from(ids)
    g.add_edges_from(zip(ids[left], ids[right], strict=True))
    bridges: list[Bridge] = []
    if bridge:
        position = {uid: i for i, uid in enumerate(ids)}
        while nx.number_connected_components(g) > 1:
            pieces = sorted(nx.connected_components(g), key=len)
            small = pieces[0]
            rest = [u for piece in pieces[1:] for u in piece]
            a_idx = np.array([position[u] for u in small])
            b_idx = np.array([position[u] for u in rest])
            src = geoms.iloc[a_idx].union_all()
            dist = geoms.iloc[b_idx].distance(src).to_numpy()
            j = int(np.argmin(dist))
            target = geoms.iloc[b_idx[j]]
            near = geoms.iloc[a_idx].distance(target).to_numpy()
            i = int(np.argmin(near))
            b = Bridge(ids[a_idx[i]], ids[b_idx[j]], float(dist[j]) / 1000)
            g.add_edge(b.unit_a, b.unit_b, bridge=True)
            bridges.append(b)
            log.warning("unit graph: bridged %s", b)
    return UnitGraph(g, tuple(bridges), kind)

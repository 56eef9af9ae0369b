"""Distances on the sphere and nearest-rep search."""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from solvers.pairspace import unit_vectors

__all__ = ["EARTH_RADIUS_KM", "haversine_km", "nearest"]

EARTH_RADIUS_KM = 6371.0088


def haversine_km(lat1, lon1, lat2, lon2) -> np.ndarray:
    """Great-circle distance in km between points given in degrees (broadcasting)."""
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dp = p2 - p1
    dl = np.radians(np.asarray(lon2) - np.asarray(lon1))
    h = np.sin(dp / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0)))


def nearest(
    points_lat: np.ndarray,
    points_lon: np.ndarray,
    sites_lat: np.ndarray,
    sites_lon: np.ndarray,
    k: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Indices and km of the ``k`` nearest sites to each point (great circle), nearest first.

    A k-d tree over points on the unit sphere: chord order is great-circle order, and it
    queries a million accounts in about a second where a haversine ball tree took 16 s.
    The km are great-circle distances of the pairs found (:func:`haversine_km`)."""
    points_lat, points_lon = np.asarray(points_lat, float), np.asarray(points_lon, float)
    sites_lat, sites_lon = np.asarray(sites_lat, float), np.asarray(sites_lon, float)
    k = min(k, len(sites_lat))
    tree = cKDTree(unit_vectors(sites_lat, sites_lon))
    _, idx = tree.query(unit_vectors(points_lat, points_lon), k=k)
    idx = np.asarray(idx, dtype=np.int64).reshape(len(points_lat), k)
    dist = haversine_km(points_lat[:, None], points_lon[:, None], sites_lat[idx], sites_lon[idx])
    # Ties in chord length can differ from the haversine order in the last bit: sort by km.
    order = np.argsort(dist, axis=1, kind="stable")
    return np.take_along_axis(idx, order, axis=1), np.take_along_axis(dist, order, axis=1)

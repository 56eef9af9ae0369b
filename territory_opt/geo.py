"""Distances on the sphere and nearest-rep search."""

from __future__ import annotations

import numpy as np
from sklearn.neighbors import BallTree

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
    """Indices and km of the ``k`` nearest sites to each point (great circle), nearest first."""
    k = min(k, len(sites_lat))
    tree = BallTree(np.radians(np.c_[sites_lat, sites_lon]), metric="haversine")
    dist, idx = tree.query(np.radians(np.c_[points_lat, points_lon]), k=k)
    return idx, dist * EARTH_RADIUS_KM

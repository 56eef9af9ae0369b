"""Provenance of every output: inputs' hashes, settings, versions, solver figures."""

from __future__ import annotations

import hashlib
import platform
from importlib import metadata
from pathlib import Path

__all__ = ["sha256_file", "versions"]

_PACKAGES = (
    "territory-opt",
    "ortools",
    "numpy",
    "pandas",
    "scipy",
    "scikit-learn",
    "geopandas",
    "shapely",
    "networkx",
    "matplotlib",
)


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out

"""Provenance of every output: inputs' hashes, settings, versions, solver figures."""

from __future__ import annotations

import hashlib
import platform
from importlib import metadata
from pathlib import Path

import numpy as np

__all__ = ["sha256_file", "versions", "json_default", "finite_or_none", "header"]

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


def json_default(obj):
    """``json.dump``'s fallback for numpy scalars and arrays and paths."""
    if isinstance(obj, np.integer | np.floating | np.bool_):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def finite_or_none(x: float) -> float | None:
    """``x`` as a float, or ``None`` (JSON null) when it is infinite or NaN."""
    return float(x) if np.isfinite(x) else None


def header(config, files: dict) -> dict:
    """What every manifest opens with: versions, time, input hashes, config, seed, workers."""
    from datetime import UTC, datetime

    from . import __version__

    return {
        "territory_opt": __version__,
        "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "inputs": files,
        "config": config.to_dict(),
        "versions": versions(),
        "seed": config.solve.seed,
        "num_workers": config.solve.num_workers,
    }

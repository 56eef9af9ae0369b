"""Where the shipped demo data lives."""

from __future__ import annotations

from pathlib import Path

__all__ = ["demo_dir", "demo_files", "boundaries_path"]

_ROOT = Path(__file__).resolve().parents[1] / "datasets"


def demo_dir() -> Path:
    """The folder with the demo book (``accounts.csv``, ``reps.csv``, ``history.csv``...)."""
    path = _ROOT / "demo"
    if not (path / "accounts.csv").exists():
        raise FileNotFoundError(
            f"demo data not found at {path}; run from a checkout of the repository "
            "(pip install -e .) or regenerate it with python datasets/make_demo.py"
        )
    return path


def demo_files() -> dict[str, Path]:
    d = demo_dir()
    return {name: d / f"{name}.csv" for name in ("accounts", "reps", "history")} | {
        "config": d / "config.toml"
    }


def boundaries_path() -> Path:
    """County polygons of the demo geography (GeoPackage, EPSG:4326)."""
    return _ROOT / "geography" / "ga_counties.gpkg"

"""Derive ``datasets/geography/ga_counties.gpkg`` from libpysal's bundled ``georgia`` example.

Source: ``libpysal.examples.get_path("G_utm.shp")``, the 159 Georgia counties with 1990 US
Census attributes used in Fotheringham, Brunsdon & Charlton (2002), *Geographically Weighted
Regression*. Run from the repository root::

    /tmp/venv/bin/python datasets/make_geography.py

Output: one layer ``ga_counties`` in EPSG:4326 (WGS84 longitude/latitude, degrees) with columns
``unit_id`` (5-digit county FIPS code, str), ``population`` (1990 census residents, int) and
``geometry`` (Polygon/MultiPolygon).

The shapefile ships without a ``.prj``, so its coordinate reference system is established from
the data: :func:`crs_diagnostics` projects the documented county centroids (``Latitude``,
``Longitud``) into each candidate CRS and measures their offset from the polygon centroids.
Findings (printed by this script on every run):

* The grid is UTM zone **16N**, not 17N: eastings run from 627 km to 1,082 km, i.e. east of
  zone 16's central meridian (87 deg W). Read as zone 17N every centroid lands about 562 km east,
  in the Atlantic; read as zone 16N all 159 documented centroids fall inside their own county.
* The datum is **NAD27** (Clarke 1866 ellipsoid), EPSG:26716. Read as NAD83 (EPSG:26916) or WGS84
  (EPSG:32616), which are indistinguishable here (PROJ's NAD83 -> WGS84 step is a null shift,
  and the two differ by about 1 m), the polygon centroids sit a systematic ~205 m south of the
  documented centroids; read as NAD27 that bias vanishes (~4 m). 1990 TIGER/Line, the source of
  1990 census geography, was published in NAD27, which agrees.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyproj
import shapely

logger = logging.getLogger("make_geography")

REPO_ROOT = Path(__file__).resolve().parents[1]
OUT_PATH = REPO_ROOT / "datasets" / "geography" / "ga_counties.gpkg"
LAYER = "ga_counties"

SOURCE_CRS = "EPSG:26716"  # NAD27 / UTM zone 16N, established by crs_diagnostics().
CANDIDATE_CRS = {
    "EPSG:26716": "NAD27 / UTM 16N",
    "EPSG:26916": "NAD83 / UTM 16N",
    "EPSG:32616": "WGS84 / UTM 16N",
    "EPSG:26917": "NAD83 / UTM 17N",
    "EPSG:32617": "WGS84 / UTM 17N",
}

# NAD27 -> WGS84 is pinned to the EPSG:1173 three-parameter shift ("NAD27 to WGS 84 (4)",
# CONUS, stated accuracy 10 m) so that the output does not depend on whether the NADCON grids
# happen to be installed: PROJ would otherwise pick a different operation on each machine.
NAD27_UTM16_TO_WGS84 = (
    "+proj=pipeline"
    " +step +inv +proj=utm +zone=16 +ellps=clrk66"
    " +step +proj=push +v_3"
    " +step +proj=cart +ellps=clrk66"
    " +step +proj=helmert +x=-8 +y=160 +z=176"
    " +step +inv +proj=cart +ellps=WGS84"
    " +step +proj=pop +v_3"
    " +step +proj=unitconvert +xy_in=rad +xy_out=deg"
)

MAX_BYTES = 1_000_000  # simplify only above this size


def read_source() -> gpd.GeoDataFrame:
    """Read the raw libpysal shapefile (no CRS attached)."""
    import libpysal  # optional "data" extra; only this script needs it

    path = libpysal.examples.get_path("G_utm.shp")
    logger.info("reading %s", path)
    return gpd.read_file(path)


def crs_diagnostics(raw: gpd.GeoDataFrame) -> pd.DataFrame:
    """Compare each candidate CRS against the documented county centroids.

    For every candidate, the documented ``Latitude``/``Longitud`` (WGS84 degrees) are projected
    into the candidate's grid and compared with the polygon centroids computed in the file's own
    coordinates. The per-county scatter (~0.3-0.5 km) is common to all candidates because the
    documented centroids were computed from more detailed boundaries; the *systematic* part
    (median east/north offset, m) is what identifies zone and datum.

    Returns one row per candidate with ``median_east_m``, ``median_north_m``, ``bias_m`` (length
    of the median offset vector), ``median_dist_m`` and ``own_county`` (documented centroids
    that fall inside their own county polygon, out of 159).
    """
    centroids = raw.geometry.centroid
    rows = []
    for code, name in CANDIDATE_CRS.items():
        to_grid = pyproj.Transformer.from_crs("EPSG:4326", code, always_xy=True)
        x, y = to_grid.transform(raw["Longitud"].to_numpy(), raw["Latitude"].to_numpy())
        d_east = centroids.x.to_numpy() - x
        d_north = centroids.y.to_numpy() - y
        inside = shapely.contains_xy(raw.geometry.to_numpy(), x, y)
        rows.append(
            {
                "crs": code,
                "name": name,
                "median_east_m": float(np.median(d_east)),
                "median_north_m": float(np.median(d_north)),
                "bias_m": float(np.hypot(np.median(d_east), np.median(d_north))),
                "median_dist_m": float(np.median(np.hypot(d_east, d_north))),
                "own_county": int(inside.sum()),
            }
        )
    return pd.DataFrame(rows).set_index("crs")


def to_wgs84(geometry: np.ndarray) -> np.ndarray:
    """Reproject NAD27 / UTM 16N geometries to WGS84 lon/lat with the pinned pipeline."""
    transformer = pyproj.Transformer.from_pipeline(NAD27_UTM16_TO_WGS84)

    def _apply(coords: np.ndarray) -> np.ndarray:
        lon, lat = transformer.transform(coords[:, 0], coords[:, 1])
        return np.column_stack([lon, lat])

    return shapely.transform(geometry, _apply)


def build(raw: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Return the ``unit_id``/``population``/``geometry`` layer in EPSG:4326."""
    geometry = to_wgs84(raw.geometry.to_numpy())
    invalid = ~shapely.is_valid(geometry)
    if invalid.any():
        # Reprojection can in principle create self-touching rings; repair rather than ship.
        logger.warning(
            "repairing %d invalid geometries: %s",
            invalid.sum(),
            list(raw.loc[invalid, "AreaKey"]),
        )
        geometry[invalid] = shapely.make_valid(geometry[invalid])
    else:
        logger.info("all %d geometries valid after reprojection; nothing repaired", len(raw))
    out = gpd.GeoDataFrame(
        {
            "unit_id": raw["AreaKey"].astype(int).map("{:05d}".format).astype(str),
            "population": raw["TotPop90"].astype("int64"),
        },
        geometry=geometry,
        crs="EPSG:4326",
    )
    out = out.sort_values("unit_id", ignore_index=True)
    problems = []
    if out["unit_id"].duplicated().any():
        problems.append("duplicate unit_id")
    if not out["unit_id"].str.fullmatch(r"13\d{3}").all():
        problems.append("unit_id is not a Georgia (13xxx) county FIPS code")
    if (out["population"] <= 0).any():
        problems.append("non-positive population")
    if not out.is_valid.all():
        problems.append("invalid geometry left after repair")
    if problems:
        raise ValueError("ga_counties failed checks: " + "; ".join(problems))
    return out


def write(gdf: gpd.GeoDataFrame, path: Path = OUT_PATH) -> None:
    """Write the layer, simplifying (topology-preserving) only if the file exceeds 1 MB."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    gdf.to_file(path, layer=LAYER, driver="GPKG")
    size = path.stat().st_size
    if size > MAX_BYTES:
        # coverage_simplify moves shared edges once, so neighbouring counties stay gap-free.
        gdf = gdf.set_geometry(shapely.coverage_simplify(gdf.geometry.to_numpy(), 1e-3))
        path.unlink()
        gdf.to_file(path, layer=LAYER, driver="GPKG")
        logger.info("simplified: %d -> %d bytes", size, path.stat().st_size)
        size = path.stat().st_size
    logger.info("wrote %s (%d counties, %d bytes)", path, len(gdf), size)


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    raw = read_source()
    logger.info("source: %d counties, CRS in file: %s", len(raw), raw.crs)
    diag = crs_diagnostics(raw)
    logger.info("CRS candidates vs documented centroids:\n%s", diag.round(1).to_string())
    best = diag["bias_m"].idxmin()
    if best != SOURCE_CRS or diag.loc[SOURCE_CRS, "own_county"] != len(raw):
        raise RuntimeError(f"expected {SOURCE_CRS} to fit best, data say {best}")
    gdf = build(raw)
    write(gdf)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Geographic units (ZIP codes, counties, bricks): loading, checks, accounts joined to units.

Geometry is read with pyogrio (GeoPackage, GeoJSON, Shapefile). Areas, lengths and distances
are computed in a projected CRS, the UTM zone of the units' centre unless given.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from .errors import InputError, InputProblem

__all__ = ["Units", "load_units", "join_accounts", "polsby_popper"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class Units:
    """Validated units: ``frame`` in its source CRS (indexed by ``unit_id``) and ``projected``
    in the metric CRS used for areas, lengths and distances (metres), which ``crs_note``
    names."""

    frame: gpd.GeoDataFrame
    projected: gpd.GeoDataFrame
    crs_note: str
    repaired: tuple[str, ...] = ()

    @property
    def ids(self) -> np.ndarray:
        return self.frame.index.to_numpy(str)


def load_units(
    source: str | Path | gpd.GeoDataFrame,
    *,
    id_col: str = "unit_id",
    repair: bool = False,
    projected_crs=None,
) -> Units:
    """Read and check unit polygons; every problem is reported at once.

    Invalid geometries are listed with shapely's reason, and repaired with ``make_valid``
    only when ``repair`` is true (each repair is reported). A missing CRS is an error: the
    fix is to set it in the file.
    """
    name = "units" if isinstance(source, gpd.GeoDataFrame) else str(source)
    if isinstance(source, gpd.GeoDataFrame):
        gdf = source.copy()
    else:
        path = Path(source)
        if not path.exists():
            raise InputError([InputProblem(name, "file not found", "check the path")])
        gdf = gpd.read_file(path, engine="pyogrio")
    problems: list[InputProblem] = []
    if id_col not in gdf.columns:
        problems.append(
            InputProblem(
                name,
                f"no '{id_col}' column (columns: {', '.join(map(str, gdf.columns))})",
                f"add a '{id_col}' column or pass id_col",
                column=id_col,
            )
        )
    if gdf.crs is None:
        problems.append(
            InputProblem(
                name,
                "no coordinate reference system",
                "save the file with its CRS (e.g. EPSG:4326)",
            )
        )
    if problems:
        raise InputError(problems)
    gdf[id_col] = gdf[id_col].astype(str)
    dup = gdf[id_col].duplicated()
    for i in np.flatnonzero(dup.to_numpy())[:20]:
        problems.append(
            InputProblem(
                name,
                f"duplicate unit id '{gdf[id_col].iloc[i]}'",
                "make unit ids unique",
                row=int(i) + 1,
                column=id_col,
            )
        )
    empty = gdf.geometry.is_empty | gdf.geometry.isna()
    for i in np.flatnonzero(empty.to_numpy())[:20]:
        problems.append(
            InputProblem(
                name,
                f"unit '{gdf[id_col].iloc[i]}' has no geometry",
                "give it a polygon or drop it",
                row=int(i) + 1,
                column="geometry",
            )
        )
    repaired: list[str] = []
    invalid = ~gdf.geometry.is_valid & ~empty
    for i in np.flatnonzero(invalid.to_numpy()):
        reason = shapely.is_valid_reason(gdf.geometry.iloc[i])
        uid = gdf[id_col].iloc[i]
        if repair:
            repaired.append(f"unit '{uid}': {reason}; repaired with make_valid")
        elif len(problems) < 50:
            problems.append(
                InputProblem(
                    name,
                    f"unit '{uid}' has an invalid geometry ({reason})",
                    "fix it in GIS, or pass repair=True / --repair to apply make_valid",
                    row=int(i) + 1,
                    column="geometry",
                )
            )
    if problems:
        raise InputError(problems)
    if repaired:
        gdf.loc[invalid, "geometry"] = shapely.make_valid(gdf.geometry[invalid].to_numpy())
        for line in repaired:
            log.warning("%s", line)
    gdf = gdf.set_index(id_col, drop=False)
    gdf.index.name = None
    crs = projected_crs or gdf.to_crs(4326).estimate_utm_crs()
    projected = gdf.to_crs(crs)
    note = f"{crs.name if hasattr(crs, 'name') else crs} (EPSG:{projected.crs.to_epsg()})"
    return Units(gdf, projected, note, tuple(repaired))


def join_accounts(accounts: pd.DataFrame, units: Units, *, unit_col: str = "unit_id") -> pd.Series:
    """The unit of each account: its ``unit_col`` when present, else point-in-polygon.

    Accounts outside every unit, or naming an unknown unit, are an error listing the rows;
    nothing is dropped silently. A point on a shared border goes to the first unit found.
    """
    problems: list[InputProblem] = []
    if unit_col in accounts.columns:
        uid = accounts[unit_col].astype(str)
        bad = ~uid.isin(set(units.ids))
        for i in np.flatnonzero(bad.to_numpy())[:20]:
            problems.append(
                InputProblem(
                    "accounts",
                    f"unknown unit '{uid.iloc[i]}'",
                    "use a unit_id from the units file",
                    row=int(i) + 1,
                    column=unit_col,
                )
            )
        if problems:
            raise InputError(problems)
        return pd.Series(uid.to_numpy(), index=accounts.index, name="unit_id")
    pts = gpd.GeoDataFrame(
        {"_row": np.arange(len(accounts))},
        geometry=gpd.points_from_xy(accounts["lon"], accounts["lat"]),
        crs=4326,
    ).to_crs(units.frame.crs)
    hits = gpd.sjoin(pts, units.frame[["geometry"]], how="left", predicate="intersects")
    hits = hits[~hits["_row"].duplicated(keep="first")]
    unit = hits["index_right"].to_numpy()
    outside = pd.isna(unit)
    for i in np.flatnonzero(outside)[:20]:
        problems.append(
            InputProblem(
                "accounts",
                f"account '{accounts.index[i]}' at ({accounts['lat'].iloc[i]:.5f}, "
                f"{accounts['lon'].iloc[i]:.5f}) falls in no unit",
                "fix its coordinates, give it a unit_id, or add the missing unit",
                row=int(i) + 1,
                column="lat",
            )
        )
    if outside.sum() > 20:
        problems.append(
            InputProblem(
                "accounts", f"{int(outside.sum()) - 20} more account(s) fall in no unit", "as above"
            )
        )
    if problems:
        raise InputError(problems)
    return pd.Series(unit.astype(str), index=accounts.index, name="unit_id")


def polsby_popper(geoms: gpd.GeoSeries) -> np.ndarray:
    """Compactness 4 pi area / perimeter^2 (1 for a disc), in a projected CRS."""
    area = geoms.area.to_numpy()
    perim = geoms.length.to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(perim > 0, 4 * np.pi * area / perim**2, 0.0)


def hex_units(outline: gpd.GeoDataFrame, cell_km: float, *, prefix: str = "H") -> gpd.GeoDataFrame:
    """Hexagonal cells of ``cell_km`` (flat-to-flat) covering ``outline``, clipped to it.

    A stand-in for ZIP-code-like units where only coarser real boundaries are at hand:
    the outline (for example the union of real county polygons) stays exact; the cells are
    derived. Returns a GeoDataFrame in ``outline``'s CRS with ``unit_id`` = prefix + number,
    numbered west to east, then south to north, for stable ids.
    """
    crs = outline.crs
    metric = outline.to_crs(outline.to_crs(4326).estimate_utm_crs())
    shape = metric.union_all()
    minx, miny, maxx, maxy = shape.bounds
    r = cell_km * 1000 / np.sqrt(3)  # circumradius from the flat-to-flat width
    w, h = np.sqrt(3) * r, 1.5 * r
    rows = np.arange(miny - r, maxy + r, h)
    cells = []
    for k, y in enumerate(rows):
        xs = np.arange(minx - w, maxx + w, w) + (w / 2 if k % 2 else 0.0)
        angles = np.radians(np.arange(6) * 60 + 30)
        for x in xs:
            cells.append(shapely.Polygon(np.c_[x + r * np.cos(angles), y + r * np.sin(angles)]))
    grid = gpd.GeoDataFrame(geometry=cells, crs=metric.crs)
    grid = grid[grid.intersects(shape)].copy()
    grid["geometry"] = grid.intersection(shape)
    # Slivers at the outline stay as units of their own: dropping them would orphan the
    # accounts inside them.
    grid = grid[~grid.is_empty].explode(index_parts=False)
    c = grid.centroid
    grid = grid.iloc[np.lexsort((c.x.to_numpy(), c.y.to_numpy()))].reset_index(drop=True)
    grid.insert(0, "unit_id", [f"{prefix}{i:05d}" for i in range(len(grid))])
    return grid.to_crs(crs)


def quadtree_units(
    outline: gpd.GeoDataFrame,
    lon: np.ndarray,
    lat: np.ndarray,
    *,
    max_points: int = 40,
    min_km: float = 2.0,
    max_km: float = 32.0,
    prefix: str = "Q",
) -> gpd.GeoDataFrame:
    """Square cells, halved until each holds at most ``max_points`` of the given points
    (WGS84 ``lon``/``lat``) or is ``min_km`` wide, clipped to ``outline``.

    Like ZIP codes, the cells are small where accounts are dense and large where they are
    sparse, so a territory can be balanced from whole cells even around a big city. Cells of
    different sizes meet at T-junctions, so they are returned in the metric CRS they were cut
    in (the outline's UTM zone): reprojecting them vertex by vertex would open hairline gaps.
    The outline is grown by 100 m so points on its edge stay inside a cell. ``unit_id`` =
    prefix + number, numbered south to north, then west to east.
    """
    crs = outline.to_crs(4326).estimate_utm_crs()
    shape = outline.to_crs(crs).union_all().buffer(100.0)
    pts = gpd.GeoSeries(gpd.points_from_xy(lon, lat), crs=4326).to_crs(crs)
    x, y = pts.x.to_numpy(), pts.y.to_numpy()
    minx, miny, maxx, maxy = shape.bounds
    top = max_km * 1000
    stack = [
        (x0, y0, top) for x0 in np.arange(minx, maxx, top) for y0 in np.arange(miny, maxy, top)
    ]
    cells = []
    while stack:
        x0, y0, size = stack.pop()
        inside = (x >= x0) & (x < x0 + size) & (y >= y0) & (y < y0 + size)
        half = size / 2
        if inside.sum() > max_points and half >= min_km * 1000:
            stack += [(x0, y0, half), (x0 + half, y0, half), (x0, y0 + half, half)]
            stack.append((x0 + half, y0 + half, half))
        else:
            cells.append(shapely.box(x0, y0, x0 + size, y0 + size))
    grid = gpd.GeoDataFrame(geometry=cells, crs=crs)
    grid = grid[grid.intersects(shape)].copy()
    grid["geometry"] = grid.intersection(shape)
    grid = grid[~grid.is_empty].explode(index_parts=False)
    c = grid.centroid
    grid = grid.iloc[np.lexsort((c.x.to_numpy(), c.y.to_numpy()))].reset_index(drop=True)
    grid.insert(0, "unit_id", [f"{prefix}{i:05d}" for i in range(len(grid))])
    return grid

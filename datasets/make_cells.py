"""Density-adaptive cells over Georgia for unit plans: ``geography/ga_cells.gpkg``.

Square cells are cut from the outline of the 159 real counties (``ga_counties.gpkg``) and
halved until each holds at most 40 demo accounts or is 2 km wide (``quadtree_units``), so
cells are small in Atlanta and large in the countryside, as ZIP codes are. Uniform cells do
not work for this book: one Atlanta county holds 8x a commercial rep's target potential and
the densest 8 km hexagon over half of one. The file is in the UTM zone the cells were cut in
(WGS 84 / UTM 17N) because cells of different sizes meet at T-junctions.

    python datasets/make_cells.py
"""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import pandas as pd

from territory_opt.units import quadtree_units

HERE = Path(__file__).resolve().parent


def main() -> None:
    counties = gpd.read_file(HERE / "geography" / "ga_counties.gpkg")
    accounts = pd.read_csv(HERE / "demo" / "accounts.csv", usecols=["lon", "lat"])
    cells = quadtree_units(
        counties, accounts["lon"].to_numpy(), accounts["lat"].to_numpy(), max_points=40
    )
    out = HERE / "geography" / "ga_cells.gpkg"
    cells.to_file(out, layer="ga_cells", engine="pyogrio")
    print(f"wrote {out}: {len(cells)} cells, CRS {cells.crs.name}")


if __name__ == "__main__":
    main()

"""Geographic units and their adjacency graph, on hand-drawn squares (metres, UTM 17N)."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from territory_opt.adjacency import unit_graph
from territory_opt.errors import InputError
from territory_opt.units import hex_units, join_accounts, load_units, polsby_popper

UTM = "EPSG:32617"
X0, Y0 = 500_000.0, 3_700_000.0  # near Georgia, so lat/lon round trips are ordinary


def _square(i: int, j: int, size: float = 1000.0) -> shapely.Polygon:
    return shapely.box(X0 + i * size, Y0 + j * size, X0 + (i + 1) * size, Y0 + (j + 1) * size)


def _grid(cells: dict[str, tuple[int, int]]) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {"unit_id": list(cells)}, geometry=[_square(*c) for c in cells.values()], crs=UTM
    )


def test_rook_and_queen_differ_on_corners():
    """Four 1 km squares::

        c d
        a b

    rook: a-b, a-c, b-d, c-d; queen adds the diagonals a-d and b-c.
    """
    units = load_units(_grid({"a": (0, 0), "b": (1, 0), "c": (0, 1), "d": (1, 1)}))
    rook = unit_graph(units.projected, kind="rook").graph
    queen = unit_graph(units.projected, kind="queen").graph
    assert {frozenset(e) for e in rook.edges} == {
        frozenset(p) for p in (("a", "b"), ("a", "c"), ("b", "d"), ("c", "d"))
    }
    assert queen.number_of_edges() == 6


def test_an_island_is_bridged_to_its_nearest_unit_and_reported():
    """``a b`` touch; ``z`` lies 3 km east of ``b``: one bridge b-z of about 3 km."""
    units = load_units(_grid({"a": (0, 0), "b": (1, 0), "z": (5, 0)}))
    g = unit_graph(units.projected, kind="rook")
    assert len(g.bridges) == 1
    bridge = g.bridges[0]
    assert {bridge.unit_a, bridge.unit_b} == {"b", "z"}
    assert bridge.gap_km == pytest.approx(3.0, rel=1e-6)
    assert g.graph.has_edge("b", "z")


def test_unbridged_graph_keeps_its_pieces():
    units = load_units(_grid({"a": (0, 0), "z": (5, 0)}))
    g = unit_graph(units.projected, bridge=False)
    assert g.bridges == ()
    assert g.graph.number_of_edges() == 0


def test_missing_crs_and_id_column_are_reported_together():
    gdf = gpd.GeoDataFrame({"name": ["a"]}, geometry=[_square(0, 0)])
    with pytest.raises(InputError) as info:
        load_units(gdf)
    text = str(info.value)
    assert "no 'unit_id' column" in text and "no coordinate reference system" in text


def test_invalid_geometry_listed_then_repaired_on_request():
    bowtie = shapely.Polygon([(X0, Y0), (X0 + 1000, Y0 + 1000), (X0 + 1000, Y0), (X0, Y0 + 1000)])
    gdf = gpd.GeoDataFrame({"unit_id": ["bow", "ok"]}, geometry=[bowtie, _square(3, 3)], crs=UTM)
    with pytest.raises(InputError, match=r"unit 'bow' has an invalid geometry \(Self-intersection"):
        load_units(gdf)
    units = load_units(gdf, repair=True)
    assert units.frame.geometry.is_valid.all()
    assert len(units.repaired) == 1 and "bow" in units.repaired[0]


def test_duplicate_unit_ids_are_an_error():
    with pytest.raises(InputError, match="duplicate unit id 'a'"):
        load_units(_grid({"a": (0, 0)}).pipe(lambda g: pd.concat([g, g], ignore_index=True)))


def test_accounts_join_by_point_and_outsiders_are_named():
    units = load_units(_grid({"a": (0, 0), "b": (1, 0)}))
    centres = units.frame.geometry.centroid.to_crs(4326)
    accounts = pd.DataFrame(
        {
            "lat": [centres.y.iloc[0], centres.y.iloc[1]],
            "lon": [centres.x.iloc[0], centres.x.iloc[1]],
        },
        index=pd.Index(["x1", "x2"], name="account_id"),
    )
    assert list(join_accounts(accounts, units)) == ["a", "b"]
    far = pd.concat([accounts, pd.DataFrame({"lat": [0.0], "lon": [0.0]}, index=["x3"])])
    with pytest.raises(
        InputError, match=r"row 3, column 'lat': account 'x3' at .* falls in no unit"
    ):
        join_accounts(far, units)


def test_accounts_join_by_unit_id_column_checks_ids():
    units = load_units(_grid({"a": (0, 0)}))
    accounts = pd.DataFrame({"unit_id": ["a", "q"], "lat": [0, 0], "lon": [0, 0]})
    with pytest.raises(InputError, match="row 2, column 'unit_id': unknown unit 'q'"):
        join_accounts(accounts, units)


def test_hex_units_cover_the_outline_exactly():
    outline = _grid({"a": (0, 0), "b": (1, 0), "c": (0, 1), "d": (1, 1)})
    cells = hex_units(outline, cell_km=0.5)
    assert cells["unit_id"].is_unique
    assert cells.geometry.is_valid.all()
    assert cells.to_crs(UTM).area.sum() == pytest.approx(4e6, rel=1e-6)
    assert cells.union_all().symmetric_difference(outline.union_all()).area < 1.0


def test_polsby_popper_of_a_square_is_pi_over_four():
    pp = polsby_popper(gpd.GeoSeries([_square(0, 0)], crs=UTM))
    assert pp[0] == pytest.approx(np.pi / 4)


def test_nearest_sites_match_a_brute_force_great_circle_search():
    """The k-d tree over unit vectors finds the same k nearest sites, in the same order
    and at the same km, as ranking every site by haversine distance (points spread over
    the lower 48 and across the antimeridian, where planar lon/lat would mislead)."""
    from territory_opt.geo import haversine_km, nearest

    rng = np.random.default_rng(5)
    lat = np.r_[rng.uniform(25, 49, 300), rng.uniform(50, 60, 50)]
    lon = np.r_[
        rng.uniform(-124, -67, 300), rng.uniform(170, 190, 50) - 360 * (rng.random(50) < 0.5)
    ]
    slat = np.r_[rng.uniform(25, 49, 40), rng.uniform(50, 60, 10)]
    slon = np.r_[rng.uniform(-124, -67, 40), rng.uniform(175, 185, 10)]
    idx, km = nearest(lat, lon, slat, slon, 6)
    every = haversine_km(lat[:, None], lon[:, None], slat[None, :], slon[None, :])
    order = np.argsort(every, axis=1, kind="stable")[:, :6]
    np.testing.assert_allclose(km, np.take_along_axis(every, order, axis=1), rtol=1e-12)
    np.testing.assert_array_equal(idx, order)
    # k above the number of sites gives every site.
    idx_all, _ = nearest(lat[:3], lon[:3], slat[:4], slon[:4], 10)
    assert idx_all.shape == (3, 4)

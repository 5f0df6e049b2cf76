"""Unit-grid generation on small metric polygons near Yanggu (EPSG:4548 coordinates)."""

from __future__ import annotations

import time

import numpy as np
import pytest
import shapely
from shapely.geometry import MultiPolygon, Point, Polygon, box

from gis_platform.errors import ValidationError
from grids.coding import GridCodeLayout
from grids.generate import GeneratedCell, UnitSpec, generate_cells, require_metric_crs

# A grid-aligned origin inside EPSG:4548's area of use (Yanggu is around x 390 km, y 4 000 km).
X0, Y0 = 390_000.0, 4_000_000.0
UNIT = "371521001"


def unit(geometry: Polygon | MultiPolygon, size: float = 100.0, code: str = UNIT) -> UnitSpec:
    return UnitSpec(code=code, geometry=geometry, cell_size_m=size)


def union_area(cells: list[GeneratedCell]) -> float:
    return shapely.union_all([cell.geometry for cell in cells]).area


def assert_exact_cover(cells: list[GeneratedCell], geometry: Polygon | MultiPolygon) -> None:
    total = sum(cell.area_m2 for cell in cells)
    # No overlaps: the parts add up to their union; no gaps: the union is the unit.
    assert total == pytest.approx(union_area(cells), rel=1e-9)
    assert total == pytest.approx(geometry.area, rel=1e-4)
    union = shapely.union_all([c.geometry for c in cells])
    assert shapely.symmetric_difference(union, geometry).area < 1e-4 * geometry.area


def test_numbering_runs_west_to_east_then_north_to_south() -> None:
    cells = generate_cells([unit(box(X0, Y0, X0 + 300, Y0 + 200))])
    assert [cell.seq for cell in cells] == [1, 2, 3, 4, 5, 6]
    assert {cell.community for cell in cells} == {1}
    assert [cell.code for cell in cells] == [f"3715210010010{s}" for s in range(1, 7)]
    centroids = [cell.geometry.centroid for cell in cells]
    # Row 1 is the northern row, read west to east; row 2 is the southern row.
    assert [(round(p.x - X0), round(p.y - Y0)) for p in centroids] == [
        (50, 150), (150, 150), (250, 150), (50, 50), (150, 50), (250, 50),
    ]
    assert all(isinstance(cell.geometry, MultiPolygon) for cell in cells)
    assert all(cell.area_m2 == pytest.approx(10_000.0) for cell in cells)
    assert all(cell.unit_code == UNIT for cell in cells)


def test_communities_are_blocks_numbered_west_to_east_north_to_south() -> None:
    # A 1-digit sequence allows 9 cells per community: blocks of 3 x 3 cells.
    layout = GridCodeLayout(sequence_digits=1)
    cells = generate_cells([unit(box(X0, Y0, X0 + 600, Y0 + 600))], layout=layout)
    assert len(cells) == 36
    by_community: dict[int, list[GeneratedCell]] = {}
    for cell in cells:
        by_community.setdefault(cell.community, []).append(cell)
    assert sorted(by_community) == [1, 2, 3, 4]
    corners = {n: shapely.union_all([c.geometry for c in group]).bounds for n, group in by_community.items()}
    assert corners[1] == (X0, Y0 + 300, X0 + 300, Y0 + 600)  # north-west
    assert corners[2] == (X0 + 300, Y0 + 300, X0 + 600, Y0 + 600)  # north-east
    assert corners[3] == (X0, Y0, X0 + 300, Y0 + 300)  # south-west
    assert corners[4] == (X0 + 300, Y0, X0 + 600, Y0 + 300)  # south-east
    for group in by_community.values():
        assert [c.seq for c in group] == list(range(1, 10))
    first_block = by_community[1]
    assert first_block[0].geometry.centroid.equals(Point(X0 + 50, Y0 + 550))
    assert first_block[3].geometry.centroid.equals(Point(X0 + 50, Y0 + 450))
    assert cells[0].code == "3715210010011"


def test_cells_align_to_global_origin_and_cover_unit_exactly() -> None:
    geometry = box(X0 + 37, Y0 + 12, X0 + 1_234, Y0 + 987)
    cells = generate_cells([unit(geometry)])
    assert_exact_cover(cells, geometry)
    xs = np.unique(shapely.get_coordinates([c.geometry for c in cells])[:, 0])
    interior = xs[(xs > geometry.bounds[0]) & (xs < geometry.bounds[2])]
    assert np.allclose(interior % 100.0, 0.0)


def test_neighbouring_units_share_grid_lines() -> None:
    west = box(X0, Y0, X0 + 450, Y0 + 400)
    east = box(X0 + 450, Y0, X0 + 1000, Y0 + 400)
    cells = generate_cells([unit(west), unit(east, code="371521002")])
    assert {c.unit_code for c in cells} == {"371521001", "371521002"}
    assert_exact_cover(cells, shapely.union(west, east))
    # The half cells on either side of the border sit in the same grid column.
    west_edge = [c for c in cells if c.unit_code == "371521001" and c.geometry.bounds[2] == X0 + 450]
    east_edge = [c for c in cells if c.unit_code == "371521002" and c.geometry.bounds[0] == X0 + 450]
    assert {c.geometry.bounds[0] for c in west_edge} == {X0 + 400}
    assert {c.geometry.bounds[2] for c in east_edge} == {X0 + 500}


def test_codes_unique_and_cover_exact_on_a_disc() -> None:
    disc = Point(X0 + 2_345, Y0 + 1_234).buffer(1_500, quad_segs=32)
    cells = generate_cells([unit(disc)])
    assert len({c.code for c in cells}) == len(cells)
    assert_exact_cover(cells, disc)
    assert all(c.area_m2 >= 0.05 * 10_000 for c in cells)


def test_polygon_with_a_hole() -> None:
    outer = box(X0, Y0, X0 + 1_000, Y0 + 1_000)
    hole = box(X0 + 333, Y0 + 333, X0 + 666, Y0 + 666)
    geometry = shapely.difference(outer, hole)
    assert len(geometry.interiors) == 1
    cells = generate_cells([unit(geometry)])
    assert_exact_cover(cells, geometry)
    assert sum(shapely.intersection(c.geometry, hole).area for c in cells) == pytest.approx(0.0, abs=1e-6)
    assert len({c.code for c in cells}) == len(cells)


def test_slivers_merge_into_the_neighbour_with_the_longest_border() -> None:
    # The fourth column is 2 m wide: 2% of a cell, under the 5% default.
    geometry = box(X0, Y0, X0 + 302, Y0 + 100)
    cells = generate_cells([unit(geometry)])
    assert [round(c.area_m2) for c in cells] == [10_000, 10_000, 10_200]
    assert cells[-1].geometry.bounds == (X0 + 200, Y0, X0 + 302, Y0 + 100)
    assert len(cells[-1].geometry.geoms) == 1
    assert_exact_cover(cells, geometry)


def test_a_run_of_slivers_merges_over_rounds() -> None:
    # The 2 m strip north of the sliver column touches no full cell until that column has merged.
    geometry = shapely.union_all([box(X0, Y0, X0 + 302, Y0 + 100), box(X0 + 300, Y0 + 100, X0 + 302, Y0 + 200)])
    cells = generate_cells([unit(geometry)])
    assert [round(c.area_m2) for c in cells] == [10_000, 10_000, 10_400]
    assert len(cells[-1].geometry.geoms) == 1
    assert_exact_cover(cells, geometry)


def test_sliver_fraction_is_configurable() -> None:
    geometry = box(X0, Y0, X0 + 302, Y0 + 100)
    assert len(generate_cells([unit(geometry)], sliver_fraction=0.0)) == 4
    assert len(generate_cells([unit(geometry)], sliver_fraction=0.5)) == 3


@pytest.mark.parametrize(
    ("sliver", "expected_home"),
    [
        # 10 m wide, 30 m tall: 30 m of border with the cell to the west, 10 m with the one to the south.
        (box(X0 + 100, Y0 + 100, X0 + 110, Y0 + 130), (X0, Y0 + 100)),
        # 30 m wide, 10 m tall: the southern border is the longer one.
        (box(X0 + 100, Y0 + 100, X0 + 130, Y0 + 110), (X0 + 100, Y0)),
    ],
)
def test_sliver_goes_to_the_neighbour_with_the_longer_border(
    sliver: Polygon, expected_home: tuple[float, float]
) -> None:
    # An L of three full cells, with a 300 m² piece in the fourth square touching two of them.
    geometry = shapely.union_all([box(X0, Y0, X0 + 200, Y0 + 100), box(X0, Y0 + 100, X0 + 100, Y0 + 200), sliver])
    cells = generate_cells([unit(geometry)])
    assert len(cells) == 3
    assert_exact_cover(cells, geometry)
    grown = [c for c in cells if c.area_m2 > 10_000.0 + 1]
    assert len(grown) == 1 and grown[0].area_m2 == pytest.approx(10_300.0)
    assert grown[0].geometry.bounds[:2] == expected_home


def test_isolated_sliver_is_kept() -> None:
    island = box(X0 + 5_003, Y0 + 5_003, X0 + 5_006, Y0 + 5_006)
    geometry = MultiPolygon([box(X0, Y0, X0 + 200, Y0 + 100), island])
    cells = generate_cells([unit(geometry)])
    assert len(cells) == 3
    assert any(c.area_m2 == pytest.approx(9.0) for c in cells)
    assert_exact_cover(cells, geometry)


def test_generation_is_deterministic() -> None:
    disc = Point(X0 + 777, Y0 + 333).buffer(900)
    assert generate_cells([unit(disc)]) == generate_cells([unit(disc)])


def test_ten_thousand_cells_in_a_few_seconds() -> None:
    disc = Point(X0 + 6_000, Y0 + 6_000).buffer(5_700, quad_segs=64)
    started = time.perf_counter()
    cells = generate_cells([unit(disc)])
    elapsed = time.perf_counter() - started
    assert len(cells) > 10_000
    assert len({c.code for c in cells}) == len(cells)
    print(f"generated in {elapsed:.1f} s")  # speed is measured in bench/, not asserted here


def test_three_digit_sequence_layout() -> None:
    layout = GridCodeLayout.from_string("6+3+3+3")
    cells = generate_cells([unit(box(X0, Y0, X0 + 3_200, Y0 + 3_200))], layout=layout)
    assert all(len(c.code) == 15 for c in cells)
    assert max(c.seq for c in cells) == 31 * 31
    assert len({c.community for c in cells}) == 4


@pytest.mark.parametrize("crs", ["EPSG:4326", "EPSG:4490", "EPSG:2263", "not a crs"])
def test_non_metric_crs_is_rejected(crs: str) -> None:
    with pytest.raises(ValidationError) as caught:
        generate_cells([unit(box(X0, Y0, X0 + 100, Y0 + 100))], crs=crs)
    assert [e.field for e in caught.value.errors] == ["crs"]
    with pytest.raises(ValidationError):
        require_metric_crs(crs)


def test_geometry_in_degrees_is_rejected_as_a_crs_mismatch() -> None:
    in_degrees = box(115.78, 36.10, 115.80, 36.12)
    with pytest.raises(ValidationError) as caught:
        generate_cells([unit(in_degrees, size=0.001)])
    assert "area of use" in caught.value.detail


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        (UnitSpec("371522001", box(X0, Y0, X0 + 100, Y0 + 100), 100.0), "units[0].code"),
        (UnitSpec("37152100", box(X0, Y0, X0 + 100, Y0 + 100), 100.0), "units[0].code"),
        (UnitSpec(UNIT, box(X0, Y0, X0 + 100, Y0 + 100), 0.0), "units[0].cell_size_m"),
        (UnitSpec(UNIT, Polygon([(X0, Y0), (X0 + 100, Y0 + 100), (X0 + 100, Y0), (X0, Y0 + 100)]), 100.0),
         "units[0].geometry"),
        (UnitSpec(UNIT, Polygon(), 100.0), "units[0].geometry"),
    ],
)
def test_bad_units_are_rejected(spec: UnitSpec, field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        generate_cells([spec])
    assert [e.field for e in caught.value.errors] == [field]


def test_duplicate_unit_codes_are_rejected() -> None:
    square = box(X0, Y0, X0 + 100, Y0 + 100)
    with pytest.raises(ValidationError) as caught:
        generate_cells([unit(square), unit(square)])
    assert [e.field for e in caught.value.errors] == ["units"]


def test_too_many_communities_for_the_layout() -> None:
    layout = GridCodeLayout(community_digits=1, sequence_digits=1)  # 9 blocks of 3 x 3 cells
    with pytest.raises(ValidationError) as caught:
        generate_cells([unit(box(X0, Y0, X0 + 1_000, Y0 + 1_000))], layout=layout)
    assert [e.field for e in caught.value.errors] == ["layout"]

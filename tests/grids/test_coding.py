"""Grid code layout: formatting, parsing and validation."""

from __future__ import annotations

import dataclasses

import pytest

from gis_platform.errors import ValidationError
from grids.coding import GridCode, GridCodeLayout


def fields_of(error: ValidationError) -> list[str]:
    return [e.field for e in error.errors]


def test_default_layout_is_fourteen_digits() -> None:
    layout = GridCodeLayout()
    assert str(layout) == "6+3+3+2"
    assert layout.total_digits == 14
    assert layout.unit_digits == 9
    assert layout.max_sequence == 99
    assert layout.max_community == 999
    assert layout.block_side == 9


def test_beijing_layout_from_string() -> None:
    layout = GridCodeLayout.from_string("6+3+3+3")
    assert layout == GridCodeLayout(sequence_digits=3)
    assert layout.total_digits == 15
    assert layout.max_sequence == 999
    assert layout.block_side == 31
    assert layout.format("110105", "001", 2, 961) == "110105001002961"


def test_from_string_tolerates_spaces() -> None:
    assert GridCodeLayout.from_string(" 6 + 3 + 3 + 2 ") == GridCodeLayout()


@pytest.mark.parametrize("spec", ["6+3+3", "6-3-3-2", "a+b+c+d", "", "6+3+3+2+1"])
def test_from_string_rejects_malformed_specs(spec: str) -> None:
    with pytest.raises(ValidationError) as caught:
        GridCodeLayout.from_string(spec)
    assert fields_of(caught.value) == ["layout"]


def test_layout_rejects_zero_width_part() -> None:
    with pytest.raises(ValidationError) as caught:
        GridCodeLayout.from_string("6+0+3+2")
    assert fields_of(caught.value) == ["layout.town"]


def test_format_pads_integers_and_keeps_strings() -> None:
    layout = GridCodeLayout()
    assert layout.format("371521", "001", 1, 1) == "37152100100101"
    assert layout.format(371521, 1, 12, 99) == "37152100101299"
    assert layout.format("371521", "101", "003", "07") == "37152110100307"


@pytest.mark.parametrize(
    ("parts", "field"),
    [
        (("37152a", "001", 1, 1), "county"),
        (("3715210", "001", 1, 1), "county"),
        (("371521", "1", 1, 1), "town"),
        (("371521", "001", 1000, 1), "community"),
        (("371521", "001", 0, 1), "community"),
        (("371521", "001", -1, 1), "community"),
        (("371521", "001", 1, 100), "sequence"),
        (("371521", "001", 1, 0), "sequence"),
        (("371521", "001", 1, True), "sequence"),
        (("371521", "001", 1, 1.0), "sequence"),
        # Full-width digits pass str.isdigit() but are not ASCII digits.
        (("３７１５２１", "001", 1, 1), "county"),
    ],
)
def test_format_names_the_bad_part(parts: tuple[object, ...], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        GridCodeLayout().format(*parts)  # type: ignore[arg-type]
    assert fields_of(caught.value) == [field]
    assert caught.value.status == 400


def test_format_reports_every_bad_part_at_once() -> None:
    with pytest.raises(ValidationError) as caught:
        GridCodeLayout().format("x", "y", 1, 100)
    assert fields_of(caught.value) == ["county", "town", "sequence"]


def test_parse_round_trips() -> None:
    layout = GridCodeLayout()
    parsed = layout.parse("37152100100207")
    assert parsed == GridCode(county="371521", town="001", community="002", sequence="07")
    assert parsed.code == "37152100100207" == str(parsed)
    assert parsed.unit_code == "371521001"
    assert parsed.community_code == "371521001002"
    assert layout.format(parsed.county, parsed.town, parsed.community, parsed.sequence) == parsed.code


@pytest.mark.parametrize(
    "code", ["3715210010020", "371521001002071", "3715210010020x", "37152100100200", 37152100100207]
)
def test_parse_rejects_bad_codes(code: object) -> None:
    with pytest.raises(ValidationError):
        GridCodeLayout().parse(code)  # type: ignore[arg-type]


def test_town_part_is_suffix_of_township_code() -> None:
    layout = GridCodeLayout()
    assert layout.town_part("371521001") == "001"
    assert layout.town_part("371521201") == "201"
    with pytest.raises(ValidationError) as caught:
        layout.town_part("37152100")
    assert fields_of(caught.value) == ["unit_code"]


def test_values_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        GridCodeLayout().sequence_digits = 3  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        GridCodeLayout().parse("37152100100207").town = "002"  # type: ignore[misc]

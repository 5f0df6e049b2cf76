"""Unit-grid codes: a configurable digit layout of county + town/street + community + sequence.

The default 6+3+3+2 (14 digits) is the layout inferred for GB/T 30428.1 style unit grids; Beijing's
DB11/T 2157-2023 uses a 3-digit sequence (6+3+3+3, 15 digits). Keep the layout in configuration.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from gis_platform.errors import FieldError, ValidationError

_PARTS: tuple[str, ...] = ("county", "town", "community", "sequence")
# str.isdigit() accepts superscripts and other scripts' digits; codes are ASCII only.
_ASCII_DIGITS = re.compile(r"[0-9]+")
_LAYOUT_SPEC = re.compile(r"\s*(\d+)\s*\+\s*(\d+)\s*\+\s*(\d+)\s*\+\s*(\d+)\s*")


@dataclass(frozen=True)
class GridCode:
    """A parsed unit-grid code, kept as zero-padded digit strings."""

    county: str
    town: str
    community: str
    sequence: str

    @property
    def code(self) -> str:
        """Return the full grid code."""
        return self.county + self.town + self.community + self.sequence

    @property
    def unit_code(self) -> str:
        """Return the township/subdistrict code (county + town, 9 digits by default)."""
        return self.county + self.town

    @property
    def community_code(self) -> str:
        """Return the community code (county + town + community)."""
        return self.county + self.town + self.community

    def __str__(self) -> str:
        return self.code


@dataclass(frozen=True)
class GridCodeLayout:
    """How many digits each part of a grid code has."""

    county_digits: int = 6
    town_digits: int = 3
    community_digits: int = 3
    sequence_digits: int = 2

    def __post_init__(self) -> None:
        errors = [
            FieldError(f"layout.{part}", f"must be a whole number of digits from 1 to 12, got {width!r}")
            for part, width in zip(_PARTS, self._widths())
            if isinstance(width, bool) or not isinstance(width, int) or not 1 <= width <= 12
        ]
        if errors:
            raise ValidationError(errors)

    @classmethod
    def from_string(cls, spec: str) -> GridCodeLayout:
        """Build a layout from a spec such as ``"6+3+3+2"``."""
        match = _LAYOUT_SPEC.fullmatch(spec) if isinstance(spec, str) else None
        if match is None:
            raise ValidationError(
                FieldError("layout", f"expected four digit counts like '6+3+3+2', got {spec!r}")
            )
        county, town, community, sequence = (int(group) for group in match.groups())
        return cls(county, town, community, sequence)

    def __str__(self) -> str:
        return "+".join(str(width) for width in self._widths())

    @property
    def total_digits(self) -> int:
        """Return the length of a full grid code."""
        return sum(self._widths())

    @property
    def unit_digits(self) -> int:
        """Return the length of a township/subdistrict code (county + town)."""
        return self.county_digits + self.town_digits

    @property
    def max_sequence(self) -> int:
        """Return the largest sequence number the layout can hold."""
        return 10**self.sequence_digits - 1

    @property
    def max_community(self) -> int:
        """Return the largest community number the layout can hold."""
        return 10**self.community_digits - 1

    @property
    def block_side(self) -> int:
        """Return k, where a community block of k x k cells always fits the sequence digits."""
        return math.isqrt(self.max_sequence)

    def town_part(self, unit_code: str) -> str:
        """Return the town/street part of a township code (e.g. "001" of "371521001")."""
        self._check_digits("unit_code", unit_code, self.unit_digits)
        return unit_code[self.county_digits :]

    def format(self, county: str | int, town: str | int, community: str | int, seq: str | int) -> str:
        """Format the four parts as a grid code, validating each part."""
        parts = (county, town, community, seq)
        errors: list[FieldError] = []
        texts: list[str] = []
        for name, value, width in zip(_PARTS, parts, self._widths()):
            text, problem = _part_text(value, width, positive=name in ("community", "sequence"))
            if problem:
                errors.append(FieldError(name, problem))
            texts.append(text)
        if errors:
            raise ValidationError(errors)
        return "".join(texts)

    def parse(self, code: str) -> GridCode:
        """Split a grid code into its parts."""
        self._check_digits("code", code, self.total_digits)
        cuts = [0]
        for width in self._widths():
            cuts.append(cuts[-1] + width)
        county, town, community, sequence = (code[a:b] for a, b in zip(cuts, cuts[1:]))
        for name, text in (("community", community), ("sequence", sequence)):
            if int(text) == 0:
                raise ValidationError(FieldError(name, f"must not be all zeros in {code!r}"))
        return GridCode(county, town, community, sequence)

    def _widths(self) -> tuple[int, int, int, int]:
        return (self.county_digits, self.town_digits, self.community_digits, self.sequence_digits)

    @staticmethod
    def _check_digits(name: str, value: object, width: int) -> None:
        if not isinstance(value, str) or not _ASCII_DIGITS.fullmatch(value) or len(value) != width:
            raise ValidationError(FieldError(name, f"must be exactly {width} digits, got {value!r}"))


def _part_text(value: object, width: int, *, positive: bool) -> tuple[str, str | None]:
    """Return the zero-padded text of one part and the problem with it, if any."""
    if isinstance(value, bool):
        return "", f"must be a number, got {value!r}"
    if isinstance(value, int):
        if value < 0 or value >= 10**width:
            return "", f"{value} does not fit in {width} digits"
        text = str(value).zfill(width)
    elif isinstance(value, str):
        # Strings must already be padded: "1" for a county is more likely a mistake than county 000001.
        if not _ASCII_DIGITS.fullmatch(value):
            return "", f"must be digits only, got {value!r}"
        if len(value) != width:
            return "", f"must be exactly {width} digits, got {value!r}"
        text = value
    else:
        return "", f"must be a digit string or an integer, got {type(value).__name__}"
    if positive and int(text) == 0:
        return "", "numbering starts at 1; zero is not a valid value"
    return text, None

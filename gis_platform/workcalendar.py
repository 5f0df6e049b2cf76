"""Working time on China's official calendar, including adjusted working days (调休).

Time limits of cases run in working hours. The `chinese-calendar` package carries the State
Council's schedule for the years it knows; later years need an explicit override, because a
silent weekends-only guess would put deadlines on public holidays.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import chinese_calendar

from pathlib import Path
from typing import TYPE_CHECKING

from gis_platform.errors import ConfigurationError

if TYPE_CHECKING:
    from gis_platform.settings import Settings

SHANGHAI = ZoneInfo("Asia/Shanghai")


class UnknownCalendarYear(ConfigurationError):
    """The official schedule for a year is not known to the package nor to the override."""


@dataclass(frozen=True)
class YearOverride:
    """Official holidays and make-up working days of one year, for years the package lacks."""

    holidays: frozenset[date] = frozenset()
    workdays: frozenset[date] = frozenset()


@dataclass(frozen=True)
class WorkCalendar:
    """Decide working days and add or measure working hours in Asia/Shanghai office hours."""

    # Office hours as (start, end) windows; the default is 8 hours a day.
    windows: tuple[tuple[time, time], ...] = ((time(8, 30), time(12, 0)), (time(13, 30), time(18, 0)))
    overrides: Mapping[int, YearOverride] = field(default_factory=dict)

    @property
    def hours_per_day(self) -> float:
        """Return the working hours in one working day."""
        return sum(
            (datetime.combine(date.min, end) - datetime.combine(date.min, start)).total_seconds() / 3600
            for start, end in self.windows
        )

    def __post_init__(self) -> None:
        # chinese-calendar scans its tables on every call (~0.1 ms); indicators ask about the same days
        # tens of thousands of times, so answers are remembered per calendar.
        object.__setattr__(self, "_known", {})

    def is_workday(self, day: date) -> bool:
        """Return whether a date is an official working day."""
        known = self._known  # type: ignore[attr-defined]
        answer = known.get(day)
        if answer is None:
            answer = known[day] = self._decide(day)
        return answer

    def _decide(self, day: date) -> bool:
        override = self.overrides.get(day.year)
        if override is not None:
            if day in override.workdays:
                return True
            if day in override.holidays:
                return False
            return day.weekday() < 5
        try:
            return chinese_calendar.is_workday(day)
        except NotImplementedError as exc:
            raise UnknownCalendarYear(
                f"the official working-day schedule for {day.year} is unknown: chinese-calendar "
                f"{_package_version()} does not cover it; add a year override (holidays and make-up "
                f"working days) instead of assuming weekends only"
            ) from exc

    def known_years(self) -> list[int]:
        """Return the years for which working days can be decided."""
        years = set(self.overrides)
        probe = date.today().year + 3
        for year in range(2004, probe):
            try:
                chinese_calendar.is_workday(date(year, 6, 1))
            except NotImplementedError:
                continue
            years.add(year)
        return sorted(years)

    def _intervals(self, day: date) -> Iterable[tuple[datetime, datetime]]:
        if not self.is_workday(day):
            return ()
        return [
            (datetime.combine(day, start, SHANGHAI), datetime.combine(day, end, SHANGHAI))
            for start, end in self.windows
        ]

    def add_working_hours(self, start: datetime, hours: float) -> datetime:
        """Return the moment that lies the given working hours after start."""
        if start.tzinfo is None:
            raise ValueError("start must be timezone-aware")
        if hours < 0:
            raise ValueError("hours must not be negative")
        remaining = timedelta(hours=hours)
        moment = start.astimezone(SHANGHAI)
        day = moment.date()
        # A limit never spans more than a few years; bound the walk so bad input cannot spin.
        for _ in range(366 * 5):
            for begin, end in self._intervals(day):
                if end <= moment:
                    continue
                begin = max(begin, moment)
                span = end - begin
                if remaining <= span:
                    return begin + remaining
                remaining -= span
            day += timedelta(days=1)
            moment = datetime.combine(day, time(0), SHANGHAI)
        raise ValueError("working-hour limit too large")

    def working_hours_between(self, start: datetime, end: datetime) -> float:
        """Return the working hours elapsed from start to end (negative if end precedes start)."""
        if start.tzinfo is None or end.tzinfo is None:
            raise ValueError("start and end must be timezone-aware")
        if end < start:
            return -self.working_hours_between(end, start)
        start, end = start.astimezone(SHANGHAI), end.astimezone(SHANGHAI)
        total = timedelta()
        day = start.date()
        while day <= end.date():
            for begin, finish in self._intervals(day):
                lo, hi = max(begin, start), min(finish, end)
                if hi > lo:
                    total += hi - lo
            day += timedelta(days=1)
        return total.total_seconds() / 3600

    def add_working_days(self, start: datetime, days: int) -> datetime:
        """Return the end of office hours on the n-th working day after start's date."""
        day = start.astimezone(SHANGHAI).date()
        counted = 0
        while counted < days:
            day += timedelta(days=1)
            if self.is_workday(day):
                counted += 1
        return datetime.combine(day, self.windows[-1][1], SHANGHAI)


def load_overrides(path: Path) -> dict[int, YearOverride]:
    """Read year overrides from JSON: {"2027": {"holidays": ["2027-01-01", ...], "workdays": [...]}}."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"GIS_CALENDAR_FILE {path}: cannot read JSON ({exc})") from None
    if not isinstance(raw, dict):
        raise ConfigurationError(f"GIS_CALENDAR_FILE {path}: expected an object keyed by year")
    out: dict[int, YearOverride] = {}
    for year, spec in raw.items():
        if not str(year).isdigit() or not isinstance(spec, dict):
            raise ConfigurationError(f"GIS_CALENDAR_FILE {path}: {year!r} is not a year with holidays/workdays")
        try:
            days = {key: frozenset(date.fromisoformat(d) for d in spec.get(key, [])) for key in ("holidays", "workdays")}
        except (TypeError, ValueError) as exc:
            raise ConfigurationError(f"GIS_CALENDAR_FILE {path}, year {year}: {exc}") from None
        wrong = [d for d in days["holidays"] | days["workdays"] if d.year != int(year)]
        if wrong:
            raise ConfigurationError(f"GIS_CALENDAR_FILE {path}, year {year}: {wrong[0]} is in another year")
        out[int(year)] = YearOverride(holidays=days["holidays"], workdays=days["workdays"])
    return out


def calendar_from_settings(settings: Settings) -> WorkCalendar:
    """Return the working calendar, with the year overrides of GIS_CALENDAR_FILE when set."""
    if settings.calendar_file is None:
        return WorkCalendar()
    return WorkCalendar(overrides=load_overrides(settings.calendar_file))


def overrun_multiple(elapsed_hours: float, limit_hours: float) -> float:
    """Return 超时倍数: how many times over its limit a case ran (0 when on time)."""
    if limit_hours <= 0:
        raise ValueError("limit_hours must be positive")
    if elapsed_hours <= limit_hours:
        return 0.0
    return round((elapsed_hours - limit_hours) / limit_hours, 2)


def _package_version() -> str:
    from importlib.metadata import version

    return version("chinese-calendar")

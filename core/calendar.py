"""The portal's calendar, in one place: whole UTC hours (the ledger's unit of time), the
portal's time zone, its days and months as UTC bounds, and month names (``YYYY-MM``).

Times are aware and stored in UTC; days and months are those of the portal's time zone
(``TIME_ZONE``), so a month with a daylight-saving change is an hour shorter or longer.
"""

import datetime as dt
import re
from collections.abc import Iterator
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from django.conf import settings
from django.utils import timezone

HOUR = dt.timedelta(hours=1)


def floor_hour(moment: dt.datetime) -> dt.datetime:
    """The start of the UTC hour that holds ``moment`` (which must be aware)."""
    if moment.tzinfo is None:
        raise ValueError("Give an aware date-time (with a time zone).")
    return moment.astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0)


def ceil_hour(moment: dt.datetime) -> dt.datetime:
    """The first whole UTC hour at or after ``moment``."""
    start = floor_hour(moment)
    return start if start == moment.astimezone(dt.UTC) else start + HOUR


def hour_count(start: dt.datetime, end: dt.datetime) -> int:
    return int((end - start) / HOUR)


def chunks(start: dt.datetime, end: dt.datetime, hours: int) -> Iterator[tuple]:
    """``[start, end)`` cut into consecutive windows of at most ``hours`` hours."""
    step = dt.timedelta(hours=hours)
    while start < end:
        yield start, min(start + step, end)
        start += step


def merge(intervals) -> list[tuple]:
    """Overlapping or touching ``(start, end)`` intervals merged, in order."""
    merged: list[list] = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [(start, end) for start, end in merged]


def complement(intervals, start: dt.datetime, end: dt.datetime) -> list[tuple]:
    """The parts of ``[start, end)`` that none of ``intervals`` covers."""
    gaps, cursor = [], start
    for covered_start, covered_end in merge(intervals):
        if covered_end <= cursor:
            continue
        if covered_start >= end:
            break
        if covered_start > cursor:
            gaps.append((cursor, min(covered_start, end)))
        cursor = max(cursor, covered_end)
    if cursor < end:
        gaps.append((cursor, end))
    return gaps


def hours_between(start: dt.datetime, end: dt.datetime) -> list[tuple[dt.datetime, dt.timedelta]]:
    """``[start, end)`` cut at each UTC hour: (hour start, time inside that hour)."""
    pieces = []
    hour = floor_hour(start)
    while hour < end:
        inside = min(end, hour + HOUR) - max(start, hour)
        if inside > dt.timedelta(0):
            pieces.append((hour, inside))
        hour += HOUR
    return pieces


def portal_zone() -> ZoneInfo:
    return ZoneInfo(settings.TIME_ZONE)


def portal_day_bounds(moment: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """The calendar day (portal time zone) that holds ``moment``, as UTC date-times."""
    zone = portal_zone()
    local = moment.astimezone(zone).date()
    start = dt.datetime(local.year, local.month, local.day, tzinfo=zone)
    following = local + dt.timedelta(days=1)
    end = dt.datetime(following.year, following.month, following.day, tzinfo=zone)
    return start.astimezone(dt.UTC), end.astimezone(dt.UTC)


def day_bounds(first: dt.date, last: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """From the start of ``first`` to the end of ``last``, in the portal's time zone."""
    zone = portal_zone()
    return (
        dt.datetime.combine(first, dt.time(0), tzinfo=zone),
        dt.datetime.combine(last + dt.timedelta(days=1), dt.time(0), tzinfo=zone),
    )


def month_bounds(moment: dt.datetime | dt.date) -> tuple[dt.datetime, dt.datetime]:
    """The calendar month (in the portal's time zone) that holds ``moment``, as UTC
    date-times (so that subtracting them counts real hours: a month with a daylight-saving
    change is an hour shorter or longer)."""
    zone = portal_zone()
    if isinstance(moment, dt.datetime):
        local = moment.astimezone(zone)
        year, month = local.year, local.month
    else:
        year, month = moment.year, moment.month
    start = dt.datetime(year, month, 1, tzinfo=zone)
    following = dt.datetime(year + month // 12, month % 12 + 1, 1, tzinfo=zone)
    return start.astimezone(dt.UTC), following.astimezone(dt.UTC)


def month_hours(month: dt.date) -> list[dt.datetime]:
    """The UTC hour starts of the portal month: 743 or 745 of them when the clocks change."""
    start, end = month_bounds(month)
    hours, hour = [], start
    while hour < end:
        hours.append(hour)
        hour += HOUR
    return hours


def month_of(moment: dt.datetime | dt.date) -> dt.date:
    """The first day of the portal month that holds ``moment``."""
    if isinstance(moment, dt.datetime):
        moment = moment.astimezone(portal_zone()).date()
    return moment.replace(day=1)


def month_parse(value: str) -> dt.date:
    """``YYYY-MM`` as the first day of that month; ``ValueError`` with a clear message."""
    try:
        parsed = dt.datetime.strptime(value, "%Y-%m").date()
    except (TypeError, ValueError) as exc:
        raise ValueError(f"“{value}” is not a month; give it as YYYY-MM, e.g. 2026-03.") from exc
    if parsed.year < 2000:
        raise ValueError(f"“{value}” is before the year 2000.")
    return parsed


def next_month(month: dt.date) -> dt.date:
    return (month.replace(day=28) + dt.timedelta(days=4)).replace(day=1)


def month_ended(month: dt.date, *, now: dt.datetime | None = None) -> bool:
    return month_bounds(month)[1] <= (now or timezone.now())


# --- Periods of months ----------------------------------------------------------------------

# The longest range of months a period may span (three years).
MAX_PERIOD_MONTHS = 36
PERIOD_FORMS = (
    "a month (2026-03), a quarter (2026-Q3), a year to date (2026-YTD) or a range of "
    f"months (2026-01..2026-06, at most {MAX_PERIOD_MONTHS} months)"
)
# The documented pattern of a period (``Period.label``), for the OpenAPI schema.
PERIOD_PATTERN = r"^\d{4}-(\d{2}|Q[1-4]|YTD)$|^\d{4}-\d{2}\.\.\d{4}-\d{2}$"
# The last year a period may name: computing the month after its end stays in the calendar.
LAST_YEAR = 9998


def months_between(first: dt.date, last: dt.date) -> int:
    """How many months ``first`` to ``last`` span, both included."""
    return (last.year - first.year) * 12 + last.month - first.month + 1


def months_before(month: dt.date, count: int) -> dt.date:
    """The first day of the month ``count`` months before ``month``."""
    index = month.year * 12 + month.month - 1 - count
    return dt.date(index // 12, index % 12 + 1, 1)


@dataclass(frozen=True)
class Period:
    """Whole portal months from ``start_month`` to ``end_month`` (both included, first
    days), named by ``label`` as the API reads it. ``kind`` is month, quarter, ytd or
    range."""

    start_month: dt.date
    end_month: dt.date
    label: str
    kind: str

    @classmethod
    def month(cls, month: dt.date) -> "Period":
        month = month.replace(day=1)
        return cls(month, month, f"{month:%Y-%m}", "month")

    @classmethod
    def quarter(cls, year: int, quarter: int) -> "Period":
        first = dt.date(year, 3 * quarter - 2, 1)
        return cls(first, first.replace(month=3 * quarter), f"{year}-Q{quarter}", "quarter")

    @classmethod
    def months_range(cls, first: dt.date, last: dt.date) -> "Period":
        if first == last:
            return cls.month(first)
        return cls(first, last, f"{first:%Y-%m}..{last:%Y-%m}", "range")

    @property
    def month_count(self) -> int:
        return months_between(self.start_month, self.end_month)

    def months(self) -> list[dt.date]:
        """The first days of its months, in order."""
        return [months_before(self.end_month, n) for n in reversed(range(self.month_count))]

    def bounds(self) -> tuple[dt.datetime, dt.datetime]:
        """From the start of its first month to the end of its last, as UTC date-times
        (portal time zone months, :func:`month_bounds`)."""
        return month_bounds(self.start_month)[0], month_bounds(self.end_month)[1]

    def previous(self) -> "Period":
        """The period of the same length just before it: the month before a month, the
        quarter before a quarter, the previous N months before a range; for a year to
        date, the same months a year earlier (January to the same month: a like-for-like
        comparison, where the months just before would mix two seasons)."""
        if self.kind == "quarter":
            year, quarter = self.start_month.year, (self.start_month.month + 2) // 3
            return (
                Period.quarter(year - 1, 4) if quarter == 1 else Period.quarter(year, quarter - 1)
            )
        if self.kind == "ytd":
            return Period.months_range(
                months_before(self.start_month, 12), months_before(self.end_month, 12)
            )
        count = self.month_count
        return Period.months_range(
            months_before(self.start_month, count), months_before(self.end_month, count)
        )

    def __str__(self) -> str:
        if self.kind == "month":
            return f"{self.start_month:%B %Y}"
        if self.kind == "quarter":
            return f"Q{(self.start_month.month + 2) // 3} {self.start_month.year}"
        if self.kind == "ytd":
            return f"{self.start_month:%B} to {self.end_month:%B %Y}"
        return f"{self.start_month:%b %Y} to {self.end_month:%b %Y}"


_QUARTER = re.compile(r"([0-9]{4})-Q([0-9]+)", re.ASCII | re.IGNORECASE)
_YEAR_TO_DATE = re.compile(r"([0-9]{4})-YTD", re.ASCII | re.IGNORECASE)
_NO_YEAR = re.compile(r"(Q[0-9]+|YTD)", re.ASCII | re.IGNORECASE)
_MONTH = re.compile(r"[0-9]{4}-[0-9]{2}", re.ASCII)


def _period_year(text: str, year: str) -> int:
    number = int(year)
    if number < 2000:
        raise ValueError(f"“{text}” is before the year 2000.")
    if number > LAST_YEAR:
        raise ValueError(f"“{text}” is too far ahead: give a period up to {LAST_YEAR}-12.")
    return number


def _period_month(text: str, part: str) -> dt.date:
    if not _MONTH.fullmatch(part):
        raise ValueError(f"“{text}” is not a period; give {PERIOD_FORMS}.")
    _period_year(text, part[:4])
    if not 1 <= int(part[5:]) <= 12:
        raise ValueError(f"“{text}” names no month {part[5:]}: months run 01 to 12.")
    return dt.date(int(part[:4]), int(part[5:]), 1)


def period_parse(value: str, *, current: dt.date | None = None) -> Period:
    """A period as the reports read it: ``YYYY-MM``, ``YYYY-Qn``, ``YYYY-YTD`` (January to
    the current month, or to December for a past year) or ``YYYY-MM..YYYY-MM``; a
    ``ValueError`` that says what is wrong and which forms are accepted otherwise.
    ``current`` (the running month, by default the portal's now) decides what has begun:
    a period wholly after it is refused."""
    current = (current or month_of(timezone.now())).replace(day=1)
    text = str(value).strip()
    if len(text) > 40:
        raise ValueError(f"That is not a period; give {PERIOD_FORMS}.")
    if match := _QUARTER.fullmatch(text):
        year = _period_year(text, match[1])
        quarter = int(match[2])
        if not 1 <= quarter <= 4:
            raise ValueError(f"“{text}” is no quarter: quarters run Q1 to Q4, e.g. 2026-Q3.")
        period = Period.quarter(year, quarter)
    elif match := _YEAR_TO_DATE.fullmatch(text):
        year = _period_year(text, match[1])
        first = dt.date(year, 1, 1)
        last = min(current, dt.date(year, 12, 1)) if year <= current.year else first
        period = Period(first, last, f"{year}-YTD", "ytd")
    elif _NO_YEAR.fullmatch(text):
        raise ValueError(f"“{text}” names no year: give it as 2026-{text.upper()}.")
    elif ".." in text:
        first_text, _, last_text = text.partition("..")
        first, last = _period_month(text, first_text), _period_month(text, last_text)
        if last < first:
            raise ValueError(
                f"“{text}” ends before it starts: give the earlier month first, e.g. "
                f"{last:%Y-%m}..{first:%Y-%m}."
            )
        if months_between(first, last) > MAX_PERIOD_MONTHS:
            raise ValueError(
                f"“{text}” spans {months_between(first, last)} months; a range covers at "
                f"most {MAX_PERIOD_MONTHS}."
            )
        period = Period.months_range(first, last)
    else:
        period = Period.month(_period_month(text, text))
    if period.start_month > current:
        name = period.start_month.year if period.kind == "ytd" else period
        raise ValueError(f"{name} has not begun; there is nothing to report yet.")
    return period

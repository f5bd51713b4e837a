"""The portal's calendar, in one place: whole UTC hours (the ledger's unit of time), the
portal's time zone, its days and months as UTC bounds, and month names (``YYYY-MM``).

Times are aware and stored in UTC; days and months are those of the portal's time zone
(``TIME_ZONE``), so a month with a daylight-saving change is an hour shorter or longer.
"""

import datetime as dt
from collections.abc import Iterator
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

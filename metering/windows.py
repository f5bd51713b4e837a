"""Whole UTC hours: the ledger's unit of time."""

import datetime as dt
from collections.abc import Iterator

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

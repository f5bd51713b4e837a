"""Query filters shared by every app's API."""

import datetime as dt

import django_filters
from django.core.exceptions import ValidationError
from django_filters.fields import IsoDateTimeField

# The instants a query may name. Far from the calendar's edges (years 1 and 9999), where
# the arithmetic the portal does on a bound (a microsecond before it, the month after it,
# the same instant in another zone) would leave what Python's datetime holds, and wide
# enough for anything a GPU's usage could mean.
EARLIEST = dt.datetime(1900, 1, 1, tzinfo=dt.UTC)
LATEST = dt.datetime(9999, 1, 1, tzinfo=dt.UTC)  # excluded
OUT_OF_RANGE = (
    f"Give a date-time from {EARLIEST:%Y-%m-%d} to {LATEST - dt.timedelta(days=1):%Y-%m-%d} (UTC)."
)
# Python reads offsets up to ±23:59:59, PostgreSQL only up to ±15:59:59; real zones span
# -12:00 to +14:00.
MAX_OFFSET = dt.timedelta(hours=16)  # excluded
OFFSET_OUT_OF_RANGE = (
    "%(offset)s is not a time-zone offset: give one from -15:59 to +15:59, or Z for UTC."
)


def moment_in_range(moment: dt.datetime) -> dt.datetime:
    """``moment`` (time-zone aware) as the same instant in UTC, if its offset is one
    PostgreSQL takes and it lies in [:data:`EARLIEST`, :data:`LATEST`); ``ValueError``
    with words for the person who asked otherwise."""
    offset = moment.utcoffset()
    if offset is not None and abs(offset) >= MAX_OFFSET:
        sign = "-" if offset < dt.timedelta(0) else "+"
        hours, rest = divmod(int(abs(offset).total_seconds()), 3600)
        raise ValueError(OFFSET_OUT_OF_RANGE % {"offset": f"{sign}{hours:02}:{rest // 60:02}"})
    try:
        utc = moment.astimezone(dt.UTC)
    except OverflowError as exc:  # not an instant at all: year 1 east of UTC, say
        raise ValueError(OUT_OF_RANGE) from exc
    if not EARLIEST <= utc < LATEST:
        raise ValueError(OUT_OF_RANGE)
    return utc


class UtcIsoDateTimeField(IsoDateTimeField):
    """An ISO 8601 date-time, as the same instant in UTC; one :func:`moment_in_range`
    refuses is invalid, rather than failing in the database or in date arithmetic."""

    def to_python(self, value):
        moment = super().to_python(value)
        if moment is None:
            return None
        try:
            return moment_in_range(moment)
        except ValueError as exc:
            # Passed as a parameter: django-filter %-formats the message.
            raise ValidationError(
                "%(reason)s", params={"reason": str(exc)}, code="invalid"
            ) from exc


class UtcIsoDateTimeFilter(django_filters.IsoDateTimeFilter):
    field_class = UtcIsoDateTimeField

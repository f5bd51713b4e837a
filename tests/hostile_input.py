"""Hostile input that the schemathesis run, the access sweep and the calendar-edge tests
send alike: which query parameters are dates, and the values at the calendar's edges,
with offsets PostgreSQL does not take, NaN and a number no date holds."""

# Query parameters read as dates, date-times or months, whatever their schema says.
DATE_NAMES = {"period", "month", "start", "end", "since", "until", "from", "to"}
HOSTILE_DATES = [
    "0001-01-01",
    "9999-12-31",
    "0001-01-01T00:00:00-15:59",
    "9999-12-31T23:59:59+15:59",
    "2026-03-01T00:00:00+16:00",
    "2026-03-01T00:00:00-23:59",
    "9999-12",
    "0001-01",
    "nan",
    "-inf",
    "99999999999999999999",
]

"""The bottom kernel every app may import, and which imports no app: roles, API helpers and
errors, request parsers, filters, sorting, rate limits, the admin site and the calendar
(portal day, month bounds, hour flooring)."""

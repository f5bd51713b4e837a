"""``period=``: a month (2026-03), a quarter (2026-Q3), a year to date (2026-YTD) or a
range of months (2026-01..2026-06), each with the period of the same length before it,
and refusals that say what is wrong and which forms are accepted."""

import datetime as dt

import pytest

from core.calendar import MAX_PERIOD_MONTHS, PERIOD_FORMS, Period, period_parse

AUGUST_2026 = dt.date(2026, 8, 1)


def _months(period: Period) -> list[str]:
    return [f"{month:%Y-%m}" for month in period.months()]


@pytest.mark.parametrize(
    ("text", "label", "kind", "first", "last", "previous"),
    [
        ("2026-03", "2026-03", "month", "2026-03", "2026-03", "2026-02"),
        ("2026-01", "2026-01", "month", "2026-01", "2026-01", "2025-12"),
        ("2026-Q3", "2026-Q3", "quarter", "2026-07", "2026-09", "2026-Q2"),
        ("2026-q1", "2026-Q1", "quarter", "2026-01", "2026-03", "2025-Q4"),
        ("2025-Q4", "2025-Q4", "quarter", "2025-10", "2025-12", "2025-Q3"),
        # The running year: January to the current month, against the same months a
        # year earlier; a past year: all of it.
        ("2026-YTD", "2026-YTD", "ytd", "2026-01", "2026-08", "2025-01..2025-08"),
        ("2025-ytd", "2025-YTD", "ytd", "2025-01", "2025-12", "2024-01..2024-12"),
        ("2026-01..2026-06", "2026-01..2026-06", "range", "2026-01", "2026-06", "2025-07..2025-12"),
        ("2025-11..2026-02", "2025-11..2026-02", "range", "2025-11", "2026-02", "2025-07..2025-10"),
        (" 2026-05..2026-05 ", "2026-05", "month", "2026-05", "2026-05", "2026-04"),
        # Partly ahead: the months that began are what there is to report.
        ("2026-08..2026-12", "2026-08..2026-12", "range", "2026-08", "2026-12", "2026-03..2026-07"),
    ],
)
def test_each_form_reads_as_its_months_with_the_period_before(
    text, label, kind, first, last, previous
):
    period = period_parse(text, current=AUGUST_2026)
    assert (period.label, period.kind) == (label, kind)
    months = _months(period)
    assert (months[0], months[-1], len(months)) == (first, last, period.month_count)
    before = period.previous()
    assert before.label == previous
    assert before.month_count == period.month_count
    assert before.end_month < period.start_month


def test_a_period_is_bounded_by_its_months_in_the_portal_time_zone(settings):
    settings.TIME_ZONE = "Europe/Paris"
    start, end = period_parse("2026-Q1", current=AUGUST_2026).bounds()
    # Midnight in Paris, in winter: 23:00 UTC the day before (daylight saving is irrelevant
    # to which months a period holds; the bounds are each month's own).
    assert start == dt.datetime(2025, 12, 31, 23, tzinfo=dt.UTC)
    assert end == dt.datetime(2026, 3, 31, 22, tzinfo=dt.UTC)


def test_the_previous_range_of_a_range_is_as_long_and_just_before():
    period = period_parse("2024-03..2026-08", current=AUGUST_2026)
    assert period.month_count == 30
    assert period.previous().label == "2021-09..2024-02"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("2026-Q0", "“2026-Q0” is no quarter: quarters run Q1 to Q4, e.g. 2026-Q3."),
        ("2026-Q5", "“2026-Q5” is no quarter: quarters run Q1 to Q4, e.g. 2026-Q3."),
        ("Q3", "“Q3” names no year: give it as 2026-Q3."),
        ("YTD", "“YTD” names no year: give it as 2026-YTD."),
        (
            "2026-06..2026-01",
            "“2026-06..2026-01” ends before it starts: give the earlier month first, e.g. "
            "2026-01..2026-06.",
        ),
        (
            "2023-07..2026-07",
            f"“2023-07..2026-07” spans 37 months; a range covers at most {MAX_PERIOD_MONTHS}.",
        ),
        ("2026-09", "September 2026 has not begun; there is nothing to report yet."),
        ("2026-Q4", "Q4 2026 has not begun; there is nothing to report yet."),
        ("2027-YTD", "2027 has not begun; there is nothing to report yet."),
        ("2026-09..2026-10", "Sep 2026 to Oct 2026 has not begun; there is nothing to report yet."),
        ("0001-01", "“0001-01” is before the year 2000."),
        ("1999-Q4", "“1999-Q4” is before the year 2000."),
        ("9999-01", "“9999-01” is too far ahead: give a period up to 9998-12."),
        ("9999-12", "“9999-12” is too far ahead: give a period up to 9998-12."),
        ("9999-Q4", "“9999-Q4” is too far ahead: give a period up to 9998-12."),
        ("9999-YTD", "“9999-YTD” is too far ahead: give a period up to 9998-12."),
        ("2026-13", "“2026-13” names no month 13: months run 01 to 12."),
        ("2026-00..2026-03", "“2026-00..2026-03” names no month 00: months run 01 to 12."),
    ],
)
def test_each_refusal_says_what_is_wrong(text, message):
    with pytest.raises(ValueError) as refused:
        period_parse(text, current=AUGUST_2026)
    assert str(refused.value) == message


@pytest.mark.parametrize(
    "text",
    [
        "",
        "2026",
        "March",
        "2026-3",
        "10000-01",
        "99999999999999999999-01",
        "nan",
        "inf",
        "-0",
        "2026-01..",
        "..2026-01",
        "2026-01...2026-02",
        "2026-01..2026-02..2026-03",
        "2026-Q3..2026-Q4",
        "2026-H1",
        "\uff12\uff10\uff12\uff16-01",  # full-width digits: digits to Python, not to the portal
        "2026-01\x00",
        "2026-01;DROP TABLE billing_statement",
        "2026-01.." * 100,
    ],
)
def test_anything_else_is_not_a_period_and_the_refusal_names_the_forms(text):
    with pytest.raises(ValueError) as refused:
        period_parse(text, current=AUGUST_2026)
    assert PERIOD_FORMS in str(refused.value)
    assert "2026-Q3" in PERIOD_FORMS and "2026-YTD" in PERIOD_FORMS and ".." in PERIOD_FORMS

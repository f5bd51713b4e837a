"""GET /api/v1/usage/?period=: a month, a quarter, a year to date or a range of months
instead of start and end (not with them), bounded by the portal's months."""

from decimal import Decimal

import pytest

from tests.conftest import client_as
from tests.factories import UsageRecordFactory
from tests.metering.test_usage_api import URL, _quantities, _rows, utc


@pytest.fixture
def a_year(world):
    """Marketing on T4: 1 GPU-hour on the 5th of each month of 2026 to November, and one
    at the first and the last hour of Q3 in UTC."""
    for month in range(1, 12):
        UsageRecordFactory(
            department=world.marketing, gpu_class=world.t4, hour_start=utc(2026, month, 5, 8)
        )
    # Berlin's Q3 starts at 22:00 UTC on 30 June and ends at 22:00 UTC on 30 September.
    UsageRecordFactory(
        department=world.marketing,
        gpu_class=world.t4,
        hour_start=utc(2026, 6, 30, 22),
        gpu_hours=Decimal("10"),
    )
    UsageRecordFactory(
        department=world.marketing,
        gpu_class=world.t4,
        hour_start=utc(2026, 9, 30, 22),
        gpu_hours=Decimal("100"),
    )


def _total(rows) -> Decimal:
    return sum((Decimal(q) for q in _quantities(rows).values()), Decimal(0))


def test_a_quarter_reads_its_three_months_as_start_and_end_would(world, api_client, a_year):
    by_period = _rows(api_client, world, "finance", period="2026-Q3", granularity="month")
    by_dates = _rows(
        api_client, world, "finance", start="2026-07-01", end="2026-10-01", granularity="month"
    )
    assert by_period == by_dates
    assert [row["period_start"][:7] for row in by_period] == ["2026-07", "2026-08", "2026-09"]
    assert _total(by_period) == Decimal("103")  # the three 5ths and the last hour (UTC)


def test_a_quarter_is_bounded_by_the_portal_time_zones_months(world, api_client, a_year, settings):
    settings.TIME_ZONE = "Europe/Berlin"
    rows = _rows(api_client, world, "finance", period="2026-Q3", granularity="month")
    # 22:00 UTC on 30 June is July in Berlin; 22:00 UTC on 30 September is October.
    assert _total(rows) == Decimal("13")
    assert _quantities(rows)[("2026-07-01T00:00:00+02:00", "marketing", "t4")] == "11.00"
    october = _rows(api_client, world, "finance", period="2026-10", granularity="month")
    assert _total(october) == Decimal("101")


def test_a_year_to_date_and_a_range_read_their_months(world, api_client, a_year):
    year = _rows(api_client, world, "finance", period="2026-YTD", granularity="month")
    assert len(year) == 11
    assert _total(year) == Decimal("11") + Decimal("10") + Decimal("100")
    pair = _rows(api_client, world, "finance", period="2026-02..2026-03", granularity="month")
    assert [row["period_start"][:7] for row in pair] == ["2026-02", "2026-03"]


def test_a_manager_reads_the_period_of_their_departments_only(world, api_client, a_year):
    UsageRecordFactory(department=world.training, gpu_class=world.a100, hour_start=utc(2026, 8, 5))
    manager = _rows(api_client, world, "manager", period="2026-Q3", granularity="month")
    assert {row["department"] for row in manager} == {"marketing"}
    other = _rows(api_client, world, "other_manager", period="2026-Q3", granularity="month")
    assert {row["department"] for row in other} == {"training"}


@pytest.mark.parametrize(
    "params",
    [
        {"period": "2026-Q3", "start": "2026-07-01"},
        {"period": "2026-Q3", "end": "2026-10-01"},
        {"period": "2026-Q3", "start": "2026-07-01", "end": "2026-10-01"},
    ],
)
def test_a_period_with_a_start_or_an_end_is_refused(world, api_client, params):
    response = client_as(api_client, world, "finance").get(URL, params)
    assert response.status_code == 400
    assert response.json() == {"period": ["Give a period or a start and an end, not both."]}


@pytest.mark.parametrize(
    ("period", "words"),
    [
        ("2026-Q5", "is no quarter"),
        ("Q3", "names no year"),
        ("2026-06..2026-01", "ends before it starts"),
        ("2020-01..2026-06", "a range covers at most 36"),
        ("2099-01", "has not begun"),
        ("9999-12", "too far ahead"),
        ("0001-01", "before the year 2000"),
        ("2026-07-01", "a quarter (2026-Q3)"),
        ("nan", "a year to date (2026-YTD)"),
    ],
)
def test_a_period_the_usage_cannot_read_is_refused_naming_it(world, api_client, period, words):
    response = client_as(api_client, world, "finance").get(URL, {"period": period})
    assert response.status_code == 400
    assert list(response.json()) == ["period"]
    assert words in response.json()["period"][0]


def test_an_hourly_table_of_a_long_range_is_refused_like_a_long_window(world, api_client):
    response = client_as(api_client, world, "finance").get(
        URL, {"period": "2024-01..2026-06", "granularity": "hour"}
    )
    assert response.status_code == 400
    assert "granularity=day" in response.json()["end"][0]

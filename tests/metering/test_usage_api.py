"""GET /api/v1/usage/: metered usage per period, department and GPU class, scoped to the
usage a user may read, as JSON pages or one CSV table."""

import csv
import datetime as dt
import io
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from core.calendar import month_bounds
from metering.models import MetricSource, UsageRecord
from tests.conftest import client_as
from tests.factories import MeteringRunFactory, MetricSourceFactory, UsageRecordFactory

URL = "/api/v1/usage/"
UTC = dt.UTC
BERLIN = ZoneInfo("Europe/Berlin")


def utc(*args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


def _get(api_client, world, role, **params):
    response = client_as(api_client, world, role).get(URL, params)
    return response


def _rows(api_client, world, role, **params):
    response = _get(api_client, world, role, page_size=1000, **params)
    assert response.status_code == 200, response.content[:500]
    body = response.json()
    assert body["count"] == len(body["results"]), "the test expects a single page"
    return body["results"]


def _quantities(rows):
    return {
        (row["period_start"], row["department"], row["gpu_class"]): row["quantity"] for row in rows
    }


@pytest.fixture
def october(world):
    """Usage in October 2026 (UTC): marketing on T4 and A100, training on A100, a namespace
    nobody owns and a GPU model no class matches."""
    m, t = world.marketing, world.training
    UsageRecordFactory(department=m, gpu_class=world.t4, hour_start=utc(2026, 10, 5, 8))
    UsageRecordFactory(
        department=m, gpu_class=world.t4, hour_start=utc(2026, 10, 5, 9), gpu_hours=Decimal("2.5")
    )
    UsageRecordFactory(
        department=m, gpu_class=world.a100, hour_start=utc(2026, 10, 6, 8), gpu_hours=Decimal("4")
    )
    UsageRecordFactory(
        department=t, gpu_class=world.a100, hour_start=utc(2026, 10, 5, 8), gpu_hours=Decimal("8")
    )
    UsageRecordFactory(
        department=None, gpu_class=world.t4, hour_start=utc(2026, 10, 5, 8), gpu_hours=Decimal("3")
    )
    UsageRecordFactory(
        department=m, gpu_class=None, hour_start=utc(2026, 10, 7, 8), gpu_hours=Decimal("0.25")
    )
    return {"start": "2026-10-01", "end": "2026-11-01"}


# --- Known numbers per granularity ---------------------------------------------------------


def test_daily_rows_sum_each_department_and_class_per_day(world, api_client, october):
    rows = _rows(api_client, world, "finance", **october)
    assert _quantities(rows) == {
        ("2026-10-05T00:00:00Z", "marketing", "t4"): "3.50",
        ("2026-10-05T00:00:00Z", "training", "a100"): "8.00",
        ("2026-10-05T00:00:00Z", None, "t4"): "3.00",
        ("2026-10-06T00:00:00Z", "marketing", "a100"): "4.00",
        ("2026-10-07T00:00:00Z", "marketing", None): "0.25",
    }
    assert {row["source"] for row in rows} == {"allocation"}
    assert {row["unit"] for row in rows} == {"gpu_hours"}


def test_hourly_rows_keep_each_hour_apart(world, api_client, october):
    rows = _rows(
        api_client, world, "finance", granularity="hour", department="marketing", **october
    )
    assert _quantities(rows) == {
        ("2026-10-05T08:00:00Z", "marketing", "t4"): "1.00",
        ("2026-10-05T09:00:00Z", "marketing", "t4"): "2.50",
        ("2026-10-06T08:00:00Z", "marketing", "a100"): "4.00",
        ("2026-10-07T08:00:00Z", "marketing", None): "0.25",
    }


def test_monthly_rows_sum_the_whole_month(world, api_client, october):
    rows = _rows(api_client, world, "finance", granularity="month", **october)
    assert _quantities(rows) == {
        ("2026-10-01T00:00:00Z", "marketing", "t4"): "3.50",
        ("2026-10-01T00:00:00Z", "marketing", "a100"): "4.00",
        ("2026-10-01T00:00:00Z", "marketing", None): "0.25",
        ("2026-10-01T00:00:00Z", "training", "a100"): "8.00",
        ("2026-10-01T00:00:00Z", None, "t4"): "3.00",
    }


def test_filters_narrow_the_rows_to_one_department_and_gpu_class(world, api_client, october):
    rows = _rows(api_client, world, "finance", department="marketing", gpu_class="t4", **october)
    assert _quantities(rows) == {("2026-10-05T00:00:00Z", "marketing", "t4"): "3.50"}


def test_a_window_given_as_date_times_keeps_only_the_hours_that_start_inside_it(
    world, api_client, october
):
    rows = _rows(
        api_client,
        world,
        "finance",
        start="2026-10-05T09:00:00Z",
        end="2026-10-06T08:00:00+00:00",
        granularity="hour",
    )
    assert _quantities(rows) == {("2026-10-05T09:00:00Z", "marketing", "t4"): "2.50"}


def test_the_default_window_is_the_current_month(world, api_client):
    # The month's first hour, not the factory's "an hour ago", which is last month's last
    # hour during the first hour of a month.
    month_start, _ = month_bounds(timezone.now())
    UsageRecordFactory(
        department=world.marketing,
        gpu_class=world.t4,
        hour_start=month_start,
        gpu_hours=Decimal("2"),
    )
    for earlier in (month_start - dt.timedelta(hours=1), utc(2020, 1, 1, 0)):
        UsageRecordFactory(
            department=world.marketing,
            gpu_class=world.t4,
            hour_start=earlier,
            gpu_hours=Decimal("100"),
        )
    rows = _rows(api_client, world, "manager", granularity="month")
    assert [row["quantity"] for row in rows] == ["2.00"]


def test_another_source_is_read_when_named(world, api_client):
    device = MetricSourceFactory(name="device")
    run = MeteringRunFactory(source=device, window_start=utc(2026, 10, 5, 8))
    UsageRecordFactory(
        source=device,
        run=run,
        department=world.marketing,
        gpu_class=world.t4,
        hour_start=utc(2026, 10, 5, 8),
        gpu_hours=Decimal("0.5"),
    )
    UsageRecordFactory(
        department=world.marketing, gpu_class=world.t4, hour_start=utc(2026, 10, 5, 8)
    )
    rows = _rows(
        api_client, world, "finance", source="device", start="2026-10-01", end="2026-11-01"
    )
    assert [(row["source"], row["quantity"]) for row in rows] == [("device", "0.50")]


# --- The portal's time zone ----------------------------------------------------------------


def test_days_start_at_midnight_in_the_portal_time_zone(world, api_client, settings):
    settings.TIME_ZONE = "Europe/Berlin"
    # 23:00 and 00:00 in Berlin (CEST, UTC+2): one UTC day, two Berlin days.
    UsageRecordFactory(
        department=world.marketing, gpu_class=world.t4, hour_start=utc(2026, 10, 14, 21)
    )
    UsageRecordFactory(
        department=world.marketing,
        gpu_class=world.t4,
        hour_start=utc(2026, 10, 14, 22),
        gpu_hours=Decimal("2"),
    )
    rows = _rows(api_client, world, "manager", start="2026-10-01", end="2026-11-01")
    assert [(row["period_start"], row["quantity"]) for row in rows] == [
        ("2026-10-14T00:00:00+02:00", "1.00"),
        ("2026-10-15T00:00:00+02:00", "2.00"),
    ]


def test_a_date_is_midnight_in_the_portal_time_zone(world, api_client, settings):
    settings.TIME_ZONE = "Europe/Berlin"
    # 2026-10-01 00:00 in Berlin is 2026-09-30 22:00 UTC: the hour before belongs to September.
    UsageRecordFactory(
        department=world.marketing, gpu_class=world.t4, hour_start=utc(2026, 9, 30, 21)
    )
    UsageRecordFactory(
        department=world.marketing,
        gpu_class=world.t4,
        hour_start=utc(2026, 9, 30, 22),
        gpu_hours=Decimal("2"),
    )
    rows = _rows(api_client, world, "manager", start="2026-10-01", end="2026-10-02")
    assert [(row["period_start"], row["quantity"]) for row in rows] == [
        ("2026-10-01T00:00:00+02:00", "2.00")
    ]


@pytest.fixture
def every_hour_of_october_in_berlin(world, settings):
    """One GPU-hour of marketing on T4 in every hour of October 2026 in Berlin: the clocks go
    back on the 25th, so the month has 745 hours and that day 25."""
    settings.TIME_ZONE = "Europe/Berlin"
    start = dt.datetime(2026, 10, 1, tzinfo=BERLIN).astimezone(UTC)
    end = dt.datetime(2026, 11, 1, tzinfo=BERLIN).astimezone(UTC)
    hours = int((end - start).total_seconds() // 3600)
    assert hours == 745
    run = MeteringRunFactory(window_start=start, window_end=end)
    UsageRecord.objects.bulk_create(
        UsageRecordFactory.build(
            source=run.source,
            run=run,
            department=world.marketing,
            gpu_class=world.t4,
            hour_start=start + dt.timedelta(hours=n),
        )
        for n in range(hours)
    )
    return {"start": "2026-10-01", "end": "2026-11-01", "department": "marketing"}


def test_a_month_with_a_clock_change_has_745_hours_and_every_granularity_agrees(
    world, api_client, every_hour_of_october_in_berlin
):
    window = every_hour_of_october_in_berlin
    month = _rows(api_client, world, "finance", granularity="month", **window)
    days = _rows(api_client, world, "finance", granularity="day", **window)
    hours = _rows(api_client, world, "finance", granularity="hour", **window)
    assert [(row["period_start"], row["quantity"]) for row in month] == [
        ("2026-10-01T00:00:00+02:00", "745.00")
    ]
    assert len(days) == 31
    assert sum(Decimal(row["quantity"]) for row in days) == Decimal("745")
    assert {row["period_start"]: row["quantity"] for row in days}["2026-10-25T00:00:00+02:00"] == (
        "25.00"
    )
    assert sum(Decimal(row["quantity"]) for row in hours) == Decimal("745")
    assert hours[0]["period_start"] == "2026-10-01T00:00:00+02:00"
    assert hours[-1]["period_start"] == "2026-10-31T23:00:00+01:00"


def test_the_repeated_hour_of_a_clock_change_is_two_hourly_rows(
    world, api_client, every_hour_of_october_in_berlin
):
    hours = _rows(
        api_client, world, "finance", granularity="hour", **every_hour_of_october_in_berlin
    )
    assert len(hours) == 745
    assert {row["quantity"] for row in hours} == {"1.00"}
    assert [row["period_start"] for row in hours if "2026-10-25T02:00" in row["period_start"]] == [
        "2026-10-25T02:00:00+02:00",
        "2026-10-25T02:00:00+01:00",
    ]


# --- Unallocated, unknown models and scope ---------------------------------------------------


@pytest.mark.parametrize("role", ["finance", "it_admin"])
def test_finance_and_it_see_unallocated_usage_and_unknown_models(world, api_client, october, role):
    rows = _rows(api_client, world, role, **october)
    unallocated = [row for row in rows if row["department"] is None]
    unknown = [row for row in rows if row["gpu_class"] is None]
    assert [(r["department_name"], r["gpu_class_name"], r["quantity"]) for r in unallocated] == [
        ("Unallocated", "T4", "3.00")
    ]
    assert [(r["department_name"], r["gpu_class_name"], r["quantity"]) for r in unknown] == [
        ("Marketing", "Unknown model", "0.25")
    ]


def test_a_manager_sees_only_the_departments_they_manage(world, api_client, october):
    rows = _rows(api_client, world, "manager", **october)
    assert {row["department"] for row in rows} == {"marketing"}
    assert sum(Decimal(row["quantity"]) for row in rows) == Decimal("7.75")
    other = _rows(api_client, world, "other_manager", **october)
    assert {(row["department"], row["quantity"]) for row in other} == {("training", "8.00")}


def test_a_member_sees_no_department_usage(world, api_client, october):
    assert _rows(api_client, world, "member", **october) == []
    assert _rows(api_client, world, "member", department="marketing", **october) == []


@pytest.mark.parametrize("slug", ["marketing", "no-such-department"])
def test_a_department_outside_the_managers_scope_is_refused_like_an_unknown_one(
    world, api_client, october, slug
):
    response = _get(api_client, world, "other_manager", department=slug, **october)
    assert response.status_code == 400
    assert response.json() == {
        "department": [f"No department “{slug}” among the departments you can see."]
    }


def test_an_unknown_gpu_class_or_source_is_named_in_the_error(world, api_client):
    response = _get(api_client, world, "finance", gpu_class="h200", source="nope")
    assert response.status_code == 400
    assert response.json() == {
        "gpu_class": ["No GPU class “h200”."],
        "source": ["No metric source “nope”."],
    }


def test_anonymous_callers_must_authenticate(world, api_client):
    response = api_client.get(URL)
    assert response.status_code == 401
    assert "WWW-Authenticate" in response


# --- Bad parameters ------------------------------------------------------------------------

ISO_HINT = "Give an ISO 8601 date or date-time, e.g. 2026-10-01 or 2026-10-01T06:00:00Z."


@pytest.mark.parametrize(
    ("params", "errors"),
    [
        ({"start": "yesterday"}, {"start": [ISO_HINT]}),
        ({"start": "2026-02-30"}, {"start": [ISO_HINT]}),
        ({"end": "2026-10-01T25:00:00Z"}, {"end": [ISO_HINT]}),
        (
            {"granularity": "week"},
            {"granularity": ["“week” is not a granularity: give hour, day or month."]},
        ),
        (
            {"start": "2026-10-02", "end": "2026-10-01"},
            {"end": ["The end must come after the start (2026-10-02T00:00:00+00:00)."]},
        ),
        (
            {"start": "2026-10-01", "end": "2026-10-01"},
            {"end": ["The end must come after the start (2026-10-01T00:00:00+00:00)."]},
        ),
        (
            {"start": "2025-01-01", "end": "2026-02-05T00:00:01Z", "granularity": "hour"},
            {
                "end": [
                    "An hourly table covers at most 400 days; shorten the window or use "
                    "granularity=day."
                ]
            },
        ),
    ],
)
def test_bad_parameters_answer_400_naming_the_field(world, api_client, params, errors):
    response = _get(api_client, world, "finance", **params)
    assert response.status_code == 400
    assert response.json() == errors


def test_400_days_of_hours_is_still_allowed(world, api_client):
    response = _get(
        api_client, world, "finance", start="2025-01-01", end="2026-02-05", granularity="hour"
    )
    assert response.status_code == 200


def test_without_a_billing_source_the_caller_is_asked_to_name_one(world, api_client):
    MetricSource.objects.filter(is_billing=True).update(is_billing=False)
    response = _get(api_client, world, "finance")
    assert response.status_code == 400
    assert response.json()["source"][0].startswith("No metric source bills yet; name one of: ")
    assert "allocation" in response.json()["source"][0]


# --- CSV -----------------------------------------------------------------------------------

HEADER = [
    "period_start",
    "source",
    "cluster",
    "cluster_name",
    "department",
    "department_name",
    "gpu_class",
    "gpu_class_name",
    "quantity",
    "gpu_seconds",
    "unit",
]


def test_csv_gives_the_whole_table_with_a_header(world, api_client, october):
    response = _get(api_client, world, "finance", format="csv", page_size=2, **october)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"] == 'attachment; filename="usage.csv"'
    table = list(csv.reader(io.StringIO(response.content.decode())))
    assert table[0] == HEADER
    assert len(table) == 1 + 5  # every row, not one page of 2
    assert [
        "2026-10-05T00:00:00Z",
        "allocation",
        "",
        "",
        "",
        "Unallocated",
        "t4",
        "T4",
        "3.00",
        "10800",
        "gpu_hours",
    ] in table


def test_an_empty_csv_still_has_its_header(world, api_client, october):
    response = _get(api_client, world, "member", format="csv", **october)
    assert response.status_code == 200
    assert response.content.decode().splitlines() == [",".join(HEADER)]

"""Forecasts through the ledger: a month with a clock change projected by hours, the
department page's burn-down with its projection and "runs out on", the dashboard's
forecast column, the statement's projected total, and GET /api/v1/forecast/."""

import csv
import datetime as dt
import io
import json
import re
from decimal import Decimal

import pytest
from django.utils import timezone

from billing import foresight, services
from core import calendar
from departments.models import QuotaKind
from metering.models import UsageRecord
from tests.conftest import client_as
from tests.factories import MeteringRunFactory, QuotaFactory, RateCardFactory

GPU_HOURS_A_DAY = 48


def _hourly(source, department, gpu_class, start, end, gpus=2):
    run = MeteringRunFactory(source=source, window_start=start, window_end=end)
    hour, rows = start, []
    while hour < end:
        rows.append(
            UsageRecord(
                source=source,
                namespace="dept-marketing",
                gpu_model="NVIDIA A100",
                department=department,
                gpu_class=gpu_class,
                hour_start=hour,
                quantity=Decimal(3600 * gpus),
                run=run,
            )
        )
        hour += dt.timedelta(hours=1)
    UsageRecord.objects.bulk_create(rows)


@pytest.mark.parametrize(
    ("now", "hours_in_month"),
    [
        (dt.datetime(2026, 10, 20, 10, tzinfo=dt.UTC), 745),
        (dt.datetime(2026, 3, 20, 10, tzinfo=dt.UTC), 743),
    ],
)
def test_a_month_with_a_clock_change_is_projected_by_its_hours(
    world, settings, now, hours_in_month
):
    settings.TIME_ZONE = "Europe/Berlin"
    from metering.models import MetricSource

    source = MetricSource.objects.get(is_billing=True)
    start = now - dt.timedelta(days=45)
    _hourly(source, world.marketing, world.a100, start, calendar.floor_hour(now))
    period = services.period_for_reading(month=calendar.month_of(now))
    (row,) = foresight.forecasts(
        user=world.user("finance"),
        period=period,
        now=now,
        department=world.marketing,
        gpu_class=world.a100,
    )
    assert row.projection.enough_data
    assert row.projection.fit.trimmed == ()
    assert row.projection.expected == pytest.approx(2 * hours_in_month)
    assert row.projection.high - row.projection.low == pytest.approx(0)


@pytest.fixture
def pace(world):
    """Marketing ran 2 A100s around the clock for the last 20 days (48 GPU-hours a
    day, 1.00 EUR per GPU-hour); its monthly budget is half-way between what it has used
    and what it will use by the month's end at this pace."""
    from metering.models import MetricSource

    RateCardFactory(gpu_class=world.a100, price_per_gpu_hour=Decimal("1.00"))
    source = MetricSource.objects.get(is_billing=True)
    now = timezone.now()
    today = now.astimezone(calendar.portal_zone()).date()
    today_start, today_end = calendar.day_bounds(today, today)
    _hourly(source, world.marketing, world.a100, today_start - dt.timedelta(days=20), today_start)
    month_start, month_end = calendar.month_bounds(now)
    used = max(0, (today_start - month_start) / dt.timedelta(hours=1)) * 2
    rest = (month_end - now) / dt.timedelta(hours=1) * 2
    budget = Decimal(int(used + rest / 2))
    QuotaFactory(
        department=world.marketing,
        kind=QuotaKind.GPU_HOURS_MONTH,
        limit=budget,
        job_kind="",
        gpu_class=None,
    )
    # The day the budget is reached at 2 GPU-hours an hour, from now on.
    day, cumulative, end = today, used + (today_end - now) / dt.timedelta(hours=1) * 2, today_end
    while cumulative < float(budget):
        day += dt.timedelta(days=1)
        following = end + dt.timedelta(days=1)
        nxt = calendar.day_bounds(day, day)[1]
        cumulative += (nxt - end) / dt.timedelta(hours=1) * 2
        end = nxt
        del following
    return {"budget": budget, "runs_out_on": day, "expected": used + rest, "used": used}


def _projected_spend(world, pace) -> Decimal:
    """What the draft charged so far, plus the rest of the month's GPU-hours at the draft's
    effective rate (the nightly off-peak hours make it less than the card's 1.00 EUR)."""
    period = services.period_for_reading(month=calendar.month_of(timezone.now()))
    total = period.statements.get(department=world.marketing).total
    used = Decimal(repr(pace["used"]))
    rest = Decimal(repr(pace["expected"])) - used
    assert total < used  # some hours were off-peak
    return (total + rest * total / used).quantize(Decimal("0.01"))


def _figure(page: str, div_id: str) -> list[dict]:
    match = re.search(rf'Plotly\.newPlot\(\s*"{div_id}",\s*', page)
    assert match, f"no chart {div_id}"
    data, _ = json.JSONDecoder().raw_decode(page, match.end())
    return data


def test_the_burn_down_draws_the_projection_and_says_when_the_budget_runs_out(world, client, pace):
    page = client_as(client, world, "manager").get("/departments/marketing/").content.decode()
    traces = {trace["name"]: trace for trace in _figure(page, "chart-budget-burn-down")}
    assert {"Used", "Projection", "Projection, 80 % band", "Monthly budget"} <= set(traces)
    assert traces["Projection"]["y"][-1] == pytest.approx(pace["expected"], abs=0.01)
    text = " ".join(page.split())
    day = pace["runs_out_on"]
    assert f"the budget runs out on {day.day} {day:%b}" in text


def test_the_dashboard_and_the_draft_statement_show_the_projected_spend(world, client, pace):
    page = " ".join(client_as(client, world, "finance").get("/billing/").content.decode().split())
    expected = f"{_projected_spend(world, pace):,}"
    assert "Month-end forecast" in page
    assert f"{expected} EUR" in page
    period = services.period_for_reading(month=calendar.month_of(timezone.now()))
    statement = period.statements.get(department=world.marketing)
    page = client_as(client, world, "manager").get(f"/billing/statements/{statement.pk}/")
    text = " ".join(page.content.decode().split())
    assert "Projected at month end" in text and f"{expected} EUR" in text


def test_the_forecast_api_answers_json_and_csv_scoped_to_the_user(world, api_client, pace):
    client_as(api_client, world, "finance")
    body = api_client.get("/api/v1/forecast/").json()
    scopes = {(r["scope"], r["department"], r["gpu_class"]) for r in body["rows"]}
    assert ("fleet", None, None) in scopes and ("department", "marketing", None) in scopes
    (row,) = [r for r in body["rows"] if r["department"] == "marketing" and not r["gpu_class"]]
    assert row["status"] == "forecast"
    assert Decimal(row["gpu_hours_expected"]) == Decimal(repr(pace["expected"])).quantize(
        Decimal("0.01")
    )
    assert row["runs_out_on"] == pace["runs_out_on"].isoformat()
    assert Decimal(row["spend_expected"]) == _projected_spend(world, pace)
    csv_rows = list(
        csv.DictReader(io.StringIO(api_client.get("/api/v1/forecast/?format=csv").content.decode()))
    )
    assert len(csv_rows) == len(body["rows"])

    client_as(api_client, world, "other_manager")
    rows = api_client.get("/api/v1/forecast/").json()["rows"]
    assert rows and {r["department"] for r in rows} == {"training"}
    assert api_client.get("/api/v1/forecast/?department=marketing").status_code == 400

    client_as(api_client, world, "member")
    assert api_client.get("/api/v1/forecast/").json()["rows"] == []


def test_an_ended_month_answers_its_actual_total_without_a_band(world, api_client, pace):
    client_as(api_client, world, "finance")
    previous = (calendar.month_of(timezone.now()) - dt.timedelta(days=1)).replace(day=1)
    body = api_client.get(f"/api/v1/forecast/?period={previous:%Y-%m}&department=marketing")
    (row,) = [r for r in body.json()["rows"] if not r["gpu_class"]]
    assert row["status"] == "actual"
    assert row["gpu_hours_low"] is None and row["gpu_hours_high"] is None
    assert row["gpu_hours_expected"] == row["gpu_hours_to_date"]


@pytest.mark.parametrize(
    "query", ["period=0001-01", "period=9999-12", "period=2026-13", "period=%00", "period=' OR 1=1"]
)
def test_hostile_periods_answer_400(world, api_client, query):
    client_as(api_client, world, "finance")
    response = api_client.get(f"/api/v1/forecast/?{query}")
    assert response.status_code == 400
    assert "period" in response.content.decode()

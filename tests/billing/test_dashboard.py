"""The finance dashboard: the month's cost per department by GPU class, the 12-month trend,
the table (spend, GPU-hours, budget use, efficiency, SLA compliance, statement) with
*Unallocated*, idle capacity and the reconciliation; managers see their departments only."""

import datetime as dt
import json
import re
from decimal import Decimal

import pytest
from django.utils import timezone

from billing import services
from billing.models import BillingPeriod, Statement
from core import calendar
from core.calendar import month_bounds
from departments.models import QuotaKind
from jobs.models import GenerationJob
from metering.models import MetricSource
from tests.conftest import client_as
from tests.factories import (
    GenerationJobFactory,
    QuotaFactory,
    RateCardFactory,
    UsageRecordFactory,
)

URL = "/billing/"
PLOTLY_TAG = '<script src="/static/vendor/plotly/plotly-basic.min.js"></script>'
BY_CLASS = "chart-cost-by-class"
TREND = "chart-cost-trend"


def this_month() -> dt.date:
    return calendar.month_of(timezone.now())


def previous_month(month: dt.date) -> dt.date:
    return (month - dt.timedelta(days=1)).replace(day=1)


def at(month: dt.date, day: int = 2, hour: int = 12) -> dt.datetime:
    """An hour inside ``month`` (noon UTC: outside the world's nightly off-peak window)."""
    start, _ = month_bounds(month)
    return start.replace(hour=0) + dt.timedelta(days=day - 1, hours=hour)


def figure_parts(page: str, div_id: str) -> tuple[list[dict], dict]:
    """The traces and layout the page hands to ``Plotly.newPlot`` for ``div_id``."""
    match = re.search(rf'Plotly\.newPlot\(\s*"{div_id}",\s*', page)
    assert match, f"no chart {div_id} on the page"
    decoder = json.JSONDecoder()
    data, end = decoder.raw_decode(page, match.end())
    layout, _ = decoder.raw_decode(page, page.index("{", end))
    return data, layout


def by_name(traces: list[dict]) -> dict[str, dict]:
    return {trace["name"]: trace for trace in traces}


def usage(month, department, gpu_class, gpu_hours, *, source=None, namespace=None, day=2):
    """A ledger row: ``gpu_hours`` of GPU time, or milliseconds for a latency source."""
    latency = source is not None and not source.measures_gpu_time
    return UsageRecordFactory(
        department=department,
        gpu_class=gpu_class,
        hour_start=at(month, day),
        **({"quantity": Decimal(gpu_hours)} if latency else {"gpu_hours": Decimal(gpu_hours)}),
        **({"source": source} if source else {}),
        **({"namespace": namespace} if namespace else {}),
    )


@pytest.fixture
def month_of_usage(world):
    """This month: marketing 10 GPU-hours of A100 at 150.00 and 4 of T4 at 0.50
    (1,502.00 EUR), training 3 of A100 (450.00), an orphan namespace 1 of A100
    (Unallocated, 150.00)."""
    RateCardFactory(gpu_class=world.a100, price_per_gpu_hour=Decimal("150.00"))
    RateCardFactory(gpu_class=world.t4, price_per_gpu_hour=Decimal("0.50"))
    month = this_month()
    usage(month, world.marketing, world.a100, "10")
    usage(month, world.marketing, world.t4, "4")
    usage(month, world.training, world.a100, "3")
    usage(month, None, world.a100, "1", namespace="orphan")
    return month


def _page(client, world, role, query="") -> str:
    response = client_as(client, world, role).get(URL + query)
    assert response.status_code == 200, response.content[:500]
    return response.content.decode()


@pytest.mark.parametrize("role", ["finance", "it_admin"])
def test_the_chart_stacks_each_departments_cost_by_gpu_class(world, client, month_of_usage, role):
    page = _page(client, world, role)
    assert page.count(PLOTLY_TAG) == 1
    traces, layout = figure_parts(page, BY_CLASS)
    traces = by_name(traces)
    assert set(traces) == {"A100", "T4"}
    assert traces["A100"]["x"] == ["Marketing", "Training", "Unallocated"]
    assert traces["A100"]["y"] == [1500.0, 450.0, 150.0]
    assert traces["T4"]["y"] == [2.0, 0.0, 0.0]
    assert {trace["type"] for trace in traces.values()} == {"bar"}
    assert layout["barmode"] == "relative"
    assert layout["yaxis"]["title"]["text"] == "EUR"
    assert "Cost per department by GPU class" in page


def test_the_table_shows_spend_to_the_cent_gpu_hours_and_statement_links(
    world, client, month_of_usage
):
    page = _page(client, world, "finance")
    period = BillingPeriod.objects.get(month=month_of_usage)
    marketing = Statement.objects.get(period=period, department=world.marketing)
    training = Statement.objects.get(period=period, department=world.training)
    assert '<td class="num">1,502.00 EUR</td>' in page
    assert '<td class="num">14.00</td>' in page
    assert '<td class="num">450.00 EUR</td>' in page
    assert f'href="/billing/statements/{marketing.pk}/">Draft</a>' in page
    assert f'href="/billing/statements/{training.pk}/">Draft</a>' in page
    assert '<a href="/departments/marketing/">Marketing</a>' in page
    assert '<a href="/departments/training/">Training</a>' in page
    # Unallocated is its own row, with no department page to link to.
    assert re.search(r"<td>Unallocated .*?</td>\s*<td class=\"num\">150.00 EUR</td>", page)
    # Departments' total: 1,502.00 + 450.00.
    assert '<th>Departments</th><th class="num">1,952.00 EUR</th>' in page


def test_idle_capacity_capacity_value_and_the_reconciliation_use_the_periods_figures(
    world, client, month_of_usage
):
    page = _page(client, world, "finance")
    period = BillingPeriod.objects.get(month=month_of_usage)
    assert period.idle_amount > 0
    idle = f"{period.idle_amount:,.2f}"
    capacity = f"{period.capacity_amount:,.2f}"
    assert f'<th>Idle capacity</th><th class="num">{idle} EUR</th>' in page
    assert f'<th>Capacity value</th><th class="num">{capacity} EUR</th>' in page
    # Departments' usage before multipliers (1,952.00) + Unallocated (150.00) + idle.
    assert period.capacity_amount == Decimal("1952.00") + Decimal("150.00") + period.idle_amount
    text = " ".join(page.split())
    assert (
        f"departments' usage 1,952.00 + Unallocated 150.00 + idle {idle} = {capacity} EUR; "
        f"capacity value {capacity} EUR." in text
    )
    assert "✓ reconciled" in page


def test_department_multipliers_stay_out_of_the_reconciliation(world, client, month_of_usage):
    from tests.factories import DepartmentMultiplierFactory

    DepartmentMultiplierFactory(department=world.marketing, multiplier=Decimal("0.5"))
    page = _page(client, world, "finance")
    assert '<td class="num">751.00 EUR</td>' in page  # marketing pays half
    assert "departments' usage 1,952.00 + Unallocated 150.00" in " ".join(page.split())
    assert "✓ reconciled" in page


def test_budget_use_efficiency_and_sla_compliance_per_department(world, client, month_of_usage):
    QuotaFactory(department=world.marketing, kind=QuotaKind.GPU_HOURS_MONTH, limit=Decimal("20"))
    utilisation = MetricSource.objects.get(name="utilisation")
    usage(month_of_usage, world.marketing, world.a100, "7", source=utilisation)
    # Marketing's batch jobs waited about nothing (its job started right away): met.
    latency = MetricSource.objects.get(name="latency")
    world.marketing_sla.latency_target_ms = 800
    world.marketing_sla.save()
    usage(month_of_usage, world.marketing, None, "500", source=latency)
    # A training job waited two hours against an interactive target of one: missed. (One
    # reading of the clock: two would make the wait a little short of 7200 s.)
    now = timezone.now()
    job = GenerationJobFactory(
        department=world.training,
        submitter=world.user("other_manager"),
        kind=world.lipsync,
        tier="interactive",
        gpu_class=world.a100,
        state="succeeded",
        started_at=now,
    )
    GenerationJob.objects.filter(pk=job.pk).update(submitted_at=now - dt.timedelta(hours=2))

    page = _page(client, world, "finance")
    rows = {
        name: row
        for name, row in re.findall(
            r'<tr>\s*<td><a href="/departments/[^"]+/">([^<]+)</a></td>(.*?)</tr>', page, re.S
        )
    }
    marketing, training = rows["Marketing"], rows["Training"]
    assert "70.0 %" in marketing and "of 20" in marketing  # 14 of 20 GPU-hours
    assert "50.0 %" in marketing  # 7 busy of 14 billed GPU-hours
    assert "✓ met" in marketing
    assert "latency p95 500 ms / target 800 ms" in marketing
    assert "no budget" in training
    assert "✗ missed" in training
    assert "interactive queue wait p95 2 h 00 min / target 1 h 00 min" in training


def test_a_department_without_any_measure_shows_no_data(world, client, month_of_usage):
    page = _page(client, world, "finance")
    training = re.search(
        r'<a href="/departments/training/">Training</a></td>(.*?)</tr>', page, re.S
    ).group(1)
    assert "sla-none" in training and "no data" in training


def test_the_trend_draws_from_the_first_charged_month_to_the_chosen_one(
    world, client, month_of_usage
):
    earlier = previous_month(month_of_usage)
    usage(earlier, world.marketing, world.a100, "2")
    services.period_refresh(month=earlier)  # 300.00 EUR for marketing
    # Metered after that month's last refresh: the dashboard of this month leaves it be.
    usage(earlier, world.marketing, world.a100, "5", day=3)

    page = _page(client, world, "finance")
    traces, layout = figure_parts(page, TREND)
    traces = by_name(traces)
    marketing = traces["Marketing"]
    # The ten months before the first charge are not drawn; this month is running.
    assert marketing["x"] == [f"{earlier:%b %Y}", f"{month_of_usage:%b %Y} (partial, to date)"]
    assert marketing["y"] == [300.0, 1502.0]
    assert marketing["marker"]["pattern"]["shape"] == ["", "/"]
    assert traces["Unallocated"]["y"][-1] == 150.0
    assert traces["Training"]["y"][-1] == 450.0
    assert layout["xaxis"]["type"] == "category"
    # Titled for what it shows (not "12 months"), every month named the one way.
    assert "<h2>Cost by month</h2>" in page and "12 months" not in page
    assert f"{earlier:%b %Y} to {month_of_usage:%b %Y};" in page
    assert f"{month_of_usage:%b %Y} is not over: its hatched bars are the costs to date" in page


def test_the_month_picker_shows_an_earlier_month_and_refreshes_it(world, client, month_of_usage):
    earlier = previous_month(month_of_usage)
    usage(earlier, world.marketing, world.a100, "2")
    page = _page(client, world, "finance", f"?period={earlier:%Y-%m}")
    assert '<td class="num">300.00 EUR</td>' in page
    assert "1,502.00" not in page.split(TREND)[0]  # this month is not this page's table
    traces, _ = figure_parts(page, TREND)
    # A month that has ended is not partial.
    assert by_name(traces)["Marketing"]["x"] == [f"{earlier:%b %Y}"]
    assert "is not over" not in page
    assert f'value="{earlier:%Y-%m}"' in page


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("2026-13", "“2026-13” names no month 13: months run 01 to 12."),
        ("march", "“march” is not a period; give a month (2026-03), a quarter (2026-Q3)"),
        ("1999-12", "“1999-12” is before the year 2000."),
    ],
)
def test_a_malformed_month_answers_400_with_the_reason(world, client, value, message):
    response = client_as(client, world, "finance").get(URL, {"period": value})
    assert response.status_code == 400
    page = response.content.decode()
    assert message in page
    assert 'class="error"' in page
    assert not BillingPeriod.objects.exists()


def test_a_month_that_has_not_begun_answers_400(world, client):
    future = calendar.next_month(this_month())
    response = client_as(client, world, "finance").get(URL, {"period": f"{future:%Y-%m}"})
    assert response.status_code == 400
    assert f"{future:%B %Y} has not begun" in response.content.decode()
    assert not BillingPeriod.objects.filter(month=future).exists()


def test_a_manager_sees_only_their_departments_anywhere_on_the_page(world, client, month_of_usage):
    earlier = previous_month(month_of_usage)
    usage(earlier, world.training, world.a100, "2")
    services.period_refresh(month=earlier)
    page = _page(client, world, "manager")
    assert '<td class="num">1,502.00 EUR</td>' in page
    for secret in ("Training", "training", "450", "Unallocated", "Idle capacity", "Capacity value"):
        assert secret not in page, secret
    assert "Reconciliation" not in page
    assert "1 draft among your departments' statements" in " ".join(page.split())
    traces, _ = figure_parts(page, BY_CLASS)
    assert {name for trace in traces for name in trace["x"]} == {"Marketing"}
    trend, _ = figure_parts(page, TREND)
    assert [trace["name"] for trace in trend] == ["Marketing"]


def test_without_any_charge_the_page_says_so_and_loads_no_chart(world, client):
    page = _page(client, world, "finance")
    assert PLOTLY_TAG not in page
    assert "Nothing was charged in" in page
    # Every active department has its (empty) draft.
    assert '<td class="num">0.00 EUR</td>' in page

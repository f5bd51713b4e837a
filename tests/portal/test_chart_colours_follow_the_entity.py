"""A GPU class and a department keep one colour on every chart, for every role: the colour
is the entity's, not its place among the traces a page happens to draw. Every chart shows
its legend, one trace included, and no legend entry stands for a trace with nothing in it."""

import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone

from billing import selectors, services
from departments.models import QuotaKind
from metering.selectors import month_bounds
from tests.billing.test_dashboard import figure_parts
from tests.conftest import client_as
from tests.factories import (
    DepartmentFactory,
    GpuClassFactory,
    QuotaFactory,
    RateCardFactory,
    UsageRecordFactory,
)

DASHBOARD = "/billing/"
MARKETING = "/departments/marketing/"
BY_CLASS = "chart-cost-by-class"
TREND = "chart-cost-trend"
DAILY = "chart-daily-gpu-hours"
BURN_DOWN = "chart-budget-burn-down"


def _noon(day: int = 1) -> dt.datetime:
    """Noon of ``day`` this month (outside the nightly off-peak window)."""
    start, _ = month_bounds(timezone.now())
    return start + dt.timedelta(days=day - 1, hours=12)


def _page(client, world, role: str, url: str) -> str:
    response = client_as(client, world, role).get(url)
    assert response.status_code == 200, response.content[:500]
    return response.content.decode()


def _colours(page: str, div_id: str) -> dict[str, str]:
    traces, _ = figure_parts(page, div_id)
    return {trace["name"]: trace["marker"]["color"] for trace in traces}


def _usage(department, gpu_class, hours: str, **extra) -> None:
    UsageRecordFactory(
        department=department,
        gpu_class=gpu_class,
        hour_start=_noon(),
        gpu_hours=Decimal(hours),
        **extra,
    )


@pytest.fixture
def priced(world):
    RateCardFactory(gpu_class=world.a100, price_per_gpu_hour=Decimal("150.00"))
    RateCardFactory(gpu_class=world.t4, price_per_gpu_hour=Decimal("0.50"))


def test_a_gpu_class_has_one_colour_on_every_page_for_every_role(world, client, priced):
    # Marketing used T4 only, training A100 only: each page draws a single class first.
    _usage(world.marketing, world.t4, "4")
    _usage(world.training, world.a100, "3")

    finance = _colours(_page(client, world, "finance", DASHBOARD), BY_CLASS)
    client.logout()
    manager_dashboard = _colours(_page(client, world, "manager", DASHBOARD), BY_CLASS)
    manager_daily = _colours(_page(client, world, "manager", MARKETING), DAILY)

    assert set(finance) == {"A100", "T4"}
    assert finance["A100"] != finance["T4"]
    assert set(manager_dashboard) == {"T4"}
    assert manager_dashboard["T4"] == finance["T4"]
    assert manager_daily == {"T4": finance["T4"]}


def test_a_new_department_does_not_recolour_the_others(world, client, priced):
    _usage(world.marketing, world.a100, "2")
    _usage(world.training, world.a100, "1")
    services.period_refresh(month=services.month_of(timezone.now()))
    before = _colours(_page(client, world, "finance", DASHBOARD), TREND)

    # Sorted first by name, and a bigger spender than both.
    accounting = DepartmentFactory(slug="accounting", name="Accounting")
    _usage(accounting, world.a100, "9", namespace="dept-accounting")
    after = _colours(_page(client, world, "finance", DASHBOARD), TREND)

    assert set(before) == {"Marketing", "Training"}
    assert set(after) == {"Accounting", "Marketing", "Training"}
    assert after["Marketing"] == before["Marketing"]
    assert after["Training"] == before["Training"]
    assert after["Accounting"] not in {before["Marketing"], before["Training"]}


def test_a_new_gpu_class_does_not_recolour_the_others(world, client, priced):
    _usage(world.marketing, world.t4, "2")
    before = _colours(_page(client, world, "manager", MARKETING), DAILY)

    h100 = GpuClassFactory(slug="h100", name="H100", model_regex=".*H100.*")
    RateCardFactory(gpu_class=h100, price_per_gpu_hour=Decimal("300.00"))
    _usage(world.marketing, h100, "1")
    after = _colours(_page(client, world, "manager", MARKETING), DAILY)

    assert after["T4"] == before["T4"]
    assert after["H100"] != after["T4"]


@pytest.mark.parametrize(
    ("url", "div_id"),
    [(DASHBOARD, BY_CLASS), (DASHBOARD, TREND), (MARKETING, DAILY), (MARKETING, BURN_DOWN)],
)
def test_a_chart_of_a_single_trace_shows_its_legend(world, client, priced, url, div_id):
    _usage(world.marketing, world.t4, "4")
    page = _page(client, world, "manager", url)

    traces, layout = figure_parts(page, div_id)

    assert len(traces) == 1
    assert layout["showlegend"] is True


def test_the_burn_down_draws_the_department_in_its_colour(world, client, priced):
    _usage(world.marketing, world.t4, "4")
    QuotaFactory(department=world.marketing, kind=QuotaKind.GPU_HOURS_MONTH, limit=Decimal("100"))
    page = _page(client, world, "finance", DASHBOARD)
    marketing = _colours(page, TREND)["Marketing"]

    traces, _ = figure_parts(_page(client, world, "finance", MARKETING), BURN_DOWN)
    used = next(trace for trace in traces if trace["name"] == "Used")

    assert used["line"]["color"] == marketing


def test_a_class_that_cost_nothing_has_no_bar_and_no_legend_entry(world, client, priced):
    # GPU time of a model no class matches: charted as "Unknown model", priced at 0 EUR.
    _usage(world.marketing, world.a100, "2")
    _usage(world.marketing, None, "5")

    page = _page(client, world, "finance", DASHBOARD)
    traces, _ = figure_parts(page, BY_CLASS)
    period = services.period_for_reading(month=services.month_of(timezone.now()))
    report = selectors.chargeback_report(user=world.user("finance"), period=period)

    # The report has the class, at 0 EUR: the chart leaves it out.
    assert report.class_names == ["A100", "Unknown model"]
    assert [trace["name"] for trace in traces] == ["A100"]

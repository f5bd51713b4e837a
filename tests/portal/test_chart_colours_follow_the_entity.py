"""A GPU class and a department keep one colour on every chart, for every role: the colour
is the entity's, not its place among the traces a page happens to draw. Every chart shows
its legend, one trace included, and no legend entry stands for a trace with nothing in it.
GPU classes and departments take colours from two palettes that share none, so a colour
means one thing on every page; what is no entity (Unallocated, idle capacity...) has a grey
of its own."""

import datetime as dt
from decimal import Decimal
from types import SimpleNamespace

import pytest
from django.utils import timezone

from billing import selectors, services
from billing.charts import cost_by_class_figure
from core import calendar
from core.calendar import month_bounds
from departments.models import QuotaKind
from metering import charts
from metering.selectors import UNALLOCATED, UNKNOWN_MODEL
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
    services.period_refresh(month=calendar.month_of(timezone.now()))
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
    period = services.period_for_reading(month=calendar.month_of(timezone.now()))
    report = selectors.chargeback_report(user=world.user("finance"), period=period)

    # The report has the class, at 0 EUR: the chart leaves it out.
    assert report.class_names == ["A100", "Unknown model"]
    assert [trace["name"] for trace in traces] == ["A100"]


def _relative_luminance(colour: str) -> float:
    """WCAG 2's relative luminance of ``#rrggbb``."""
    channels = [int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    r, g, b = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def test_no_department_takes_the_colour_of_a_gpu_class(world, priced):
    # Marketing and A100 both have primary key 1 in a fresh database... or close to it:
    # whatever the keys, no department colour is any GPU class colour.
    for index in range(3):
        GpuClassFactory(slug=f"class-{index}", name=f"Class {index}")
        DepartmentFactory(slug=f"dept-{index}", name=f"Dept {index}")
    department_colours = set(charts.department_colours().values())
    class_colours = set(charts.gpu_class_colours().values())
    every_department = {charts.department_colour(pk) for pk in range(1, 50)}
    every_class = {charts.gpu_class_colour(pk) for pk in range(1, 50)}

    assert charts.department_colours()["Marketing"] != charts.gpu_class_colours()["A100"]
    assert department_colours.isdisjoint(class_colours)
    assert every_department.isdisjoint(every_class)
    assert len(every_class) >= 6 and len(every_department) >= 6


NO_ENTITY = [
    UNALLOCATED,
    UNKNOWN_MODEL,
    "Idle capacity",
    "Worker pool idle",
    "Adjustments",
    "9 other departments",
]


def test_what_is_no_entity_has_a_grey_of_its_own(world):
    colours = {**charts.gpu_class_colours(), **charts.department_colours()}
    greys = {name: charts.name_colour(name, colours) for name in NO_ENTITY}

    assert len(set(greys.values())) == len(NO_ENTITY), greys
    entity_colours = {charts.gpu_class_colour(pk) for pk in range(1, 50)}
    entity_colours |= {charts.department_colour(pk) for pk in range(1, 50)}
    assert entity_colours.isdisjoint(greys.values())
    assert charts.BUDGET_COLOUR not in {*greys.values(), *entity_colours}


def test_every_chart_colour_stands_out_three_to_one_on_white():
    colours = {
        *charts.GPU_CLASS_PALETTE,
        *charts.DEPARTMENT_PALETTE,
        *(charts.name_colour(name, {}) for name in NO_ENTITY),
    }
    for colour in colours:
        assert 1.05 / (_relative_luminance(colour) + 0.05) >= 3, colour


def test_on_the_dashboard_a_department_and_a_gpu_class_never_share_a_colour(world, client, priced):
    # A100 time of marketing, and A100 time of a namespace no department owns.
    _usage(world.marketing, world.a100, "2")
    _usage(None, world.a100, "5")
    services.period_refresh(month=calendar.month_of(timezone.now()))
    page = _page(client, world, "finance", DASHBOARD)

    by_class = _colours(page, BY_CLASS)
    trend = _colours(page, TREND)

    assert set(trend) == {"Marketing", UNALLOCATED}
    assert trend["Marketing"] != by_class["A100"]
    assert trend[UNALLOCATED] != charts.name_colour(UNKNOWN_MODEL, {})


def test_the_two_idle_series_differ_by_pattern_as_well_as_grey():
    row = SimpleNamespace(
        name="Marketing",
        by_class={"A100": Decimal("5"), "Idle capacity": Decimal("2"), "Worker pool idle": 1},
    )
    report = SimpleNamespace(
        rows=[row], class_names=["A100", "Idle capacity", "Worker pool idle"], currency="EUR"
    )

    figure = cost_by_class_figure(report=report, colours={"A100": charts.gpu_class_colour(1)})
    markers = {trace.name: trace.marker for trace in figure.data}

    assert markers["A100"].pattern.shape is None
    assert {markers["Idle capacity"].pattern.shape, markers["Worker pool idle"].pattern.shape} == {
        "x",
        ".",
    }
    assert markers["Idle capacity"].color != markers["Worker pool idle"].color

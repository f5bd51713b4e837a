"""The department page's usage charts: GPU-hours per day by GPU class over the last 30 days
and this month's budget burn-down, drawn with plotly.js from our own static files, for
those who may read the department's usage (finance, IT, its managers) and nobody else."""

import datetime as dt
import json
import re
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.conf import settings
from django.contrib.staticfiles import finders
from django.utils import timezone

from billing import services as billing
from core import calendar
from departments.models import QuotaKind
from tests.conftest import client_as
from tests.factories import GpuClassFactory, QuotaFactory, UsageRecordFactory

URL = "/departments/marketing/"
PLOTLY_TAG = '<script src="/static/vendor/plotly/plotly-basic.min.js"></script>'
DAILY = "chart-daily-gpu-hours"
BURN_DOWN = "chart-budget-burn-down"


def today_start() -> dt.datetime:
    """Midnight today in the portal's time zone."""
    zone = ZoneInfo(settings.TIME_ZONE)
    return dt.datetime.combine(timezone.now().astimezone(zone).date(), dt.time(0), tzinfo=zone)


def _page(client, world, role) -> str:
    response = client_as(client, world, role).get(URL)
    assert response.status_code == 200
    return response.content.decode()


def figure_data(page: str, div_id: str) -> list[dict]:
    """The traces that the page hands to ``Plotly.newPlot`` for the chart ``div_id``."""
    match = re.search(rf'Plotly\.newPlot\(\s*"{div_id}",\s*', page)
    assert match, f"no chart {div_id} on the page"
    data, _ = json.JSONDecoder().raw_decode(page, match.end())
    return data


def by_name(traces: list[dict]) -> dict[str, dict]:
    return {trace["name"]: trace for trace in traces}


@pytest.fixture
def todays_usage(world):
    """Marketing today: 1.5 + 2 GPU-hours on T4, 4 on A100; training 8 on A100."""
    midnight = today_start()
    for offset, gpu_class, hours in [
        (0, world.t4, "1.5"),
        (1, world.t4, "2"),
        (0, world.a100, "4"),
    ]:
        UsageRecordFactory(
            department=world.marketing,
            gpu_class=gpu_class,
            hour_start=midnight + dt.timedelta(hours=offset),
            gpu_hours=Decimal(hours),
        )
    UsageRecordFactory(
        department=world.training,
        gpu_class=world.a100,
        hour_start=midnight,
        gpu_hours=Decimal("8"),
    )


@pytest.mark.parametrize("role", ["manager", "finance", "it_admin"])
def test_those_who_read_the_usage_see_gpu_hours_per_day_by_class(world, client, todays_usage, role):
    page = _page(client, world, role)
    assert page.count(PLOTLY_TAG) == 1
    assert f'<div id="{DAILY}" class="plotly-graph-div"' in page
    traces = by_name(figure_data(page, DAILY))
    assert set(traces) == {"A100", "T4"}
    assert {trace["type"] for trace in traces.values()} == {"bar"}
    today = timezone.now().astimezone(ZoneInfo(settings.TIME_ZONE)).date()
    t4 = traces["T4"]
    assert len(t4["x"]) == 30
    assert t4["x"][-1] == today.isoformat()
    assert t4["x"][0] == (today - dt.timedelta(days=29)).isoformat()
    assert t4["y"] == [0.0] * 29 + [3.5]
    assert traces["A100"]["y"][-1] == 4.0  # training's 8 GPU-hours are not marketing's
    assert "GPU-hours per day by GPU class" in page


def test_the_bars_are_stacked(world, client, todays_usage):
    page = _page(client, world, "manager")
    layout_start = re.search(rf'Plotly\.newPlot\(\s*"{DAILY}",\s*', page).end()
    decoder = json.JSONDecoder()
    _, after_data = decoder.raw_decode(page, layout_start)
    layout, _ = decoder.raw_decode(page, page.index("{", after_data))
    assert layout["barmode"] == "stack"


def test_the_plotly_script_is_served_from_our_own_static_files(world, client, todays_usage):
    page = _page(client, world, "manager")
    assert finders.find("vendor/plotly/plotly-basic.min.js"), "plotly.js is not in our static files"
    assert not re.search(r'<script[^>]+src="https?://', page)


def test_the_burn_down_climbs_to_this_months_total_against_the_budget(world, client, todays_usage):
    QuotaFactory(department=world.marketing, kind=QuotaKind.GPU_HOURS_MONTH, limit=Decimal("50"))
    page = _page(client, world, "manager")
    traces = by_name(figure_data(page, BURN_DOWN))
    used = traces["Used"]["y"]
    assert used[-1] == 7.5
    assert used == sorted(used)
    today = timezone.now().astimezone(ZoneInfo(settings.TIME_ZONE)).date()
    assert traces["Used"]["x"][-1] == today.isoformat()
    assert len(traces["Used"]["x"]) == today.day
    assert traces["Monthly budget"]["y"] == [50.0, 50.0]
    month_start = today.replace(day=1)
    next_month = (month_start + dt.timedelta(days=32)).replace(day=1)
    assert traces["Monthly budget"]["x"] == [month_start.isoformat(), next_month.isoformat()]
    assert "Monthly budget 50 GPU-hours; 7.50 used so far (15.0 %)." in page


def test_without_a_monthly_budget_the_page_says_so(world, client, todays_usage):
    page = _page(client, world, "manager")
    assert "There is no monthly GPU-hours budget for Marketing" in page
    assert set(by_name(figure_data(page, BURN_DOWN))) == {"Used"}


def test_a_budget_for_one_gpu_class_is_not_the_monthly_budget(world, client, todays_usage):
    QuotaFactory(
        department=world.marketing,
        kind=QuotaKind.GPU_HOURS_MONTH,
        gpu_class=world.t4,
        limit=Decimal("10"),
    )
    page = _page(client, world, "manager")
    assert "There is no monthly GPU-hours budget for Marketing" in page


def test_the_months_gpu_hours_by_class_are_in_a_table(world, client, todays_usage):
    UsageRecordFactory(
        department=world.marketing,
        gpu_class=None,
        hour_start=today_start(),
        gpu_hours=Decimal("0.25"),
    )
    page = _page(client, world, "finance")
    table = page[page.index("This month by GPU class") :]
    table = table[: table.index("</table>")]
    cells = re.findall(r"<t[dh][^>]*>([^<]*)</t[dh]>", table)
    assert cells == [
        "GPU class",
        "GPU-hours",
        "A100",
        "4.00",
        "T4",
        "3.50",
        "Unknown model",
        "0.25",
        "Total",
        "7.75",
    ]


def test_days_follow_the_portal_time_zone(world, client, settings):
    settings.TIME_ZONE = "Europe/Berlin"
    midnight = today_start()  # 22:00 or 23:00 UTC the day before
    UsageRecordFactory(department=world.marketing, gpu_class=world.t4, hour_start=midnight)
    UsageRecordFactory(
        department=world.marketing,
        gpu_class=world.t4,
        hour_start=midnight - dt.timedelta(hours=1),
        gpu_hours=Decimal("2"),
    )
    traces = by_name(figure_data(_page(client, world, "manager"), DAILY))
    assert traces["T4"]["x"][-1] == midnight.date().isoformat()
    assert traces["T4"]["y"][-2:] == [2.0, 1.0]


def test_without_usage_the_page_says_so_instead_of_an_empty_chart(world, client):
    UsageRecordFactory(department=world.training, gpu_class=world.a100, hour_start=today_start())
    page = _page(client, world, "manager")
    assert "No GPU-hours were metered for Marketing in the last 30 days." in page
    assert "No GPU-hours have been metered for Marketing this month." in page
    assert "plotly-graph-div" not in page
    assert PLOTLY_TAG not in page


def test_usage_older_than_30_days_is_not_drawn(world, client):
    UsageRecordFactory(
        department=world.marketing,
        gpu_class=world.t4,
        hour_start=today_start() - dt.timedelta(days=30),
    )
    page = _page(client, world, "manager")
    assert "No GPU-hours were metered for Marketing in the last 30 days." in page


def test_a_member_sees_the_department_but_not_its_usage(world, client, todays_usage):
    page = _page(client, world, "member")
    assert "Jobs admitted per day" in page  # the rules they work under
    assert "GPU usage" not in page
    assert "plotly-graph-div" not in page
    assert PLOTLY_TAG not in page


def test_another_departments_manager_gets_404(world, client, todays_usage):
    response = client_as(client, world, "other_manager").get(URL)
    assert response.status_code == 404
    assert b"plotly" not in response.content


def test_names_in_the_figure_cannot_break_out_of_the_script(world, client):
    evil = GpuClassFactory(slug="evil", name="</script><script>alert(1)</script>")
    UsageRecordFactory(department=world.marketing, gpu_class=evil, hour_start=today_start())
    page = _page(client, world, "manager")
    assert "<script>alert(1)" not in page
    assert "</script><script>alert(1)</script>" in by_name(figure_data(page, DAILY))


def test_the_page_costs_the_same_queries_for_little_or_much_usage(
    world, client, django_assert_max_num_queries
):
    QuotaFactory(department=world.marketing, kind=QuotaKind.GPU_HOURS_MONTH, limit=Decimal("50"))
    UsageRecordFactory(department=world.marketing, gpu_class=world.t4, hour_start=today_start())
    client.force_login(world.user("finance"))
    # The page brings the month's statements up to date (its Spend section): done once
    # before each measure, so both count the page with current statements.
    billing.period_refresh(month=calendar.month_of(timezone.now()))
    # 40 before the forecast (its daily series, rates, budgets) and the job costs (lines
    # and their jobs) came to the page.
    with django_assert_max_num_queries(52) as small:
        assert client.get(URL).status_code == 200
    midnight = today_start()
    for n in range(6):
        gpu_class = GpuClassFactory()
        for day in range(5):
            UsageRecordFactory(
                department=world.marketing,
                gpu_class=gpu_class,
                hour_start=midnight - dt.timedelta(days=day, hours=-n),
            )
    billing.period_refresh(month=calendar.month_of(timezone.now()))
    with django_assert_max_num_queries(len(small.captured_queries)):
        page = client.get(URL).content.decode()
    assert len(figure_data(page, DAILY)) == 7

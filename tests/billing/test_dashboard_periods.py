"""The dashboard of a quarter, a year to date or a custom range of months: the picker
offers them, the table and the chart follow the period with the change against the one
before, the 12-month trend stays; a manager still sees only their departments."""

import re

from core.calendar import Period
from tests.billing.test_dashboard import (
    BY_CLASS,
    TREND,
    URL,
    _page,
    by_name,
    figure_parts,
    month_of_usage,  # noqa: F401 (a fixture)
    previous_month,
    this_month,
    usage,
)
from tests.conftest import client_as


def _quarter() -> Period:
    month = this_month()
    return Period.quarter(month.year, (month.month + 2) // 3)


def _row(page: str, name: str) -> str:
    return re.search(rf">{name}</a></td>(.*?)</tr>", page, re.S).group(1)


def test_the_picker_offers_the_quarters_the_year_to_date_and_a_range(world, client):
    page = _page(client, world, "finance")
    quarter = _quarter()
    assert f'href="?period={quarter.label}"' in page
    assert f'href="?period={quarter.previous().label}"' in page
    assert f'href="?period={this_month().year}-YTD"' in page
    assert 'name="from"' in page and 'name="to"' in page


def test_a_quarter_as_finance_sums_its_months_with_the_change(
    world,
    client,
    month_of_usage,  # noqa: F811
):
    quarter = _quarter()
    page = _page(client, world, "finance", f"?period={quarter.label}")
    assert f"<h1>Billing · {quarter}</h1>" in page
    marketing = _row(page, "Marketing")
    assert '<td class="num">1,502.00 EUR</td>' in marketing
    # Nothing was spent in the quarter before: new.
    assert re.search(
        r'class="num change">\+1,502.00 <span class="muted small">new</span>', marketing
    )
    assert f"?period={quarter.label}&amp;format=csv" in page
    traces, _ = figure_parts(page, BY_CLASS)
    assert by_name(traces)["A100"]["x"] == ["Marketing", "Training", "Unallocated"]
    # The 12-month trend stays one of months.
    trend, _ = figure_parts(page, TREND)
    assert by_name(trend)["Marketing"]["y"][-1] == 1502.0


def test_a_month_shows_its_change_against_the_month_before(
    world,
    client,
    month_of_usage,  # noqa: F811
):
    earlier = previous_month(month_of_usage)
    usage(earlier, world.marketing, world.a100, "2")  # 300.00 EUR
    _page(client, world, "finance", f"?period={earlier:%Y-%m}")  # priced as its page shows it
    marketing = _row(_page(client, world, "finance"), "Marketing")
    # 1,502.00 against 300.00: +1,202.00, +400.7 %.
    assert re.search(r"\+1,202.00 <span class=\"muted small\">\+400.7 %</span>", marketing)


def test_a_custom_range_reads_both_months(world, client, month_of_usage):  # noqa: F811
    earlier = previous_month(month_of_usage)
    usage(earlier, world.marketing, world.a100, "2")
    response = client_as(client, world, "finance").get(
        URL, {"from": f"{earlier:%Y-%m}", "to": f"{month_of_usage:%Y-%m}"}
    )
    assert response.status_code == 200
    page = response.content.decode()
    assert '<td class="num">1,802.00 EUR</td>' in _row(page, "Marketing")
    assert f'value="{earlier:%Y-%m}"' in page and f'value="{month_of_usage:%Y-%m}"' in page
    assert "2 statements" in _row(page, "Marketing")


def test_a_manager_sees_the_quarter_of_their_departments_only(
    world,
    client,
    month_of_usage,  # noqa: F811
):
    page = _page(client, world, "manager", f"?period={_quarter().label}")
    assert '<td class="num">1,502.00 EUR</td>' in page
    for secret in ("Training", "training", "450", "Unallocated", "Idle capacity", "Capacity value"):
        assert secret not in page, secret
    traces, _ = figure_parts(page, BY_CLASS)
    assert {name for trace in traces for name in trace["x"]} == {"Marketing"}


def test_a_period_the_page_cannot_read_answers_400_with_the_reason(world, client):
    finance = client_as(client, world, "finance")
    for query, words in (
        ({"period": "2026-Q5"}, "is no quarter"),
        ({"period": "Q3"}, "names no year"),
        ({"from": "2026-06", "to": "2026-01"}, "ends before it starts"),
        ({"from": "2026-06"}, "Give both months of the range"),
        ({"period": "2020-01..2026-06"}, "a range covers at most 36"),
        ({"period": "9999-Q1"}, "too far ahead"),
    ):
        response = finance.get(URL, query)
        assert response.status_code == 400, query
        assert words in response.content.decode(), query
        assert 'class="error"' in response.content.decode()

"""The statements list as months add up: sorted by a column (``?sort=``, clickable
headers), searched by department name, slug, cost centre or month (``?q=``); a sort key
that is no column is ignored with a message; the CSV and XLSX downloads carry the month,
department and status filters."""

import datetime as dt
import html
import re
from decimal import Decimal

import pytest

from billing import services
from billing.forms import search_word_month
from billing.models import Statement
from tests.billing.conftest import hour
from tests.conftest import client_as
from tests.factories import RateCardFactory

FEBRUARY = dt.date(2026, 2, 1)
MARCH = dt.date(2026, 3, 1)


def _rows(page: str) -> list[tuple[str, str]]:
    """``(month, department)`` of each statement row, in page order."""
    return re.findall(
        r'<td><a href="/billing/statements/\d+/">([^<]+)</a></td>\s*'
        r'<td><a href="/departments/[^/]+/">([^<]+)</a></td>',
        page,
    )


def _get(client, url, status: int = 200) -> str:
    response = client.get(url)
    assert response.status_code == status, response.content.decode()[:2000]
    return response.content.decode()


@pytest.fixture
def statements(world, ledger):
    """February and March 2026 for marketing (3 and 1 A100 GPU-hours) and training (1 and
    5), at 2.00 EUR per GPU-hour."""
    RateCardFactory(gpu_class=world.a100, price_per_gpu_hour=Decimal("2.00"))
    for month, marketing, training in ((2, 3, 1), (3, 1, 5)):
        at = hour(2, 12, month=month)
        ledger.add(at=at, gpu_hours=marketing, department=world.marketing, gpu_class=world.a100)
        ledger.add(at=at, gpu_hours=training, department=world.training, gpu_class=world.a100)
    for month in (FEBRUARY, MARCH):
        services.period_refresh(month=month)
    assert Statement.objects.count() == 4


@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        # Newest month first, departments by name: as before.
        (
            "",
            [
                ("March 2026", "Marketing"),
                ("March 2026", "Training"),
                ("February 2026", "Marketing"),
                ("February 2026", "Training"),
            ],
        ),
        (
            "month",
            [
                ("February 2026", "Marketing"),
                ("February 2026", "Training"),
                ("March 2026", "Marketing"),
                ("March 2026", "Training"),
            ],
        ),
        (
            "-total",
            [
                ("March 2026", "Training"),
                ("February 2026", "Marketing"),
                ("March 2026", "Marketing"),
                ("February 2026", "Training"),
            ],
        ),
        (
            "-department",
            [
                ("March 2026", "Training"),
                ("February 2026", "Training"),
                ("March 2026", "Marketing"),
                ("February 2026", "Marketing"),
            ],
        ),
    ],
)
def test_the_list_sorts_by_the_column_asked_for(world, client, statements, sort, expected):
    page = _get(client_as(client, world, "finance"), f"/billing/statements/?sort={sort}")
    assert _rows(page) == expected


def test_the_headers_link_to_their_sort_keeping_the_filters(world, client, statements):
    page = _get(
        client_as(client, world, "finance"), "/billing/statements/?status=draft&sort=-total"
    )
    assert 'href="?status=draft&amp;sort=department"' in page
    header = re.search(r'<th[^>]*aria-sort="descending"[^>]*>(.*?)</th>', page, re.S)
    assert header is not None and "Total" in header.group(1)
    assert 'href="?status=draft&amp;sort=total"' in header.group(1)


def test_a_sort_key_that_is_no_column_is_ignored_with_a_message(world, client, statements):
    page = _get(client_as(client, world, "finance"), "/billing/statements/?sort=pk;drop")
    assert "“pk;drop” is not a column to sort by" in html.unescape(page)
    assert len(_rows(page)) == 4


@pytest.mark.parametrize(
    ("q", "expected"),
    [("train", {"Training"}), ("MARKET", {"Marketing"}), ("nobody", set())],
)
def test_the_search_box_finds_statements_by_department(world, client, statements, q, expected):
    page = _get(client_as(client, world, "finance"), f"/billing/statements/?q={q}")
    assert {department for _, department in _rows(page)} == expected
    assert f'name="q" value="{q}"' in page


@pytest.fixture
def cost_centres(world):
    world.marketing.cost_centre = "CC-4100"
    world.marketing.save()
    world.training.cost_centre = "CC-5200"
    world.training.save()


BOTH_MONTHS_OF_TRAINING = {("February 2026", "Training"), ("March 2026", "Training")}
MARCH_BOTH = {("March 2026", "Marketing"), ("March 2026", "Training")}
FEBRUARY_BOTH = {("February 2026", "Marketing"), ("February 2026", "Training")}


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        # The cost centre, whole or in part, any case.
        ("CC-5200", BOTH_MONTHS_OF_TRAINING),
        ("cc-41", {("February 2026", "Marketing"), ("March 2026", "Marketing")}),
        # The month as YYYY-MM, as a month name or abbreviation, with or without the year.
        ("2026-03", MARCH_BOTH),
        ("March 2026", MARCH_BOTH),
        ("march", MARCH_BOTH),
        ("Feb", FEBRUARY_BOTH),
        ("Feb 2026", FEBRUARY_BOTH),
        ("February 2026", FEBRUARY_BOTH),
        ("2026", MARCH_BOTH | FEBRUARY_BOTH),
        # Every word must match, each in any of the places.
        ("2026-02 CC-4100", {("February 2026", "Marketing")}),
        ("March training", {("March 2026", "Training")}),
        ("Feb 2025", set()),
        ("Oct 2026", set()),
        ("2026-04", set()),
        # Not a month: searched as words, found nowhere, and no error.
        ("2026-13", set()),
    ],
)
def test_the_search_box_finds_statements_by_cost_centre_and_month(
    world, client, statements, cost_centres, q, expected
):
    response = client_as(client, world, "finance").get("/billing/statements/", {"q": q})
    assert response.status_code == 200
    page = response.content.decode()
    assert set(_rows(page)) == expected
    assert len(_rows(page)) == len(expected)


def test_the_search_box_says_what_it_searches(world, client, statements):
    page = _get(client_as(client, world, "finance"), "/billing/statements/")
    assert 'placeholder="department, cost centre or month"' in page


def test_the_search_never_shows_a_statement_the_user_may_not_read(world, client, statements):
    page = _get(client_as(client, world, "manager"), "/billing/statements/?q=train")
    assert _rows(page) == []


@pytest.mark.parametrize(
    ("label", "content_type"),
    [
        ("CSV", "text/csv"),
        ("XLSX", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
    ],
)
def test_the_downloads_carry_the_filters(world, client, statements, label, content_type):
    client = client_as(client, world, "finance")
    page = _get(client, "/billing/statements/?period=2026-03&department=training&sort=month")
    link = re.search(rf'<a[^>]*href="([^"]*)"[^>]*>{label}</a>', page)
    assert link is not None
    href = html.unescape(link.group(1))
    assert href.startswith("/api/v1/statements/?")
    for part in (f"format={label.lower()}", "period=2026-03", "department=training"):
        assert part in href
    assert "sort=" not in href
    export = client.get(href)
    assert export.status_code == 200
    assert export["Content-Type"].startswith(content_type)
    if label == "CSV":
        rows = export.content.decode().splitlines()
        assert len(rows) == 2 and "training" in rows[1]


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("2026-10", (2026, 10)),
        ("2026", (2026, None)),
        ("Dec", (None, 12)),
        ("Sept", (None, 9)),
        ("OCTOBER", (None, 10)),
        ("Oct.", (None, 10)),
        ("ma", None),  # too short to say which month
        ("marketing", None),
        ("2026-13", None),
        ("1999", None),
        ("CC-5200", None),
    ],
)
def test_a_search_word_names_a_month_a_year_or_neither(word, expected):
    assert search_word_month(word) == expected

"""Reading a month creates nothing in it: a month with no period, not running and with
nothing metered shows nothing charged, to finance and to anyone else, and no statement of
0.00 appears for every department because somebody looked. A month the ledger has usage
for (history pulled later) is opened by being read, as is the running month."""

import datetime as dt
from decimal import Decimal

import pytest
from rest_framework.test import APIClient

from billing.models import BillingPeriod, Statement
from core import calendar
from tests.billing.test_dashboard import usage
from tests.conftest import client_as
from tests.factories import RateCardFactory

NEVER_METERED = "2023-02"


def _nothing_created() -> tuple[int, int]:
    return BillingPeriod.objects.count(), Statement.objects.count()


@pytest.mark.parametrize("role", ["member", "manager", "finance"])
def test_the_chargeback_report_of_a_month_never_metered_is_empty_and_creates_nothing(world, role):
    before = _nothing_created()
    response = client_as(APIClient(), world, role).get(
        "/api/v1/reports/chargeback/", {"period": NEVER_METERED}
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["period"] == NEVER_METERED
    assert [row["department"] for row in body["rows"] if row["department"]] == []
    assert _nothing_created() == before


def test_the_dashboard_of_a_month_never_metered_says_so_and_creates_nothing(world, client):
    before = _nothing_created()
    page = client_as(client, world, "finance").get("/billing/", {"period": NEVER_METERED})
    assert page.status_code == 200
    assert "Nothing was metered in February 2023: it has no statements" in page.content.decode()
    assert _nothing_created() == before


def test_listing_the_statements_of_a_month_never_metered_creates_nothing(world):
    before = _nothing_created()
    response = client_as(APIClient(), world, "finance").get(
        "/api/v1/statements/", {"period": NEVER_METERED}
    )
    assert response.status_code == 200
    assert response.json()["results"] == []
    assert _nothing_created() == before


def test_a_month_with_metered_usage_is_opened_by_reading_it(world):
    RateCardFactory(gpu_class=world.a100, price_per_gpu_hour=Decimal("2.00"))
    month = dt.date(2025, 11, 1)
    usage(month, world.marketing, world.a100, "3")

    response = client_as(APIClient(), world, "finance").get(
        "/api/v1/reports/chargeback/", {"period": "2025-11"}
    )

    assert response.status_code == 200
    spend = {row["department"]: row["spend"] for row in response.json()["rows"]}
    assert spend["marketing"] == "6.00"
    assert BillingPeriod.objects.filter(month=month).exists()
    assert Statement.objects.filter(period__month=month, department=world.marketing).exists()


def test_the_running_month_has_its_drafts_before_anything_is_metered(world):
    month = calendar.month_of(dt.datetime.now(dt.UTC))
    client_as(APIClient(), world, "finance").get("/api/v1/reports/chargeback/")
    assert Statement.objects.filter(period__month=month, department=world.marketing).exists()

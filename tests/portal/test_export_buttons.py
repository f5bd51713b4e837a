"""The pages' download buttons: each links to the API endpoint that offers the format, with
the page's filters, and the link answers with the file. Only formats the API offers are
linked (the jobs list: CSV only)."""

import datetime as dt
import html
import re
from decimal import Decimal

import pytest
from django.utils import timezone

from billing import services
from tests.billing.conftest import Ledger, hour
from tests.conftest import client_as
from tests.factories import RateCardFactory

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
CONTENT_TYPES = {"csv": "text/csv", "xlsx": XLSX}


def _links(page: str) -> dict[str, str]:
    """The page's download links, by their label (CSV, XLSX)."""
    return {
        label.lower(): html.unescape(href)
        for href, label in re.findall(
            r'<a[^>]*class="[^"]*\bdownload\b[^"]*"[^>]*href="([^"]*)"[^>]*>(CSV|XLSX)</a>', page
        )
    }


def _downloads(client, links: dict[str, str]) -> None:
    for fmt, href in links.items():
        answer = client.get(href)
        assert answer.status_code == 200, (href, answer.content[:300])
        assert answer["Content-Type"].startswith(CONTENT_TYPES[fmt]), answer["Content-Type"]
        assert "attachment" in answer["Content-Disposition"]


@pytest.fixture
def ledger(db) -> Ledger:
    return Ledger()


@pytest.fixture
def march(world, ledger):
    RateCardFactory(gpu_class=world.a100, price_per_gpu_hour=Decimal("2.00"))
    ledger.add(at=hour(2, 12), gpu_hours="3", department=world.marketing, gpu_class=world.a100)
    services.period_refresh(month=dt.date(2026, 3, 1))


@pytest.mark.parametrize("role", ["finance", "manager"])
def test_the_dashboard_offers_the_months_report_as_csv_and_xlsx(world, client, march, role):
    client = client_as(client, world, role)
    response = client.get("/billing/?period=2026-03")
    assert response.status_code == 200
    links = _links(response.content.decode())
    assert links == {
        "csv": "/api/v1/reports/chargeback/?period=2026-03&format=csv",
        "xlsx": "/api/v1/reports/chargeback/?period=2026-03&format=xlsx",
    }
    _downloads(client, links)
    csv_text = client.get(links["csv"]).content.decode()
    assert "marketing" in csv_text.lower()


def test_a_dashboard_month_that_is_refused_offers_no_download(world, client, march):
    response = client_as(client, world, "finance").get("/billing/?period=2026-13")
    assert response.status_code == 400
    assert _links(response.content.decode()) == {}


def test_the_department_page_offers_its_usage_as_csv_and_xlsx(world, client, ledger):
    now = timezone.now()
    ledger.add(
        at=now.replace(minute=0, second=0, microsecond=0) - dt.timedelta(hours=3),
        gpu_hours="2",
        department=world.marketing,
        gpu_class=world.t4,
    )
    client = client_as(client, world, "manager")
    response = client.get("/departments/marketing/")
    assert response.status_code == 200
    links = _links(response.content.decode())
    assert set(links) == {"csv", "xlsx"}
    for fmt, href in links.items():
        assert href.startswith("/api/v1/usage/?department=marketing&")
        assert f"format={fmt}" in href and "granularity=day" in href
    _downloads(client, links)
    rows = client.get(links["csv"]).content.decode().splitlines()
    assert len(rows) >= 2 and "marketing" in rows[1]


def test_a_member_sees_no_usage_download_on_the_department_page(world, client):
    response = client_as(client, world, "member").get("/departments/marketing/")
    assert response.status_code == 200
    assert _links(response.content.decode()) == {}


def test_the_jobs_list_offers_csv_only_as_the_api_does(world, client):
    client = client_as(client, world, "manager")
    links = _links(client.get("/jobs/?state=queued").content.decode())
    assert links == {"csv": "/api/v1/jobs/?state=queued&format=csv"}
    _downloads(client, links)

"""The department page's Spend section: this month's statement total (refreshed from the
ledger) and the department's statements, for those who may read its usage (its managers,
finance, IT) and nobody else. The usage charts stay."""

import datetime as dt
import re
from decimal import Decimal

import pytest
from django.utils import timezone

from billing import services
from billing.models import Statement
from core import calendar
from core.calendar import month_bounds
from tests.conftest import client_as
from tests.factories import RateCardFactory, UsageRecordFactory

URL = "/departments/marketing/"
MARCH = dt.date(2026, 3, 1)


def text(response) -> str:
    return " ".join(response.content.decode().split())


@pytest.fixture
def spend(world):
    """Marketing: 2 GPU-hours of A100 at 1,200.00 this month (2,400.00 EUR); in March 2026
    a finalized statement of 1 GPU-hour (1,200.00). Training: 1 GPU-hour this month."""
    RateCardFactory(gpu_class=world.a100, price_per_gpu_hour=Decimal("1200.00"))
    month_start, _ = month_bounds(timezone.now())
    # Noon on the first day of the month: outside the nightly off-peak window.
    noon = month_start + dt.timedelta(hours=12)
    for department, hours in [(world.marketing, "2"), (world.training, "1")]:
        UsageRecordFactory(
            department=department, gpu_class=world.a100, hour_start=noon, gpu_hours=Decimal(hours)
        )
    UsageRecordFactory(
        department=world.marketing,
        gpu_class=world.a100,
        hour_start=dt.datetime(2026, 3, 2, 12, tzinfo=dt.UTC),
        gpu_hours=Decimal("1"),
    )
    services.period_refresh(month=MARCH)
    march = Statement.objects.get(period__month=MARCH, department=world.marketing)
    return services.statement_finalize(statement=march, user=world.user("finance"))


@pytest.mark.parametrize("role", ["manager", "finance", "it_admin"])
def test_those_who_read_the_usage_see_this_months_spend_and_the_statements(
    world, client, spend, role
):
    response = client_as(client, world, role).get(URL)
    assert response.status_code == 200
    page = text(response)
    current = Statement.objects.get(
        period__month=calendar.month_of(timezone.now()), department=world.marketing
    )
    assert current.total == Decimal("2400.00")
    assert '<section class="card" id="spend">' in page
    assert (
        f'so far: <a href="/billing/statements/{current.pk}/"><strong>2,400.00 EUR</strong></a>'
        in page
    )
    rows = re.findall(
        r'<tr><td><a href="/billing/statements/(\d+)/">([^<]+)</a></td>'
        r'<td><span class="tag status-(\w+)">[^<]+</span></td><td class="num">([^<]+)</td></tr>',
        page,
    )
    assert rows == [
        (str(current.pk), str(current.period), "draft", "2,400.00 EUR"),
        (str(spend.pk), "March 2026", "finalized", "1,200.00 EUR"),
    ]
    assert "Training" not in page.split('id="spend"')[1].split("</section>")[0]
    # The usage charts are still there.
    assert 'id="chart-daily-gpu-hours"' in page


def test_this_months_total_is_refreshed_from_the_ledger(world, client, spend):
    client = client_as(client, world, "manager")
    client.get(URL)
    month_start, _ = month_bounds(timezone.now())
    UsageRecordFactory(
        department=world.marketing,
        gpu_class=world.a100,
        hour_start=month_start + dt.timedelta(hours=13),
        gpu_hours=Decimal("1"),
    )
    assert "<strong>3,600.00 EUR</strong>" in text(client.get(URL))


@pytest.mark.parametrize("role", ["member"])
def test_a_member_sees_no_money(world, client, spend, role):
    response = client_as(client, world, role).get(URL)
    assert response.status_code == 200
    page = response.content.decode()
    assert 'id="spend"' not in page
    assert "EUR" not in page
    assert "/billing/statements/" not in page


def test_another_departments_manager_reads_their_own_spend_only(world, client, spend):
    page = text(client_as(client, world, "other_manager").get("/departments/training/"))
    assert "<strong>1,200.00 EUR</strong>" in page
    assert "2,400.00" not in page
    assert f"/billing/statements/{spend.pk}/" not in page  # marketing's March statement
    training_march = Statement.objects.get(period__month=MARCH, department=world.training)
    assert f'<a href="/billing/statements/{training_march.pk}/">March 2026</a>' in page

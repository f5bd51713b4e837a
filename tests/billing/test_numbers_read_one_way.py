"""Numbers read one way on every page: multipliers ``×0.6``, whole jobs ``2 jobs``, waits
and runtimes in h/min/s, GPU-hours to two decimals with thousands separated, budgets and
limits as they were set (``1,200``), per cents to one decimal (``8.0 %``), money and unit
prices with their currency."""

import datetime as dt
import re
from decimal import Decimal

import pytest
from django.utils import timezone

from billing import services
from core.calendar import month_bounds
from departments.models import QuotaKind
from portal.templatetags.numbers import (
    duration,
    gpu_hours,
    limit,
    money,
    multiplier,
    percent,
    quantity,
    unit_price,
    use_of,
)
from tests.billing.conftest import hour
from tests.billing.test_api_statements import MARCH, bill_march
from tests.conftest import client_as
from tests.factories import (
    OffPeakWindowFactory,
    QuotaFactory,
    RateCardFactory,
    UsageRecordFactory,
)


def _text(response) -> str:
    assert response.status_code == 200, response.content[:300]
    return " ".join(re.sub(r"<[^>]+>", " ", response.content.decode()).split())


@pytest.mark.parametrize(
    ("value", "shown"),
    [(Decimal("0.600"), "×0.6"), (Decimal("1.000"), "×1"), (Decimal("1.25"), "×1.25")],
)
def test_a_multiplier_reads_as_times_its_plain_value(value, shown):
    assert multiplier(value) == shown


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (45, "45 s"),
        (Decimal("44.6"), "45 s"),
        (60, "1 min"),
        (125, "2 min 05 s"),
        (3900, "1 h 05 min"),
        (3600 * 26 + 29, "26 h 00 min"),
    ],
)
def test_a_wait_or_a_runtime_reads_in_hours_minutes_and_seconds(seconds, shown):
    assert duration(seconds) == shown


@pytest.mark.parametrize(
    ("value", "unit", "shown"),
    [
        (Decimal("2.000"), "jobs", "2 jobs"),
        (Decimal("1.000"), "jobs", "1 job"),
        (Decimal("3"), "GPUs", "3 GPUs"),
        (Decimal("0.5"), "GPU-hours", "0.50 GPU-hours"),
    ],
)
def test_a_quantity_reads_as_a_count_or_as_gpu_hours(value, unit, shown):
    assert quantity(value, unit) == shown


def test_gpu_hours_have_two_decimals_and_money_its_currency():
    assert gpu_hours(Decimal("1234.5")) == "1,234.50"
    assert gpu_hours(Decimal("0.125")) == "0.13"
    assert money(Decimal("1234.505"), "EUR") == "1,234.51 EUR"
    assert money(Decimal("1234.5"), "JPY") == "1,235 JPY"


def test_the_department_page_reads_multipliers_and_budgets_one_way(world, client):
    OffPeakWindowFactory(name="Nights", price_multiplier=Decimal("0.600"))
    QuotaFactory(
        department=world.marketing, kind=QuotaKind.GPU_HOURS_MONTH, limit=Decimal("100.000")
    )
    page = _text(client_as(client, world, "manager").get("/departments/marketing/"))

    assert "×0.6)" in page
    assert "0.600" not in page
    assert "Monthly budget 100 GPU-hours" in page


def test_a_held_job_reads_its_runtime_and_the_quotas_use_in_jobs(world, client):
    job = world.manager_job
    job.state = "waiting"
    job.max_runtime_s = 3900
    job.blocking_quota = QuotaFactory(
        department=world.marketing, kind=QuotaKind.JOBS_DAY, limit=Decimal("2")
    )
    job.blocking_use = Decimal("2.000")
    job.save()

    page = _text(client_as(client, world, "manager").get(f"/jobs/{job.pk}/"))

    assert "Max runtime 1 h 05 min" in page
    assert "limit 2 jobs, 2 jobs in use" in page


def test_a_statement_reads_its_multipliers_and_amounts_with_the_currency(world, client, ledger):
    march = bill_march(world, ledger)
    page = _text(
        client_as(client, world, "finance").get(f"/billing/statements/{march.marketing.pk}/")
    )

    row = re.search(r"A100 (\S+) (\S+ EUR) (\S+) (\S+) (\S+) (\S+ EUR) (\S+ EUR)", page)
    assert row, page[:2000]
    gpu_hours_shown, price, off_peak, department, _share, _list, amount = row.groups()
    assert (gpu_hours_shown, price, off_peak, department, amount) == (
        "1.50",
        "2.00 EUR",
        "×1",
        "×1",
        "3.00 EUR",
    )


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (Decimal("8"), "8.0 %"),
        (Decimal("8.04"), "8.0 %"),
        (Decimal("2.05"), "2.1 %"),
        (Decimal("1234.56"), "1,234.6 %"),
    ],
)
def test_a_share_reads_in_per_cent_to_one_decimal(value, shown):
    assert percent(value) == shown


@pytest.mark.parametrize(
    ("value", "shown"),
    [(Decimal("1200.000"), "1,200"), (Decimal("0.500"), "0.5"), (Decimal("4000"), "4,000")],
)
def test_a_budget_or_a_limit_reads_as_it_was_set(value, shown):
    assert limit(value) == shown


@pytest.mark.parametrize(
    ("value", "currency", "shown"),
    [
        (Decimal("0.5500"), "EUR", "0.55 EUR"),
        (Decimal("2.1250"), "EUR", "2.125 EUR"),
        (Decimal("0.5525"), "EUR", "0.5525 EUR"),
        (Decimal("1500.0000"), "EUR", "1,500.00 EUR"),
        (Decimal("150.0000"), "JPY", "150 JPY"),
    ],
)
def test_a_unit_price_keeps_its_precision_and_its_currency(value, currency, shown):
    assert unit_price(value, currency) == shown


class _Quota:
    def __init__(self, limit, unit):
        self.limit, self.unit = Decimal(limit), unit


@pytest.mark.parametrize(
    ("use", "quota", "shown"),
    [
        (Decimal("49.983"), _Quota("1200", "GPU-hours"), "49.98 of 1,200 GPU-hours"),
        (Decimal("2.000"), _Quota("4000", "jobs"), "2 of 4,000 jobs"),
        (Decimal("0"), _Quota("1", "jobs"), "0 of 1 job"),
    ],
)
def test_a_quotas_use_reads_against_its_limit_with_the_unit(use, quota, shown):
    assert use_of(use, quota) == shown


def test_the_statements_list_separates_thousands_and_names_the_currency(world, client, ledger):
    RateCardFactory(gpu_class=world.a100, price_per_gpu_hour=Decimal("2"))
    ledger.add(at=hour(2, 10), gpu_hours="1234.5", department=world.marketing, gpu_class=world.a100)
    services.period_refresh(month=MARCH)

    page = _text(client_as(client, world, "finance").get("/billing/statements/"))

    assert "Marketing Draft 1,234.50 2,469.00 EUR" in page


@pytest.fixture
def budgeted_month(world):
    """Marketing: 49.983 GPU-hours of A100 this month against 1,200 a month (4.2 %)."""
    world.off_peak.active = False
    world.off_peak.save()
    RateCardFactory(gpu_class=world.a100, price_per_gpu_hour=Decimal("1.00"))
    start, _ = month_bounds(timezone.now())
    UsageRecordFactory(
        department=world.marketing,
        gpu_class=world.a100,
        hour_start=start + dt.timedelta(hours=12),
        gpu_hours=Decimal("49.983"),
    )
    QuotaFactory(department=world.marketing, kind=QuotaKind.GPU_HOURS_MONTH, limit=1200)


def test_the_managers_home_reads_budget_and_quota_use_with_units(world, client, budgeted_month):
    page = _text(client_as(client, world, "manager").get("/"))

    assert "Budget 49.98 of 1,200 GPU-hours (4.2 %)" in page
    assert "49.98 of 1,200 GPU-hours" in page.split("When full")[1]
    assert "49.983" not in page and "1200" not in page


def test_budget_use_reads_the_same_on_the_finance_home_and_the_dashboard(
    world, client, budgeted_month
):
    home = _text(client_as(client, world, "finance").get("/"))
    dashboard = _text(client_as(client, world, "finance").get("/billing/"))

    assert re.search(r"Marketing \S+ EUR 49\.98 4\.2 %", home), home
    assert "4.2 % of 1,200 GPU-hours" in dashboard

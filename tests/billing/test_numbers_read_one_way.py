"""Numbers read one way on every page: multipliers ``×0.6``, whole jobs ``2 jobs``, waits
and runtimes in h/min/s, GPU-hours to two decimals, money with its currency."""

import re
from decimal import Decimal

import pytest

from departments.models import QuotaKind
from portal.templatetags.numbers import duration, gpu_hours, money, multiplier, quantity
from tests.billing.test_api_statements import bill_march
from tests.conftest import client_as
from tests.factories import OffPeakWindowFactory, QuotaFactory


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
    assert "Monthly budget 100.00 GPU-hours" in page


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

    row = re.search(r"A100 (\S+) (\S+) (\S+) (\S+) (\S+) (\S+ EUR) (\S+ EUR)", page)
    assert row, page[:2000]
    gpu_hours_shown, _price, off_peak, department, _share, _list, amount = row.groups()
    assert (gpu_hours_shown, off_peak, department, amount) == ("1.50", "×1", "×1", "3.00 EUR")

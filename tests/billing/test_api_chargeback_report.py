"""GET /api/v1/reports/chargeback/?period=YYYY-MM: the month per department, as JSON, CSV
or XLSX; finance and IT see the whole fleet, managers their departments."""

import csv
import datetime as dt
import io
from decimal import Decimal

import openpyxl
import pytest

from billing.models import BillingPeriod
from departments.models import Quota
from jobs.models import GenerationJob
from tests import factories
from tests.billing.conftest import hour
from tests.billing.test_api_statements import MARCH, March, bill_march
from tests.conftest import client_as

URL = "/api/v1/reports/chargeback/"


@pytest.fixture
def march(world, ledger) -> March:
    march = bill_march(world, ledger)
    factories.QuotaFactory(
        department=world.marketing, kind=Quota.Kind.GPU_HOURS_MONTH, limit=Decimal("10")
    )
    # A batch job that waited 2 minutes (marketing's SLA allows an hour).
    job = factories.GenerationJobFactory(department=world.marketing, kind=world.lipsync)
    GenerationJob.objects.filter(pk=job.pk).update(
        submitted_at=hour(2, 10), started_at=hour(2, 10) + dt.timedelta(minutes=2)
    )
    return march


def _report(api_client, world, role, **params):
    response = client_as(api_client, world, role).get(URL, {"period": "2026-03", **params})
    assert response.status_code == 200, response.content[:500]
    return response


def test_finance_sees_every_department_unallocated_and_the_fleet(world, api_client, march):
    body = _report(api_client, world, "finance").json()

    assert (body["period"], body["currency"], body["departments_total"]) == (
        "2026-03",
        "EUR",
        "5.50",
    )
    assert [(r["department"], r["department_name"], r["spend"]) for r in body["rows"]] == [
        ("marketing", "Marketing", "5.00"),
        ("training", "Training", "0.50"),
        (None, "Unallocated", "1.00"),
    ]
    marketing = body["rows"][0]
    assert (marketing["statement"], marketing["status"]) == (march.marketing.pk, "draft")
    assert marketing["spend_by_gpu_class"] == {"A100": "3.00", "T4": "2.00"}
    assert (marketing["gpu_hours"], marketing["currency"]) == ("3.50", "EUR")
    assert (marketing["budget_gpu_hours"], marketing["budget_used"]) == ("10.000", "0.3500")
    assert marketing["queue_wait"] == [
        {"tier": "batch", "p95": 120.0, "target": 3600.0, "unit": "s", "met": True}
    ]
    assert marketing["sla_met"] is True
    assert body["rows"][2]["statement"] is None
    # Idle capacity is what the fleet was worth less the 6.50 used (absorbed by IT).
    period = BillingPeriod.objects.get(month=MARCH)
    assert period.capacity_amount > 744 * 8  # every A100 hour is worth at least 0.6 × 2.00
    assert body["capacity_amount"] == f"{period.capacity_amount:.2f}"
    assert body["idle_amount"] == f"{period.capacity_amount - Decimal('6.50'):.2f}"
    assert body["idle_absorbed"] == body["idle_amount"]


def test_a_manager_sees_only_their_departments_and_no_fleet_figures(world, api_client, march):
    body = _report(api_client, world, "manager").json()
    assert [r["department"] for r in body["rows"]] == ["marketing"]
    assert body["departments_total"] == "5.00"
    assert (body["idle_amount"], body["capacity_amount"], body["idle_absorbed"]) == (
        None,
        None,
        None,
    )
    other = _report(api_client, world, "other_manager").json()
    assert [(r["department"], r["spend"]) for r in other["rows"]] == [("training", "0.50")]


def test_a_member_gets_an_empty_report(world, api_client, march):
    body = _report(api_client, world, "member").json()
    assert (body["rows"], body["departments_total"], body["idle_amount"]) == ([], "0.00", None)


@pytest.mark.parametrize(
    ("period", "message"),
    [
        (
            "March",
            "“March” is not a period; give a month (2026-03), a quarter (2026-Q3), a year to "
            "date (2026-YTD) or a range of months (2026-01..2026-06, at most 36 months).",
        ),
        ("1999-12", "“1999-12” is before the year 2000."),
        ("2099-01", "January 2099 has not begun; there is nothing to report yet."),
    ],
)
def test_a_period_that_is_not_a_month_that_began_is_refused(
    world, api_client, march, period, message
):
    response = client_as(api_client, world, "finance").get(URL, {"period": period})
    assert response.status_code == 400
    assert response.json() == {"period": [message]}


def test_the_report_reads_the_ledger_as_it_is_now(world, api_client, march):
    factories.UsageRecordFactory(
        department=world.training, gpu_class=world.a100, hour_start=hour(20, 10)
    )
    rows = _report(api_client, world, "finance").json()["rows"]
    assert {r["department"]: r["spend"] for r in rows}["training"] == "2.50"


def test_the_report_as_csv_has_a_column_per_class_and_tier(world, api_client, march):
    response = _report(api_client, world, "finance", format="csv")

    assert 'filename="chargeback-2026-03.csv"' in response["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert [r["department_name"] for r in rows] == ["Marketing", "Training", "Unallocated"]
    marketing = rows[0]
    assert (marketing["spend"], marketing["spend A100"], marketing["spend T4"]) == (
        "5.00",
        "3.00",
        "2.00",
    )
    assert (marketing["queue_wait p95 batch (s)"], marketing["queue_wait met batch"]) == (
        "120.0",
        "True",
    )
    assert rows[1]["spend A100"] == "0.50" and rows[1]["spend T4"] == ""
    assert rows[2]["spend T4"] == "1.00"


def test_the_report_as_xlsx_has_the_csv_table(world, api_client, march):
    response = _report(api_client, world, "manager", format="xlsx")

    sheet = openpyxl.load_workbook(io.BytesIO(response.content)).active
    header, *rows = [list(row) for row in sheet.iter_rows(values_only=True)]
    assert header[:5] == ["period", "previous_period", "department", "department_name", "statement"]
    (row,) = rows
    assert row[header.index("department")] == "marketing"
    assert row[header.index("spend")] == 5
    assert row[header.index("budget_used")] == pytest.approx(0.35)

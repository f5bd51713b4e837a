"""The FOCUS 1.2 export (``GET /api/v1/exports/focus/?period=YYYY-MM``): its columns and
their formats, a reconciliation to the cent with the statements, adjustments as
corrections, idle shares and portal jobs as rows of their own, who may read it, and the
months it refuses. The real FinOps Foundation validator reads the demo's export in
tests/integration/test_focus_validator.py."""

import csv
import datetime as dt
import io
import json
import re
from collections import defaultdict
from decimal import Decimal

import pytest

from billing.focus import COLUMNS
from billing.models import Statement, StatementLineJob
from tests.conftest import client_as
from tests.focus_demo import CORRECTION, NOVEMBER, OCTOBER, demo_billing

URL = "/api/v1/exports/focus/"
NUMERIC = (
    "ConsumedQuantity",
    "PricingQuantity",
    "ListUnitPrice",
    "ContractedUnitPrice",
    "ListCost",
    "ContractedCost",
    "BilledCost",
    "EffectiveCost",
)
TIMES = ("BillingPeriodStart", "BillingPeriodEnd", "ChargePeriodStart", "ChargePeriodEnd")
PLAIN_DECIMAL = re.compile(r"^-?(0|[1-9]\d*)(\.\d*[1-9])?$")
UTC_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")


@pytest.fixture
def demo(db, settings):
    return demo_billing(settings)


def _export(client, month: dt.date) -> tuple[list[str], list[dict]]:
    response = client.get(URL, {"period": f"{month:%Y-%m}"})
    assert response.status_code == 200, response.content[:500]
    assert response["Content-Type"].startswith("text/csv")
    assert f'filename="focus-{month:%Y-%m}.csv"' in response["Content-Disposition"]
    reader = csv.reader(io.StringIO(response.content.decode()))
    header, *rows = list(reader)
    return header, [dict(zip(header, row, strict=True)) for row in rows]


@pytest.fixture
def finance(api_client, demo):
    from django.contrib.auth import get_user_model

    api_client.force_authenticate(get_user_model().objects.get(username="finance"))
    return api_client


def test_every_row_has_the_focus_columns_in_their_formats(finance, demo):
    for month in (OCTOBER, NOVEMBER):
        header, rows = _export(finance, month)
        assert header == list(COLUMNS)
        assert len(rows) > 10
        for row in rows:
            for column in NUMERIC:
                value = row[column]
                assert value == "" or PLAIN_DECIMAL.match(value), (column, value)
            for column in TIMES:
                assert UTC_TIME.match(row[column]), (column, row[column])
            tags = json.loads(row["Tags"])
            assert isinstance(tags, dict) and tags
            assert all(key.startswith("portal/") for key in tags)
            assert all(not isinstance(v, dict | list) for v in tags.values())
            assert row["ChargeCategory"] in ("Usage", "Adjustment")
            assert (row["ServiceName"], row["ServiceCategory"]) == ("GPU compute", "Compute")
            assert (row["RegionId"], row["AvailabilityZone"]) == ("", "")
            assert row["BillingCurrency"] == "EUR"
            assert row["SubAccountId"] and row["SubAccountName"]
            assert row["BillingAccountId"] == "organisation"
            if row["ChargeCategory"] == "Usage":
                assert row["ConsumedUnit"] == "GPU-Hours"
                assert row["ChargeClass"] == ""
    _, rows = _export(finance, OCTOBER)
    assert {row["BillingPeriodStart"] for row in rows} == {"2026-10-01T00:00:00Z"}
    assert {row["BillingPeriodEnd"] for row in rows} == {"2026-11-01T00:00:00Z"}
    realtime = [r for r in rows if json.loads(r["Tags"]).get("portal/tier") == "realtime"]
    assert realtime and {json.loads(r["Tags"])["portal/gpu-class"] for r in realtime} == {"A100"}
    assert {r["SubAccountId"] for r in realtime} == {"customer-service"}
    assert {json.loads(r["Tags"])["portal/cost-centre"] for r in realtime} == {
        Statement.objects.get(
            period__month=OCTOBER, department__slug="customer-service"
        ).department.cost_centre
    }


def test_billed_cost_adds_up_to_each_statement_and_the_month_to_the_cent(finance, demo):
    for month in (OCTOBER, NOVEMBER):
        _, rows = _export(finance, month)
        billed = defaultdict(Decimal)
        for row in rows:
            billed[row["SubAccountId"]] += Decimal(row["BilledCost"])
            assert Decimal(row["EffectiveCost"]) == Decimal(row["BilledCost"])
        totals = {
            s.department.slug: s.total
            for s in Statement.objects.filter(period__month=month).select_related("department")
        }
        assert all(totals.values()), totals  # every department was charged something
        assert dict(billed) == {slug: total for slug, total in totals.items() if total}
        assert sum(billed.values()) == sum(totals.values())
        # Each statement's rows add up to it.
        by_statement = defaultdict(Decimal)
        for row in rows:
            by_statement[int(row["x_StatementId"])] += Decimal(row["BilledCost"])
        assert by_statement == {
            s.pk: s.total for s in Statement.objects.filter(period__month=month) if s.total
        }
        invoices = {(row["InvoiceId"], row["x_StatementId"]) for row in rows}
        assert invoices == {
            (f"statement-{s.department.slug}-{month:%Y-%m}", str(s.pk))
            for s in Statement.objects.filter(period__month=month)
            if s.total
        }


def test_list_and_contracted_cost_are_unit_price_times_quantity(finance, demo):
    _, rows = _export(finance, OCTOBER)
    discounted = 0
    for row in rows:
        if row["ChargeCategory"] != "Usage":
            continue
        quantity = Decimal(row["PricingQuantity"])
        assert Decimal(row["ListUnitPrice"]) * quantity == Decimal(row["ListCost"])
        assert Decimal(row["ContractedUnitPrice"]) * quantity == Decimal(row["ContractedCost"])
        # BilledCost is the rounded amount of the same product.
        assert (
            abs(Decimal(row["ContractedCost"]) - Decimal(row["BilledCost"])) <= Decimal("0.005")
            or row["PricingUnit"] == "Allocation"
        )
        discounted += Decimal(row["ContractedUnitPrice"]) < Decimal(row["ListUnitPrice"])
    # Training's subsidy (the demo's department multiplier) is a contracted price.
    assert discounted
    off_peak = [r for r in rows if "off-peak" in r["ChargeDescription"]]
    assert off_peak


def test_adjustments_are_corrections_of_the_month_they_correct(finance, demo):
    _, rows = _export(finance, NOVEMBER)
    adjustments = [row for row in rows if row["ChargeCategory"] == "Adjustment"]
    assert len(adjustments) == 2
    assert {row["ChargeClass"] for row in adjustments} == {"Correction"}
    assert {(row["ChargePeriodStart"], row["ChargePeriodEnd"]) for row in adjustments} == {
        ("2026-10-01T00:00:00Z", "2026-11-01T00:00:00Z")
    }
    assert {row["BillingPeriodStart"] for row in adjustments} == {"2026-11-01T00:00:00Z"}
    by_department = {row["SubAccountId"]: row for row in adjustments}
    correction = by_department["marketing"]
    assert Decimal(correction["BilledCost"]) == CORRECTION
    assert "Outage on 3 October" in correction["ChargeDescription"]
    assert correction["x_StatementId"] == str(demo.correction.applied_to_id)
    assert correction["ChargeDescription"].isascii()
    late = by_department["customer-service"]
    assert Decimal(late["BilledCost"]) == demo.late_usage.amount > 0
    for row in adjustments:
        assert row["ConsumedQuantity"] == row["PricingQuantity"] == row["ListUnitPrice"] == ""
        assert row["ListCost"] == row["ContractedCost"] == row["BilledCost"]
    assert {row["ChargeClass"] for row in rows if row not in adjustments} == {""}


def test_idle_shares_are_usage_rows_of_their_own(finance, demo):
    _, rows = _export(finance, OCTOBER)
    tags = [json.loads(row["Tags"]) for row in rows]
    pool_idle = [r for r, t in zip(rows, tags, strict=True) if t["portal/charge"] == "pool_idle"]
    fleet_idle = [r for r, t in zip(rows, tags, strict=True) if t["portal/charge"] == "idle"]
    # Shared: pool idle among the departments whose jobs ran in the pool, fleet idle among
    # every department that used the fleet.
    assert {r["SubAccountId"] for r in pool_idle} == {"marketing", "training"}
    assert {r["SubAccountId"] for r in fleet_idle} == {
        "customer-service",
        "marketing",
        "training",
    }
    for row in pool_idle + fleet_idle:
        assert row["ChargeCategory"] == "Usage"
        assert (row["PricingQuantity"], row["PricingUnit"]) == ("1", "Allocation")
        assert row["ListUnitPrice"] == row["BilledCost"] != "0"
        assert Decimal(row["ConsumedQuantity"]) > 0
    assert {r["ResourceId"] for r in pool_idle} == {"namespace/gpu-workers"}
    shares = [
        Decimal(str(t["portal/idle-share"])) for t in tags if t["portal/charge"] == "pool_idle"
    ]
    assert sum(shares) == 1
    assert all(
        "Share of idle in worker pool gpu-workers" in r["ChargeDescription"] for r in pool_idle
    )


def test_portal_jobs_are_one_row_per_job(finance, demo):
    _, rows = _export(finance, OCTOBER)
    job_rows = [row for row in rows if row["ResourceType"] == "Portal job"]
    jobs = StatementLineJob.objects.filter(line__period__month=OCTOBER)
    assert len(job_rows) == jobs.count() == 4
    assert {row["ResourceId"] for row in job_rows} == {f"job/{job.job_id}" for job in jobs}
    assert {row["ResourceName"] for row in job_rows} == {""}
    for job in jobs:
        (row,) = [r for r in job_rows if r["ResourceId"] == f"job/{job.job_id}"]
        assert Decimal(row["ConsumedQuantity"]) == (job.gpu_seconds / 3600).quantize(
            Decimal("1e-12")
        )
        tags = json.loads(row["Tags"])
        assert tags["portal/job-kind"] == job.job.kind.name
        assert tags["portal/charge"] == "jobs"
        assert row["SubAccountId"] == job.job.department.slug
    marketing = {
        row["ResourceId"]
        for row in rows
        if row["SubAccountId"] == "marketing"
        and json.loads(row["Tags"])["portal/charge"] == "usage"
    }
    assert marketing == {"gpu-class/t4"}


def test_a_month_without_statements_is_the_header_alone(world, api_client):
    client = client_as(api_client, world, "finance")
    response = client.get(URL, {"period": "2026-02"})
    assert response.status_code == 200
    assert response.content.decode().splitlines() == [",".join(COLUMNS)]
    assert not Statement.objects.exists()  # reading opened nothing


@pytest.mark.parametrize("period", ["0001-01", "9999-12", "2026-13", "garbage", "2026-03-01"])
def test_a_period_that_is_not_a_month_that_began_is_a_400(world, api_client, period):
    response = client_as(api_client, world, "finance").get(URL, {"period": period})
    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert "period" in response.json()


@pytest.mark.parametrize(("role", "status"), [("manager", 403), ("member", 403), ("it_admin", 200)])
def test_only_finance_and_it_read_it(world, api_client, role, status):
    response = client_as(api_client, world, role).get(URL, {"period": "2026-02"})
    assert response.status_code == status
    if status == 403:
        assert "finance and IT" in response.json()["detail"]

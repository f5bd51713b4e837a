"""GET /api/v1/statements/ and POST .../finalize/: statements with their lines, scoped to
the user, refreshed before they are read, and immutable once finalized."""

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

import pytest

from billing import services
from billing.models import Adjustment, AdjustmentKind, Statement, StatementStatus
from core import calendar
from tests import factories
from tests.billing.conftest import hour
from tests.conftest import client_as

MARCH = dt.date(2026, 3, 1)
APRIL = dt.date(2026, 4, 1)
URL = "/api/v1/statements/"


@dataclass
class March:
    """March 2026, priced: marketing 1.5 h of A100 at 2.00 and 2 h of T4 at 1.00 (5.00 EUR),
    training 0.25 h of A100 (0.50 EUR), 1 h of T4 in a namespace nobody owns (1.00 EUR)."""

    marketing: Statement
    training: Statement
    a100_card: object
    t4_card: object


def bill_march(world, ledger) -> March:
    a100_card = factories.RateCardFactory(gpu_class=world.a100, price_per_gpu_hour=Decimal("2"))
    t4_card = factories.RateCardFactory(gpu_class=world.t4, price_per_gpu_hour=Decimal("1"))
    ledger.add(at=hour(2, 10), gpu_hours="1.5", department=world.marketing, gpu_class=world.a100)
    ledger.add(at=hour(3, 10), gpu_hours="2", department=world.marketing, gpu_class=world.t4)
    ledger.add(at=hour(2, 10), gpu_hours="0.25", department=world.training, gpu_class=world.a100)
    ledger.add(at=hour(4, 10), gpu_hours="1", gpu_class=world.t4, namespace="orphan")
    period = services.period_refresh(month=MARCH)
    return March(
        marketing=Statement.objects.get(period=period, department=world.marketing),
        training=Statement.objects.get(period=period, department=world.training),
        a100_card=a100_card,
        t4_card=t4_card,
    )


@pytest.fixture
def march(world, ledger) -> March:
    return bill_march(world, ledger)


def _get(api_client, world, role, url, **params):
    response = client_as(api_client, world, role).get(url, params)
    assert response.status_code == 200, response.content[:500]
    return response


def test_a_statement_shows_each_line_with_how_it_was_derived(world, api_client, march):
    body = _get(api_client, world, "finance", f"{URL}{march.marketing.pk}/").json()

    assert (body["department"], body["department_name"], body["period"]) == (
        "marketing",
        "Marketing",
        "2026-03",
    )
    assert (body["status"], body["total"], body["currency"]) == ("draft", "5.00", "EUR")
    assert body["cost_centre"] == world.marketing.cost_centre
    assert [
        (
            line["kind"],
            line["gpu_class"],
            line["rate_card"],
            line["gpu_hours"],
            line["unit_price"],
            line["list_amount"],
            line["amount"],
            line["currency"],
        )
        for line in body["lines"]
    ] == [
        ("usage", "a100", march.a100_card.pk, "1.50", "2.00", "3.00", "3.00", "EUR"),
        ("usage", "t4", march.t4_card.pk, "2.00", "1.00", "2.00", "2.00", "EUR"),
    ]
    assert (
        body["lines"][0]["description"]
        == "1.50 GPU-hours of A100 × 2.00 EUR, namespace workloads: dept-marketing"
    )
    assert body["lines"][0]["department_multiplier"] == "1.000"
    assert body["adjustments_applied"] == []


def test_amounts_are_rounded_to_the_minor_unit_and_prices_keep_their_precision(
    world, api_client, ledger
):
    factories.RateCardFactory(gpu_class=world.a100, price_per_gpu_hour=Decimal("2.125"))
    ledger.add(at=hour(2, 10), gpu_hours="1", department=world.marketing, gpu_class=world.a100)
    services.period_refresh(month=MARCH)
    statement = Statement.objects.get(period__month=MARCH, department=world.marketing)

    body = _get(api_client, world, "finance", f"{URL}{statement.pk}/").json()

    assert body["total"] == "2.13"
    (line,) = body["lines"]
    assert (line["unit_price"], line["amount"]) == ("2.125", "2.13")


def test_the_list_filters_by_period_department_and_status(world, api_client, march):
    def ids(**params):
        body = _get(api_client, world, "finance", URL, **params).json()
        return sorted(s["id"] for s in body["results"])

    both = sorted([march.marketing.pk, march.training.pk])
    assert ids(period="2026-03") == both
    assert ids(period="2026-03", department="marketing") == [march.marketing.pk]
    assert ids(period="2026-03", status="draft") == both
    assert ids(period="2026-03", status="finalized") == []
    row = next(
        s
        for s in _get(api_client, world, "finance", URL, period="2026-03").json()["results"]
        if s["department"] == "training"
    )
    assert (row["total"], row["gpu_hours"], row["currency"]) == ("0.50", "0.25", "EUR")


def test_a_malformed_period_is_refused_with_the_month_parser_words(world, api_client, march):
    response = client_as(api_client, world, "finance").get(URL, {"period": "2026-13"})
    assert response.status_code == 400
    assert response.json() == {
        "period": ["“2026-13” is not a month; give it as YYYY-MM, e.g. 2026-03."]
    }


def test_listing_a_month_brings_its_drafts_up_to_date_first(world, api_client, ledger):
    factories.RateCardFactory(gpu_class=world.a100, price_per_gpu_hour=Decimal("2"))
    ledger.add(at=hour(2, 10), gpu_hours="1", department=world.marketing, gpu_class=world.a100)
    assert not Statement.objects.exists()  # nothing refreshed the month yet

    body = _get(api_client, world, "finance", URL, period="2026-03", department="marketing").json()

    (row,) = body["results"]
    assert row["total"] == "2.00"


def test_reading_a_draft_shows_usage_metered_since_the_last_refresh(world, api_client, march):
    url = f"{URL}{march.marketing.pk}/"
    assert _get(api_client, world, "manager", url).json()["total"] == "5.00"
    factories.UsageRecordFactory(
        department=world.marketing,
        gpu_class=world.a100,
        hour_start=hour(9, 10),
        gpu_hours=Decimal("1"),
    )
    assert _get(api_client, world, "manager", url).json()["total"] == "7.00"


def test_a_manager_lists_only_the_departments_they_manage(world, api_client, march):
    body = _get(api_client, world, "manager", URL).json()
    assert [s["id"] for s in body["results"]] == [march.marketing.pk]
    assert _get(api_client, world, "member", URL).json()["results"] == []


@pytest.mark.parametrize(
    "suffix", ["", "?format=json", "?format=csv", "?format=xlsx", "?format=pdf", "pdf/"]
)
def test_another_departments_statement_is_not_found_for_a_manager(world, api_client, march, suffix):
    client = client_as(api_client, world, "other_manager")
    response = client.get(f"{URL}{march.marketing.pk}/{suffix}")
    assert response.status_code == 404
    # Errors come as JSON, except in a CSV export, which says the same as CSV.
    assert "No statement" in response.content.decode()
    assert ("csv" in suffix) != response["Content-Type"].startswith("application/json")
    listed = client.get(URL, {"format": "csv"}).content.decode()
    assert str(march.marketing.total) not in listed and "marketing" not in listed
    assert "training" in listed


def test_finance_finalizes_a_statement_and_it_never_changes_again(world, api_client, march):
    client = client_as(api_client, world, "finance")
    url = f"{URL}{march.marketing.pk}/"

    response = client.post(f"{url}finalize/")

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["status"], body["finalized_by"], body["total"]) == ("finalized", "fiona", "5.00")
    assert len(body["lines"]) == 2
    for method in ("put", "patch", "delete"):
        refused = getattr(client, method)(url, {"total": "0"}, format="json")
        assert refused.status_code == 405, (method, refused.content)
    assert client.post(URL, {"department": "marketing"}, format="json").status_code == 405
    again = client.post(f"{url}finalize/")
    assert again.status_code == 409
    assert "it never changes" in again.json()["detail"]

    # Late usage: the finalized statement keeps its figures; the difference is carried
    # by the department's next open statement.
    factories.UsageRecordFactory(
        department=world.marketing, gpu_class=world.a100, hour_start=hour(20, 10)
    )
    after = client.get(url).json()
    assert (after["status"], after["total"], len(after["lines"])) == ("finalized", "5.00", 2)
    stored = Statement.objects.get(pk=march.marketing.pk)
    assert (stored.status, stored.total) == (StatementStatus.FINALIZED, Decimal("5.00"))
    late = Adjustment.objects.get(original=stored)
    assert (late.kind, late.amount, late.applied_to.period.month) == (
        AdjustmentKind.LATE_USAGE,
        Decimal("2.00"),
        APRIL,
    )


def test_a_month_that_has_not_ended_cannot_be_finalized(world, api_client, ledger):
    current = calendar.month_of(dt.datetime.now(dt.UTC))
    services.period_refresh(month=current)
    statement = Statement.objects.get(period__month=current, department=world.marketing)

    response = client_as(api_client, world, "finance").post(f"{URL}{statement.pk}/finalize/")

    assert response.status_code == 409
    assert "has not ended yet" in response.json()["detail"]
    assert Statement.objects.get(pk=statement.pk).status == StatementStatus.DRAFT

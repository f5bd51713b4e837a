"""GET/POST /api/v1/adjustments/: finance corrects a finalized statement; the correction
lands on the department's next open statement."""

from decimal import Decimal

import pytest

from billing import services
from billing.models import Adjustment, Statement
from tests.billing.test_api_statements import APRIL, March, bill_march
from tests.conftest import client_as

URL = "/api/v1/adjustments/"


@pytest.fixture
def march(world, ledger) -> March:
    march = bill_march(world, ledger)
    services.statement_finalize(statement=march.marketing, user=world.user("finance"))
    return march


def _create(api_client, world, role="finance", **body):
    return client_as(api_client, world, role).post(URL, body, format="json")


def test_a_correction_lands_on_the_next_open_statement_and_changes_its_total(
    world, api_client, march
):
    response = _create(
        api_client,
        world,
        original=march.marketing.pk,
        amount="-1.50",
        reason="Render farm outage on 2 March",
        gpu_hours="0.75",
    )

    assert response.status_code == 201, response.content
    body = response.json()
    april = Statement.objects.get(period__month=APRIL, department=world.marketing)
    assert (body["original"], body["original_period"]) == (march.marketing.pk, "2026-03")
    assert (body["applied_to"], body["period"], body["department"]) == (
        april.pk,
        "2026-04",
        "marketing",
    )
    assert (body["kind"], body["amount"], body["currency"], body["gpu_hours"]) == (
        "correction",
        "-1.50",
        "EUR",
        "0.75",
    )
    assert body["created_by"] == "fiona"
    carried = client_as(api_client, world, "manager").get(f"/api/v1/statements/{april.pk}/")
    assert carried.json()["total"] == "-1.50"
    (line,) = carried.json()["lines"]
    assert (line["kind"], line["amount"], line["adjustment"]) == ("adjustment", "-1.50", body["id"])
    assert "Render farm outage on 2 March" in line["description"]
    assert [a["id"] for a in carried.json()["adjustments_applied"]] == [body["id"]]
    # The finalized original is untouched.
    assert Statement.objects.get(pk=march.marketing.pk).total == Decimal("5.00")


def test_a_draft_cannot_be_adjusted(world, api_client, march):
    response = _create(api_client, world, original=march.training.pk, amount="1.00", reason="x")
    assert response.status_code == 400
    assert "still a draft" in response.json()["original"][0]
    assert not Adjustment.objects.exists()


def test_an_amount_finer_than_the_minor_unit_is_refused(world, api_client, march):
    response = _create(
        api_client, world, original=march.marketing.pk, amount="1.005", reason="Rounding"
    )
    assert response.status_code == 400
    assert response.json() == {"amount": ["Give the amount in whole EUR minor units (e.g. 1.01)."]}


@pytest.mark.parametrize("amount", ["0", "0.00", "-0"])
def test_an_adjustment_of_nothing_is_refused(world, api_client, march, amount):
    response = _create(
        api_client, world, original=march.marketing.pk, amount=amount, reason="Nothing"
    )
    assert response.status_code == 400
    assert response.json()["amount"][0].startswith("An adjustment of 0 changes nothing")
    assert not Adjustment.objects.exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"amount": "1.00", "reason": " "}, "reason"),
        ({"amount": "lots", "reason": "why"}, "amount"),
        ({"reason": "why"}, "amount"),
    ],
)
def test_missing_or_malformed_fields_are_field_errors(world, api_client, march, body, field):
    response = _create(api_client, world, original=march.marketing.pk, **body)
    assert response.status_code == 400
    assert list(response.json()) == [field]


def test_an_unknown_statement_is_a_field_error(world, api_client, march):
    response = _create(api_client, world, original=999999, amount="1.00", reason="why")
    assert response.status_code == 400
    assert response.json() == {"original": ["No statement 999999."]}


def test_adjustments_are_read_by_the_corrected_departments_managers(world, api_client, march):
    created = _create(
        api_client, world, original=march.marketing.pk, amount="2.00", reason="Missed hours"
    ).json()

    def listed(role):
        response = client_as(api_client, world, role).get(URL)
        assert response.status_code == 200
        return [a["id"] for a in response.json()["results"]]

    assert listed("finance") == listed("it_admin") == listed("manager") == [created["id"]]
    assert listed("other_manager") == listed("member") == []
    other = client_as(api_client, world, "other_manager").get(f"{URL}{created['id']}/")
    assert other.status_code == 404


def test_an_adjustment_is_never_changed_or_deleted(world, api_client, march):
    created = _create(
        api_client, world, original=march.marketing.pk, amount="2.00", reason="Missed hours"
    ).json()
    client = client_as(api_client, world, "finance")
    for method in ("put", "patch", "delete"):
        response = getattr(client, method)(f"{URL}{created['id']}/", {"amount": "0"}, format="json")
        assert response.status_code == 405
    assert Adjustment.objects.get().amount == Decimal("2.00")

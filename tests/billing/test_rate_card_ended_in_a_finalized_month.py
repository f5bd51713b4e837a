"""A rate card that ended in the middle of a finalized month keeps that end, but its note
(and anything else it does not price with) stays editable, in the API and in the admin:
the rule looks at what changes, not at the end the card already has."""

import datetime as dt
from decimal import Decimal

import pytest
from django.urls import reverse

from billing import services
from billing.models import RateCard, Statement
from tests import factories
from tests.billing.conftest import hour
from tests.conftest import client_as

URL = "/api/v1/rate-cards/"
MARCH = dt.date(2026, 3, 1)
MID_MARCH = dt.datetime(2026, 3, 15, tzinfo=dt.UTC)


@pytest.fixture
def ended_mid_march(world, ledger) -> RateCard:
    """A100 at 2.00 until 15 March, then 3.00; March finalized for marketing."""
    old = factories.RateCardFactory(
        gpu_class=world.a100, price_per_gpu_hour=Decimal("2"), valid_to=MID_MARCH
    )
    factories.RateCardFactory(
        gpu_class=world.a100, price_per_gpu_hour=Decimal("3"), valid_from=MID_MARCH
    )
    ledger.add(at=hour(2, 10), gpu_hours="1", department=world.marketing, gpu_class=world.a100)
    ledger.add(at=hour(20, 10), gpu_hours="1", department=world.marketing, gpu_class=world.a100)
    period = services.period_refresh(month=MARCH)
    services.statement_finalize(
        statement=Statement.objects.get(period=period, department=world.marketing),
        user=world.user("finance"),
    )
    return old


def test_its_note_changes_through_the_api(world, api_client, ended_mid_march):
    response = client_as(api_client, world, "finance").patch(
        f"{URL}{ended_mid_march.pk}/", {"note": "Price until mid-March"}, format="json"
    )
    assert response.status_code == 200, response.content
    ended_mid_march.refresh_from_db()
    assert ended_mid_march.note == "Price until mid-March"
    assert ended_mid_march.valid_to == MID_MARCH


def test_its_note_changes_in_the_admin(world, client, ended_mid_march):
    client.force_login(world.user("finance"))
    response = client.post(
        reverse("admin:billing_ratecard_change", args=[ended_mid_march.pk]),
        {
            "gpu_class": world.a100.pk,
            "tier": "",
            "price_per_gpu_hour": "2.00",
            "currency": "EUR",
            "valid_from_0": "2020-01-01",
            "valid_from_1": "00:00:00",
            "valid_to_0": "2026-03-15",
            "valid_to_1": "00:00:00",
            "note": "Price until mid-March",
        },
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    ended_mid_march.refresh_from_db()
    assert ended_mid_march.note == "Price until mid-March"


def test_its_end_still_cannot_come_earlier(world, api_client, ended_mid_march):
    # Hours of March it priced would go unpriced.
    response = client_as(api_client, world, "finance").patch(
        f"{URL}{ended_mid_march.pk}/", {"valid_to": "2026-03-10T00:00:00Z"}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["valid_to"] == [
        "This card priced March 2026, which is finalized: "
        "it cannot end before 2026-03-15 00:00 UTC."
    ]
    ended_mid_march.refresh_from_db()
    assert ended_mid_march.valid_to == MID_MARCH


@pytest.mark.parametrize(
    ("ended", "latest"),
    [
        (MID_MARCH, "2026-03-15 00:00 UTC"),
        (dt.datetime(2026, 2, 1, tzinfo=dt.UTC), "2026-03-01 00:00 UTC"),
    ],
)
def test_nor_later_into_a_finalized_month_that_no_card_priced_after_it(
    world, api_client, ledger, ended, latest
):
    # Nothing priced March's A100 hours after the card's end, and March is finalized: a
    # card stretched further would price hours its statements left unpriced.
    card = factories.RateCardFactory(gpu_class=world.a100, valid_to=ended)
    ledger.add(at=hour(20, 10), gpu_hours="1", department=world.marketing, gpu_class=world.a100)
    period = services.period_refresh(month=MARCH)
    services.statement_finalize(
        statement=Statement.objects.get(period=period, department=world.marketing),
        user=world.user("finance"),
    )
    response = client_as(api_client, world, "finance").patch(
        f"{URL}{card.pk}/", {"valid_to": "2026-05-01T00:00:00Z"}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["valid_to"] == [
        f"March 2026 is finalized: this card cannot end after {latest}."
    ]
    card.refresh_from_db()
    assert card.valid_to == ended

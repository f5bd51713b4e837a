"""/api/v1/rate-cards/: read by everyone signed in, written by finance, refused with the
model's own words when a card would overlap another or use another currency."""

import datetime as dt
from decimal import Decimal

import pytest

from billing.models import RateCard
from tests import factories
from tests.billing.test_api_statements import March, bill_march
from tests.conftest import client_as

URL = "/api/v1/rate-cards/"
JUNE = "2026-06-01T00:00:00Z"


@pytest.fixture
def card(world):
    return factories.RateCardFactory(
        gpu_class=world.a100,
        price_per_gpu_hour=Decimal("2.5"),
        valid_to=dt.datetime(2026, 6, 1, tzinfo=dt.UTC),
    )


def _post(api_client, world, body, role="finance"):
    return client_as(api_client, world, role).post(URL, body, format="json")


def test_everyone_signed_in_reads_the_cards_with_their_prices(world, api_client, card):
    response = client_as(api_client, world, "member").get(URL)
    assert response.status_code == 200
    (listed,) = response.json()["results"]
    assert (listed["id"], listed["gpu_class"], listed["tier"]) == (card.pk, "a100", "")
    assert (listed["price_per_gpu_hour"], listed["currency"]) == ("2.50", "EUR")
    assert listed["valid_to"] == "2026-06-01T00:00:00Z"


def test_finance_adds_the_next_price_when_the_old_card_ends(world, api_client, card):
    response = _post(
        api_client,
        world,
        {"gpu_class": "a100", "price_per_gpu_hour": "2.125", "valid_from": JUNE},
    )
    assert response.status_code == 201, response.content
    assert response.json()["price_per_gpu_hour"] == "2.125"
    created = RateCard.objects.get(pk=response.json()["id"])
    assert (created.price_per_gpu_hour, created.currency) == (Decimal("2.125"), "EUR")


def test_an_overlapping_card_is_refused_with_the_models_words(world, api_client, card):
    response = _post(
        api_client,
        world,
        {"gpu_class": "a100", "price_per_gpu_hour": "3", "valid_from": "2026-05-01T00:00:00Z"},
    )
    assert response.status_code == 400
    (message,) = response.json()["non_field_errors"]
    assert message.startswith("It overlaps “A100 2.5000 EUR/GPU-hour from 2020-01-01 00:00”")
    assert RateCard.objects.count() == 1


def test_a_card_in_another_currency_is_refused(world, api_client, card):
    response = _post(
        api_client,
        world,
        {"gpu_class": "a100", "price_per_gpu_hour": "3", "valid_from": JUNE, "currency": "USD"},
    )
    assert response.status_code == 400
    assert response.json()["currency"] == [
        "Statements are kept in EUR (BILLING_CURRENCY); a card in another currency could "
        "not be added to them."
    ]


def test_a_card_that_ends_before_it_starts_is_refused(world, api_client, card):
    response = _post(
        api_client,
        world,
        {
            "gpu_class": "t4",
            "price_per_gpu_hour": "1",
            "valid_from": JUNE,
            "valid_to": "2026-05-01T00:00:00Z",
        },
    )
    assert response.status_code == 400
    assert response.json() == {"valid_to": ["The end must come after the start."]}


def test_finance_ends_a_card_and_it_admin_may_not(world, api_client, card):
    url = f"{URL}{card.pk}/"
    body = {"valid_to": "2026-07-01T00:00:00Z"}
    refused = client_as(api_client, world, "it_admin").patch(url, body, format="json")
    assert refused.status_code == 403
    response = client_as(api_client, world, "finance").patch(url, body, format="json")
    assert response.status_code == 200
    card.refresh_from_db()
    assert card.valid_to == dt.datetime(2026, 7, 1, tzinfo=dt.UTC)


def test_a_card_that_priced_a_statement_cannot_be_deleted(world, api_client, ledger):
    march: March = bill_march(world, ledger)
    response = client_as(api_client, world, "finance").delete(f"{URL}{march.a100_card.pk}/")
    assert response.status_code == 409
    assert "still in use" in response.json()["detail"]
    assert RateCard.objects.filter(pk=march.a100_card.pk).exists()

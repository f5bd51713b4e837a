"""/api/v1/rate-cards/: read by everyone signed in, written by finance, refused with the
model's own words when a card would overlap another or use another currency."""

import datetime as dt
from decimal import Decimal

import pytest

from billing import services
from billing.models import RateCard
from tests import factories
from tests.billing.test_api_statements import March, bill_march
from tests.conftest import client_as

URL = "/api/v1/rate-cards/"
JUNE = "2026-06-01T00:00:00Z"
MARCH = dt.date(2026, 3, 1)


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
    assert message.startswith("It overlaps “A100 2.50 EUR/GPU-hour from 2020-01-01 00:00”")
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


@pytest.fixture
def finalized_march(world, ledger) -> March:
    march = bill_march(world, ledger)
    services.statement_finalize(statement=march.marketing, user=world.user("finance"))
    return march


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("price_per_gpu_hour", "2.50"),
        ("valid_from", "2026-03-15T00:00:00Z"),
        ("tier", "batch"),
        ("gpu_class", "l4"),
    ],
)
def test_what_a_card_priced_a_finalized_month_with_stays_as_it_was(
    world, api_client, finalized_march, field, value
):
    card = finalized_march.a100_card
    factories.GpuClassFactory(slug="l4", name="L4")
    before = services.period_refresh(month=MARCH)
    figures = (before.capacity_amount, before.idle_amount, before.unallocated_amount)

    response = client_as(api_client, world, "finance").patch(
        f"{URL}{card.pk}/", {field: value}, format="json"
    )

    assert response.status_code == 400, response.content
    label = RateCard._meta.get_field(field).verbose_name
    assert response.json()[field] == [
        f"This card priced March 2026, which is finalized: its {label} stays as it was. "
        "For a new price, end this card and add one that starts where it ends."
    ]
    card.refresh_from_db()
    assert card.price_per_gpu_hour == Decimal("2")
    after = services.period_refresh(month=MARCH, force=True)
    assert (after.capacity_amount, after.idle_amount, after.unallocated_amount) == figures


def test_a_card_that_priced_a_finalized_month_may_end_after_it_and_change_its_note(
    world, api_client, finalized_march
):
    url = f"{URL}{finalized_march.a100_card.pk}/"
    finance = client_as(api_client, world, "finance")

    too_early = finance.patch(url, {"valid_to": "2026-03-20T00:00:00Z"}, format="json")
    assert too_early.status_code == 400
    assert too_early.json()["valid_to"] == [
        "This card priced March 2026, which is finalized: "
        "it cannot end before 2026-04-01 00:00 UTC."
    ]
    assert (
        finance.patch(url, {"valid_to": "2026-04-01T00:00:00Z"}, format="json").status_code == 200
    )
    assert finance.patch(url, {"note": "List price 2026"}, format="json").status_code == 200
    # The next price is a new card that starts where this one ends.
    new = finance.post(
        URL,
        {"gpu_class": "a100", "price_per_gpu_hour": "2.50", "valid_from": "2026-04-01T00:00:00Z"},
        format="json",
    )
    assert new.status_code == 201, new.content


def test_a_card_whose_months_are_all_drafts_can_still_be_corrected(world, api_client, ledger):
    march = bill_march(world, ledger)
    response = client_as(api_client, world, "finance").patch(
        f"{URL}{march.a100_card.pk}/", {"price_per_gpu_hour": "3.00"}, format="json"
    )
    assert response.status_code == 200
    services.period_refresh(month=MARCH)
    march.marketing.refresh_from_db()
    assert march.marketing.total == Decimal("6.50")  # 1.5 h x 3.00 + 2 h x 1.00

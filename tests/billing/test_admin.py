"""Finance works billing in the admin: rate cards (refused when they overlap), the monthly
Recompute and Finalize actions, and adjustments saved through the service; IT only looks."""

import datetime as dt
from decimal import Decimal

import pytest
from django.contrib.messages import constants as message_levels
from django.urls import reverse

from billing import services
from billing.models import (
    Adjustment,
    AdjustmentKind,
    LineKind,
    RateCard,
    Statement,
    StatementStatus,
)
from core import calendar
from tests import factories
from tests.billing.conftest import hour

MARCH = dt.date(2026, 3, 1)
APRIL = dt.date(2026, 4, 1)


@pytest.fixture
def a100_card(world):
    # The world's nightly off-peak window would discount idle hours; these tests count
    # whole hours at one price.
    world.off_peak.active = False
    world.off_peak.save()
    return factories.RateCardFactory(
        gpu_class=world.a100,
        price_per_gpu_hour=Decimal("2.00"),
        valid_from=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
        valid_to=dt.datetime(2026, 7, 1, tzinfo=dt.UTC),
    )


def _card_form(world, **overrides) -> dict:
    data = {
        "gpu_class": world.a100.pk,
        "tier": "",
        "price_per_gpu_hour": "2.40",
        "currency": "EUR",
        "valid_from_0": "2026-07-01",
        "valid_from_1": "00:00:00",
        "valid_to_0": "",
        "valid_to_1": "",
        "note": "FY27 price",
    }
    data.update(overrides)
    return data


def _action(client, model: str, action: str, objects):
    return client.post(
        reverse(f"admin:billing_{model}_changelist"),
        {"action": action, "_selected_action": [str(o.pk) for o in objects]},
        follow=True,
    )


def _messages(response) -> list[tuple[int, str]]:
    return [(m.level, m.message) for m in response.context["messages"]]


@pytest.mark.parametrize(
    "role, status",
    [
        ("finance", 200),
        ("it_admin", 403),
        ("manager", 302),  # not an admin user: sent to the admin's login
        ("other_manager", 302),
        ("member", 302),
        ("anonymous", 302),
    ],
)
def test_only_finance_may_open_the_rate_card_form(world, client, role, status):
    user = world.user(role)
    if user is not None:
        client.force_login(user)
    response = client.get(reverse("admin:billing_ratecard_add"))
    assert response.status_code == status


def test_finance_adds_the_next_rate_card(world, client, a100_card):
    client.force_login(world.user("finance"))
    response = client.post(reverse("admin:billing_ratecard_add"), _card_form(world))
    assert response.status_code == 302, response.context["adminform"].form.errors
    card = RateCard.objects.get(note="FY27 price")
    assert (card.gpu_class, card.price_per_gpu_hour, card.valid_to) == (
        world.a100,
        Decimal("2.40"),
        None,
    )
    assert card.valid_from == dt.datetime(2026, 7, 1, tzinfo=dt.UTC)


def test_an_overlapping_rate_card_is_refused_with_the_models_message(world, client, a100_card):
    client.force_login(world.user("finance"))
    response = client.post(
        reverse("admin:billing_ratecard_add"), _card_form(world, valid_from_0="2026-06-01")
    )
    assert response.status_code == 200
    errors = " ".join(response.context["adminform"].form.non_field_errors())
    stored = RateCard.objects.get(pk=a100_card.pk)  # as the database holds it: 2.0000
    assert f"It overlaps “{stored}”: one card prices a GPU class and tier at a time." in errors
    assert RateCard.objects.count() == 1


def test_the_rate_card_list_filters_by_gpu_class_and_searches(world, client, a100_card):
    factories.RateCardFactory(gpu_class=world.t4, price_per_gpu_hour=Decimal("0.35"))
    client.force_login(world.user("finance"))
    url = reverse("admin:billing_ratecard_changelist")
    by_class = client.get(url, {"gpu_class__id__exact": world.t4.pk})
    assert [c.gpu_class for c in by_class.context["cl"].result_list] == [world.t4]
    searched = client.get(url, {"q": "A100"})
    assert list(searched.context["cl"].result_list) == [a100_card]


def test_it_admin_sees_rate_cards_but_cannot_change_them(world, client, a100_card):
    client.force_login(world.user("it_admin"))
    change_url = reverse("admin:billing_ratecard_change", args=[a100_card.pk])
    assert client.get(reverse("admin:billing_ratecard_changelist")).status_code == 200
    page = client.get(change_url)
    assert page.status_code == 200
    assert page.context["has_change_permission"] is False
    refused = client.post(change_url, _card_form(world, price_per_gpu_hour="0.01"))
    assert refused.status_code == 403
    assert RateCard.objects.get(pk=a100_card.pk).price_per_gpu_hour == Decimal("2.00")
    delete = client.post(
        reverse("admin:billing_ratecard_delete", args=[a100_card.pk]), {"post": "yes"}
    )
    assert delete.status_code == 403
    assert RateCard.objects.filter(pk=a100_card.pk).exists()


def test_finalize_action_finalizes_a_draft_of_an_ended_month(world, client, a100_card, ledger):
    ledger.add(at=hour(2, 10), gpu_hours="3", department=world.marketing, gpu_class=world.a100)
    period = services.period_refresh(month=MARCH)
    statement = Statement.objects.get(period=period, department=world.marketing)
    client.force_login(world.user("finance"))

    response = _action(client, "statement", "finalize", [statement])

    statement.refresh_from_db()
    assert statement.status == StatementStatus.FINALIZED
    assert statement.finalized_by == world.user("finance")
    assert statement.total == Decimal("6.00")
    assert statement.pricing["rate_cards"][0]["price_per_gpu_hour"] == "2.0000"
    assert (message_levels.SUCCESS, "1 statement(s) finalized.") in _messages(response)
    other = Statement.objects.get(period=period, department=world.training)
    assert other.status == StatementStatus.DRAFT


def test_finalize_action_reports_why_the_current_month_cannot_be_finalized(
    world, client, a100_card
):
    period = services.period_refresh(month=calendar.month_of(dt.datetime.now(dt.UTC)))
    statement = Statement.objects.get(period=period, department=world.marketing)
    client.force_login(world.user("finance"))

    response = _action(client, "statement", "finalize", [statement])

    assert Statement.objects.get(pk=statement.pk).status == StatementStatus.DRAFT
    ((level, text),) = _messages(response)
    assert level == message_levels.ERROR
    assert f"{period} has not ended yet; its usage is still arriving." in text


def test_finalizing_again_is_reported_as_an_error(world, client, a100_card):
    period = services.period_refresh(month=MARCH)
    statement = Statement.objects.get(period=period, department=world.marketing)
    services.statement_finalize(statement=statement, user=None)
    client.force_login(world.user("finance"))
    response = _action(client, "statement", "finalize", [statement])
    ((level, text),) = _messages(response)
    assert level == message_levels.ERROR and "it never changes" in text


def test_it_admin_has_no_finalize_action(world, client, a100_card):
    period = services.period_refresh(month=MARCH)
    statement = Statement.objects.get(period=period, department=world.marketing)
    client.force_login(world.user("it_admin"))
    _action(client, "statement", "finalize", [statement])
    assert Statement.objects.get(pk=statement.pk).status == StatementStatus.DRAFT


def test_statement_list_filters_by_status_and_searches_by_department(world, client, a100_card):
    period = services.period_refresh(month=MARCH)
    mine = Statement.objects.get(period=period, department=world.marketing)
    services.statement_finalize(statement=mine, user=None)
    client.force_login(world.user("finance"))
    url = reverse("admin:billing_statement_changelist")
    finalized = client.get(url, {"status__exact": "finalized"})
    assert list(finalized.context["cl"].result_list) == [mine]
    searched = client.get(url, {"q": "Training"})
    assert {s.department for s in searched.context["cl"].result_list} == {world.training}


def test_recompute_action_reprices_the_month(world, client, a100_card, ledger):
    ledger.add(at=hour(2, 10), gpu_hours="1", department=world.marketing, gpu_class=world.a100)
    period = services.period_refresh(month=MARCH)
    first_computed_at = period.computed_at
    # A price edit in place, that the month's figures have not seen yet.
    RateCard.objects.filter(pk=a100_card.pk).update(price_per_gpu_hour=Decimal("3.00"))
    client.force_login(world.user("finance"))

    response = _action(client, "billingperiod", "recompute", [period])

    period.refresh_from_db()
    assert period.computed_at > first_computed_at
    assert Statement.objects.get(period=period, department=world.marketing).total == Decimal("3.00")
    assert period.capacity_amount == Decimal(744 * 8 * 3)  # the A100 class has 8 GPUs
    assert (message_levels.SUCCESS, "2026-03") in [
        (level, text.split(": ")[1][:7]) for level, text in _messages(response)
    ]


def test_finance_changes_the_idle_policy_and_the_figures_follow(world, client, a100_card, ledger):
    ledger.add(at=hour(2, 10), gpu_hours="1", department=world.marketing, gpu_class=world.a100)
    period = services.period_refresh(month=MARCH)
    client.force_login(world.user("finance"))
    response = client.post(
        reverse("admin:billing_billingperiod_change", args=[period.pk]),
        {
            "idle_policy": "charged",
            "idle_department": world.training.pk,
            **_empty_inline("statements"),
        },
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    training = Statement.objects.get(period=period, department=world.training)
    period.refresh_from_db()
    assert training.total == period.idle_amount == Decimal(744 * 8 * 2) - 2
    assert training.lines.get().kind == LineKind.IDLE


def test_the_idle_policy_is_read_only_once_a_statement_is_finalized(world, client, a100_card):
    period = services.period_refresh(month=MARCH)
    services.statement_finalize(
        statement=Statement.objects.get(period=period, department=world.marketing), user=None
    )
    client.force_login(world.user("finance"))
    url = reverse("admin:billing_billingperiod_change", args=[period.pk])
    page = client.get(url)
    assert "idle_policy" not in page.context["adminform"].form.fields
    client.post(
        url,
        {
            "idle_policy": "charged",
            "idle_department": world.training.pk,
            **_empty_inline("statements"),
        },
    )
    period.refresh_from_db()
    assert (period.idle_policy, period.idle_department) == ("absorbed", None)


def _empty_inline(prefix: str) -> dict:
    # The statements inline is read-only; the admin still expects its management form.
    return {
        f"{prefix}-TOTAL_FORMS": "0",
        f"{prefix}-INITIAL_FORMS": "0",
        f"{prefix}-MIN_NUM_FORMS": "0",
        f"{prefix}-MAX_NUM_FORMS": "1000",
    }


def _finalized_march(world, ledger) -> Statement:
    ledger.add(at=hour(2, 10), gpu_hours="2", department=world.marketing, gpu_class=world.a100)
    period = services.period_refresh(month=MARCH)
    return services.statement_finalize(
        statement=Statement.objects.get(period=period, department=world.marketing),
        user=world.user("finance"),
    )


def test_an_adjustment_added_in_the_admin_lands_on_the_next_open_statement(
    world, client, a100_card, ledger, django_capture_on_commit_callbacks
):
    march = _finalized_march(world, ledger)
    march_lines = list(march.lines.values_list("pk", "amount"))
    client.force_login(world.user("finance"))

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("admin:billing_adjustment_add"),
            {
                "original": march.pk,
                "amount": "-1.50",
                "gpu_hours": "0",
                "reason": "Outage on 2 March: half the job reran.",
            },
        )

    assert response.status_code == 302, response.context["adminform"].form.errors
    adjustment = Adjustment.objects.get()
    assert adjustment.kind == AdjustmentKind.CORRECTION
    assert adjustment.original == march
    assert adjustment.created_by == world.user("finance")
    april = Statement.objects.get(period__month=APRIL, department=world.marketing)
    assert adjustment.applied_to == april and april.status == StatementStatus.DRAFT
    (line,) = april.lines.filter(kind=LineKind.ADJUSTMENT)
    assert (line.adjustment, line.amount) == (adjustment, Decimal("-1.50"))
    assert april.total == Decimal("-1.50")
    march.refresh_from_db()
    assert march.total == Decimal("4.00")
    assert list(march.lines.values_list("pk", "amount")) == march_lines


def test_an_adjustment_in_fractions_of_a_cent_or_of_a_draft_is_refused(
    world, client, a100_card, ledger
):
    march = _finalized_march(world, ledger)
    draft = Statement.objects.get(period=march.period, department=world.training)
    client.force_login(world.user("finance"))
    url = reverse("admin:billing_adjustment_add")
    base = {"gpu_hours": "0", "reason": "Correction"}

    fraction = client.post(url, {**base, "original": march.pk, "amount": "1.005"})
    assert fraction.context["adminform"].form.errors["amount"] == [
        "Give the amount in whole EUR minor units (e.g. 1.01)."
    ]
    of_draft = client.post(url, {**base, "original": draft.pk, "amount": "1.00"})
    assert "original" in of_draft.context["adminform"].form.errors
    assert not Adjustment.objects.exists()


def test_an_adjustment_is_read_only_and_cannot_be_deleted(world, client, a100_card, ledger):
    march = _finalized_march(world, ledger)
    adjustment = services.adjustment_create(
        original=march, amount=Decimal("5.00"), reason="Missed job", user=world.user("finance")
    )
    client.force_login(world.user("finance"))
    change_url = reverse("admin:billing_adjustment_change", args=[adjustment.pk])
    assert client.get(change_url).context["has_change_permission"] is False
    assert client.post(change_url, {"amount": "9.00", "reason": "x"}).status_code == 403
    delete_url = reverse("admin:billing_adjustment_delete", args=[adjustment.pk])
    assert client.post(delete_url, {"post": "yes"}).status_code == 403
    adjustment.refresh_from_db()
    assert adjustment.amount == Decimal("5.00")


@pytest.mark.parametrize("role", ["finance", "it_admin"])
def test_every_billing_page_opens_for_finance_and_it(world, client, a100_card, ledger, role):
    march = _finalized_march(world, ledger)
    adjustment = services.adjustment_create(
        original=march, amount=Decimal("1.00"), reason="Missed job", user=world.user("finance")
    )
    factories.DepartmentMultiplierFactory(department=world.training)
    client.force_login(world.user(role))
    pages = [
        reverse(f"admin:billing_{model}_changelist")
        for model in (
            "ratecard",
            "departmentmultiplier",
            "billingperiod",
            "statement",
            "adjustment",
        )
    ] + [
        reverse("admin:billing_billingperiod_change", args=[march.period_id]),
        reverse("admin:billing_statement_change", args=[march.pk]),
        reverse("admin:billing_statement_change", args=[adjustment.applied_to_id]),
        reverse("admin:billing_adjustment_change", args=[adjustment.pk]),
        reverse("admin:billing_ratecard_change", args=[a100_card.pk]),
    ]
    for url in pages:
        assert client.get(url).status_code == 200, url
    statement_page = client.get(reverse("admin:billing_statement_change", args=[march.pk]))
    assert "2.00 GPU-hours of A100 × 2.00 EUR" in statement_page.content.decode()

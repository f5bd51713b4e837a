"""Usage metered after a statement was finalized never changes it: a refresh turns it into
one late-usage adjustment on the department's next open statement, pointing at the
original and priced as the original was. Drafts finalize themselves once the grace period
after the month's end has passed."""

import datetime as dt
from decimal import Decimal

import pytest

from billing import services
from billing.models import (
    Adjustment,
    AdjustmentKind,
    LineKind,
    RateCard,
    Statement,
    StatementLine,
    StatementStatus,
)
from tests import factories
from tests.billing.conftest import hour

pytestmark = pytest.mark.django_db

MARCH = dt.date(2026, 3, 1)
APRIL = dt.date(2026, 4, 1)


@pytest.fixture
def fleet(fleet):
    """The shared fleet, with its rate card."""
    a100, marketing, training = fleet
    return a100, marketing, training, a100.rate_cards.get()


@pytest.fixture
def march(fleet, ledger) -> Statement:
    """Marketing's March statement, finalized with 1 GPU-hour at 2.00 (now is after March)."""
    a100, marketing, _, _ = fleet
    ledger.add(at=hour(2, 10), gpu_hours="1", department=marketing, gpu_class=a100)
    period = services.period_refresh(month=MARCH)
    statement = Statement.objects.get(period=period, department=marketing)
    return services.statement_finalize(statement=statement, user=None)


def _as_stored(statement: Statement) -> tuple:
    stored = Statement.objects.get(pk=statement.pk)
    lines = list(
        StatementLine.objects.filter(statement=statement)
        .order_by("pk")
        .values_list("pk", "gpu_seconds", "unit_price", "amount")
    )
    return stored.status, stored.total, stored.gpu_hours, lines


def test_late_usage_becomes_an_adjustment_on_the_next_open_statement(
    fleet, march, ledger, django_capture_on_commit_callbacks
):
    a100, marketing, _, _ = fleet
    before = _as_stored(march)
    assert before[:3] == (StatementStatus.FINALIZED, Decimal("2.00"), Decimal("1"))
    ledger.add(at=hour(20, 10), gpu_hours="0.5", department=marketing, gpu_class=a100)

    with django_capture_on_commit_callbacks(execute=True):
        services.period_refresh(month=MARCH)

    adjustment = Adjustment.objects.get()
    april = Statement.objects.get(period__month=APRIL, department=marketing)
    assert (adjustment.kind, adjustment.original, adjustment.applied_to) == (
        AdjustmentKind.LATE_USAGE,
        march,
        april,
    )
    assert (adjustment.gpu_hours, adjustment.amount) == (Decimal("0.5"), Decimal("1.00"))
    assert adjustment.created_by is None
    assert "0.50 GPU-hours metered after the statement was finalized" in adjustment.reason
    # April (refreshed once the adjustment committed) carries it as a line.
    assert april.status == StatementStatus.DRAFT
    (line,) = april.lines.filter(kind=LineKind.ADJUSTMENT)
    assert (line.adjustment, line.amount, line.gpu_hours) == (
        adjustment,
        Decimal("1.00"),
        Decimal("0.5"),
    )
    assert april.total == Decimal("1.00")
    # March is as it was finalized.
    assert _as_stored(march) == before


def test_a_second_refresh_makes_no_second_adjustment(fleet, march, ledger):
    a100, marketing, _, _ = fleet
    ledger.add(at=hour(20, 10), gpu_hours="0.5", department=marketing, gpu_class=a100)
    services.period_refresh(month=MARCH)
    services.period_refresh(month=MARCH, force=True)
    services.period_refresh(month=MARCH, force=True)
    assert Adjustment.objects.count() == 1

    # More late usage: one more adjustment, for the difference only.
    ledger.add(at=hour(21, 10), gpu_hours="0.25", department=marketing, gpu_class=a100)
    services.period_refresh(month=MARCH)
    services.period_refresh(month=MARCH, force=True)
    assert sorted((a.gpu_hours, a.amount) for a in Adjustment.objects.all()) == [
        (Decimal("0.25"), Decimal("0.50")),
        (Decimal("0.5"), Decimal("1.00")),
    ]


def test_a_price_change_after_finalization_does_not_reprice_late_usage(fleet, march, ledger):
    a100, marketing, _, card = fleet
    before = _as_stored(march)
    card.price_per_gpu_hour = Decimal("5.00")
    card.save()
    ledger.add(at=hour(20, 10), gpu_hours="0.5", department=marketing, gpu_class=a100)

    services.period_refresh(month=MARCH)

    adjustment = Adjustment.objects.get()
    assert (adjustment.gpu_hours, adjustment.amount) == (Decimal("0.5"), Decimal("1.00"))
    assert _as_stored(march) == before
    # The statement keeps the card it was finalized with.
    assert march.pricing["rate_cards"][0]["price_per_gpu_hour"] == "2.0000"


def test_late_usage_in_an_hour_kind_the_statement_lacked_is_priced_as_finalized(fleet, ledger):
    """The finalized statement held peak hours only; late usage falls in an off-peak hour
    and the card's price was edited since. The late hour is priced with the card the
    statement was finalized with (its ``pricing``): 1 GPU-hour × 2.00 × 0.5 off-peak."""
    a100, marketing, _, card = fleet
    factories.OffPeakWindowFactory(
        start_time=dt.time(22), end_time=dt.time(6), time_zone="UTC", price_multiplier="0.5"
    )
    ledger.add(at=hour(2, 12), gpu_hours="1", department=marketing, gpu_class=a100)
    period = services.period_refresh(month=MARCH)
    march = services.statement_finalize(
        statement=Statement.objects.get(period=period, department=marketing), user=None
    )
    card.price_per_gpu_hour = Decimal("5.00")
    card.save()
    ledger.add(at=hour(20, 23), gpu_hours="1", department=marketing, gpu_class=a100)

    services.period_refresh(month=MARCH)

    adjustment = Adjustment.objects.get(original=march)
    assert adjustment.gpu_hours == Decimal("1")
    assert adjustment.amount == Decimal("1.00")


def test_late_usage_after_a_back_dated_card_is_priced_as_finalized(fleet, march, ledger):
    """A card added after finalization that reaches back into the month does not price
    the month's late usage: the statement was finalized with 2.00 for every hour."""
    a100, marketing, _, card = fleet
    RateCard.objects.filter(pk=card.pk).update(valid_to=hour(15, 0))
    factories.RateCardFactory(
        gpu_class=a100, price_per_gpu_hour=Decimal("5.00"), valid_from=hour(15, 0)
    )
    ledger.add(at=hour(20, 12), gpu_hours="1", department=marketing, gpu_class=a100)

    services.period_refresh(month=MARCH)

    adjustment = Adjustment.objects.get()
    assert adjustment.gpu_hours == Decimal("1")
    assert adjustment.amount == Decimal("2.00")


@pytest.mark.parametrize("grace_h", [72, 24])
def test_drafts_finalize_themselves_once_the_grace_period_has_passed(
    fleet, ledger, settings, grace_h
):
    a100, marketing, training, _ = fleet
    settings.BILLING_FINALIZE_AFTER_H = grace_h
    ledger.add(at=hour(2, 10), gpu_hours="1", department=marketing, gpu_class=a100)
    period = services.period_refresh(month=MARCH)
    services.period_refresh(month=APRIL)
    month_end = dt.datetime(2026, 4, 1, tzinfo=dt.UTC)
    due = month_end + dt.timedelta(hours=grace_h)

    assert services.statements_finalize_due(now=due - dt.timedelta(seconds=1)) == 0
    assert not Statement.objects.filter(status=StatementStatus.FINALIZED).exists()

    assert services.statements_finalize_due(now=due) == 2

    finalized = Statement.objects.filter(status=StatementStatus.FINALIZED)
    assert {s.department for s in finalized} == {marketing, training}
    assert {s.period_id for s in finalized} == {period.pk}
    assert {(s.finalized_by, s.finalized_at) for s in finalized} == {(None, due)}
    assert finalized.get(department=marketing).total == Decimal("2.00")
    # April has not ended: its drafts wait.
    assert set(Statement.objects.filter(period__month=APRIL).values_list("status", flat=True)) == {
        StatementStatus.DRAFT
    }
    # Nothing is left to do a moment later.
    assert services.statements_finalize_due(now=due + dt.timedelta(hours=1)) == 0

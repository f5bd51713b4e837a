"""A month of the ledger priced into statements: lines, Unallocated, idle capacity and the
figures that reconcile them."""

import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone

from billing import services
from billing.models import BillingPeriod, IdlePolicy, LineKind, Statement, StatementLine
from core import calendar
from tests import factories
from tests.billing.conftest import hour

pytestmark = pytest.mark.django_db

MARCH = dt.date(2026, 3, 1)


def test_each_department_pays_its_hours_and_idle_capacity_closes_the_month(fleet, ledger):
    a100, marketing, training = fleet
    ledger.add(at=hour(2, 10), gpu_hours="1.5", department=marketing, gpu_class=a100)
    ledger.add(at=hour(2, 10), gpu_hours="0.25", department=training, gpu_class=a100)
    ledger.add(at=hour(2, 10), gpu_hours="0.25", gpu_class=a100, namespace="orphan")

    period = services.period_refresh(month=MARCH)

    mine = Statement.objects.get(period=period, department=marketing)
    assert (mine.total, mine.gpu_hours) == (Decimal("3.00"), Decimal("1.5"))
    (line,) = mine.lines.all()
    assert (line.kind, line.unit_price, line.amount) == (LineKind.USAGE, Decimal("2.00"), 3)
    assert (
        line.description == "1.50 GPU-hours of A100 × 2.00 EUR, namespace workloads: dept-marketing"
    )
    assert Statement.objects.get(period=period, department=training).total == Decimal("0.50")
    # March in UTC: 744 hours of 2 GPUs, all at 2.00 EUR.
    assert period.capacity_gpu_hours == 744 * 2
    assert period.capacity_amount == Decimal("2976.00")
    assert (period.unallocated_gpu_hours, period.unallocated_amount) == (Decimal("0.25"), 0.5)
    assert period.idle_gpu_hours == 744 * 2 - 2
    assert period.idle_amount == Decimal("2972.00")
    (unallocated,) = StatementLine.objects.filter(period=period, kind=LineKind.UNALLOCATED)
    assert unallocated.namespace == "orphan" and unallocated.statement is None
    (idle,) = StatementLine.objects.filter(period=period, kind=LineKind.IDLE)
    assert (idle.statement, idle.amount) == (None, Decimal("2972.00"))


def test_a_second_refresh_with_nothing_changed_rewrites_nothing(fleet, ledger):
    a100, marketing, _ = fleet
    ledger.add(at=hour(2, 10), gpu_hours="1", department=marketing, gpu_class=a100)
    first = services.period_refresh(month=MARCH)
    again = services.period_refresh(month=MARCH)
    assert again.computed_at == first.computed_at
    ledger.add(at=hour(3, 10), gpu_hours="1", department=marketing, gpu_class=a100)
    changed = services.period_refresh(month=MARCH)
    assert changed.computed_at > first.computed_at
    assert Statement.objects.get(period=changed, department=marketing).total == Decimal("4.00")


def test_a_rate_change_mid_month_prices_each_hour_with_the_card_valid_then(fleet, ledger):
    a100, marketing, _ = fleet
    card = a100.rate_cards.get()
    card.valid_to = hour(16, 0)
    card.save()
    factories.RateCardFactory(
        gpu_class=a100, price_per_gpu_hour=Decimal("3.00"), valid_from=hour(16, 0)
    )
    ledger.add(at=hour(15, 23), gpu_hours="1", department=marketing, gpu_class=a100)
    ledger.add(at=hour(16, 0), gpu_hours="1", department=marketing, gpu_class=a100)

    period = services.period_refresh(month=MARCH)

    lines = list(Statement.objects.get(period=period, department=marketing).lines.all())
    assert [(line.unit_price, line.amount) for line in lines] == [
        (Decimal("2.00"), Decimal("2.00")),
        (Decimal("3.00"), Decimal("3.00")),
    ]
    # Capacity: 15 days at 2.00, 16 days at 3.00, 2 GPUs each hour.
    assert period.capacity_amount == Decimal(2 * (15 * 24 * 2 + 16 * 24 * 3))


def test_a_month_with_the_spring_clock_change_has_743_hours(fleet, ledger, settings):
    settings.TIME_ZONE = "Europe/Berlin"
    period = services.period_refresh(month=MARCH)
    assert period.capacity_gpu_hours == 743 * 2
    october = services.period_refresh(month=dt.date(2026, 10, 1))
    assert october.capacity_gpu_hours == 745 * 2


def test_off_peak_hours_and_department_multipliers_are_applied_and_shown(fleet, ledger):
    a100, marketing, _ = fleet
    factories.OffPeakWindowFactory(
        start_time=dt.time(22), end_time=dt.time(6), time_zone="UTC", price_multiplier="0.5"
    )
    factories.DepartmentMultiplierFactory(department=marketing, multiplier=Decimal("0.8"))
    ledger.add(at=hour(2, 23), gpu_hours="2", department=marketing, gpu_class=a100)
    ledger.add(at=hour(2, 12), gpu_hours="1", department=marketing, gpu_class=a100)

    period = services.period_refresh(month=MARCH)

    lines = list(Statement.objects.get(period=period, department=marketing).lines.all())
    assert [
        (line.gpu_hours, line.off_peak_multiplier, line.list_amount, line.amount) for line in lines
    ] == [
        (Decimal("1"), Decimal("1"), Decimal("2.00"), Decimal("1.60")),
        (Decimal("2"), Decimal("0.5"), Decimal("2.00"), Decimal("1.60")),
    ]
    assert "× 0.5 off-peak × 0.8 department multiplier" in lines[1].description


def test_shared_idle_capacity_is_split_by_use_to_the_cent(fleet, ledger):
    a100, marketing, training = fleet
    BillingPeriod.objects.create(month=MARCH, idle_policy=IdlePolicy.SHARED)
    ledger.add(at=hour(2, 10), gpu_hours="1", department=marketing, gpu_class=a100)
    ledger.add(at=hour(2, 10), gpu_hours="0.5", department=training, gpu_class=a100)

    period = services.period_refresh(month=MARCH)

    idle = {
        line.department_id: line.amount
        for line in StatementLine.objects.filter(period=period, kind=LineKind.IDLE)
    }
    assert sum(idle.values()) == period.idle_amount == Decimal("2973.00")
    assert idle == {marketing.pk: Decimal("1982.00"), training.pk: Decimal("991.00")}


def test_usage_without_a_card_or_class_is_kept_unpriced_and_counted(fleet, ledger):
    _a100, marketing, _ = fleet
    ledger.add(at=hour(2, 10), gpu_hours="1", department=marketing, gpu_class=None)
    period = services.period_refresh(month=MARCH)
    (line,) = Statement.objects.get(period=period, department=marketing).lines.all()
    assert (line.amount, line.unit_price, line.gpu_hours) == (0, None, 1)
    assert "not priced (an unknown GPU model)" in line.description
    assert period.unpriced_gpu_hours == 1


def test_a_running_months_idle_capacity_counts_only_the_hours_that_have_begun(
    fleet, ledger, monkeypatch
):
    """A draft in the middle of the month is not charged for the rest of it: under a
    shared policy that would bill departments for idle time still to come."""
    a100, marketing, _ = fleet
    ledger.add(at=hour(2, 10), gpu_hours="1", department=marketing, gpu_class=a100)
    monkeypatch.setattr(timezone, "now", lambda: dt.datetime(2026, 3, 10, 12, 30, tzinfo=dt.UTC))

    period = services.period_refresh(month=MARCH, force=True)

    begun = 9 * 24 + 13  # 1 March 00:00 to 10 March 12:00, the hour in progress included
    assert period.capacity_gpu_hours == begun * 2
    assert period.idle_gpu_hours == begun * 2 - 1
    assert period.capacity_amount == Decimal(begun * 2 * 2)

    monkeypatch.setattr(timezone, "now", lambda: dt.datetime(2026, 4, 2, tzinfo=dt.UTC))
    period = services.period_refresh(month=MARCH, force=True)
    assert period.capacity_gpu_hours == 744 * 2


def test_a_department_created_after_a_month_was_opened_gets_a_statement_there_only_if_it_used_gpus(
    fleet, ledger
):
    a100, marketing, _ = fleet
    ledger.add(at=hour(2, 10), gpu_hours="1", department=marketing, gpu_class=a100)
    services.period_refresh(month=MARCH)
    research = factories.DepartmentFactory(slug="research", name="Research")
    lab = factories.DepartmentFactory(slug="lab", name="Lab")
    ledger.add(at=hour(3, 10), gpu_hours="2", department=lab, gpu_class=a100)

    services.period_refresh(month=MARCH, force=True)
    current = services.period_refresh(month=calendar.month_of(timezone.now()))

    march = set(
        Statement.objects.filter(period__month=MARCH).values_list("department__slug", flat=True)
    )
    assert "research" not in march
    assert {"marketing", "training", "lab"} <= march
    assert Statement.objects.get(period__month=MARCH, department=lab).total == Decimal("4.00")
    # The running month has a draft for every active department, new ones included.
    assert Statement.objects.filter(period=current, department=research).exists()

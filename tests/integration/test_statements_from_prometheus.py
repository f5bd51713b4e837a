"""Statements priced from a ledger pulled out of a real Prometheus (synthetic pods
backfilled with promtool): each department pays its pods' GPU-hours at the card of their
class, off-peak hours cheaper; the unowned namespaces are Unallocated; an unknown model is
kept unpriced; and the month reconciles to the cent."""

import datetime as dt
import math
from collections import defaultdict
from decimal import ROUND_HALF_UP, Decimal

import pytest

from billing import services as billing
from billing.models import LineKind, Statement, StatementLine
from core import calendar
from core.calendar import month_bounds
from metering import services
from metering.models import MeteringRun, MetricSource, UsageRecord
from metering.quantities import gpu_hours
from tests import factories

pytestmark = pytest.mark.integration

PRICES = {"a100": Decimal("2.00"), "t4": Decimal("0.50")}


@pytest.fixture
def priced(world, settings, prometheus_history):
    settings.PROMETHEUS_URL = prometheus_history.url
    for gpu_class in (world.a100, world.t4):
        factories.RateCardFactory(gpu_class=gpu_class, price_per_gpu_hour=PRICES[gpu_class.slug])
    source = MetricSource.objects.get(name="allocation")
    run = services.usage_pull(
        source=source, start=prometheus_history.day, end=prometheus_history.at(48)
    )
    assert run.status == MeteringRun.Status.SUCCEEDED, run.error
    months = sorted(
        {calendar.month_of(prometheus_history.day), calendar.month_of(prometheus_history.at(47))}
    )
    return source, [billing.period_refresh(month=month) for month in months]


def expected_amounts(world, source) -> dict:
    """Per department (None: Unallocated): the exact value of its ledger rows, each hour at
    its class's price, times the Nightly window's multiplier when the hour starts in it."""
    exact = defaultdict(Decimal)
    for record in UsageRecord.objects.filter(source=source, gpu_class__isnull=False):
        multiplier = (
            world.off_peak.price_multiplier if world.off_peak.contains(record.hour_start) else 1
        )
        exact[record.department_id] += (
            gpu_hours(record.quantity) * PRICES[record.gpu_class.slug] * multiplier
        )
    return exact


def cents(amount: Decimal) -> Decimal:
    return amount.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def test_each_department_pays_its_pods_at_its_prices(priced, world):
    source, periods = priced
    exact = expected_amounts(world, source)
    for department in (world.marketing, world.training):
        statements = Statement.objects.filter(department=department, period__in=periods)
        total = sum((s.total for s in statements), Decimal(0))
        lines = StatementLine.objects.filter(statement__in=statements, kind=LineKind.USAGE)
        # Each line is rounded on its own: the total is within half a cent per line.
        assert abs(total - exact[department.pk]) <= Decimal("0.005") * lines.count()
        assert total > 0
        seconds = sum((s.gpu_seconds for s in statements), Decimal(0))
        ledger_seconds = sum(
            r.quantity for r in UsageRecord.objects.filter(source=source, department=department)
        )
        assert seconds == ledger_seconds


def test_unowned_namespaces_are_unallocated_and_the_unknown_model_is_unpriced(priced, world):
    source, periods = priced
    exact = expected_amounts(world, source)
    unallocated = StatementLine.objects.filter(period__in=periods, kind=LineKind.UNALLOCATED)
    assert {line.namespace for line in unallocated} == {"team-research", 'weird"ns'}
    assert abs(sum(p.unallocated_amount for p in periods) - exact[None]) <= Decimal("0.01")
    # Training's MI300 hour has no GPU class: kept on its statement, at no price.
    (unknown,) = StatementLine.objects.filter(
        statement__department=world.training, period__in=periods, gpu_class__isnull=True
    )
    assert unknown.amount == 0
    assert unknown.gpu_hours == pytest.approx(Decimal(1), abs=Decimal("0.02"))
    assert sum(p.unpriced_gpu_seconds for p in periods) == unknown.gpu_seconds


def test_the_months_reconcile_to_the_cent(priced):
    _, periods = priced
    for period in periods:
        usage = sum(
            line.list_amount
            for line in StatementLine.objects.filter(period=period, kind=LineKind.USAGE)
        )
        assert usage + period.unallocated_amount + period.idle_amount == period.capacity_amount
        idle_lines = StatementLine.objects.filter(period=period, kind=LineKind.IDLE)
        assert sum(line.amount for line in idle_lines) == period.idle_amount
        # 8 A100s and 16 T4s for every hour of the month that had begun when it was
        # priced (all of a month that ended), less what ran.
        start, end = month_bounds(period.month)
        priced_until = min(end, period.computed_at)
        hours = Decimal(math.ceil((priced_until - start) / dt.timedelta(hours=1)))
        assert period.capacity_gpu_seconds == hours * (8 + 16) * 3600

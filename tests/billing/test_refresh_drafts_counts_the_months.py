"""The periodic ``billing.refresh_drafts`` task says how many months it recomputed: every
month the first time, then only those whose ledger or prices changed since."""

import datetime as dt
from decimal import Decimal

from billing import services, tasks
from billing.models import BillingPeriod, Statement
from core import calendar
from tests import factories
from tests.billing.conftest import hour

MARCH = dt.date(2026, 3, 1)
APRIL = dt.date(2026, 4, 1)


def test_the_task_counts_the_months_it_recomputed(world, ledger):
    factories.RateCardFactory(gpu_class=world.a100, price_per_gpu_hour=Decimal("2"))
    ledger.add(at=hour(2, 10), gpu_hours="1", department=world.marketing, gpu_class=world.a100)
    services.period_refresh(month=MARCH)
    BillingPeriod.objects.create(month=APRIL)  # opened, never computed
    this_month = calendar.month_of(dt.datetime.now(dt.UTC))

    # April and this month were never computed; March is up to date.
    assert tasks.refresh_drafts() == 2
    assert BillingPeriod.objects.filter(computed_at__isnull=True).count() == 0
    assert BillingPeriod.objects.filter(month=this_month).exists()

    # Nothing changed since: nothing to recompute.
    assert tasks.refresh_drafts() == 0

    # Usage of March metered late: March alone.
    ledger.add(at=hour(3, 10), gpu_hours="2", department=world.marketing, gpu_class=world.a100)
    assert tasks.refresh_drafts() == 1
    march = Statement.objects.get(period__month=MARCH, department=world.marketing)
    assert march.total == Decimal("6.00")


def test_forced_every_month_named_is_recomputed(world, ledger):
    services.period_refresh(month=MARCH)
    assert services.periods_refresh(months=[MARCH, APRIL], force=True) == 2
    assert services.periods_refresh(months=[MARCH, APRIL]) == 0

"""Many finance users and the periodic refresh hit the same month at once, while the
ledger is still being written: the month's row lock in PostgreSQL serializes them, so
exactly one finalization wins, the statement it froze adds up and never changes again, and
usage that arrived after it is charged once, as late-usage adjustments."""

import datetime as dt
import threading
from decimal import Decimal

import pytest
from django.db import connection
from django.db.models import Sum

from billing import services
from billing.models import Adjustment, AdjustmentKind, Statement, StatementStatus
from metering.models import UsageRecord
from tests import factories
from tests.billing.conftest import Ledger, hour

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

MARCH = dt.date(2026, 3, 1)
FINALIZERS = 6
REFRESHERS = 4
WRITERS = 2
ROWS_PER_WRITER = 5


def _race(jobs: list) -> list:
    """Run each callable in its own thread, all starting together, each on its own
    database connection; returns what each returned or raised."""
    start = threading.Barrier(len(jobs))
    outcomes: list = [None] * len(jobs)

    def one(i: int) -> None:
        try:
            start.wait(timeout=30)
            outcomes[i] = jobs[i]()
        except Exception as exc:  # judged by the test
            outcomes[i] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(jobs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a thread never returned"
    return outcomes


def _as_stored(statement_id: int) -> tuple:
    statement = Statement.objects.get(pk=statement_id)
    lines = list(statement.lines.order_by("pk").values_list("pk", "kind", "gpu_seconds", "amount"))
    return statement.status, statement.total, statement.gpu_seconds, statement.finalized_at, lines


def test_one_finalization_wins_and_the_statement_never_changes_after(postgres):
    a100 = factories.GpuClassFactory(slug="a100", name="A100", capacity_gpus=4)
    factories.RateCardFactory(gpu_class=a100, price_per_gpu_hour=Decimal("2.00"))
    marketing = factories.DepartmentFactory(slug="marketing", name="Marketing")
    factories.DepartmentFactory(slug="training", name="Training")
    ledger = Ledger()
    for day in range(1, 4):
        ledger.add(at=hour(day, 10), gpu_hours="1.5", department=marketing, gpu_class=a100)
    period = services.period_refresh(month=MARCH)
    statement_id = Statement.objects.get(period=period, department=marketing).pk

    def finalize():
        statement = Statement.objects.select_related("period").get(pk=statement_id)
        return services.statement_finalize(statement=statement, user=None)

    def refresh():
        for _ in range(3):
            services.period_refresh(month=MARCH, force=True)
        return "refreshed"

    def write(writer: int):
        def rows():
            for i in range(ROWS_PER_WRITER):
                ledger.add(
                    at=hour(10 + writer, i),
                    gpu_hours="0.5",
                    department=marketing,
                    gpu_class=a100,
                )
            return "written"

        return rows

    outcomes = _race(
        [finalize] * FINALIZERS
        + [refresh] * REFRESHERS
        + [write(writer) for writer in range(WRITERS)]
    )

    finalized = [o for o in outcomes[:FINALIZERS] if isinstance(o, Statement)]
    refused = [o for o in outcomes[:FINALIZERS] if isinstance(o, services.BillingError)]
    assert len(finalized) == 1, outcomes[:FINALIZERS]
    assert len(refused) == FINALIZERS - 1, outcomes[:FINALIZERS]
    assert all("it never changes" in str(error) for error in refused)
    assert outcomes[FINALIZERS:] == ["refreshed"] * REFRESHERS + ["written"] * WRITERS

    frozen = _as_stored(statement_id)
    status, total, gpu_seconds, _, lines = frozen
    assert status == StatementStatus.FINALIZED
    assert total == sum((amount for *_, amount in lines), Decimal(0))
    assert total == gpu_seconds / 3600 * 2  # every hour at 2.00, peak, no multiplier

    # More refreshes, and more usage for the month: the statement stays as it was.
    ledger.add(at=hour(20, 10), gpu_hours="0.25", department=marketing, gpu_class=a100)
    for _ in range(2):
        services.period_refresh(month=MARCH, force=True)
    assert _as_stored(statement_id) == frozen

    # What the ledger holds for marketing's March is charged exactly once: on the
    # statement, or as late usage after it.
    ledger_seconds = UsageRecord.objects.filter(
        department=marketing, hour_start__gte=hour(1, 0), hour_start__lt=hour(1, 0, month=4)
    ).aggregate(total=Sum("quantity"))["total"]
    ledger_hours = Decimal("4.5") + WRITERS * ROWS_PER_WRITER * Decimal("0.5") + Decimal("0.25")
    assert ledger_seconds == ledger_hours * 3600
    late = Adjustment.objects.filter(original_id=statement_id, kind=AdjustmentKind.LATE_USAGE)
    late_seconds = late.aggregate(total=Sum("gpu_seconds"))["total"] or Decimal(0)
    late_amount = late.aggregate(total=Sum("amount"))["total"] or Decimal(0)
    assert gpu_seconds + late_seconds == ledger_seconds
    assert total + late_amount == ledger_hours * 2
    assert late.exists()  # at least the last 0.25 GPU-hours came late
    assert {a.applied_to.period.month for a in late} == {dt.date(2026, 4, 1)}

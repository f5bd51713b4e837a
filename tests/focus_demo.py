"""The demo's billing as the FOCUS tests read it: ``demo_seed()`` and two priced months.

October 2026 (idle shared among the departments, every statement but training's
finalized): marketing's renders and Customer Service's realtime agent in their namespaces,
training on A100s and on an L4 that no GPU class prices, a research team's notebooks that
no department owns, and the worker pool ``gpu-workers`` allocated T4s on which portal jobs
of marketing and training ran (the rest of its allocation is pool idle). Usage metered
after October was finalized becomes an adjustment on November.

November 2026 (idle absorbed by IT, drafts): more of the same, and finance's correction of
marketing's October statement.

What pulls of the billing source and the worker would have written is written directly
(the ledger rows and the jobs' GPU time through the worker's own steps): no Prometheus.
"""

import datetime as dt
import importlib
from dataclasses import dataclass
from decimal import Decimal

from billing import services
from billing.models import Adjustment, BillingPeriod, IdlePolicy, Statement
from demo.scenario import A100_MODEL, T4_MODEL, UNKNOWN_MODEL, UNOWNED_NAMESPACE, demo_seed
from departments.models import Department, GpuClass
from jobs.models import JobKind
from metering.models import UsageRecord
from tests.billing.conftest import Jobs, Ledger

OCTOBER = dt.date(2026, 10, 1)
NOVEMBER = dt.date(2026, 11, 1)
CORRECTION = Decimal("-12.34")


@dataclass
class DemoBilling:
    october: BillingPeriod
    november: BillingPeriod
    correction: Adjustment
    late_usage: Adjustment


def _at(month: dt.date, day: int, hour: int) -> dt.datetime:
    return dt.datetime(month.year, month.month, day, hour, tzinfo=dt.UTC)


def _restore_roles() -> None:
    """The groups and their permissions come from data migrations, which an earlier
    transactional test's flush may have emptied: run them again (each is idempotent)."""
    from django.db import connection
    from django.db.migrations.loader import MigrationLoader

    state_apps = MigrationLoader(connection).project_state().apps
    with connection.schema_editor() as editor:
        for module in ("departments", "jobs", "billing"):
            importlib.import_module(f"{module}.migrations.0002_roles").grant(state_apps, editor)


def _ledger(ledger: Ledger, month: dt.date, *, hours: int) -> None:
    """``hours`` hours of each workload on each of the month's first days (one hour each
    night in the off-peak window)."""
    departments = {d.slug: d for d in Department.objects.all()}
    classes = {c.slug: c for c in GpuClass.objects.all()}
    plan = [
        ("marketing", "dept-marketing", "t4", T4_MODEL, "2"),
        ("customer-service", "dept-customer-service", "a100", A100_MODEL, "1.5"),
        ("training", "dept-training", "a100", A100_MODEL, "4"),
        ("training", "dept-training", None, UNKNOWN_MODEL, "1"),
        (None, UNOWNED_NAMESPACE, "t4", T4_MODEL, "0.75"),
        (None, "gpu-workers", "t4", T4_MODEL, "2"),
    ]
    for day in range(1, hours + 1):
        for at in (_at(month, day, 10), _at(month, day, 23)):
            for slug, namespace, gpu, model, gpus in plan:
                record = ledger.add(
                    at=at,
                    gpu_hours=gpus,
                    department=departments.get(slug),
                    gpu_class=classes.get(gpu),
                    namespace=namespace,
                )
                UsageRecord.objects.filter(pk=record.pk).update(gpu_model=model)


def _jobs(jobs: Jobs, month: dt.date) -> None:
    """Portal jobs in the worker pool: marketing's lip-sync renders and a training job."""
    t4 = GpuClass.objects.get(slug="t4")
    lipsync = JobKind.objects.get(slug="lipsync-render")
    speech = JobKind.objects.get(slug="speech-synthesis")
    marketing = Department.objects.get(slug="marketing")
    training = Department.objects.get(slug="training")
    for day, minutes in ((1, 35), (1, 50), (2, 20)):
        start = _at(month, day, 10)
        jobs.run(
            department=marketing,
            gpu_class=t4,
            kind=lipsync,
            tier="batch",
            start=start,
            end=start + dt.timedelta(minutes=minutes),
        )
    start = _at(month, 2, 23)
    jobs.run(
        department=training,
        gpu_class=t4,
        kind=speech,
        tier="interactive",
        start=start,
        end=start + dt.timedelta(minutes=40),
    )


def demo_billing(settings) -> DemoBilling:
    """Seed the demo and price October (finalized, idle shared) and November (drafts,
    with a correction and late usage of October)."""
    _restore_roles()
    demo_seed()
    ledger, jobs = Ledger(), Jobs(settings)

    october = services.period_get_or_create(month=OCTOBER)
    october.idle_policy = IdlePolicy.SHARED
    october.save()
    _ledger(ledger, OCTOBER, hours=3)
    _jobs(jobs, OCTOBER)
    services.period_refresh(month=OCTOBER)
    finalize_at = _at(NOVEMBER, 4, 9)
    for statement in Statement.objects.filter(period__month=OCTOBER).exclude(
        department__slug="training"
    ):
        services.statement_finalize(statement=statement, now=finalize_at)

    _ledger(ledger, NOVEMBER, hours=2)
    _jobs(jobs, NOVEMBER)
    services.period_refresh(month=NOVEMBER)
    marketing_october = Statement.objects.get(period__month=OCTOBER, department__slug="marketing")
    correction = services.adjustment_create(
        original=marketing_october, amount=CORRECTION, reason="Outage on 3 October", user=None
    )
    # Usage of October metered after it was finalized: an adjustment on November.
    ledger.add(
        at=_at(OCTOBER, 20, 14),
        gpu_hours="3",
        department=Department.objects.get(slug="customer-service"),
        gpu_class=GpuClass.objects.get(slug="a100"),
        namespace="dept-customer-service",
    )
    services.period_refresh(month=OCTOBER)
    services.period_refresh(month=NOVEMBER)
    late_usage = Adjustment.objects.get(kind=Adjustment.Kind.LATE_USAGE)
    return DemoBilling(
        october=BillingPeriod.objects.get(month=OCTOBER),
        november=BillingPeriod.objects.get(month=NOVEMBER),
        correction=correction,
        late_usage=late_usage,
    )

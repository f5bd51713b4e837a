"""An installation that kept GPU-hours migrates to exact GPU-seconds without a change to
its bills: the ledger and the statements are converted exactly (× 3600), a finalized
statement keeps every amount (PostgreSQL's triggers are held only for the conversion, then
refuse changes again), and the running month priced from the converted ledger costs what
the hours cost before."""

import datetime as dt
import importlib
from decimal import Decimal

import pytest
from django.db import IntegrityError, connection, transaction
from django.db.migrations.executor import MigrationExecutor

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

# The last migrations before GPU-seconds; the apps' later migrations (clusters, worker pools,
# jobs' GPU time) are unapplied with them and applied again after.
BEFORE = [
    ("departments", "0005_audit_history"),
    ("metering", "0003_audit_history"),
    ("jobs", "0004_submitted_at_set_by_the_submission"),
    ("billing", "0005_billing_period_history"),
]
HOURS = [Decimal("1.5"), Decimal("0.016667"), Decimal("2.333333")]  # as the old ledger kept them
PRICE = Decimal("3.20")


def _executor() -> MigrationExecutor:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    return executor


def _seed_old(apps, march: dt.date) -> dict:
    """What an installation holding GPU-hours had: March finalized, April a draft."""
    install = importlib.import_module("metering.migrations.0002_builtin_sources_and_roles")
    with connection.schema_editor() as editor:
        install.install(apps, editor)
    Department = apps.get_model("departments", "Department")
    GpuClass = apps.get_model("departments", "GpuClass")
    Namespace = apps.get_model("departments", "Namespace")
    MetricSource = apps.get_model("metering", "MetricSource")
    MeteringRun = apps.get_model("metering", "MeteringRun")
    UsageRecord = apps.get_model("metering", "UsageRecord")
    RateCard = apps.get_model("billing", "RateCard")
    BillingPeriod = apps.get_model("billing", "BillingPeriod")
    Statement = apps.get_model("billing", "Statement")
    StatementLine = apps.get_model("billing", "StatementLine")

    marketing = Department.objects.create(name="Marketing", slug="marketing", cost_centre="C1")
    Namespace.objects.create(name="dept-marketing", department=marketing)
    a100 = GpuClass.objects.create(
        name="A100", slug="a100", model_regex=".*A100.*", capacity_gpus=1, queue_prefix="gpu.a100"
    )
    card = RateCard.objects.create(
        gpu_class=a100,
        currency="EUR",
        price_per_gpu_hour=PRICE,
        valid_from=dt.datetime(2020, 1, 1, tzinfo=dt.UTC),
    )
    source = MetricSource.objects.get(name="allocation")
    assert source.measure == "gpu_hours"
    april = dt.date(march.year, march.month + 1, 1)
    now = dt.datetime.now(dt.UTC)
    for month in (march, april):
        start = dt.datetime(month.year, month.month, 2, 10, tzinfo=dt.UTC)
        run = MeteringRun.objects.create(
            source=source,
            window_start=start,
            window_end=start + dt.timedelta(hours=len(HOURS)),
            started_at=now,
            finished_at=now,
            status="succeeded",
        )
        for offset, hours in enumerate(HOURS):
            UsageRecord.objects.create(
                source=source,
                namespace="dept-marketing",
                gpu_model="NVIDIA-A100",
                hour_start=start + dt.timedelta(hours=offset),
                department=marketing,
                gpu_class=a100,
                quantity=hours,
                run=run,
            )
    period = BillingPeriod.objects.create(month=march, currency="EUR")
    total_hours = sum(HOURS, Decimal(0))
    amount = (total_hours * PRICE).quantize(Decimal("0.01"))
    statement = Statement.objects.create(
        period=period,
        department=marketing,
        currency="EUR",
        gpu_hours=total_hours,
        total=amount,
        computed_at=now,
        pricing={  # what finalizing kept (billing.services.pricing_snapshot)
            "currency": "EUR",
            "rate_cards": [
                {
                    "id": card.pk,
                    "gpu_class": a100.pk,
                    "tier": "",
                    "price_per_gpu_hour": "3.20",
                    "currency": "EUR",
                    "valid_from": "2020-01-01T00:00:00+00:00",
                    "valid_to": None,
                }
            ],
            "department_multipliers": [],
            "off_peak_windows": [],
            "capacity_gpus": {str(a100.pk): 1},
            "namespace_tiers": {"dept-marketing": ""},
            "idle_policy": "absorbed",
            "idle_department": None,
        },
    )
    StatementLine.objects.create(
        period=period,
        statement=statement,
        kind="usage",
        department=marketing,
        gpu_class=a100,
        rate_card=card,
        gpu_hours=total_hours,
        unit_price=PRICE,
        list_amount=amount,
        amount=amount,
        description=f"{total_hours} GPU-hours of A100 × 3.20 EUR",
    )
    Statement.objects.filter(pk=statement.pk).update(status="finalized", finalized_at=now)
    return {"statement": statement.pk, "amount": amount, "hours": total_hours}


def test_the_migration_converts_exactly_and_changes_no_amount(postgres):
    from billing import services
    from billing.models import Statement, StatementLine
    from metering.models import MetricSource, UsageRecord

    march = dt.date(2025, 3, 1)
    executor = _executor()
    executor.migrate(BEFORE)
    try:
        old = _seed_old(executor.loader.project_state(BEFORE).apps, march)
    finally:  # the database goes back to today's schema, whatever happened
        executor = _executor()
        executor.migrate(executor.loader.graph.leaf_nodes())

    # The ledger: each row × 3600, exactly; the built-in source now answers in seconds.
    allocation = MetricSource.objects.get(name="allocation")
    assert allocation.measure == "gpu_seconds" and allocation.query().endswith("* 60")
    assert sorted(UsageRecord.objects.values_list("quantity", flat=True)) == sorted(
        [hours * 3600 for hours in HOURS] * 2
    )
    # The finalized statement: every amount as it was, its GPU time in seconds.
    statement = Statement.objects.get(pk=old["statement"])
    assert (statement.status, statement.total) == ("finalized", old["amount"])
    assert statement.gpu_seconds == old["hours"] * 3600
    line = StatementLine.objects.get(statement=statement)
    assert (line.amount, line.gpu_seconds) == (old["amount"], old["hours"] * 3600)
    # ... and the database refuses to change it again.
    with (
        pytest.raises(IntegrityError, match="finalized"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute("UPDATE billing_statement SET total = 0 WHERE id = %s", [statement.pk])

    # Pricing the converted ledger: March costs what its hours cost (no late usage), and
    # April's draft is the hours at the price, rounded once.
    services.period_refresh(month=march, force=True)
    assert not statement.adjustments.exists()
    april = services.period_refresh(month=dt.date(2025, 4, 1), force=True)
    draft = Statement.objects.get(period=april, department=statement.department)
    assert draft.total == old["amount"]
    assert draft.gpu_seconds == old["hours"] * 3600

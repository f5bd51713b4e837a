"""gpu_hours_month: the month's metered GPU-hours plus what metering does not hold yet:
the reservations of queued and running jobs (GPUs x max runtime) and the actual
GPU-seconds of finished jobs until a metering run has covered the hour they ended in."""

import datetime as dt
from decimal import Decimal

import pytest

from jobs import services
from jobs.models import GenerationJob
from tests import factories
from tests.jobs.conftest import NOON, quota

HOUR = dt.timedelta(hours=1)


@pytest.fixture
def hour_long_kind(world):
    world.lipsync.max_runtime_s = 3600
    world.lipsync.save()
    return world.lipsync


def metered(world, hours: str, at: dt.datetime):
    return factories.UsageRecordFactory(
        department=world.marketing, gpu_class=world.t4, hour_start=at, quantity=Decimal(hours)
    )


def test_reservations_of_admitted_jobs_count_until_metered(world, submit, hour_long_kind):
    budget = quota(world, "gpu_hours_month", Decimal("12"))
    metered(world, "10", NOON - 5 * HOUR)
    first, second, third = submit(), submit(), submit()
    assert (first.state, second.state, third.state) == ("queued", "queued", "waiting")
    assert first.gpu_hours_reserved == Decimal("1")
    assert services.quota_use(budget, at=NOON) == Decimal("12")
    assert "limit 12 GPU-hours, 12 in use, this job needs 1" in third.reason


def test_last_month_usage_does_not_count(world, submit, hour_long_kind):
    quota(world, "gpu_hours_month", Decimal("1"))
    metered(world, "500", dt.datetime(2026, 10, 31, 23, tzinfo=dt.UTC))
    assert submit().state == "queued"


def test_a_finished_job_counts_its_actual_gpu_seconds_until_metering_covers_it(
    world, submit, hour_long_kind
):
    budget = quota(world, "gpu_hours_month", Decimal("100"))
    GenerationJob.objects.filter(pk=world.member_job.pk).update(
        state="succeeded",
        finished_at=NOON - 2 * HOUR,
        gpu_seconds=Decimal("1800"),
        gpu_hours_reserved=Decimal("1"),
    )
    assert services.quota_use(budget, at=NOON) == Decimal("0.5")
    # A run of the billing source pulled the hours up to noon after they had ended: the
    # job is in the metered figure now (here: the ledger row the run wrote).
    run = factories.MeteringRunFactory(
        window_start=dt.datetime(2026, 11, 1, tzinfo=dt.UTC),
        window_end=NOON,
        started_at=NOON + dt.timedelta(minutes=5),
    )
    factories.UsageRecordFactory(
        department=world.marketing,
        gpu_class=world.t4,
        hour_start=NOON - 2 * HOUR,
        quantity=Decimal("0.5"),
        run=run,
        source=run.source,
    )
    assert services.quota_use(budget, at=NOON + dt.timedelta(minutes=10)) == Decimal("0.5")


def test_quota_narrowed_to_a_job_kind_counts_only_that_kinds_jobs(world, submit, hour_long_kind):
    budget = quota(world, "gpu_hours_month", Decimal("2"), job_kind="lipsync-render")
    metered(world, "50", NOON - HOUR)  # metering cannot tell job kinds apart: not counted
    GenerationJob.objects.filter(pk=world.member_job.pk).update(
        state="failed", finished_at=NOON - HOUR, gpu_seconds=Decimal("3600")
    )
    assert services.quota_use(budget, at=NOON) == Decimal("1")
    assert submit().state == "queued"
    assert submit().state == "waiting"


def test_soft_budget_admits_over_the_limit(world, submit, hour_long_kind):
    quota(world, "gpu_hours_month", Decimal("0.5"), "soft")
    assert submit().state == "queued"

"""gpu_hours_month: the month's metered GPU-hours plus what metering does not hold yet:
the reservations of queued and running jobs (GPUs x max runtime) and the actual
GPU-seconds of finished jobs until a metering run has covered the hour they ended in."""

import datetime as dt
from decimal import Decimal

import pytest

from jobs import selectors
from jobs.models import GenerationJob
from metering.models import MetricSource
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
        department=world.marketing, gpu_class=world.t4, hour_start=at, gpu_hours=Decimal(hours)
    )


def test_reservations_of_admitted_jobs_count_until_metered(world, submit, hour_long_kind):
    budget = quota(world, "gpu_hours_month", Decimal("12"))
    metered(world, "10", NOON - 5 * HOUR)
    first, second, third = submit(), submit(), submit()
    assert (first.state, second.state, third.state) == ("queued", "queued", "waiting")
    assert first.gpu_hours_reserved == Decimal("1")
    assert selectors.quota_use(budget, at=NOON) == Decimal("12")
    assert "limit 12 GPU-hours, 12 in use, this job needs 1" in third.reason


def test_last_month_usage_does_not_count(world, submit, hour_long_kind):
    quota(world, "gpu_hours_month", Decimal("1"))
    metered(world, "500", dt.datetime(2026, 10, 31, 23, tzinfo=dt.UTC))
    assert submit().state == "queued"


def _finished_member_job(world, *, at, gpu_seconds="1800"):
    GenerationJob.objects.filter(pk=world.member_job.pk).update(
        state="succeeded",
        finished_at=at,
        gpu_seconds=Decimal(gpu_seconds),
        gpu_hours_reserved=Decimal("1"),
    )


def _covered_run(source, start, end):
    return factories.MeteringRunFactory(
        source=source, window_start=start, window_end=end, started_at=end + HOUR / 12
    )


MONTH_START = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)


def test_with_allocation_billing_a_finished_job_counts_all_month(world, hour_long_kind):
    """The shared GPU workers' pods count under the workers' namespace in kube-state-metrics,
    so the department's metered figure never holds its portal jobs."""
    budget = quota(world, "gpu_hours_month", Decimal("100"))
    _finished_member_job(world, at=NOON - 2 * HOUR)
    assert selectors.quota_use(budget, at=NOON) == Decimal("0.5")
    run = _covered_run(factories.MetricSourceFactory(name="allocation"), MONTH_START, NOON)
    # The department's own pods, metered; the job still counts on top.
    factories.UsageRecordFactory(
        department=world.marketing,
        gpu_class=world.t4,
        hour_start=NOON - 3 * HOUR,
        gpu_hours=Decimal("2"),
        run=run,
        source=run.source,
    )
    assert selectors.quota_use(budget, at=NOON + HOUR / 6) == Decimal("2.5")


@pytest.fixture
def jobs_counter_bills(db):
    """The billing source is the workers' own counter (the built-in ``jobs`` source)."""
    MetricSource.objects.update(is_billing=False)
    source = MetricSource.objects.get(name="jobs")
    source.is_billing = True
    source.save()
    return source


def test_with_the_job_counter_billing_a_metered_job_is_not_counted_twice(
    world, hour_long_kind, jobs_counter_bills
):
    budget = quota(world, "gpu_hours_month", Decimal("100"))
    _finished_member_job(world, at=NOON - 2 * HOUR)
    assert selectors.quota_use(budget, at=NOON) == Decimal("0.5")
    run = _covered_run(jobs_counter_bills, MONTH_START, NOON)
    factories.UsageRecordFactory(
        department=world.marketing,
        gpu_class=world.t4,
        hour_start=NOON - 2 * HOUR,
        gpu_hours=Decimal("0.5"),
        run=run,
        source=jobs_counter_bills,
    )
    # Covered to noon, less an hour for the counter's scrape: the job ended before 11:00.
    assert selectors.quota_use(budget, at=NOON + HOUR / 6) == Decimal("0.5")


def test_a_job_that_ended_in_the_last_covered_hour_still_counts_itself(
    world, hour_long_kind, jobs_counter_bills
):
    budget = quota(world, "gpu_hours_month", Decimal("100"))
    _finished_member_job(world, at=NOON - HOUR / 6)  # 11:50, scraped maybe after noon
    _covered_run(jobs_counter_bills, MONTH_START, NOON)
    assert selectors.quota_use(budget, at=NOON + HOUR / 6) == Decimal("0.5")


def test_a_metering_gap_does_not_hide_the_jobs_that_ended_in_it(
    world, hour_long_kind, jobs_counter_bills
):
    budget = quota(world, "gpu_hours_month", Decimal("100"))
    _finished_member_job(world, at=MONTH_START + 3.5 * HOUR, gpu_seconds="10800")
    _covered_run(jobs_counter_bills, MONTH_START, MONTH_START + 3 * HOUR)
    _covered_run(jobs_counter_bills, MONTH_START + 5 * HOUR, NOON)
    assert selectors.quota_use(budget, at=NOON) == Decimal("3")


def test_quota_narrowed_to_a_job_kind_counts_only_that_kinds_jobs(world, submit, hour_long_kind):
    budget = quota(world, "gpu_hours_month", Decimal("2"), job_kind="lipsync-render")
    metered(world, "50", NOON - HOUR)  # metering cannot tell job kinds apart: not counted
    GenerationJob.objects.filter(pk=world.member_job.pk).update(
        state="failed", finished_at=NOON - HOUR, gpu_seconds=Decimal("3600")
    )
    assert selectors.quota_use(budget, at=NOON) == Decimal("1")
    assert submit().state == "queued"
    assert submit().state == "waiting"


def test_soft_budget_admits_over_the_limit(world, submit, hour_long_kind):
    quota(world, "gpu_hours_month", Decimal("0.5"), "soft")
    assert submit().state == "queued"

"""A job's GPU time lands in the hours its GPUs were used: the worker records it at every
heartbeat and when the attempt ends, cut at each UTC hour, exactly (set from the clock, so
many heartbeats never drift); an attempt cut short by its worker's death keeps the time up
to its last heartbeat, once, and its retry is another attempt with rows of its own."""

import datetime as dt
from decimal import Decimal

import pytest

from core import calendar
from jobs import gpu_time, services
from jobs.models import GenerationJob, JobGpuTime
from tests import factories

UTC = dt.UTC


def t(hour: int, minute: int = 0, second: float = 0) -> dt.datetime:
    return dt.datetime(2026, 3, 2, hour, minute, tzinfo=UTC) + dt.timedelta(seconds=second)


@pytest.fixture
def queued(world, settings):
    settings.JOBS_WORKER_NAMESPACE = "gpu-workers"
    settings.JOBS_WORKER_CLUSTER = ""
    return factories.GenerationJobFactory(
        department=world.marketing,
        submitter=world.user("manager"),
        kind=world.lipsync,
        gpu_class=world.t4,
        tier="batch",
        gpus=2,
        state="queued",
    )


def rows(job) -> list[tuple]:
    return list(
        JobGpuTime.objects.filter(job=job)
        .order_by("attempt", "hour_start")
        .values_list("attempt", "hour_start", "gpu_seconds")
    )


def test_a_render_from_21_30_to_23_30_counts_in_three_hours(queued):
    job = services.job_start(job_id=queued.pk, worker="w1", now=t(21, 30))
    for minute in range(0, 120, 7):  # heartbeats every 7 minutes, not on the hour
        services.job_heartbeat(
            job_id=job.pk, worker="w1", attempt=1, now=t(21, 30) + dt.timedelta(minutes=minute)
        )
    finished = services.job_finish(
        job_id=job.pk, worker="w1", attempt=1, state="succeeded", now=t(23, 30)
    )
    # 2 GPUs: 30, 60 and 30 minutes.
    assert rows(job) == [
        (1, t(21), Decimal("3600")),
        (1, t(22), Decimal("7200")),
        (1, t(23), Decimal("3600")),
    ]
    job.refresh_from_db()
    assert job.gpu_seconds == Decimal("14400")
    assert finished.recorded
    assert (job.pool_namespace, job.cluster_id) == ("gpu-workers", None)
    row = JobGpuTime.objects.filter(job=job).first()
    assert (row.department, row.gpu_class, row.tier, row.kind, row.gpus) == (
        job.department,
        job.gpu_class,
        "batch",
        job.kind,
        2,
    )


def test_heartbeats_add_exactly_what_the_clock_says_however_many(queued):
    job = services.job_start(job_id=queued.pk, worker="w1", now=t(10))
    added = Decimal(0)
    for step in range(1, 301):  # a heartbeat every 3.3333 s
        beat = services.job_heartbeat(
            job_id=job.pk, worker="w1", attempt=1, now=t(10) + dt.timedelta(seconds=step * 3.3333)
        )
        added += beat.gpu_seconds_added
    # 999.99 s on 2 GPUs, to the millisecond, and every beat's increment adds up to it.
    assert rows(job) == [(1, t(10), Decimal("1999.980"))]
    assert added == Decimal("1999.980")


def test_an_attempt_cut_short_keeps_its_time_to_its_last_heartbeat_and_the_retry_its_own(
    queued, settings
):
    settings.JOBS_HEARTBEAT_STALE_S = 60
    job = services.job_start(job_id=queued.pk, worker="w1", now=t(9, 50))
    services.job_heartbeat(job_id=job.pk, worker="w1", attempt=1, now=t(10, 5))
    # w1 dies; the sweep, two minutes after the last beat, queues the job again.
    GenerationJob.objects.filter(pk=job.pk).update(heartbeat_at=t(10, 5))
    counts = services.jobs_sweep(now=t(10, 7))
    assert counts["requeued"] == 1
    retry = services.job_start(job_id=job.pk, worker="w2", now=t(10, 10))
    services.job_finish(job_id=retry.pk, worker="w2", attempt=2, state="succeeded", now=t(10, 40))
    # w1, should it wake, records nothing more.
    assert not services.job_heartbeat(job_id=job.pk, worker="w1", attempt=1, now=t(10, 50)).ours
    assert rows(job) == [
        (1, t(9), Decimal("1200")),  # 9:50 to 10:00 on 2 GPUs
        (1, t(10), Decimal("600")),  # 10:00 to 10:05, the last heartbeat
        (2, t(10), Decimal("3600")),  # the retry, 10:10 to 10:40
    ]
    job.refresh_from_db()
    assert job.gpu_seconds == Decimal("5400")


def test_a_finish_recorded_twice_counts_once(queued):
    job = services.job_start(job_id=queued.pk, worker="w1", now=t(8))
    finish = dict(job_id=job.pk, worker="w1", attempt=1, state="failed")
    assert services.job_finish(**finish, now=t(8, 1)).gpu_seconds_added == Decimal(120)
    assert not services.job_finish(**finish, now=t(8, 59))
    assert rows(job) == [(1, t(8), Decimal("120"))]


def test_the_workers_cluster_is_recorded_with_the_job(queued, settings):
    cluster = factories.ClusterFactory(slug="prod-eu")
    settings.JOBS_WORKER_CLUSTER = "prod-eu"
    job = services.job_start(job_id=queued.pk, worker="w1", now=t(8))
    services.job_finish(job_id=job.pk, worker="w1", attempt=1, state="succeeded", now=t(8, 0, 30))
    assert JobGpuTime.objects.get(job=job).cluster == cluster


def test_an_unknown_cluster_slug_is_no_cluster(queued, settings):
    settings.JOBS_WORKER_CLUSTER = "nowhere"
    assert gpu_time.worker_pool() == ("gpu-workers", None)


def test_hours_between_cuts_at_each_utc_hour():
    assert calendar.hours_between(t(9, 59, 30), t(11, 0, 15)) == [
        (t(9), dt.timedelta(seconds=30)),
        (t(10), dt.timedelta(hours=1)),
        (t(11), dt.timedelta(seconds=15)),
    ]
    assert calendar.hours_between(t(10), t(10)) == []

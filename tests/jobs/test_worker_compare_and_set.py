"""The worker's steps are compare-and-sets on the job's state: a job runs on one worker at
a time, a redelivery is harmless, GPU-seconds are recorded once, and a job whose worker
died is taken over or queued again."""

import datetime as dt
from decimal import Decimal

from django.utils import timezone

from jobs import dispatch, services
from jobs.models import GenerationJob


def test_a_job_is_started_once_even_when_delivered_twice(world):
    first = services.job_start(job_id=world.member_job.pk, worker="w1")
    assert (first.state, first.worker, first.attempts) == ("running", "w1", 1)
    assert services.job_start(job_id=world.member_job.pk, worker="w2") is None


def test_a_job_whose_worker_stopped_beating_is_taken_over(world, settings):
    settings.JOBS_HEARTBEAT_STALE_S = 60
    t0 = timezone.now() - dt.timedelta(minutes=5)
    services.job_start(job_id=world.member_job.pk, worker="w1", now=t0)
    # w1 beat once, 20 s in, then went silent: its attempt holds 20 GPU-seconds.
    services.job_heartbeat(
        job_id=world.member_job.pk, worker="w1", attempt=1, now=t0 + dt.timedelta(seconds=20)
    )
    taken_over = t0 + dt.timedelta(seconds=120)
    second = services.job_start(job_id=world.member_job.pk, worker="w2", now=taken_over)
    assert (second.worker, second.attempts) == ("w2", 2)
    # The first worker, if it still lives, learns it lost the job and records nothing.
    assert services.job_heartbeat(job_id=second.pk, worker="w1", attempt=1).ours is False
    assert not services.job_finish(job_id=second.pk, worker="w1", attempt=1, state="succeeded")
    assert services.job_finish(
        job_id=second.pk,
        worker="w2",
        attempt=2,
        state="succeeded",
        now=taken_over + dt.timedelta(seconds=10),
    )
    second.refresh_from_db()
    # Both attempts held a GPU: 20 s up to w1's last heartbeat, and w2's own 10 s.
    assert (second.state, second.gpu_seconds) == ("succeeded", Decimal("30"))
    assert sorted(second.gpu_time.values_list("attempt", "gpu_seconds")) == [
        (1, Decimal("20")),
        (2, Decimal("10")),
    ]


def test_finish_is_recorded_once(world):
    t0 = timezone.now() - dt.timedelta(minutes=1)
    job = services.job_start(job_id=world.member_job.pk, worker="w1", now=t0)
    finish = dict(job_id=job.pk, worker="w1", attempt=1, state="succeeded")
    first = services.job_finish(**finish, now=t0 + dt.timedelta(seconds=5))
    assert (first.recorded, first.gpu_seconds_added) == (True, Decimal(5))
    assert not services.job_finish(**finish, now=t0 + dt.timedelta(seconds=7))
    job.refresh_from_db()
    assert job.gpu_seconds == Decimal(5)


def test_sweep_queues_again_a_job_whose_worker_died(world, monkeypatch):
    sent = []
    monkeypatch.setattr(dispatch, "job_dispatch", lambda *, job_id: sent.append(job_id) or True)
    services.job_start(job_id=world.member_job.pk, worker="w1")
    GenerationJob.objects.filter(pk=world.member_job.pk).update(
        heartbeat_at=timezone.now() - dt.timedelta(hours=1), dispatched_at=timezone.now()
    )
    assert services.jobs_sweep()["requeued"] == 1
    job = GenerationJob.objects.get(pk=world.member_job.pk)
    assert (job.state, job.worker) == ("queued", "")
    assert "w1 stopped answering" in job.reason


def test_sweep_sends_queued_jobs_no_broker_took(world, monkeypatch):
    sent = []
    monkeypatch.setattr(dispatch, "job_dispatch", lambda *, job_id: sent.append(job_id) or True)
    recent = GenerationJob.objects.filter(pk=world.member_job.pk)
    recent.update(dispatched_at=None)
    assert services.jobs_sweep()["dispatched"] == 1
    assert sent == [world.member_job.pk]
    sent.clear()
    recent.update(dispatched_at=timezone.now())
    assert services.jobs_sweep()["dispatched"] == 0


def test_sweep_ends_a_cancelled_job_whose_worker_died(world, monkeypatch):
    services.job_start(job_id=world.member_job.pk, worker="w1")
    services.job_cancel(job=world.member_job, user=world.user("member"))
    GenerationJob.objects.filter(pk=world.member_job.pk).update(
        heartbeat_at=timezone.now() - dt.timedelta(hours=1)
    )
    assert services.jobs_sweep()["cancelled"] == 1
    assert GenerationJob.objects.get(pk=world.member_job.pk).state == "cancelled"


def test_dispatch_failure_leaves_the_job_queued(world, settings):
    from portal.celery import app

    previous = app.conf.broker_url
    app.conf.broker_url = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    app._pool = app.amqp._producer_pool = None  # connections to the broker before
    try:
        assert dispatch.job_dispatch(job_id=world.member_job.pk) is False
    finally:
        app.conf.broker_url = previous
        app._pool = app.amqp._producer_pool = None
    job = GenerationJob.objects.get(pk=world.member_job.pk)
    assert (job.state, job.dispatched_at) == ("queued", None)

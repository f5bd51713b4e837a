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
    services.job_start(job_id=world.member_job.pk, worker="w1")
    GenerationJob.objects.filter(pk=world.member_job.pk).update(
        heartbeat_at=timezone.now() - dt.timedelta(seconds=61)
    )
    second = services.job_start(job_id=world.member_job.pk, worker="w2")
    assert (second.worker, second.attempts) == ("w2", 2)
    # The first worker, if it still lives, learns it lost the job and records nothing.
    assert services.job_heartbeat(job_id=second.pk, worker="w1", attempt=1).ours is False
    assert not services.job_finish(
        job_id=second.pk, worker="w1", attempt=1, state="succeeded", gpu_seconds=Decimal("99")
    )
    assert services.job_finish(
        job_id=second.pk, worker="w2", attempt=2, state="succeeded", gpu_seconds=Decimal("10")
    )
    second.refresh_from_db()
    assert (second.state, second.gpu_seconds) == ("succeeded", Decimal("10"))


def test_finish_is_recorded_once(world):
    job = services.job_start(job_id=world.member_job.pk, worker="w1")
    finish = dict(job_id=job.pk, worker="w1", attempt=1, state="succeeded", gpu_seconds=Decimal(5))
    assert services.job_finish(**finish) is True
    assert services.job_finish(**{**finish, "gpu_seconds": Decimal(7)}) is False
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
    try:
        assert dispatch.job_dispatch(job_id=world.member_job.pk) is False
    finally:
        app.conf.broker_url = previous
    job = GenerationJob.objects.get(pk=world.member_job.pk)
    assert (job.state, job.dispatched_at) == ("queued", None)

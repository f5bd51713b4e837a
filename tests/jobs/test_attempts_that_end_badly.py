"""Attempts that end badly still end recorded: a dead worker's job asked to stop is cancelled,
one that keeps killing its workers fails after the last attempt, a command that removes its
own folder or an unexpected error fails the attempt, and a requeued job adds its new
attempt's GPU-seconds."""

import datetime as dt
from decimal import Decimal

from django.utils import timezone

from jobs import runner, services
from jobs.models import GenerationJob
from tests import factories


def _stale(job):
    GenerationJob.objects.filter(pk=job.pk).update(
        heartbeat_at=timezone.now() - dt.timedelta(hours=1)
    )


def test_requeueing_a_dead_workers_job_that_was_asked_to_stop_cancels_it(world):
    services.job_start(job_id=world.member_job.pk, worker="w1")
    services.job_cancel(job=world.member_job, user=world.user("member"))
    _stale(world.member_job)
    job = services.job_requeue(job=world.member_job, user=world.user("it_admin"))
    assert job.state == "cancelled"


def test_a_job_whose_workers_keep_dying_fails_after_the_last_attempt(world, settings):
    settings.JOBS_MAX_ATTEMPTS = 2
    for worker in ("w1", "w2"):
        assert services.job_start(job_id=world.member_job.pk, worker=worker) is not None
        _stale(world.member_job)
    assert services.job_start(job_id=world.member_job.pk, worker="w3") is None
    assert services.jobs_sweep()["failed"] == 1
    job = GenerationJob.objects.get(pk=world.member_job.pk)
    assert job.state == "failed"
    assert "each of its 2 attempts" in job.reason


def test_a_command_that_removes_its_own_folder_still_ends_recorded(world):
    kind = factories.JobKindFactory(
        slug="self-destruct",
        argv_template=["{python}", "-c", "import os, shutil; shutil.rmtree(os.getcwd())"],
        params_schema={"type": "object", "properties": {}, "additionalProperties": False},
    )
    job = factories.GenerationJobFactory(
        department=world.marketing, submitter=world.user("manager"), kind=kind, gpu_class=world.t4
    )
    assert runner.job_run(job_id=job.pk, worker="w1") == runner.Outcome.DONE
    job.refresh_from_db()
    assert job.state == "succeeded"  # the command succeeded; it only removed its folder
    assert job.result_files == []


def test_an_unexpected_error_fails_the_attempt_instead_of_leaving_it_running(world, monkeypatch):
    def broken(job, *, worker):
        raise OSError("disk full")

    monkeypatch.setattr(runner, "_attempt", broken)
    assert runner.job_run(job_id=world.member_job.pk, worker="w1") == runner.Outcome.DONE
    job = GenerationJob.objects.get(pk=world.member_job.pk)
    assert (job.state, job.error) == ("failed", "OSError: disk full")
    assert job.reason == "The worker w1 failed while running it."


def test_a_requeued_job_adds_its_new_attempts_gpu_seconds(world):
    t0 = timezone.now() - dt.timedelta(minutes=10)
    job = services.job_start(job_id=world.member_job.pk, worker="w1", now=t0)
    services.job_finish(
        job_id=job.pk,
        worker="w1",
        attempt=1,
        state="failed",
        now=t0 + dt.timedelta(seconds=30),
    )
    services.job_requeue(job=job, user=world.user("it_admin"))
    t1 = t0 + dt.timedelta(minutes=5)
    job = services.job_start(job_id=job.pk, worker="w2", now=t1)
    services.job_finish(
        job_id=job.pk,
        worker="w2",
        attempt=2,
        state="succeeded",
        now=t1 + dt.timedelta(seconds=12),
    )
    job.refresh_from_db()
    assert job.gpu_seconds == Decimal(42)

"""Behaviour a review asked for: keys, dead workers, odd failures, priorities, renames."""

import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone

from jobs import dispatch, runner, services
from jobs.models import GenerationJob
from tests import factories
from tests.conftest import client_as


def test_an_idempotency_key_never_returns_someone_elses_job(world, api_client):
    body = {"department": "marketing", "kind": "lipsync-render", "tier": "batch", "params": {}}
    first = client_as(api_client, world, "member").post(
        "/api/v1/jobs/", {**body, "idempotency_key": "demo-1"}, format="json"
    )
    assert first.status_code == 201
    other = type(api_client)()
    answer = client_as(other, world, "manager").post(
        "/api/v1/jobs/", {**body, "idempotency_key": "demo-1"}, format="json"
    )
    assert answer.status_code == 400
    assert "already used for another person's job" in answer.json()["idempotency_key"][0]
    assert "params" not in answer.json()


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


@pytest.mark.parametrize(
    ("broker", "sla_priority", "message_priority"),
    [
        ("redis://127.0.0.1:6379/0", 9, 0),  # Redis serves 0 first
        ("redis://127.0.0.1:6379/0", 2, 7),
        ("amqp://guest:guest@127.0.0.1:5672//", 9, 9),  # RabbitMQ serves 9 first
    ],
)
def test_higher_sla_priority_is_served_first_on_every_broker(
    broker, sla_priority, message_priority
):
    from portal.celery import app

    previous = app.conf.broker_url
    app.conf.broker_url = broker
    try:
        assert dispatch.broker_priority(sla_priority) == message_priority
    finally:
        app.conf.broker_url = previous


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


def test_a_kinds_slug_cannot_change(world, api_client):
    client = client_as(api_client, world, "it_admin")
    response = client.patch("/api/v1/job-kinds/lipsync-render/", {"slug": "wav2lip"}, format="json")
    assert response.status_code == 400
    assert "cannot change" in response.json()["slug"][0]


def test_a_parameter_naming_an_earlier_job_must_name_a_visible_succeeded_one(world, submit):
    from django.core.exceptions import ValidationError

    reader = factories.JobKindFactory(
        slug="reads-a-job",
        argv_template=["cat", "{speech_job}"],
        params_schema={
            "type": "object",
            "properties": {"speech_job": {"type": "string", "x-portal-job": True}},
            "required": ["speech_job"],
            "additionalProperties": False,
        },
    )
    # The manager's own succeeded marketing job: fine.
    assert submit(kind=reader, params={"speech_job": str(world.manager_job.pk)}).state
    # Another department's, or one the submitter cannot see, or not a job at all: refused.
    other = factories.GenerationJobFactory(
        department=world.training, kind=world.lipsync, state="succeeded"
    )
    for value in (str(other.pk), "not-a-uuid"):
        with pytest.raises(ValidationError) as refused:
            submit(kind=reader, params={"speech_job": value})
        assert "no succeeded job" in str(refused.value)
    with pytest.raises(ValidationError):
        submit(
            kind=reader,
            params={"speech_job": str(world.manager_job.pk)},
            user=world.user("member"),  # a member sees only their own jobs
        )

"""Cancelling ends a waiting or queued job at once and asks a running one's worker to
stop; an ended job cannot be cancelled; requeueing runs a failed job through admission."""

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from jobs import services
from jobs.models import GenerationJob
from tests.conftest import client_as
from tests.jobs.conftest import quota


def test_queued_job_is_cancelled_at_once(world):
    job = services.job_cancel(job=world.member_job, user=world.user("member"))
    assert job.state == "cancelled"
    assert job.cancelled_by == world.user("member")
    assert job.finished_at is not None
    assert job.gpu_seconds == 0


def test_running_job_is_marked_and_left_to_its_worker(world):
    started = services.job_start(job_id=world.member_job.pk, worker="w1")
    job = services.job_cancel(job=started, user=world.user("manager"))
    assert job.state == "running"
    assert job.cancel_requested_at is not None
    beat = services.job_heartbeat(job_id=job.pk, worker="w1", attempt=started.attempts)
    assert (beat.ours, beat.cancel_requested) == (True, True)


def test_ended_job_cannot_be_cancelled_and_the_api_says_409(world, api_client):
    with pytest.raises(ValidationError):
        services.job_cancel(job=world.manager_job, user=world.user("manager"))
    client = client_as(api_client, world, "manager")
    response = client.post(f"/api/v1/jobs/{world.manager_job.pk}/cancel/")
    assert response.status_code == 409
    assert "already ended (succeeded)" in response.json()["non_field_errors"][0]


def test_only_submitter_managers_and_it_cancel(world):
    with pytest.raises(PermissionDenied):
        services.job_cancel(job=world.member_job, user=world.user("finance"))
    assert services.job_cancel(job=world.member_job, user=world.user("it_admin")).state == (
        "cancelled"
    )


def test_cancelled_waiting_job_never_runs(world, submit):
    quota(world, "concurrent_jobs", 1)
    waiting = submit()
    services.job_cancel(job=waiting, user=world.user("manager"))
    GenerationJob.objects.filter(pk=world.member_job.pk).update(state="succeeded")
    assert services.jobs_release(department_id=world.marketing.pk) == []
    waiting.refresh_from_db()
    assert waiting.state == "cancelled"
    assert services.job_start(job_id=waiting.pk, worker="w1") is None


def test_failed_job_is_requeued_through_admission(world, submit):
    job = submit()
    GenerationJob.objects.filter(pk=job.pk).update(state="failed", error="boom")
    quota(world, "concurrent_jobs", 1)  # the member's queued job fills it
    job = services.job_requeue(job=job, user=world.user("it_admin"))
    assert job.state == "waiting"
    assert job.error == ""


def test_running_job_with_a_live_worker_cannot_be_requeued(world):
    services.job_start(job_id=world.member_job.pk, worker="w1")
    with pytest.raises(ValidationError):
        services.job_requeue(job=world.member_job, user=world.user("it_admin"))

"""concurrent_jobs and gpus count what is queued or running; room appears when a job ends
or is cancelled, and the waiting job is released then."""

from jobs import services
from jobs.models import GenerationJob
from tests.jobs.conftest import NOON, quota


def test_concurrent_jobs_count_queued_and_running_jobs(world, submit):
    # The world already holds one queued marketing job (the member's).
    quota(world, "concurrent_jobs", 2)
    assert submit().state == "queued"
    assert submit().state == "waiting"


def test_waiting_job_is_released_when_a_running_job_ends(
    world, submit, django_capture_on_commit_callbacks
):
    quota(world, "concurrent_jobs", 2)
    running = submit()
    waiting = submit()
    assert waiting.state == "waiting"
    started = services.job_start(job_id=running.pk, worker="w1")
    with django_capture_on_commit_callbacks(execute=True):
        assert services.job_finish(
            job_id=running.pk,
            worker="w1",
            attempt=started.attempts,
            state="succeeded",
        )
    waiting.refresh_from_db()
    assert waiting.state == "queued"


def test_cancelling_a_queued_job_releases_the_next_one(
    world, submit, django_capture_on_commit_callbacks
):
    quota(world, "concurrent_jobs", 1)
    waiting = submit()
    assert waiting.state == "waiting"
    with django_capture_on_commit_callbacks(execute=True):
        services.job_cancel(job=world.member_job, user=world.user("manager"))
    waiting.refresh_from_db()
    assert waiting.state == "queued"


def test_gpus_quota_counts_the_gpus_of_queued_and_running_jobs(world, submit):
    world.lipsync.default_gpus = 2
    world.lipsync.save()
    quota(world, "gpus", 5)  # the member's queued job holds 1 GPU
    assert submit().gpus == 2
    assert submit().state == "queued"  # 1 + 2 + 2 = 5
    job = submit()
    assert job.state == "waiting"
    assert "GPUs in use at once: limit 5 GPUs, 5 in use, this job needs 2" in job.reason


def test_job_needing_more_gpus_than_the_whole_quota_is_refused_not_left_waiting(world, submit):
    world.lipsync.default_gpus = 4
    world.lipsync.save()
    quota(world, "gpus", 3)
    job = submit()
    assert job.state == "rejected"
    assert "would wait forever" in job.reason


def test_finished_and_cancelled_jobs_hold_no_gpus(world, submit):
    quota(world, "gpus", 1)
    GenerationJob.objects.filter(pk=world.member_job.pk).update(state="cancelled")
    assert submit().state == "queued"


def test_rejected_job_is_kept_with_its_reason_and_counts_nowhere(world, submit):
    quota(world, "concurrent_jobs", 1, "hard_reject")
    refused = submit(now=NOON)
    assert refused.state == "rejected"
    GenerationJob.objects.filter(pk=world.member_job.pk).update(state="succeeded")
    assert submit().state == "queued"

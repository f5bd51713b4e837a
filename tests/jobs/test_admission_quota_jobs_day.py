"""jobs_day: jobs admitted per portal day; a full day makes the next job wait (hard_queue)
or refuses it (hard_reject), and a waiting job is released the next day."""

import datetime as dt

from jobs import services
from jobs.models import GenerationJob
from tests.jobs.conftest import NOON, quota


def test_jobs_up_to_the_daily_limit_are_queued(world, submit):
    quota(world, "jobs_day", 2)
    states = [submit().state for _ in range(2)]
    assert states == ["queued", "queued"]


def test_second_job_waits_when_daily_quota_is_full(world, submit):
    held_by = quota(world, "jobs_day", 1)
    submit()
    job = submit()
    assert job.state == "waiting"
    assert job.blocking_quota == held_by
    assert job.blocking_use == 1
    assert "Jobs admitted per day" in job.reason and "limit 1 job, 1 in use" in job.reason
    assert job.admitted_at is None


def test_job_over_a_hard_reject_daily_quota_is_refused_with_the_quota(world, submit):
    refusing = quota(world, "jobs_day", 1, "hard_reject")
    submit()
    job = submit()
    assert job.state == "rejected"
    assert job.blocking_quota == refusing
    assert job.reason.startswith("Refused by the quota Jobs admitted per day")
    assert job.finished_at == NOON


def test_waiting_job_is_released_the_next_portal_day(world, submit, settings):
    settings.TIME_ZONE = "Europe/Berlin"
    quota(world, "jobs_day", 1)
    submit()
    job = submit()
    # 23:30 UTC is still the 25th in UTC but already the 26th in Berlin.
    late_evening = dt.datetime(2026, 11, 25, 23, 30, tzinfo=dt.UTC)
    assert [j.pk for j in services.jobs_release(department_id=world.marketing.pk, now=NOON)] == []
    released = services.jobs_release(department_id=world.marketing.pk, now=late_evening)
    assert [j.pk for j in released] == [job.pk]
    job.refresh_from_db()
    assert (job.state, job.admitted_at) == ("queued", late_evening)


def test_daily_quota_narrowed_to_another_kind_does_not_count_this_one(world, submit):
    quota(world, "jobs_day", 1, job_kind="speech-synthesis")
    assert [submit().state for _ in range(3)] == ["queued"] * 3


def test_daily_quota_narrowed_to_a_gpu_class_counts_only_that_class(world, submit):
    world.marketing_sla.gpu_classes.add(world.a100)
    quota(world, "jobs_day", 1, gpu_class=world.a100)
    assert submit(gpu_class=world.a100).state == "queued"
    assert submit(gpu_class=world.a100).state == "waiting"
    assert submit(gpu_class=world.t4).state == "queued"
    assert GenerationJob.objects.filter(state="waiting", gpu_class=world.a100).count() == 1

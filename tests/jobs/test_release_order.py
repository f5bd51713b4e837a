"""Waiting jobs are released by priority, then age; a new job never overtakes jobs that
wait for a quota it needs too; the job page's position follows the same order."""

import datetime as dt

from jobs import selectors, services
from jobs.models import GenerationJob
from tests import factories
from tests.jobs.conftest import NOON, quota


def _fill(world):
    # concurrent_jobs of 1, taken by the member's queued job.
    return quota(world, "concurrent_jobs", 1)


def test_waiting_jobs_are_released_by_priority_then_age(world, submit):
    _fill(world)
    factories.ServiceLevelFactory(
        department=world.marketing, tier="interactive", priority=7, gpu_classes=[world.t4]
    )
    old_batch = submit(now=NOON)
    urgent = submit(tier="interactive", now=NOON + dt.timedelta(minutes=1))
    assert (old_batch.state, urgent.state) == ("waiting", "waiting")
    assert selectors.waiting_position(urgent) == 1
    assert selectors.waiting_position(old_batch) == 2

    GenerationJob.objects.filter(pk=world.member_job.pk).update(state="succeeded")
    released = services.jobs_release(department_id=world.marketing.pk, now=NOON)
    assert [j.pk for j in released] == [urgent.pk]
    old_batch.refresh_from_db()
    assert old_batch.state == "waiting"
    assert selectors.waiting_position(old_batch) == 1


def test_equal_priority_is_released_oldest_first(world, submit):
    _fill(world)
    first = submit(now=NOON)
    second = submit(now=NOON)
    GenerationJob.objects.filter(pk=world.member_job.pk).update(state="succeeded")
    released = services.jobs_release(department_id=world.marketing.pk, now=NOON)
    assert [j.pk for j in released] == [first.pk]
    second.refresh_from_db()
    assert second.state == "waiting"


def test_a_new_job_waits_behind_earlier_jobs_held_by_the_same_quota(world, submit):
    _fill(world)
    earlier = submit()
    # Room appears, but the release task has not run yet.
    GenerationJob.objects.filter(pk=world.member_job.pk).update(state="succeeded")
    newcomer = submit()
    assert newcomer.state == "waiting"
    assert newcomer.reason.startswith("Waiting behind 1 earlier job")
    released = services.jobs_release(department_id=world.marketing.pk, now=NOON)
    assert [j.pk for j in released] == [earlier.pk]


def test_a_later_job_held_by_the_same_quota_is_not_released_past_an_earlier_one(world, submit):
    world.lipsync.default_gpus = 3
    world.lipsync.save()
    small_kind = factories.JobKindFactory(slug="small", default_gpus=1)
    quota(world, "gpus", 4)  # the member's job holds 1
    big = submit()  # 1 + 3 = 4: queued
    big_waiting = submit()  # needs 3 more: waits
    small = submit(kind=small_kind)  # would fit (1 free? no: 4 used) and must not overtake
    assert (big.state, big_waiting.state, small.state) == ("queued", "waiting", "waiting")
    # One GPU frees up: the small job would fit, the big one would not. Order holds.
    GenerationJob.objects.filter(pk=world.member_job.pk).update(state="succeeded")
    assert services.jobs_release(department_id=world.marketing.pk, now=NOON) == []


def test_other_departments_are_not_held_by_this_ones_queue(world, submit):
    _fill(world)
    submit()
    training_job = services.job_submit(
        department=world.training,
        kind=world.lipsync,
        params={},
        tier="interactive",
        user=world.user("other_manager"),
        now=NOON,
    ).job
    assert training_job.state == "queued"


def test_release_all_visits_every_department_with_waiting_jobs(world, submit):
    _fill(world)
    submit()
    GenerationJob.objects.filter(pk=world.member_job.pk).update(state="succeeded")
    assert services.jobs_release_all(now=NOON) == 1


def test_release_writes_nothing_for_jobs_that_still_wait(world, submit):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    _fill(world)
    submit()
    submit()
    with CaptureQueriesContext(connection) as queries:
        assert services.jobs_release(department_id=world.marketing.pk, now=NOON) == []
    assert not [q for q in queries.captured_queries if q["sql"].startswith("UPDATE")]

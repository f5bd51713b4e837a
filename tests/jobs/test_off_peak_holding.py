"""Batch work flagged off-peak waits until an off-peak window opens; other tiers never do."""

import datetime as dt

import pytest
from django.core.exceptions import ValidationError

from jobs import services
from tests import factories
from tests.jobs.conftest import NOON

# The world's "Nightly" window: 23:00 to 07:00 Europe/Berlin, every day.
NIGHT = dt.datetime(2026, 11, 25, 23, 30, tzinfo=dt.UTC)  # 00:30 in Berlin


def test_batch_job_of_an_sla_held_for_off_peak_waits_by_day(world, submit):
    world.marketing_sla.hold_for_off_peak = True
    world.marketing_sla.save()
    job = submit(now=NOON)
    assert job.state == "waiting"
    assert job.off_peak is True
    assert job.blocking_quota is None
    assert "off-peak" in job.reason


def test_submitter_cannot_run_now_what_the_sla_holds_for_off_peak(world, submit):
    world.marketing_sla.hold_for_off_peak = True
    world.marketing_sla.save()
    with pytest.raises(ValidationError) as refused:
        submit(off_peak=False)
    assert "holds batch work for the off-peak hours" in str(refused.value)


def test_held_job_is_released_when_the_window_opens(world, submit):
    job = submit(off_peak=True, now=NOON)
    assert job.state == "waiting"
    assert services.jobs_release(department_id=world.marketing.pk, now=NOON) == []
    released = services.jobs_release(department_id=world.marketing.pk, now=NIGHT)
    assert [j.pk for j in released] == [job.pk]


def test_batch_job_submitted_at_night_runs_at_once(world, submit):
    assert submit(off_peak=True, now=NIGHT).state == "queued"


def test_submitter_may_run_batch_work_now_when_the_sla_does_not_hold_it(world, submit):
    assert submit(now=NOON).state == "queued"


def test_only_batch_work_can_be_held_for_off_peak(world, submit):
    factories.ServiceLevelFactory(
        department=world.marketing, tier="realtime", priority=9, gpu_classes=[world.t4]
    )
    with pytest.raises(ValidationError) as refused:
        submit(tier="realtime", off_peak=True)
    assert "Only batch work" in str(refused.value)
    assert submit(tier="realtime").state == "queued"


def test_work_held_for_off_peak_is_refused_when_no_window_exists(world, submit):
    world.off_peak.active = False
    world.off_peak.save()
    with pytest.raises(ValidationError) as refused:
        submit(off_peak=True, now=NIGHT)
    assert "would never run" in str(refused.value)

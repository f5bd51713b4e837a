"""The submit form starts on the tier the department's service levels favour (never batch
work held until the night when another tier is there), says before submitting when a job
would wait for the off-peak window and when it would start, and a held job's page says
when it starts."""

import datetime as dt
import re

import pytest

from departments.models import Tier
from jobs import services
from tests import factories
from tests.conftest import client_as
from tests.jobs.conftest import NOON

NIGHT = dt.datetime(2026, 11, 25, 23, 30, tzinfo=dt.UTC)  # 00:30 in Berlin: window open


@pytest.fixture
def at_noon(monkeypatch, settings):
    """The portal's clock stands at NOON (13:00 in Berlin), the portal shows Berlin time."""
    settings.TIME_ZONE = "Europe/Berlin"
    monkeypatch.setattr("django.utils.timezone.now", lambda: NOON)


def _selected_tier(page: str) -> str:
    select = re.search(r'<select name="tier".*?</select>', page, re.S)
    assert select, "no tier choice on the page"
    chosen = re.findall(r'<option value="(\w+)" selected>', select.group(0))
    assert len(chosen) == 1, chosen
    return chosen[0]


def _form(client, world, role="manager", query="") -> str:
    response = client_as(client, world, role).get(f"/jobs/submit/{query}")
    assert response.status_code == 200
    return response.content.decode()


def test_the_form_starts_on_the_tier_of_the_departments_first_service_level(world, client):
    factories.ServiceLevelFactory(
        department=world.marketing, tier=Tier.INTERACTIVE, priority=5, gpu_classes=[world.t4]
    )
    assert _selected_tier(_form(client, world)) == "interactive"


def test_batch_held_for_the_night_is_not_the_default_when_another_tier_is_there(world, client):
    world.marketing_sla.priority = 9
    world.marketing_sla.hold_for_off_peak = True
    world.marketing_sla.save()
    factories.ServiceLevelFactory(
        department=world.marketing, tier=Tier.REALTIME, priority=3, gpu_classes=[world.t4]
    )
    assert _selected_tier(_form(client, world)) == "realtime"


def test_a_department_with_batch_only_starts_on_batch(world, client):
    assert _selected_tier(_form(client, world)) == "batch"


def test_the_form_says_before_submitting_that_batch_work_waits_for_the_night(
    world, client, at_noon
):
    world.marketing_sla.hold_for_off_peak = True
    world.marketing_sla.save()
    page = _form(client, world)
    assert (
        "Batch jobs of Marketing wait for the off-peak window (Nightly, 23:00\u201307:00 "
        "Europe/Berlin); submitted now, a job would start at 23:00 today." in page
    )


def test_the_notice_is_on_the_parameters_step_too(world, client, at_noon):
    world.marketing_sla.hold_for_off_peak = True
    world.marketing_sla.save()
    page = _form(client, world, query="?department=marketing&kind=lipsync-render&tier=batch")
    assert "2. Parameters" in page
    assert "submitted now, a job would start at 23:00 today." in page


def test_no_notice_where_nothing_is_held(world, client, at_noon):
    page = _form(client, world)
    assert "wait for the off-peak window" not in page


def test_inside_the_window_the_form_says_the_job_starts_at_once(
    world, client, monkeypatch, settings
):
    settings.TIME_ZONE = "Europe/Berlin"
    monkeypatch.setattr("django.utils.timezone.now", lambda: NIGHT)
    world.marketing_sla.hold_for_off_peak = True
    world.marketing_sla.save()
    page = _form(client, world)
    assert "the window is open now, so a job submitted now starts at once." in page


def test_a_held_jobs_page_says_when_it_starts(world, client, submit, at_noon):
    world.marketing_sla.hold_for_off_peak = True
    world.marketing_sla.save()
    job = submit(now=NOON)
    assert job.state == "waiting"
    page = client_as(client, world, "manager").get(f"/jobs/{job.pk}/").content.decode()
    assert "Starts when the off-peak window Nightly opens: 25 Nov 2026 23:00." in page


def test_a_job_that_waits_for_a_quota_gives_no_off_peak_start(world, client, at_noon):
    page = client_as(client, world, "member").get(f"/jobs/{world.member_job.pk}/").content.decode()
    assert "off-peak window" not in page


@pytest.mark.parametrize(
    ("moment", "weekdays", "expected"),
    [
        # Wednesday 13:00 Berlin: tonight at 23:00.
        (NOON, [0, 1, 2, 3, 4, 5, 6], dt.datetime(2026, 11, 25, 22, 0, tzinfo=dt.UTC)),
        # Inside the window: now.
        (NIGHT, [0, 1, 2, 3, 4, 5, 6], NIGHT),
        # Saturday noon, a window that opens on weekdays only: Monday 23:00 Berlin.
        (
            dt.datetime(2026, 11, 28, 12, 0, tzinfo=dt.UTC),
            [0, 1, 2, 3, 4],
            dt.datetime(2026, 11, 30, 22, 0, tzinfo=dt.UTC),
        ),
        # Friday night's window runs into Saturday morning: still open at 06:00 Saturday.
        (
            dt.datetime(2026, 11, 28, 5, 0, tzinfo=dt.UTC),
            [0, 1, 2, 3, 4],
            dt.datetime(2026, 11, 28, 5, 0, tzinfo=dt.UTC),
        ),
    ],
)
def test_held_work_starts_when_the_next_window_opens(world, moment, weekdays, expected):
    world.off_peak.weekdays = weekdays
    world.off_peak.save()
    start = services.off_peak_start(moment)
    assert start is not None
    assert start.at == expected
    assert start.window == world.off_peak
    assert start.open_now == (expected == moment)


def test_no_window_no_start(world):
    world.off_peak.active = False
    world.off_peak.save()
    assert services.off_peak_start(NOON) is None

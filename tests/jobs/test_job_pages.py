"""What a department manager does in the browser: list jobs, submit one through the form,
follow it on its page, cancel it; and the Jobs section of the department page."""

import datetime as dt
import re

import pytest
from django.utils import timezone

from departments.models import Tier
from jobs.models import GenerationJob, JobState
from tests.conftest import client_as
from tests.factories import (
    GenerationJobFactory,
    JobKindFactory,
    MembershipFactory,
    QuotaFactory,
)

STEP_1 = "/jobs/submit/"
STEP_2 = "/jobs/submit/?department=marketing&kind=lipsync-render&tier=batch"


def _get(client, url) -> str:
    response = client.get(url)
    assert response.status_code == 200
    return response.content.decode()


def _job_ids(page: str) -> list[str]:
    """Short ids of the jobs in a job table, in page order."""
    return re.findall(r'<a href="/jobs/[0-9a-f-]{36}/"><code>([0-9a-f]{8})</code></a>', page)


def _messages(page: str) -> list[str]:
    listed = re.search(r'<ul class="messages">(.*?)</ul>', page)
    return re.findall(r'<li class="[^"]*">([^<]*)</li>', listed.group(1)) if listed else []


def _training_job(world, **fields):
    fields.setdefault("submitter", world.user("other_manager"))
    return GenerationJobFactory(
        department=world.training,
        kind=JobKindFactory(slug="speech", name="Speech"),
        gpu_class=world.a100,
        tier=Tier.INTERACTIVE,
        **fields,
    )


def _submit(client, **params):
    """Go through both steps as a person would and send the form; returns the response to
    the POST (not followed)."""
    page = _get(client, STEP_2)
    key = re.search(r'name="idempotency_key" value="([0-9a-f]{32})"', page).group(1)
    body = {
        "department": "marketing",
        "kind": "lipsync-render",
        "tier": "batch",
        "idempotency_key": key,
    }
    body.update({f"params-{name}": value for name, value in params.items()})
    return client.post("/jobs/submit/", body)


# --- The list --------------------------------------------------------------------------


def test_the_list_shows_a_manager_the_department_jobs_newest_first(world, client):
    GenerationJob.objects.filter(pk=world.manager_job.pk).update(
        submitted_at=timezone.now() - dt.timedelta(hours=1)
    )
    other = _training_job(world)
    page = _get(client_as(client, world, "manager"), "/jobs/")
    assert _job_ids(page) == [world.member_job.short_id, world.manager_job.short_id]
    assert other.short_id not in page


def test_a_member_lists_only_the_jobs_they_submitted(world, client):
    page = _get(client_as(client, world, "member"), "/jobs/")
    assert _job_ids(page) == [world.member_job.short_id]


def test_the_list_shows_kind_department_tier_class_state_reason_and_gpu_seconds(world, client):
    GenerationJob.objects.filter(pk=world.manager_job.pk).update(
        gpu_seconds="12.500", reason="Finished in 12.5 s."
    )
    page = _get(client_as(client, world, "manager"), "/jobs/?state=succeeded")
    row = re.search(r"<tr>\s*<td><a href=\"/jobs/.*?</tr>", page, re.S).group(0)
    for text in ("Lip-sync render", "Marketing", "Batch", "T4", "Succeeded", "Finished in 12.5 s."):
        assert text in row
    assert '<td class="num gpu-seconds">12.5</td>' in row


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("state=succeeded", ["manager_job"]),
        ("state=queued", ["member_job", "training_job"]),
        ("department=training", ["training_job"]),
        ("kind=lipsync-render", ["member_job", "manager_job"]),
        ("tier=interactive", ["training_job"]),
        ("department=marketing&state=queued", ["member_job"]),
    ],
)
def test_the_list_filters_by_state_department_kind_and_tier(world, client, query, expected):
    jobs = {"manager_job": world.manager_job, "member_job": world.member_job}
    jobs["training_job"] = _training_job(world)
    page = _get(client_as(client, world, "finance"), f"/jobs/?{query}")
    assert sorted(_job_ids(page)) == sorted(jobs[name].short_id for name in expected)


def test_a_department_the_user_may_not_see_filters_to_an_error_and_no_jobs(world, client):
    _training_job(world)
    page = _get(client_as(client, world, "manager"), "/jobs/?department=training")
    assert (
        '<p class="error">Department: No department “training” among the departments you '
        "can see.</p>" in page
    )
    assert _job_ids(page) == []
    assert "No job matches." in page


def test_the_list_is_paginated_and_keeps_its_filters_across_pages(world, client):
    GenerationJobFactory.create_batch(
        30, department=world.marketing, kind=world.lipsync, gpu_class=world.t4
    )
    client = client_as(client, world, "finance")
    first = _get(client, "/jobs/?department=marketing")
    assert len(_job_ids(first)) == 25
    assert "Page 1 of 2 (32 jobs)" in first
    assert 'href="?department=marketing&amp;page=2"' in first
    second = _get(client, "/jobs/?department=marketing&page=2")
    assert len(_job_ids(second)) == 7
    assert not set(_job_ids(first)) & set(_job_ids(second))


@pytest.mark.parametrize(
    ("role", "offered"),
    [("member", True), ("manager", True), ("finance", False), ("it_admin", False)],
)
def test_the_submit_button_is_offered_to_department_members_only(world, client, role, offered):
    page = _get(client_as(client, world, role), "/jobs/")
    assert ('href="/jobs/submit/">Submit job</a>' in page) is offered


# --- Submitting ------------------------------------------------------------------------


def test_step_one_offers_the_users_departments_and_the_active_kinds(world, client):
    JobKindFactory(slug="retired", name="Retired kind", active=False)
    page = _get(client_as(client, world, "manager"), STEP_1)
    assert '<option value="marketing">Marketing</option>' in page
    assert 'value="training"' not in page
    assert 'value="lipsync-render"' in page and 'value="retired"' not in page
    assert 'name="params-seconds"' not in page


def test_someone_in_no_department_is_told_why_they_cannot_submit(world, client):
    page = _get(client_as(client, world, "finance"), STEP_1)
    assert "there is no department you can submit jobs for" in page
    assert 'name="department"' not in page


def test_a_manager_submits_through_the_form_and_then_cancels_the_job(world, client):
    client = client_as(client, world, "manager")
    response = _submit(client, seconds="2", text="hello")

    job = GenerationJob.objects.exclude(pk__in=[world.manager_job.pk, world.member_job.pk]).get()
    assert response.status_code == 302
    assert response["Location"] == f"/jobs/{job.pk}/"
    assert (job.department, job.submitter, job.kind) == (
        world.marketing,
        world.user("manager"),
        world.lipsync,
    )
    assert job.params == {"seconds": 2, "text": "hello"}
    assert (job.tier, job.gpu_class, job.state) == ("batch", world.t4, JobState.QUEUED)

    page = _get(client, response["Location"])
    assert _messages(page) == [
        f"Job {job.short_id} (Lip-sync render) was admitted and queued on T4."
    ]
    assert f'action="/jobs/{job.pk}/cancel/"' in page

    cancelled = client.post(f"/jobs/{job.pk}/cancel/")
    assert cancelled.status_code == 302 and cancelled["Location"] == f"/jobs/{job.pk}/"
    job.refresh_from_db()
    assert job.state == JobState.CANCELLED
    assert job.cancelled_by == world.user("manager")
    page = _get(client, f"/jobs/{job.pk}/")
    assert _messages(page) == [f"Job {job.short_id} is cancelled."]
    assert "/cancel/" not in page
    assert "Cancelled by mara before it started." in page


def test_sending_the_same_form_twice_submits_one_job(world, client):
    client = client_as(client, world, "manager")
    page = _get(client, STEP_2)
    key = re.search(r'name="idempotency_key" value="([0-9a-f]{32})"', page).group(1)
    body = {"department": "marketing", "kind": "lipsync-render", "tier": "batch"}
    body.update({"params-seconds": "1", "params-text": "x", "idempotency_key": key})

    first = client.post("/jobs/submit/", body)
    second = client.post("/jobs/submit/", body)

    assert first["Location"] == second["Location"]
    assert GenerationJob.objects.filter(idempotency_key=key).count() == 1
    page = _get(client, second["Location"])
    assert "This form was already sent" in _messages(page)[-1]


def test_a_job_held_by_a_quota_says_why_it_waits_and_where_it_stands(world, client):
    QuotaFactory(department=world.marketing, kind="concurrent_jobs", limit=1)  # member_job
    client = client_as(client, world, "manager")
    job_page = _get(client, _submit(client, seconds="1", text="x")["Location"])

    job = GenerationJob.objects.get(state=JobState.WAITING)
    assert _messages(job_page) == [f"Job {job.short_id} (Lip-sync render) is waiting: {job.reason}"]
    assert job.reason and job.reason in job_page.split("</ul>", 1)[1]
    assert "Position 1 among Marketing's waiting jobs." in job_page


def test_a_refused_job_says_which_quota_refused_it(world, client):
    QuotaFactory(
        department=world.marketing, kind="concurrent_jobs", limit=1, enforcement="hard_reject"
    )
    client = client_as(client, world, "manager")
    page = _get(client, _submit(client, seconds="1", text="x")["Location"])

    job = GenerationJob.objects.get(state=JobState.REJECTED)
    assert _messages(page) == [f"Job {job.short_id} (Lip-sync render) was refused: {job.reason}"]
    assert "<dt>Refused by quota</dt><dd>Jobs queued or running at once" in page
    assert "/cancel/" not in page


# --- One job ---------------------------------------------------------------------------


def test_the_job_page_shows_what_ran_where_when_and_its_outputs(world, client):
    job = world.manager_job
    GenerationJob.objects.filter(pk=job.pk).update(
        params={"seconds": 3, "text": "lip sync"},
        worker="gpu-node-7",
        attempts=2,
        gpu_seconds="3.250",
        gpu_hours_reserved="0.166667",
        exit_code=0,
        log_tail="rendering frame 120/120",
    )
    page = _get(client_as(client, world, "manager"), f"/jobs/{job.pk}/")
    assert "<tr><th>text</th><td><code>lip sync</code></td></tr>" in page
    assert "<dt>Worker</dt><dd>gpu-node-7</dd>" in page
    assert "<dt>Attempts</dt><dd>2</dd>" in page
    assert "<dt>GPU-seconds</dt><dd>3.250</dd>" in page
    assert "<dt>GPU-hours reserved</dt><dd>0.166667</dd>" in page
    assert "<code>gpu.t4.batch</code>" in page
    assert '<pre class="log">rendering frame 120/120</pre>' in page
    assert "Test (mara)" in page


def test_the_job_page_links_its_outputs_and_log_for_download_with_the_session(world, client):
    job = world.manager_job
    client = client_as(client, world, "manager")
    page = _get(client, f"/jobs/{job.pk}/")
    links = re.findall(rf'<a href="(/api/v1/jobs/{job.pk}/files/[^"]+)">', page)
    assert links == [
        f"/api/v1/jobs/{job.pk}/files/result.txt/",
        f"/api/v1/jobs/{job.pk}/files/job.log/",
    ]
    output, log = client.get(links[0]), client.get(links[1])
    assert b"".join(output.streaming_content) == b"done"
    assert output["Content-Disposition"] == 'attachment; filename="result.txt"'
    # The log opens in the browser as text.
    assert b"".join(log.streaming_content) == b"--- attempt 1\n"
    assert log["Content-Type"] == "text/plain; charset=utf-8"
    assert "attachment" not in log.get("Content-Disposition", "")


def test_a_failed_job_shows_its_error(world, client):
    GenerationJob.objects.filter(pk=world.manager_job.pk).update(
        state=JobState.FAILED, error="Exit code 1: no face found"
    )
    page = _get(client_as(client, world, "manager"), f"/jobs/{world.manager_job.pk}/")
    assert '<pre class="log error">Exit code 1: no face found</pre>' in page


def test_an_open_job_page_reloads_itself_and_an_ended_one_does_not(world, client):
    client = client_as(client, world, "manager")
    assert client.get(f"/jobs/{world.member_job.pk}/")["Refresh"] == "5"
    assert "Refresh" not in client.get(f"/jobs/{world.manager_job.pk}/")


def test_cancelling_a_job_that_ended_says_so_and_changes_nothing(world, client):
    client = client_as(client, world, "manager")
    response = client.post(f"/jobs/{world.manager_job.pk}/cancel/")
    page = _get(client, response["Location"])
    assert _messages(page) == ["The job has already ended (succeeded)."]
    world.manager_job.refresh_from_db()
    assert world.manager_job.state == JobState.SUCCEEDED


def test_cancelling_a_running_job_asks_its_worker_to_stop_it(world, client):
    job = world.member_job
    GenerationJob.objects.filter(pk=job.pk).update(
        state=JobState.RUNNING, worker="w1", started_at=timezone.now()
    )
    client = client_as(client, world, "member")
    page = _get(client, client.post(f"/jobs/{job.pk}/cancel/")["Location"])
    job.refresh_from_db()
    assert job.state == JobState.RUNNING and job.cancel_requested_at is not None
    assert _messages(page) == [f"Job {job.short_id} is running; its worker is stopping it now."]


# --- The department page ---------------------------------------------------------------


def test_the_department_page_counts_jobs_by_state_and_lists_the_latest_ten(world, client):
    GenerationJobFactory.create_batch(
        11, department=world.marketing, kind=world.lipsync, gpu_class=world.t4, state="failed"
    )
    _training_job(world)
    page = _get(client_as(client, world, "manager"), "/departments/marketing/")
    section = page.split('id="jobs"', 1)[1].split("</section>", 1)[0]
    counts = re.findall(r'state=(\w+)">(\d+) (\w+)</a>', section)
    assert counts == [
        ("queued", "1", "queued"),
        ("succeeded", "1", "succeeded"),
        ("failed", "11", "failed"),
    ]
    assert len(_job_ids(section)) == 10
    assert 'href="/jobs/?department=marketing">All jobs of Marketing</a>' in section
    assert 'href="/jobs/submit/?department=marketing&amp;change=1">Submit job</a>' in section


def test_a_member_sees_only_their_own_jobs_on_the_department_page(world, client):
    page = _get(client_as(client, world, "member"), "/departments/marketing/")
    section = page.split('id="jobs"', 1)[1].split("</section>", 1)[0]
    assert re.findall(r'state=(\w+)">(\d+) ', section) == [("queued", "1")]
    assert _job_ids(section) == [world.member_job.short_id]


def test_finance_sees_the_department_jobs_but_no_submit_link(world, client):
    page = _get(client_as(client, world, "finance"), "/departments/marketing/")
    section = page.split('id="jobs"', 1)[1].split("</section>", 1)[0]
    assert sorted(_job_ids(section)) == sorted(
        [world.member_job.short_id, world.manager_job.short_id]
    )
    assert "Submit job" not in section


def test_the_submit_link_of_a_department_page_preselects_that_department(world, client):
    MembershipFactory(user=world.user("manager"), department=world.training)
    page = _get(client_as(client, world, "manager"), "/jobs/submit/?department=training&change=1")
    assert '<option value="training" selected>Training</option>' in page
    assert '<option value="marketing">Marketing</option>' in page
    assert 'name="params-seconds"' not in page

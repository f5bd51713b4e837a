"""Who gets what on the job pages, requested as each role.

``member`` and ``manager`` belong to marketing, ``other_manager`` manages training.
Finance and IT see every job but submit none (they are members of no department); a job
the user may not see answers 404, like an unknown one; cancelling is for the submitter,
the department's managers and IT (403 for others who can see the job).
"""

import uuid

import pytest

from jobs.models import GenerationJob, JobState
from tests.conftest import ROLES, client_as

LOGIN = "/accounts/login/"


def expect(anonymous, member, manager, other_manager, finance, it_admin):
    return dict(
        zip(ROLES, (anonymous, member, manager, other_manager, finance, it_admin), strict=True)
    )


def _detail(job_name):
    return lambda w: f"/jobs/{getattr(w, job_name).pk}/"


SUBMIT_BODY = {
    "department": "marketing",
    "kind": "lipsync-render",
    "tier": "batch",
    "params-seconds": "1",
    "params-text": "x",
}

# (name, method, url(world), body or None, expected status or redirect target)
PAGES = [
    ("job list", "get", lambda w: "/jobs/", None, expect(LOGIN, 200, 200, 200, 200, 200)),
    (
        "submit form",
        "get",
        lambda w: "/jobs/submit/",
        None,
        expect(LOGIN, 200, 200, 200, 200, 200),
    ),
    (
        "submit form step 2 for marketing",
        "get",
        lambda w: "/jobs/submit/?department=marketing&kind=lipsync-render&tier=batch",
        None,
        expect(LOGIN, 200, 200, 200, 200, 200),
    ),
    (
        # Members submit (redirect to the job); another department's manager gets the
        # form back with an error; someone in no department is refused.
        "submit for marketing",
        "post",
        lambda w: "/jobs/submit/",
        SUBMIT_BODY,
        expect(LOGIN, "job", "job", 200, 403, 403),
    ),
    (
        "manager's job page",
        "get",
        _detail("manager_job"),
        None,
        expect(LOGIN, 404, 200, 404, 200, 200),
    ),
    (
        "member's job page",
        "get",
        _detail("member_job"),
        None,
        expect(LOGIN, 200, 200, 404, 200, 200),
    ),
    (
        "unknown job page",
        "get",
        lambda w: f"/jobs/{uuid.uuid4()}/",
        None,
        expect(LOGIN, 404, 404, 404, 404, 404),
    ),
    (
        "cancel the member's job",
        "post",
        lambda w: f"/jobs/{w.member_job.pk}/cancel/",
        None,
        expect(LOGIN, "job", "job", 404, 403, "job"),
    ),
    (
        # Ended already: the managers and IT are sent back to the page with the reason.
        "cancel the manager's job",
        "post",
        lambda w: f"/jobs/{w.manager_job.pk}/cancel/",
        None,
        expect(LOGIN, 404, "job", 404, 403, "job"),
    ),
    (
        "cancel is a POST",
        "get",
        lambda w: f"/jobs/{w.member_job.pk}/cancel/",
        None,
        expect(LOGIN, 405, 405, 405, 405, 405),
    ),
]


def _cases():
    for name, method, url, body, expected in PAGES:
        for role in ROLES:
            yield pytest.param(role, method, url, body, expected[role], id=f"{name}-{role}")


@pytest.mark.parametrize(("role", "method", "url", "body", "expected"), list(_cases()))
def test_job_pages_answer_each_role_as_the_table_says(
    world, client, role, method, url, body, expected
):
    client = client_as(client, world, role)
    response = getattr(client, method)(url(world), body)
    if expected == LOGIN:
        assert response.status_code == 302
        assert response["Location"].split("?")[0] == LOGIN
    elif expected == "job":
        assert response.status_code == 302
        assert response["Location"].startswith("/jobs/")
        assert GenerationJob.objects.filter(pk=response["Location"].split("/")[2]).exists()
    else:
        assert response.status_code == expected


@pytest.mark.parametrize(
    ("role", "submitted"),
    [
        ("anonymous", False),
        ("member", True),
        ("manager", True),
        ("other_manager", False),
        ("finance", False),
        ("it_admin", False),
    ],
)
def test_only_members_and_managers_submit_for_their_department(world, client, role, submitted):
    client_as(client, world, role).post("/jobs/submit/", SUBMIT_BODY)
    new = GenerationJob.objects.exclude(pk__in=[world.manager_job.pk, world.member_job.pk])
    assert new.exists() is submitted
    if submitted:
        assert new.get().submitter == world.user(role)


def test_another_departments_manager_gets_the_form_back_with_an_error(world, client):
    page = client_as(client, world, "other_manager").post("/jobs/submit/", SUBMIT_BODY)
    assert "Select a valid choice. That choice is not one of the available choices." in (
        page.content.decode()
    )


@pytest.mark.parametrize(
    ("role", "offered"),
    [("member", False), ("manager", False), ("finance", True), ("it_admin", True)],
)
def test_the_submit_page_offers_no_department_to_finance_and_it(world, client, role, offered):
    page = client_as(client, world, role).get("/jobs/submit/").content.decode()
    assert ("there is no department you can submit jobs for" in page) is offered
    assert ('<option value="marketing"' in page) is not offered


@pytest.mark.parametrize(
    ("role", "cancelled"),
    [
        ("member", True),
        ("manager", True),
        ("other_manager", False),
        ("finance", False),
        ("it_admin", True),
    ],
)
def test_only_the_submitter_managers_and_it_cancel_a_job(world, client, role, cancelled):
    client_as(client, world, role).post(f"/jobs/{world.member_job.pk}/cancel/")
    world.member_job.refresh_from_db()
    assert (world.member_job.state == JobState.CANCELLED) is cancelled


@pytest.mark.parametrize(
    ("role", "button"),
    [("member", True), ("manager", True), ("finance", False), ("it_admin", True)],
)
def test_the_cancel_button_shows_only_to_those_who_may_cancel(world, client, role, button):
    page = client_as(client, world, role).get(f"/jobs/{world.member_job.pk}/").content.decode()
    assert (f'action="/jobs/{world.member_job.pk}/cancel/"' in page) is button


@pytest.mark.parametrize("role", ["member", "manager", "finance", "it_admin"])
def test_an_ended_job_shows_no_cancel_button_to_anyone(world, client, role):
    client = client_as(client, world, role)
    GenerationJob.objects.filter(pk=world.member_job.pk).update(state=JobState.FAILED)
    page = client.get(f"/jobs/{world.member_job.pk}/").content.decode()
    assert "/cancel/" not in page
    assert world.member_job.short_id in page


def test_anonymous_posts_change_nothing(world, client):
    client.post(f"/jobs/{world.member_job.pk}/cancel/")
    client.post("/jobs/submit/", SUBMIT_BODY)
    world.member_job.refresh_from_db()
    assert world.member_job.state == JobState.QUEUED
    assert GenerationJob.objects.count() == 2

"""Every form that changes something refuses a POST without its CSRF token, and so does the
API for a session-signed-in browser (a token client has no cookie to steal)."""

import datetime as dt

import pytest
from django.test import Client
from rest_framework.authtoken.models import Token

from billing import services as billing
from billing.models import AlertChannel, Statement
from jobs.models import JobState

MARCH = dt.date(2026, 3, 1)


@pytest.fixture
def draft(world):
    billing.period_refresh(month=MARCH)
    return Statement.objects.get(period__month=MARCH, department=world.marketing)


def forms(world, draft):
    """(who, path, data) of each state-changing form, with data it would otherwise accept."""
    return [
        ("anonymous", "/accounts/login/", {"username": "mara", "password": "x"}),
        ("manager", "/jobs/submit/", {"department": world.marketing.pk}),
        ("manager", f"/jobs/{world.member_job.pk}/cancel/", {}),
        ("finance", f"/billing/statements/{draft.pk}/finalize/", {}),
        ("it_admin", "/admin/departments/department/add/", {"name": "X", "slug": "x"}),
        ("manager", "/accounts/logout/", {}),
        (
            "manager",
            "/departments/marketing/alerts/",
            {"name": "desk", "kind": "email", "emails": "desk@example.com"},
        ),
        ("manager", f"/departments/marketing/alerts/{_channel(world).pk}/", {"action": "delete"}),
    ]


def _channel(world):
    return AlertChannel.objects.get_or_create(
        department=world.marketing, name="ops", defaults={"kind": "email", "emails": ["o@x.org"]}
    )[0]


def test_every_form_refuses_a_post_without_its_csrf_token(world, draft):
    for role, path, data in forms(world, draft):
        client = Client(enforce_csrf_checks=True)
        if role != "anonymous":
            client.force_login(world.user(role))
        response = client.post(path, data)
        assert response.status_code == 403, (role, path, response.status_code)
        # The portal's own page, in its layout, says what happened and what to do.
        page = response.content.decode()
        assert "This form could not be sent" in page and "nothing was changed" in page, path
        assert "CSRF verification failed" not in page
    world.member_job.refresh_from_db()
    draft.refresh_from_db()
    assert world.member_job.state == JobState.QUEUED
    assert draft.status == Statement.Status.DRAFT
    assert list(AlertChannel.objects.values_list("name", flat=True)) == ["ops"]


def test_the_api_wants_the_csrf_token_from_a_session_but_not_from_a_token(world, draft):
    url = f"/api/v1/statements/{draft.pk}/finalize/"
    session = Client(enforce_csrf_checks=True)
    session.force_login(world.user("finance"))
    refused = session.post(url)
    assert refused.status_code == 403 and "CSRF" in refused.json()["detail"]
    token = Token.objects.create(user=world.user("finance"))
    tokened = Client(enforce_csrf_checks=True, HTTP_AUTHORIZATION=f"Token {token.key}")
    # March has ended: the token client finalizes.
    assert tokened.post(url).status_code == 200

"""Signing in is rate limited per username and per client address, submitting jobs per
user: past the rate the portal answers 429, says why and when to try again, tries nothing,
and lets the next window through. Pages and the API count together."""

import re
import time

import pytest
from rest_framework.test import APIClient

from jobs.models import GenerationJob
from tests.conftest import client_as
from tests.factories import PASSWORD

DOORS = ["login", "admin", "token"]
URLS = {"login": "/accounts/login/", "admin": "/admin/login/", "token": "/api/v1/auth/token/"}
# What each door answers to a wrong password, under the rate.
REFUSED = {"login": 200, "admin": 200, "token": 400}
SIGNED_IN = {"login": 302, "admin": 302, "token": 200}
LOGIN_REFUSED = "Too many sign-in attempts for this username or from this address."
WRONG = "not the password"
JOBS_URL = "/api/v1/jobs/"
STEP_2 = "/jobs/submit/?department=marketing&kind=lipsync-render&tier=batch"


@pytest.fixture(autouse=True)
def rates(settings):
    settings.RATELIMIT_LOGIN = "10/m"
    settings.RATELIMIT_LOGIN_IP = "30/m"
    settings.JOBS_SUBMIT_RATE = "3/m"


@pytest.fixture(autouse=True)
def clock(monkeypatch):
    """The counters are fixed windows: a test whose requests straddled a window's end would
    see its count start again. The time the counters (and the cache) read stands still for
    each test; ``clock(seconds)`` moves it forward."""
    frozen_s = [time.time()]
    monkeypatch.setattr(time, "time", lambda: frozen_s[0])

    def advance(seconds: float) -> None:
        frozen_s[0] += seconds

    return advance


def sign_in(door: str, username: str, password: str = WRONG, ip: str = "127.0.0.1"):
    """One sign-in attempt at ``door`` from ``ip``, as a fresh browser or API client; the
    token endpoint gets JSON, as API clients send it."""
    body = {"username": username, "password": password}
    if door == "token":
        return APIClient().post(URLS[door], body, format="json", REMOTE_ADDR=ip)
    return APIClient().post(URLS[door], body, REMOTE_ADDR=ip)


def assert_limited(door: str, response) -> None:
    assert response.status_code == 429
    assert 1 <= int(response["Retry-After"]) <= 60
    if door == "token":
        assert response.json()["detail"].startswith(LOGIN_REFUSED)
        assert "token" not in response.json()
    else:
        assert LOGIN_REFUSED in response.content.decode()
        assert "_auth_user_id" not in response.wsgi_request.session


# --- Signing in --------------------------------------------------------------------------


@pytest.mark.parametrize("door", DOORS)
def test_the_eleventh_attempt_for_a_username_answers_429_even_with_the_right_password(world, door):
    username = world.user("finance").username
    for _ in range(10):
        assert sign_in(door, username).status_code == REFUSED[door]
    assert_limited(door, sign_in(door, username, PASSWORD))


@pytest.mark.parametrize("door", DOORS)
def test_the_limited_username_stays_limited_from_another_address_and_others_sign_in(world, door):
    finance, it_admin = world.user("finance").username, world.user("it_admin").username
    for _ in range(11):
        sign_in(door, finance)
    assert_limited(door, sign_in(door, finance, PASSWORD, ip="10.0.0.2"))
    assert sign_in(door, it_admin, PASSWORD, ip="10.0.0.3").status_code == SIGNED_IN[door]


def test_signing_in_answers_what_it_did_before_under_the_rate(world):
    finance = world.user("finance").username
    assert sign_in("login", finance, PASSWORD).status_code == 302
    assert sign_in("admin", finance, PASSWORD).status_code == 302
    token = sign_in("token", finance, PASSWORD).json()["token"]
    assert token.startswith("gcp_") and len(token) == 47  # a personal API token


def test_the_thirty_first_attempt_from_one_address_answers_429_whatever_the_username(world):
    for n in range(30):
        assert sign_in("login", f"guess-{n}").status_code == 200
    assert_limited("login", sign_in("login", world.user("finance").username, PASSWORD))
    assert (
        sign_in("login", world.user("finance").username, PASSWORD, ip="10.0.0.2").status_code == 302
    )


def test_the_three_doors_count_the_same_attempts(world):
    username = world.user("finance").username
    for door in ["login"] * 4 + ["admin"] * 3 + ["token"] * 3:
        assert sign_in(door, username).status_code == REFUSED[door]
    assert_limited("token", sign_in("token", username, PASSWORD))


def test_a_username_is_counted_whatever_its_case_and_spaces(world):
    for n in range(10):
        sign_in("login", "Fiona " if n % 2 else "FIONA")
    assert_limited("login", sign_in("login", "fiona", PASSWORD))


def test_signing_in_works_again_once_the_window_has_passed(world, clock):
    username = world.user("finance").username
    for _ in range(11):
        sign_in("login", username)
    assert_limited("login", sign_in("login", username, PASSWORD))
    clock(61)
    assert sign_in("login", username, PASSWORD).status_code == 302


def test_the_login_rate_comes_from_settings(world, settings):
    settings.RATELIMIT_LOGIN = "2/m"
    username = world.user("finance").username
    assert [sign_in("token", username).status_code for _ in range(3)] == [400, 400, 429]


# --- Submitting jobs ---------------------------------------------------------------------

BODY = {
    "department": "marketing",
    "kind": "lipsync-render",
    "tier": "batch",
    "params": {"seconds": 1, "text": "hi"},
}


def submit_by_form(client):
    """Open step 2 of the submit form (a fresh idempotency key) and send it."""
    page = client.get(STEP_2).content.decode()
    key = re.search(r'name="idempotency_key" value="([0-9a-f]{32})"', page).group(1)
    return client.post(
        "/jobs/submit/",
        {
            "department": "marketing",
            "kind": "lipsync-render",
            "tier": "batch",
            "idempotency_key": key,
            "params-seconds": "1",
            "params-text": "hi",
        },
    )


def test_api_submissions_beyond_the_rate_answer_429_and_another_user_is_unaffected(world):
    manager = client_as(APIClient(), world, "manager")
    assert [manager.post(JOBS_URL, BODY, format="json").status_code for _ in range(3)] == [201] * 3
    jobs = GenerationJob.objects.count()

    refused = manager.post(JOBS_URL, BODY, format="json")

    assert refused.status_code == 429
    assert 1 <= int(refused["Retry-After"]) <= 60
    assert refused.json()["detail"].startswith(
        "You have submitted too many jobs: at most 3 per minute. Expected available in "
    )
    assert GenerationJob.objects.count() == jobs
    member = client_as(APIClient(), world, "member")
    assert member.post(JOBS_URL, BODY, format="json").status_code == 201


def test_reading_jobs_is_not_counted_as_submitting(world):
    manager = client_as(APIClient(), world, "manager")
    for _ in range(5):
        assert manager.get(JOBS_URL).status_code == 200
    assert manager.post(JOBS_URL, BODY, format="json").status_code == 201


def test_api_submissions_are_accepted_again_once_the_window_has_passed(world, clock):
    manager = client_as(APIClient(), world, "manager")
    for _ in range(3):
        manager.post(JOBS_URL, BODY, format="json")
    assert manager.post(JOBS_URL, BODY, format="json").status_code == 429
    clock(61)
    assert manager.post(JOBS_URL, BODY, format="json").status_code == 201


def test_the_form_beyond_the_rate_answers_429_with_the_message_and_creates_no_job(world, client):
    client = client_as(client, world, "manager")
    assert [submit_by_form(client).status_code for _ in range(3)] == [302] * 3
    jobs = GenerationJob.objects.count()

    refused = submit_by_form(client)

    assert refused.status_code == 429
    assert 1 <= int(refused["Retry-After"]) <= 60
    page = refused.content.decode()
    assert "You have submitted too many jobs: at most 3 per minute. Try again in" in page
    assert 'name="params-text"' in page  # the form comes back, filled in
    assert GenerationJob.objects.count() == jobs


def test_the_form_and_the_api_count_the_same_submissions(world, client):
    client = client_as(client, world, "manager")
    api = client_as(APIClient(), world, "manager")
    assert submit_by_form(client).status_code == 302
    assert api.post(JOBS_URL, BODY, format="json").status_code == 201
    assert submit_by_form(client).status_code == 302
    assert api.post(JOBS_URL, BODY, format="json").status_code == 429
    assert submit_by_form(client).status_code == 429


def test_a_request_without_a_client_address_is_still_counted_not_refused(db):
    client = APIClient(REMOTE_ADDR="")
    response = client.post("/api/v1/auth/token/", {"username": "nobody", "password": "x"})
    assert response.status_code == 400  # wrong credentials, not a server error

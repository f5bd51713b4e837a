"""``POST /api/v1/auth/token/`` with a username and password answers a new personal API
token (gcp_…), with its expiry and rights, instead of DRF's eternal token."""

import datetime as dt

import pytest
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from accounts.models import ApiToken
from tests.accounts.conftest import with_token
from tests.factories import PASSWORD

URL = "/api/v1/auth/token/"


def sign_in(username: str, password: str = PASSWORD, **extra):
    return APIClient().post(URL, {"username": username, "password": password, **extra})


def test_a_password_gives_a_personal_token_with_the_default_lifetime(world, settings):
    before = timezone.now()

    response = sign_in("fiona")

    assert response.status_code == 200
    body = response.json()
    assert body["token"].startswith("gcp_") and len(body["token"]) == 47
    assert body["read_only"] is False
    token = ApiToken.objects.get(pk=body["id"])
    assert token.user == world.user("finance")
    assert token.name == f"API sign-in {timezone.localdate():%Y-%m-%d}"
    expected = before + dt.timedelta(days=settings.API_TOKEN_DEFAULT_DAYS)
    assert abs(dt.datetime.fromisoformat(body["expires_at"]) - expected) < dt.timedelta(minutes=1)
    assert not Token.objects.exists()  # no eternal token any more
    assert with_token(body["token"]).get("/api/v1/departments/").status_code == 200


def test_the_script_may_name_the_token_its_lifetime_and_read_only(world):
    response = APIClient().post(
        URL,
        {"username": "ivan", "password": PASSWORD, "name": "backup", "days": 2, "read_only": True},
        format="json",
    )
    assert response.status_code == 200
    body = response.json()
    token = ApiToken.objects.get(pk=body["id"])
    assert (token.name, token.read_only, (token.expires_at - token.created_at).days) == (
        "backup",
        True,
        2,
    )
    script = with_token(body["token"])
    assert script.get("/api/v1/quotas/").status_code == 200
    assert script.post("/api/v1/quotas/", {}, format="json").status_code == 403


@pytest.mark.parametrize(
    ("extra", "field"),
    [({"days": 0}, "days"), ({"days": 367}, "days"), ({"name": "x" * 101}, "name")],
)
def test_a_token_the_portal_would_not_make_is_refused(world, extra, field):
    response = sign_in("fiona", **extra)
    assert response.status_code == 400
    assert field in response.json()
    assert not ApiToken.objects.exists()


@pytest.mark.parametrize(
    ("username", "password"),
    [("fiona", "wrong"), ("nobody", PASSWORD), ("fiona", ""), ("", PASSWORD)],
)
def test_wrong_credentials_answer_400_and_make_nothing(world, username, password):
    response = sign_in(username, password)
    assert response.status_code == 400
    assert not ApiToken.objects.exists()


def test_a_wrong_password_and_an_unknown_user_read_alike(world):
    wrong, unknown = sign_in("fiona", "wrong"), sign_in("nobody", "wrong")
    assert (
        wrong.json()
        == unknown.json()
        == {"non_field_errors": ["Unable to log in with provided credentials."]}
    )


def test_an_account_switched_off_gets_no_token(world):
    finance = world.user("finance")
    finance.is_active = False
    finance.save(update_fields=["is_active"])
    assert sign_in("fiona").json() == sign_in("fiona", "wrong").json()
    assert not ApiToken.objects.exists()

"""The API's password sign-in obeys the same switches as the sign-in page:
``PASSWORD_LOGIN=0`` turns it off for everyone (403, saying so), and
``PASSWORD_LOGIN_USERS`` keeps it for the accounts it lists (the break-glass ones)."""

import pytest
from rest_framework.test import APIClient

from accounts.models import ApiToken
from tests.factories import PASSWORD

URL = "/api/v1/auth/token/"


def sign_in(username: str, password: str = PASSWORD):
    return APIClient().post(URL, {"username": username, "password": password}, format="json")


@pytest.mark.parametrize("password", [PASSWORD, "wrong"])
def test_with_passwords_off_the_endpoint_answers_403_saying_so(world, settings, password):
    settings.PASSWORD_LOGIN = False
    response = sign_in("ivan", password)
    assert response.status_code == 403
    assert response.json()["detail"].startswith("Password sign-in is turned off here.")
    assert "/accounts/tokens/" in response.json()["detail"]
    assert not ApiToken.objects.exists()


def test_with_break_glass_accounts_only_they_get_a_token(world, settings):
    settings.PASSWORD_LOGIN_USERS = ["ivan"]
    assert sign_in("ivan").status_code == 200
    refused = sign_in("fiona")
    assert refused.status_code == 400
    # Refused in the words of a wrong password: nothing tells who is a break-glass account.
    assert refused.json() == sign_in("fiona", "wrong").json()
    assert list(ApiToken.objects.values_list("user__username", flat=True)) == ["ivan"]


def test_the_sign_in_rate_limit_still_counts_token_requests(world, settings):
    settings.RATELIMIT_LOGIN = "2/m"
    assert [sign_in("fiona", "wrong").status_code for _ in range(2)] == [400, 400]
    limited = sign_in("fiona")
    assert limited.status_code == 429
    assert limited.json()["detail"].startswith("Too many sign-in attempts")
    assert not ApiToken.objects.exists()

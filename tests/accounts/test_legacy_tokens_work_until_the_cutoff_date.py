"""Tokens DRF made before personal tokens (``Authorization: Token <key>``) keep working
through ``LEGACY_API_TOKENS_UNTIL`` (a date in the portal's time zone) and are refused
from the day after, saying what to use instead. The date is set relative to today."""

import datetime as dt

import pytest
from django.utils import timezone
from rest_framework.authtoken.models import Token

from tests.accounts.conftest import make_token, with_token

DAY = dt.timedelta(days=1)


@pytest.fixture
def legacy(world):
    return Token.objects.create(user=world.user("finance")).key


@pytest.mark.parametrize("until", [None, 0, 30], ids=["no date set", "today", "in a month"])
def test_a_legacy_token_works_through_the_last_day(world, legacy, settings, until):
    settings.LEGACY_API_TOKENS_UNTIL = None if until is None else timezone.localdate() + until * DAY
    assert with_token(legacy, "Token").get("/api/v1/departments/").status_code == 200


@pytest.mark.parametrize("days_ago", [1, 400])
def test_a_legacy_token_is_refused_after_the_last_day(world, legacy, settings, days_ago):
    until = timezone.localdate() - days_ago * DAY
    settings.LEGACY_API_TOKENS_UNTIL = until

    response = with_token(legacy, "Token").get("/api/v1/departments/")

    assert response.status_code == 401
    detail = response.json()["detail"]
    assert f"stopped working after {until}" in detail
    assert "/accounts/tokens/" in detail and "Authorization: Bearer gcp_" in detail


def test_a_personal_token_under_the_token_scheme_outlives_the_cutoff(world, settings):
    settings.LEGACY_API_TOKENS_UNTIL = timezone.localdate() - DAY
    secret = make_token(world.user("finance")).secret
    assert with_token(secret, "Token").get("/api/v1/departments/").status_code == 200


def test_a_legacy_token_of_an_account_switched_off_is_refused(world, legacy):
    finance = world.user("finance")
    finance.is_active = False
    finance.save(update_fields=["is_active"])
    assert with_token(legacy, "Token").get("/api/v1/departments/").status_code == 401

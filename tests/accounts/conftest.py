"""Helpers of the tests of sign-in and API tokens."""

import datetime as dt

from django.utils import timezone
from rest_framework.test import APIClient

from accounts import tokens
from accounts.models import ApiToken


def with_token(secret: str, scheme: str = "Bearer", **defaults) -> APIClient:
    """A fresh API client (a script) that sends ``secret`` in its Authorization header."""
    client = APIClient(**defaults)
    client.credentials(HTTP_AUTHORIZATION=f"{scheme} {secret}")
    return client


def make_token(user, name: str = "script", **kwargs) -> tokens.NewToken:
    return tokens.api_token_create(user=user, name=name, **kwargs)


def expire(token: ApiToken, *, ago: dt.timedelta = dt.timedelta(hours=1)) -> ApiToken:
    """``token`` as if made ten days ago and expired ``ago``."""
    now = timezone.now()
    ApiToken.objects.filter(pk=token.pk).update(
        created_at=now - dt.timedelta(days=10), expires_at=now - ago
    )
    token.refresh_from_db()
    return token

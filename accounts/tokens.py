"""Personal API tokens: making, checking and revoking them.

A token reads ``gcp_`` followed by 43 URL-safe characters (256 random bits). The database
keeps its SHA-256, which is enough for a secret of that strength (a slow password hash
would only slow every API call) and means a copy of the database holds no usable token.
"""

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.models import ApiToken

PREFIX = "gcp_"
# How often a token's last use is written: once a minute, not on every call.
LAST_USE_EVERY = timedelta(minutes=1)


class TokenRefused(Exception):
    """The token is unknown, expired, revoked or its owner switched off; the message says
    which, for the 401."""


def looks_like_personal_token(value: str) -> bool:
    return value.startswith(PREFIX)


def key_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class NewToken:
    token: ApiToken
    secret: str


@transaction.atomic
def api_token_create(
    *, user, name: str, days: int | None = None, read_only: bool = False
) -> NewToken:
    """A new token for ``user``, valid ``days`` (``API_TOKEN_DEFAULT_DAYS`` when None; at
    most ``API_TOKEN_MAX_DAYS``, which the caller checks first). The secret is returned
    here and nowhere else."""
    days = settings.API_TOKEN_DEFAULT_DAYS if days is None else days
    if not 1 <= days <= settings.API_TOKEN_MAX_DAYS:
        raise ValueError(f"A token lives 1 to {settings.API_TOKEN_MAX_DAYS} days, not {days}.")
    secret = PREFIX + secrets.token_urlsafe(32)
    now = timezone.now()
    token = ApiToken.objects.create(
        user=user,
        name=name,
        prefix=secret[: len(PREFIX) + 6],
        key_hash=key_hash(secret),
        read_only=read_only,
        created_at=now,
        expires_at=now + timedelta(days=days),
    )
    return NewToken(token=token, secret=secret)


def sign_in_token_name() -> str:
    """The name of a token made by password sign-in on the API (``/api/v1/auth/token/``)
    when the script names none: the day it was made, to tell one sign-in from another."""
    return f"API sign-in {timezone.localdate():%Y-%m-%d}"


def api_token_revoke(*, token: ApiToken, by) -> ApiToken:
    """Revokes ``token`` now; a token already revoked keeps its first revocation."""
    ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(
        revoked_at=timezone.now(), revoked_by=by
    )
    token.refresh_from_db()
    return token


def api_token_check(*, secret: str, client_address: str | None = None) -> ApiToken:
    """The token ``secret`` names, if it may be used now; records its use (at most once a
    minute). Raises :class:`TokenRefused` saying why not."""
    token = ApiToken.objects.select_related("user").filter(key_hash=key_hash(secret)).first()
    if token is None:
        raise TokenRefused("This API token is not known to the portal.")
    now = timezone.now()
    if token.revoked_at is not None:
        raise TokenRefused(
            f"This API token ({token.prefix}…) was revoked on "
            f"{timezone.localtime(token.revoked_at):%Y-%m-%d %H:%M}. Make a new one."
        )
    if token.expires_at <= now:
        raise TokenRefused(
            f"This API token ({token.prefix}…) expired on "
            f"{timezone.localtime(token.expires_at):%Y-%m-%d %H:%M}. Make a new one."
        )
    if not token.user.is_active:
        raise TokenRefused("The account this API token belongs to is switched off.")
    if token.last_used_at is None or now - token.last_used_at >= LAST_USE_EVERY:
        ApiToken.objects.filter(pk=token.pk).update(
            last_used_at=now, last_used_from=client_address or None
        )
        token.last_used_at, token.last_used_from = now, client_address or None
    return token

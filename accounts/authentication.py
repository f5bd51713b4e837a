"""How API clients authenticate (DRF authentication classes, in ``REST_FRAMEWORK``).

- ``Authorization: Bearer gcp_…``: a personal API token (accounts/tokens.py).
- ``Authorization: Bearer <JWT>``: an access token from the company's identity provider
  (accounts/bearer.py), for the person it names, with the roles their groups give.
- ``Authorization: Token <key>``: a token made before personal tokens (DRF's), taken until
  ``LEGACY_API_TOKENS_UNTIL``; a personal token is taken there as well.

Every refusal is a 401 that says why. A read-only personal token is refused any write with
a 403, here, before any view runs, so no view can forget it.
"""

from django.conf import settings
from django.utils import timezone
from rest_framework import exceptions
from rest_framework.authentication import (
    BaseAuthentication,
    TokenAuthentication,
    get_authorization_header,
)
from rest_framework.permissions import SAFE_METHODS

from accounts import bearer, services, tokens
from core import ratelimits


def _personal(request, secret: str):
    try:
        token = tokens.api_token_check(
            secret=secret, client_address=ratelimits.client_address(request) or None
        )
    except tokens.TokenRefused as exc:
        raise exceptions.AuthenticationFailed(str(exc)) from exc
    if token.read_only and request.method not in SAFE_METHODS:
        raise exceptions.PermissionDenied(
            f"This API token ({token.prefix}…) is read-only: it cannot {request.method}. "
            "Use a token that may write."
        )
    return token.user, token


class ProviderAccess:
    """``request.auth`` for an identity provider's access token: its checked claims."""

    def __init__(self, claims: dict):
        self.claims = claims


class BearerAuthentication(BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() != self.keyword.lower().encode():
            return None
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed(
                "Give exactly one token after 'Bearer', with no spaces in it."
            )
        try:
            token = parts[1].decode("ascii")
        except UnicodeDecodeError as exc:
            raise exceptions.AuthenticationFailed("The bearer token is not ASCII text.") from exc
        if tokens.looks_like_personal_token(token):
            return _personal(request, token)
        try:
            claims = bearer.bearer_claims(token)
            user = services.provider_user_for_token(issuer=settings.OIDC_ISSUER, claims=claims)
        except (bearer.BearerRefused, services.ProviderSignInRefused) as exc:
            raise exceptions.AuthenticationFailed(str(exc)) from exc
        return user, ProviderAccess(claims)

    def authenticate_header(self, request):
        return 'Bearer realm="api"'


class LegacyTokenAuthentication(TokenAuthentication):
    """``Authorization: Token <key>``: the tokens DRF made before personal tokens, until
    the date IT set (``LEGACY_API_TOKENS_UNTIL``), and personal tokens under this name."""

    def authenticate(self, request):
        self._request = request
        return super().authenticate(request)

    def authenticate_credentials(self, key):
        if tokens.looks_like_personal_token(key):
            return _personal(self._request, key)
        until = settings.LEGACY_API_TOKENS_UNTIL
        if until is not None and timezone.localdate() > until:
            raise exceptions.AuthenticationFailed(
                f"Tokens made before personal API tokens stopped working after {until}. "
                "Make a personal token (Your API tokens, /accounts/tokens/) and send it as "
                "'Authorization: Bearer gcp_…'."
            )
        return super().authenticate_credentials(key)

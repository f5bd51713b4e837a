"""The identity provider's access tokens as API credentials: a JWT signed with one of the
provider's keys, issued by ``OIDC_ISSUER`` for ``OIDC_API_AUDIENCE``, not expired.

The provider's keys (its JWKS) are kept ``OIDC_DISCOVERY_CACHE_S`` in each process. A
token signed with a key not among them makes the portal read the keys again at once, which
is how a rotation is followed without a restart; to stop a flood of made-up key IDs from
becoming a flood of requests to the provider, that happens at most once per
``OIDC_JWKS_MIN_REFRESH_S``.
"""

import datetime as dt
import threading
import time
from dataclasses import dataclass

import jwt
import requests
from django.conf import settings
from django.utils import timezone

from accounts import oidc


class BearerRefused(Exception):
    """The token is not one the portal takes; the message says why, for the 401."""


@dataclass
class _KeySet:
    uri: str
    keys: dict
    read_at: float


_lock = threading.Lock()
_key_set: _KeySet | None = None


def _read_keys(uri: str) -> dict:
    try:
        response = requests.get(uri, timeout=settings.OIDC_TIMEOUT, verify=settings.OIDC_VERIFY_SSL)
        response.raise_for_status()
        key_set = jwt.PyJWKSet.from_dict(response.json())
    except (requests.RequestException, ValueError, jwt.PyJWKSetError) as exc:
        raise BearerRefused(
            "The identity provider's keys could not be read, so no bearer token can be "
            "checked right now. Try again in a minute."
        ) from exc
    return {key.key_id: key for key in key_set.keys if key.key_id}


def signing_key(kid: str):
    """The provider's public key ``kid``, reading the provider's keys again when they are
    older than the cache allows, or when ``kid`` is new and they were not read in the last
    ``OIDC_JWKS_MIN_REFRESH_S``."""
    global _key_set
    try:
        uri = oidc.oidc_setting("OIDC_OP_JWKS_ENDPOINT")
    except oidc.ProviderUnavailable as exc:
        raise BearerRefused(
            "The identity provider does not answer, so no bearer token can be checked "
            "right now. Try again in a minute."
        ) from exc
    now = time.monotonic()
    with _lock:
        current = _key_set
        stale = (
            current is None
            or current.uri != uri
            or now - current.read_at >= settings.OIDC_DISCOVERY_CACHE_S
            or (
                kid not in current.keys
                and now - current.read_at >= settings.OIDC_JWKS_MIN_REFRESH_S
            )
        )
        if stale:
            current = _key_set = _KeySet(uri=uri, keys=_read_keys(uri), read_at=now)
    key = current.keys.get(kid)
    if key is None:
        raise BearerRefused(
            f"The bearer token is signed with a key ({kid[:64]!r}) the identity provider "
            "does not publish."
        )
    return key


def forget_keys() -> None:
    """Drops the kept keys (tests, and a change of provider)."""
    global _key_set
    with _lock:
        _key_set = None


def _unverified(token: str) -> dict:
    """The claims as the token states them, for a refusal's reason only."""
    return jwt.decode(token, options={"verify_signature": False})


def bearer_claims(token: str) -> dict:
    """The claims of ``token`` once its signature, issuer, audience and times are checked.
    Raises :class:`BearerRefused` with the reason."""
    if not oidc.enabled():
        raise BearerRefused(
            "This is not a personal API token, and no identity provider is set up whose "
            "tokens the portal could take."
        )
    try:
        header = jwt.get_unverified_header(token)
    except jwt.InvalidTokenError as exc:
        raise BearerRefused(
            "The bearer token is neither a personal API token (gcp_…) nor a JWT from the "
            "identity provider."
        ) from exc
    algorithm = header.get("alg")
    if algorithm not in settings.OIDC_API_ALGORITHMS:
        raise BearerRefused(
            f"The bearer token is signed with {str(algorithm)[:20]!r}; the portal takes "
            f"{', '.join(settings.OIDC_API_ALGORITHMS)}."
        )
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise BearerRefused("The bearer token names no signing key (kid).")
    key = signing_key(kid)
    try:
        claims = jwt.decode(
            token,
            key=key,
            algorithms=[algorithm],
            audience=settings.OIDC_API_AUDIENCE,
            leeway=settings.OIDC_LEEWAY_S,
            options={"require": ["exp", "iss", "aud", "sub"]},
        )
    except jwt.ExpiredSignatureError as exc:
        expired = _unverified(token).get("exp")
        when = ""
        if isinstance(expired, int | float) and 0 < expired < 253402300800:  # year 9999
            moment = timezone.localtime(dt.datetime.fromtimestamp(expired, tz=dt.UTC))
            when = f" at {moment:%Y-%m-%d %H:%M:%S %Z}"
        raise BearerRefused(f"The bearer token expired{when}. Get a new one.") from exc
    except jwt.InvalidAudienceError as exc:
        audience = _unverified(token).get("aud")
        raise BearerRefused(
            f"The bearer token is for {str(audience)[:200]}, not for this portal "
            f"({settings.OIDC_API_AUDIENCE})."
        ) from exc
    except jwt.InvalidSignatureError as exc:
        raise BearerRefused(
            "The bearer token's signature does not verify with the identity provider's key."
        ) from exc
    except jwt.MissingRequiredClaimError as exc:
        raise BearerRefused(f"The bearer token has no {exc.claim!r} claim.") from exc
    except jwt.ImmatureSignatureError as exc:
        raise BearerRefused(
            "The bearer token is not valid yet (nbf or iat in the future)."
        ) from exc
    except jwt.InvalidTokenError as exc:
        raise BearerRefused(f"The bearer token is not valid: {exc}.") from exc
    issuer = claims.get("iss")
    if not isinstance(issuer, str) or issuer.rstrip("/") != settings.OIDC_ISSUER:
        raise BearerRefused(
            f"The bearer token was issued by {str(issuer)[:200]}, not by the portal's identity "
            f"provider ({settings.OIDC_ISSUER})."
        )
    return claims

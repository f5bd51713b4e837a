"""Sign-in with the company's identity provider: OpenID Connect's authorization code flow
with PKCE, state and nonce, by mozilla-django-oidc.

What this adds to the library:

- **Discovery.** Only ``OIDC_ISSUER`` and the client's ID and secret need setting; every
  endpoint comes from the issuer's ``/.well-known/openid-configuration`` (kept
  ``OIDC_DISCOVERY_CACHE_S``), unless set one by one (``OIDC_OP_*_ENDPOINT``).
- **The ID token's claims are checked** (issuer, audience, expiry), beside the signature
  and the nonce the library checks.
- **Roles from groups.** Each sign-in finds the person by issuer and subject and applies
  :func:`accounts.services.provider_user_sign_in`.
- **Clear failures.** A refused or failed sign-in returns to the sign-in page saying why.
- **Sign-out at the provider** where it offers an ``end_session_endpoint``.
"""

import logging
from urllib.parse import urlencode

import jwt
import requests
from django.conf import settings
from django.contrib import messages
from django.core.cache import cache
from django.core.exceptions import SuspiciousOperation
from django.http import Http404, HttpResponseRedirect
from django.urls import reverse
from mozilla_django_oidc import auth as oidc_auth
from mozilla_django_oidc import views as oidc_views
from mozilla_django_oidc.utils import absolutify, import_from_settings

from accounts import services

logger = logging.getLogger(__name__)

# mozilla-django-oidc's setting names and the discovery document's keys they come from.
DISCOVERED = {
    "OIDC_OP_AUTHORIZATION_ENDPOINT": "authorization_endpoint",
    "OIDC_OP_TOKEN_ENDPOINT": "token_endpoint",
    "OIDC_OP_USER_ENDPOINT": "userinfo_endpoint",
    "OIDC_OP_JWKS_ENDPOINT": "jwks_uri",
    "OIDC_OP_LOGOUT_ENDPOINT": "end_session_endpoint",
}


class ProviderUnavailable(Exception):
    """The identity provider's discovery document could not be read."""


def enabled() -> bool:
    return bool(settings.OIDC_ISSUER)


def discovery() -> dict:
    """The issuer's discovery document, from the cache or read now. Raises
    :class:`ProviderUnavailable` with a reason a person can act on."""
    issuer = settings.OIDC_ISSUER
    key = f"accounts.oidc.discovery:{issuer}"
    document = cache.get(key)
    if document is not None:
        return document
    url = f"{issuer}/.well-known/openid-configuration"
    try:
        response = requests.get(url, timeout=settings.OIDC_TIMEOUT, verify=settings.OIDC_VERIFY_SSL)
        response.raise_for_status()
        document = response.json()
    except (requests.RequestException, ValueError) as exc:
        raise ProviderUnavailable(
            f"The identity provider's discovery document ({url}) could not be read: {exc}"
        ) from exc
    if not isinstance(document, dict) or str(document.get("issuer", "")).rstrip("/") != issuer:
        raise ProviderUnavailable(
            f"The discovery document at {url} names another issuer "
            f"({document.get('issuer') if isinstance(document, dict) else None!r}), "
            f"not {issuer}: check OIDC_ISSUER."
        )
    cache.set(key, document, settings.OIDC_DISCOVERY_CACHE_S)
    return document


def oidc_setting(attr: str, *default):
    """A mozilla-django-oidc setting, with the endpoints taken from discovery unless set."""
    if attr in DISCOVERED and not hasattr(settings, attr):
        value = discovery().get(DISCOVERED[attr])
        if value:
            return value
        if default:
            return default[0]
        raise ProviderUnavailable(
            f"The identity provider publishes no {DISCOVERED[attr]}; set {attr}."
        )
    return import_from_settings(attr, *default)


class AuthenticationRequestView(oidc_views.OIDCAuthenticationRequestView):
    """Starts a sign-in at the provider (state, nonce and a PKCE S256 challenge kept in
    the session)."""

    get_settings = staticmethod(oidc_setting)

    def __init__(self, **kwargs):
        super(oidc_views.OIDCAuthenticationRequestView, self).__init__(**kwargs)

    @property
    def OIDC_OP_AUTH_ENDPOINT(self):
        return self.get_settings("OIDC_OP_AUTHORIZATION_ENDPOINT")

    @property
    def OIDC_RP_CLIENT_ID(self):
        return settings.OIDC_RP_CLIENT_ID

    def get(self, request):
        if not enabled():
            raise Http404("Sign-in with an identity provider is not set up.")
        try:
            return super().get(request)
        except ProviderUnavailable as exc:
            logger.warning("%s", exc)
            messages.error(
                request,
                f"Sign-in with {settings.OIDC_PROVIDER_NAME} is not available right now: "
                "the identity provider does not answer. Try again in a minute, or ask IT.",
            )
            return HttpResponseRedirect(reverse("login"))


class CallbackView(oidc_views.OIDCAuthenticationCallbackView):
    """Where the provider sends the browser back: checks state, exchanges the code (with
    the PKCE verifier), verifies the ID token and signs the person in."""

    get_settings = staticmethod(oidc_setting)

    def get(self, request):
        if not enabled():
            raise Http404("Sign-in with an identity provider is not set up.")
        try:
            return super().get(request)
        except (ProviderUnavailable, requests.RequestException) as exc:
            logger.warning("OIDC sign-in failed: %s", exc)
            request.oidc_refusal = (
                "the identity provider did not answer the portal. Try again in a minute."
            )
            return self.login_failure()
        except SuspiciousOperation as exc:
            logger.warning("OIDC sign-in refused: %s", exc)
            request.oidc_refusal = (
                "the answer from the identity provider did not match the sign-in this "
                "browser started (an old or reused link). Start again."
            )
            return self.login_failure()

    def login_failure(self):
        reason = getattr(self.request, "oidc_refusal", None)
        error = self.request.GET.get("error_description") or self.request.GET.get("error")
        if reason is None and error:
            reason = f"the identity provider said: {error[:300]}"
        messages.error(
            self.request,
            f"Signing in with {settings.OIDC_PROVIDER_NAME} did not complete: "
            f"{reason or 'the sign-in could not be verified. Start again.'}",
        )
        return HttpResponseRedirect(reverse("login"))


class ProviderBackend(oidc_auth.OIDCAuthenticationBackend):
    """Authenticates the callback of a sign-in at the provider. Asked by every
    ``authenticate()``, it answers only the callback (which passes a nonce), and reads
    its endpoints only then."""

    get_settings = staticmethod(oidc_setting)

    def __init__(self, *args, **kwargs):
        from django.contrib.auth import get_user_model

        self.UserModel = get_user_model()

    OIDC_OP_TOKEN_ENDPOINT = property(lambda self: self.get_settings("OIDC_OP_TOKEN_ENDPOINT"))
    OIDC_OP_USER_ENDPOINT = property(lambda self: self.get_settings("OIDC_OP_USER_ENDPOINT", None))
    OIDC_OP_JWKS_ENDPOINT = property(lambda self: self.get_settings("OIDC_OP_JWKS_ENDPOINT"))
    OIDC_RP_CLIENT_ID = property(lambda self: settings.OIDC_RP_CLIENT_ID)
    OIDC_RP_CLIENT_SECRET = property(lambda self: settings.OIDC_RP_CLIENT_SECRET)
    OIDC_RP_SIGN_ALGO = property(lambda self: settings.OIDC_RP_SIGN_ALGO)
    OIDC_RP_IDP_SIGN_KEY = None

    def authenticate(self, request, **kwargs):
        if not enabled() or request is None or "nonce" not in kwargs:
            return None
        return super().authenticate(request, **kwargs)

    def verify_token(self, token, **kwargs):
        """The library checks the signature and the nonce; the claims are checked here."""
        payload = super().verify_token(token, **kwargs)
        try:
            jwt.decode(
                token,
                options={"verify_signature": False, "require": ["iss", "aud", "exp", "sub"]},
                audience=settings.OIDC_RP_CLIENT_ID,
                issuer=settings.OIDC_ISSUER,
                leeway=settings.OIDC_LEEWAY_S,
            )
        except jwt.InvalidTokenError as exc:
            # A trailing slash on the issuer is the same issuer.
            if isinstance(exc, jwt.InvalidIssuerError) and (
                str(payload.get("iss", "")).rstrip("/") == settings.OIDC_ISSUER
            ):
                return payload
            raise SuspiciousOperation(f"The ID token is not valid for this portal: {exc}") from exc
        return payload

    def get_userinfo(self, access_token, id_token, payload):
        """The ID token's claims, completed by the userinfo endpoint where there is one
        (Entra ID sends groups only in the ID token, Keycloak and others in both)."""
        claims = dict(payload)
        if self.OIDC_OP_USER_ENDPOINT:
            userinfo = super().get_userinfo(access_token, id_token, payload)
            if isinstance(userinfo, dict) and userinfo.get("sub") == payload.get("sub"):
                claims.update(userinfo)
        return claims

    def verify_claims(self, claims):
        return isinstance(claims.get("sub"), str) and bool(claims["sub"])

    def get_or_create_user(self, access_token, id_token, payload):
        claims = self.get_userinfo(access_token, id_token, payload)
        if not self.verify_claims(claims):
            self.request.oidc_refusal = "the identity provider sent no subject (sub)."
            return None
        try:
            return services.provider_user_sign_in(issuer=settings.OIDC_ISSUER, claims=claims)
        except services.ProviderSignInRefused as exc:
            self.request.oidc_refusal = str(exc)
            return None


def provider_logout_url(request) -> str:
    """Where sign-out sends the browser: the provider's end-session endpoint (RP-initiated
    logout) with the ID token as hint, which comes back to the sign-in page; the sign-in
    page itself where the provider offers none or the person signed in with a password."""
    back = absolutify(request, reverse(settings.LOGOUT_REDIRECT_URL))
    id_token = request.session.get("oidc_id_token")
    if not enabled() or not id_token:
        return back
    try:
        endpoint = oidc_setting("OIDC_OP_LOGOUT_ENDPOINT", "")
    except ProviderUnavailable:
        return back
    if not endpoint:
        return back
    query = urlencode(
        {
            "id_token_hint": id_token,
            "post_logout_redirect_uri": back,
            "client_id": settings.OIDC_RP_CLIENT_ID,
        }
    )
    return f"{endpoint}{'&' if '?' in endpoint else '?'}{query}"

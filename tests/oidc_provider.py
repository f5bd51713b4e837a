"""A real OpenID Connect provider for the tests: Canaille (demo/identity_provider.py),
served over HTTP on a free local port from a thread of the test process, with its own
signing keys, users and groups.

It is a full provider: discovery, the authorization code flow with PKCE (Canaille requires
it) and nonce, its login form, consent, JWT access tokens carrying the ``groups`` claim,
the JWKS endpoint, RP-initiated sign-out. The tests change people's groups in it, rotate
its keys, and sign tokens with its key to craft the bad ones (expired, wrong audience,
wrong issuer).
"""

import datetime as dt
import tempfile
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import urlsplit

import jwt
import portpicker
import requests

from demo.identity_provider import CLIENT_ID, SCOPES, LocalIdentityProvider, signing_key

CLIENT_SECRET = "portal-client-secret-for-tests"


class OidcProvider(LocalIdentityProvider):
    """The demo's provider (demo/identity_provider.py) on a free port over a temporary
    folder, served from a thread of the test process; one per process."""

    def __init__(self) -> None:
        self._directory = tempfile.TemporaryDirectory(prefix="oidc-provider-")
        super().__init__(
            Path(self._directory.name),
            portpicker.pick_unused_port(),
            client_secret=CLIENT_SECRET,
            name="Company sign-in (test provider)",
        )
        self.allow_redirects_to("http://testserver")
        self.serve_in_thread()

    def stop(self) -> None:
        super().stop()
        self._directory.cleanup()

    def portal_settings(self) -> dict:
        return {**super().portal_settings(), "OIDC_PROVIDER_NAME": "Company sign-in"}

    def person(self, username: str, *, groups: Iterable[str] = (), password: str | None = None):
        return super().person(username, groups=groups, password=password or password_of(username))

    # --- Tokens ---------------------------------------------------------------------------------

    def discovery(self) -> dict:
        return requests.get(f"{self.url}/.well-known/openid-configuration", timeout=10).json()

    def access_token(self, username: str, password: str | None = None) -> str:
        """An access token the provider issues to ``username`` (the password grant)."""
        response = requests.post(
            self.discovery()["token_endpoint"],
            data={
                "grant_type": "password",
                "username": username,
                "password": password or password_of(username),
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
                "scope": " ".join(SCOPES),
            },
            timeout=10,
        )
        response.raise_for_status()
        return response.json()["access_token"]

    def sign(self, claims: dict, *, key=None, alg: str = "RS256") -> str:
        """``claims`` signed with the provider's current key (or ``key``), as the provider
        would sign them: for tokens the provider can be made to sign only with a clock or
        a configuration the tests cannot change (expired, for another audience)."""
        key = key or self.key
        pem = key.as_pem(private=True)
        return jwt.encode(claims, pem, algorithm=alg, headers={"kid": key.kid})

    def claims_for(self, subject: str, **overrides) -> dict:
        now = int(dt.datetime.now(dt.UTC).timestamp())
        claims = {
            "iss": self.url,
            "aud": [CLIENT_ID],
            "sub": subject,
            "iat": now,
            "exp": now + 3600,
        }
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not None}

    def rotate_keys(self, *, keep_old: bool = True):
        """A new signing key; the old one stays published (inactive) unless ``keep_old`` is
        false, as providers do for the life of the tokens it signed."""
        old, self.key = self.key, signing_key()
        if keep_old:
            self.retired_keys.append(old)
        oidc = self.app.config["CANAILLE_OIDC"]
        oidc["ACTIVE_JWKS"] = [self.key.as_dict(private=True)]
        oidc["INACTIVE_JWKS"] = [k.as_dict(private=True) for k in self.retired_keys]
        return old

    # --- The browser's part of a sign-in, without a browser -------------------------------------

    def authorize(self, authorize_url: str, username: str, password: str | None = None) -> str:
        """Follows ``authorize_url`` as ``username``'s browser would (the provider's sign-in
        form: name, then password) and returns the address the provider sends the browser
        back to: the portal's callback with code and state."""
        session = requests.Session()
        response = session.get(authorize_url, allow_redirects=False, timeout=10)
        for _ in range(10):
            if response.status_code != 302:
                break
            location = response.headers["Location"]
            if not location.startswith(self.url) and location.startswith("http"):
                return location
            url = location if location.startswith("http") else f"{self.url}{location}"
            path = urlsplit(url).path
            if path == "/login":
                response = session.post(url, data={"login": username}, allow_redirects=False)
            elif path.endswith("/password"):
                response = session.post(
                    url,
                    data={"password": password or password_of(username)},
                    allow_redirects=False,
                )
            else:
                response = session.get(url, allow_redirects=False, timeout=10)
        raise AssertionError(
            f"the provider did not send the browser back: {response.status_code} "
            f"{response.text[:500]}"
        )


def password_of(username: str) -> str:
    """The password :meth:`OidcProvider.person` gives ``username`` unless told another."""
    return f"{username}-Correct-Horse-7"


def path_and_query(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}" if parts.query else parts.path

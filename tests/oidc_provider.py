"""A real OpenID Connect provider for the tests: Canaille, served over HTTP on a free local
port in a thread of the test process (pytest-iam's server), with its own signing keys,
users and groups.

It is a full provider: discovery, the authorization code flow with PKCE (Canaille requires
it) and nonce, its login form, consent, JWT access tokens carrying the ``groups`` claim,
the JWKS endpoint, RP-initiated sign-out. The tests change people's groups in it, rotate
its keys, and sign tokens with its key to craft the bad ones (expired, wrong audience,
wrong issuer).
"""

import datetime as dt
import os
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable
from urllib.parse import urlsplit

import jwt
import portpicker
import requests
from joserfc.jwk import JWKRegistry

CLIENT_ID = "gpu-portal"
CLIENT_SECRET = "portal-client-secret-for-tests"
SCOPES = ["openid", "profile", "email", "groups"]


def _signing_key():
    key = JWKRegistry.generate_key("RSA", 2048, parameters={"alg": "RS256", "use": "sig"})
    key.ensure_kid()
    return key


class OidcProvider:
    """Canaille on ``url``; one per test process (Canaille keeps its backend global)."""

    def __init__(self) -> None:
        os.environ["AUTHLIB_INSECURE_TRANSPORT"] = "1"  # plain HTTP on loopback
        from canaille import create_app
        from canaille.backends import Backend
        from pytest_iam import Server

        self._directory = tempfile.TemporaryDirectory(prefix="oidc-provider-")
        self.port = portpicker.pick_unused_port()
        self.url = f"http://localhost:{self.port}"
        self.key = _signing_key()
        self.retired_keys: list = []
        self._last_token: dict[str, int] = {}
        config = {
            "TESTING": True,
            "ENV_FILE": None,
            "SECRET_KEY": str(uuid.uuid4()),
            "WTF_CSRF_ENABLED": False,
            "PREFERRED_URL_SCHEME": "http",
            "SERVER_NAME": f"localhost:{self.port}",
            "CANAILLE": {
                "NAME": "Company sign-in (test provider)",
                # Canaille's SQL backend on a SQLite file: its memory backend ORs query
                # filters, so a second sign-in could redeem another one's code.
                "DATABASE": "sql",
                "JAVASCRIPT": False,
                "ENABLE_PASSWORD_RECOVERY": False,
                "ACL": {"DEFAULT": {"PERMISSIONS": ["use_oidc"], "READ": ["user_name", "groups"]}},
            },
            "CANAILLE_OIDC": {"ACTIVE_JWKS": [self.key.as_dict(private=True)]},
            "CANAILLE_SQL": {"DATABASE_URI": f"sqlite:///{self._directory.name}/canaille.sqlite"},
        }
        self.app = create_app(config=config, env_file=None, env_prefix="PORTAL_TEST_IAM_")
        self.server = Server(self.app, self.port, Backend.instance)
        self._thread = threading.Thread(target=self.server.httpd.serve_forever, daemon=True)
        self._thread.start()
        with self.app.app_context():
            self.client = self.server.models.Client(
                client_id=CLIENT_ID,
                client_secret=CLIENT_SECRET,
                client_name="GPU chargeback portal",
                client_id_issued_at=dt.datetime.now(dt.UTC),
                redirect_uris=["http://testserver/oidc/callback/"],
                post_logout_redirect_uris=["http://testserver/accounts/login/"],
                token_endpoint_auth_method="client_secret_post",
                grant_types=["authorization_code", "refresh_token", "password"],
                response_types=["code"],
                scope=SCOPES,
                id_token_signed_response_alg="RS256",
            )
            self.server.backend.save(self.client)
            self.client.audience = [self.client]
            self.server.backend.save(self.client)

    def stop(self) -> None:
        self.server.httpd.shutdown()
        self._thread.join(5)
        self._directory.cleanup()

    # --- What the portal is told ------------------------------------------------------------

    def portal_settings(self) -> dict:
        return {
            "OIDC_ISSUER": self.url,
            "OIDC_RP_CLIENT_ID": CLIENT_ID,
            "OIDC_RP_CLIENT_SECRET": CLIENT_SECRET,
            "OIDC_API_AUDIENCE": CLIENT_ID,
            "OIDC_PROVIDER_NAME": "Company sign-in",
            # Canaille sends no preferred_username; its subject is the user name.
            "OIDC_USERNAME_CLAIM": "sub",
        }

    def allow_redirects_to(self, portal_url: str) -> None:
        """Registers a portal's callback and sign-out return addresses (a live server's)."""
        base = portal_url.rstrip("/")
        with self.app.app_context():
            client = self.server.backend.get(self.server.models.Client, client_id=CLIENT_ID)
            client.redirect_uris = [*client.redirect_uris, f"{base}/oidc/callback/"]
            client.post_logout_redirect_uris = [
                *client.post_logout_redirect_uris,
                f"{base}/accounts/login/",
            ]
            self.server.backend.save(client)

    # --- People and groups --------------------------------------------------------------------

    def person(self, username: str, *, groups: Iterable[str] = (), password: str | None = None):
        """Creates (or updates) ``username`` with an e-mail and a name, in exactly
        ``groups``; consented to the portal, as a company's trusted application is."""
        models, backend = self.server.models, self.server.backend
        with self.app.app_context():
            user = backend.get(models.User, user_name=username)
            if user is None:
                user = models.User(
                    user_name=username,
                    emails=[f"{username}@example.com"],
                    given_name=username.split("-")[0].capitalize(),
                    family_name="Tester",
                    formatted_name=f"{username.split('-')[0].capitalize()} Tester",
                )
            backend.save(user)
            backend.set_user_password(user, password or password_of(username))
            self._set_groups(user, set(groups))
            self.server.consent(user, self.client)
        return user

    def set_groups(self, username: str, groups: Iterable[str]) -> None:
        models, backend = self.server.models, self.server.backend
        with self.app.app_context():
            user = backend.get(models.User, user_name=username)
            self._set_groups(user, set(groups))

    def _set_groups(self, user, wanted: set[str]) -> None:
        models, backend = self.server.models, self.server.backend
        for group in backend.query(models.Group):
            members = [m for m in group.members if m.id != user.id]
            if group.display_name in wanted:
                members.append(user)
            if len(members) != len(group.members) or group.display_name in wanted:
                group.members = members
                backend.save(group)
        for name in wanted - {g.display_name for g in backend.query(models.Group)}:
            backend.save(models.Group(display_name=name, members=[user]))

    # --- Tokens ---------------------------------------------------------------------------------

    def discovery(self) -> dict:
        return requests.get(f"{self.url}/.well-known/openid-configuration", timeout=10).json()

    def _one_token_a_second(self, username: str) -> None:
        """Canaille's access tokens carry no jti: two for one person in the same second are
        the same string, which its token table refuses. So a person gets one a second."""
        last = self._last_token.get(username)
        if last is not None and int(time.time()) == last:
            time.sleep(1 - time.time() % 1 + 0.01)
        self._last_token[username] = int(time.time())

    def access_token(self, username: str, password: str | None = None) -> str:
        """An access token the provider issues to ``username`` (the password grant)."""
        for attempt in range(3):
            self._one_token_a_second(username)
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
            # A 500 here is Canaille's token table refusing a token it issued twice.
            if response.status_code != 500 or attempt == 2:
                break
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
        old, self.key = self.key, _signing_key()
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
        self._one_token_a_second(username)
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

"""A company identity provider on this machine: Canaille, a full OpenID Connect provider
(discovery, authorization code flow with PKCE and nonce, its own sign-in form, JWT access
tokens with a ``groups`` claim, JWKS, RP-initiated sign-out), keeping its people, groups
and signing key in a SQLite file under one folder.

``make demo`` runs it (``python -m demo.identity_provider``) with the demo's people in
their groups, so that "Sign in with the company account" works as it would against Entra
ID, Okta or Keycloak; the tests run it in a thread (tests/oidc_provider.py).

Canaille comes with the development dependencies (pytest-iam, canaille[sqlite]); a
production portal talks to the company's own provider and never imports this module.
"""

import argparse
import datetime as dt
import json
import os
import secrets
import threading
import uuid
from collections.abc import Iterable
from pathlib import Path

CLIENT_ID = "gpu-portal"
SCOPES = ["openid", "profile", "email", "groups"]


def signing_key():
    from joserfc.jwk import JWKRegistry

    key = JWKRegistry.generate_key("RSA", 2048, parameters={"alg": "RS256", "use": "sig"})
    key.ensure_kid()
    return key


def _unique_access_tokens() -> None:
    """Canaille 0.3 signs its access tokens from the person's claims and the second they
    are issued, with no token ID (jti): two for one person in one second are the same
    string, which its own token table then refuses (a 500 at the token endpoint). Its
    access tokens (made with an empty ``token``) get a random ``jti`` here."""
    from canaille.oidc import provider

    original = provider.generate_id_token
    if getattr(original, "unique_access_tokens", False):
        return

    def generate_id_token(token, user_info, *args, **kwargs):
        if not token:
            user_info = {**user_info, "jti": secrets.token_urlsafe(16)}
        return original(token, user_info, *args, **kwargs)

    generate_id_token.unique_access_tokens = True
    provider.generate_id_token = generate_id_token


class LocalIdentityProvider:
    """Canaille on ``localhost:port`` over ``data_dir``; one per process (Canaille keeps
    its backend in a global)."""

    def __init__(self, data_dir: Path, port: int, *, client_secret: str, name: str) -> None:
        os.environ["AUTHLIB_INSECURE_TRANSPORT"] = "1"  # plain HTTP on this machine
        from canaille import create_app
        from canaille.backends import Backend
        from joserfc.jwk import import_key
        from pytest_iam import Server

        _unique_access_tokens()
        data_dir.mkdir(parents=True, exist_ok=True)
        self.port = port
        self.url = f"http://localhost:{port}"
        self.client_secret = client_secret
        key_file = data_dir / "signing-key.json"
        if key_file.exists():
            self.key = import_key(json.loads(key_file.read_text()))
        else:
            self.key = signing_key()
            key_file.touch(mode=0o600)
            key_file.write_text(json.dumps(self.key.as_dict(private=True)))
        self.retired_keys: list = []
        config = {
            "ENV_FILE": None,
            "SECRET_KEY": str(uuid.uuid4()),
            "WTF_CSRF_ENABLED": False,
            "PREFERRED_URL_SCHEME": "http",
            "SERVER_NAME": f"localhost:{port}",
            "CANAILLE": {
                "NAME": name,
                # Canaille's SQL backend on a SQLite file (its memory backend ORs the
                # filters of a query, so a second sign-in could redeem another's code).
                "DATABASE": "sql",
                "JAVASCRIPT": False,
                "ENABLE_PASSWORD_RECOVERY": False,
                "ACL": {"DEFAULT": {"PERMISSIONS": ["use_oidc"], "READ": ["user_name", "groups"]}},
            },
            "CANAILLE_OIDC": {"ACTIVE_JWKS": [self.key.as_dict(private=True)]},
            "CANAILLE_SQL": {"DATABASE_URI": f"sqlite:///{data_dir / 'canaille.sqlite'}"},
        }
        self.app = create_app(config=config, env_file=None, env_prefix="PORTAL_IDP_")
        self.server = Server(self.app, port, Backend.instance)
        self.models, self.backend = self.server.models, self.server.backend
        with self.app.app_context():
            client = self.backend.get(self.models.Client, client_id=CLIENT_ID)
            if client is None:
                client = self.models.Client(
                    client_id=CLIENT_ID, client_id_issued_at=dt.datetime.now(dt.UTC)
                )
            client.client_secret = client_secret
            client.client_name = "GPU chargeback portal"
            client.redirect_uris = client.redirect_uris or []
            client.post_logout_redirect_uris = client.post_logout_redirect_uris or []
            client.token_endpoint_auth_method = "client_secret_post"  # noqa: S105 (a method)
            client.grant_types = ["authorization_code", "refresh_token", "password"]
            client.response_types = ["code"]
            client.scope = SCOPES
            client.id_token_signed_response_alg = "RS256"  # noqa: S105 (an algorithm)
            self.backend.save(client)
            client.audience = [client]
            self.backend.save(client)
            self.client = client

    # --- Serving ------------------------------------------------------------------------------

    def serve_in_thread(self) -> None:
        self._thread = threading.Thread(target=self.server.httpd.serve_forever, daemon=True)
        self._thread.start()

    def serve_forever(self) -> None:
        self.server.httpd.serve_forever()

    def stop(self) -> None:
        self.server.httpd.shutdown()
        self._thread.join(5)

    # --- What the portal is told --------------------------------------------------------------

    def portal_settings(self) -> dict[str, str]:
        return {
            "OIDC_ISSUER": self.url,
            "OIDC_RP_CLIENT_ID": CLIENT_ID,
            "OIDC_RP_CLIENT_SECRET": self.client_secret,
            "OIDC_API_AUDIENCE": CLIENT_ID,
            # Canaille sends no preferred_username; its subject is the user name.
            "OIDC_USERNAME_CLAIM": "sub",
        }

    def allow_redirects_to(self, portal_url: str) -> None:
        """Registers a portal's callback and sign-out return addresses."""
        base = portal_url.rstrip("/")
        with self.app.app_context():
            client = self.backend.get(self.models.Client, client_id=CLIENT_ID)
            callback, back = f"{base}/oidc/callback/", f"{base}/accounts/login/"
            if callback not in client.redirect_uris:
                client.redirect_uris = [*client.redirect_uris, callback]
            if back not in client.post_logout_redirect_uris:
                client.post_logout_redirect_uris = [*client.post_logout_redirect_uris, back]
            self.backend.save(client)

    # --- People and groups --------------------------------------------------------------------

    def person(
        self,
        username: str,
        *,
        password: str,
        groups: Iterable[str] = (),
        first_name: str | None = None,
        last_name: str = "Tester",
    ):
        """Creates (or updates) ``username`` with an e-mail and a name, in exactly
        ``groups``; consented to the portal, as a company's trusted application is."""
        first_name = first_name or username.split("-")[0].capitalize()
        with self.app.app_context():
            user = self.backend.get(self.models.User, user_name=username)
            if user is None:
                user = self.models.User(user_name=username)
            user.emails = [f"{username}@example.com"]
            user.given_name, user.family_name = first_name, last_name
            user.formatted_name = f"{first_name} {last_name}"
            self.backend.save(user)
            self.backend.set_user_password(user, password)
            self._set_groups(user, set(groups))
            if not self.backend.query(self.models.Consent, subject=user, client=self.client):
                self.server.consent(user, self.client)
        return user

    def set_groups(self, username: str, groups: Iterable[str]) -> None:
        with self.app.app_context():
            user = self.backend.get(self.models.User, user_name=username)
            self._set_groups(user, set(groups))

    def _set_groups(self, user, wanted: set[str]) -> None:
        existing = self.backend.query(self.models.Group)
        for group in existing:
            members = [m for m in group.members if m.id != user.id]
            if group.display_name in wanted:
                members.append(user)
            if [m.id for m in members] != [m.id for m in group.members]:
                group.members = members
                self.backend.save(group)
        for name in sorted(wanted - {g.display_name for g in existing}):
            self.backend.save(self.models.Group(display_name=name, members=[user]))


def main(argv: list[str] | None = None) -> None:
    """Runs the demo's provider: ``python -m demo.identity_provider --port 9400
    --data var/identity-provider --portal-url http://127.0.0.1:8000 --people people.json``
    where the JSON lists ``{"username", "password", "groups", "first_name", "last_name"}``.
    """
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--portal-url", action="append", default=[])
    parser.add_argument("--people", type=Path, required=True)
    parser.add_argument("--client-secret", default=os.environ.get("OIDC_RP_CLIENT_SECRET", ""))
    parser.add_argument("--name", default="Company sign-in (demo)")
    args = parser.parse_args(argv)
    if not args.client_secret:
        parser.error("--client-secret (or OIDC_RP_CLIENT_SECRET) is required")
    provider = LocalIdentityProvider(
        args.data, args.port, client_secret=args.client_secret, name=args.name
    )
    for url in args.portal_url:
        provider.allow_redirects_to(url)
    for person in json.loads(args.people.read_text()):
        provider.person(
            person["username"],
            password=person["password"],
            groups=person.get("groups", []),
            first_name=person.get("first_name"),
            last_name=person.get("last_name", "Tester"),
        )
    print(f"Identity provider ready at {provider.url}", flush=True)
    provider.serve_forever()


if __name__ == "__main__":
    main()

"""The identity provider's access tokens on the API: a valid one reads exactly its
person's scope; every other is a 401 that says what is wrong with it. The provider is a
real one (Canaille); its keys are read from its JWKS endpoint and followed through a
rotation."""

import base64
import datetime as dt
import json

import jwt
import pytest
from rest_framework.test import APIClient

from accounts import bearer
from accounts.models import RoleMapping
from core.roles import FINANCE
from demo.identity_provider import CLIENT_ID, signing_key

pytestmark = pytest.mark.django_db


@pytest.fixture
def people(oidc, world):
    RoleMapping.objects.create(group="gpu-finance", role=FINANCE)
    RoleMapping.objects.create(group="mkt-leads", role="manager", department=world.marketing)
    oidc.person("bea-finance", groups=["gpu-finance"])
    oidc.person("ben-manager", groups=["mkt-leads"])
    return oidc


def _get(token: str, path: str = "/api/v1/departments/"):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client.get(path)


def _refused(token: str, *words: str) -> str:
    response = _get(token)
    assert response.status_code == 401, response.content
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'
    detail = response.json()["detail"]
    for word in words:
        assert word in detail, detail
    return detail


def _slugs(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [d["slug"] for d in response.json()["results"]]


def test_a_valid_token_reads_exactly_its_persons_scope(people):
    assert _slugs(_get(people.access_token("ben-manager"))) == ["marketing"]
    assert _slugs(_get(people.access_token("bea-finance"))) == ["marketing", "training"]
    assert (
        _get(people.access_token("ben-manager"), "/api/v1/departments/training/").status_code == 404
    )


def test_the_first_token_of_someone_new_applies_their_groups_and_a_later_one_follows_them(
    people,
):
    token = people.access_token("ben-manager")
    assert _slugs(_get(token)) == ["marketing"]
    people.set_groups("ben-manager", [])
    # The token he holds still says mkt-leads: it is what the provider vouched for.
    assert _slugs(_get(token)) == ["marketing"]
    assert _slugs(_get(people.access_token("ben-manager"))) == []


def test_an_expired_token_is_refused_saying_when(people):
    past = int((dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)).timestamp())
    token = people.sign(people.claims_for("bea-finance", iat=past - 3600, exp=past))
    _refused(token, "expired at")


def test_a_token_for_another_audience_is_refused(people):
    token = people.sign(people.claims_for("bea-finance", aud=["payroll-app"]))
    _refused(token, "payroll-app", "not for this portal", CLIENT_ID)


def test_a_token_from_another_issuer_is_refused(people):
    token = people.sign(people.claims_for("bea-finance", iss="https://login.evil.example"))
    _refused(token, "issued by https://login.evil.example", people.url)


def test_a_token_with_a_tampered_payload_is_refused(people):
    token = people.access_token("ben-manager")
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["groups"] = ["gpu-finance"]
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    _refused(f"{header}.{forged}.{signature}", "signature does not verify")


def test_a_token_with_a_tampered_signature_is_refused(people):
    token = people.access_token("ben-manager")
    head, _, signature = token.rpartition(".")
    flipped = ("A" if signature[10] != "A" else "B").join([signature[:10], signature[11:]])
    _refused(f"{head}.{flipped}", "signature does not verify")


def test_a_token_signed_with_a_key_the_provider_does_not_publish_is_refused(people):
    token = people.sign(people.claims_for("bea-finance"), key=signing_key())
    _refused(token, "does not publish")


def test_a_rotated_key_is_followed_without_a_restart(people, settings):
    settings.OIDC_JWKS_MIN_REFRESH_S = 0
    before = people.access_token("bea-finance")
    assert _get(before).status_code == 200  # the portal now holds the first key
    old = people.rotate_keys(keep_old=True)
    after = people.access_token("bea-finance")
    assert jwt.get_unverified_header(after)["kid"] == people.key.kid != old.kid
    assert _get(after).status_code == 200  # a new kid: the keys are read again
    assert _get(before).status_code == 200  # the old key is still published
    people.retired_keys.clear()
    people.rotate_keys(keep_old=False)
    # Keys are kept OIDC_DISCOVERY_CACHE_S; once read again, the withdrawn one is gone.
    settings.OIDC_DISCOVERY_CACHE_S = 0
    _refused(before, "does not publish")


def test_unknown_keys_do_not_make_the_portal_read_the_providers_keys_on_every_call(
    people, settings, monkeypatch
):
    settings.OIDC_JWKS_MIN_REFRESH_S = 3600
    reads = []
    real_read = bearer._read_keys
    monkeypatch.setattr(bearer, "_read_keys", lambda uri: reads.append(uri) or real_read(uri))
    assert _get(people.access_token("bea-finance")).status_code == 200
    for _ in range(5):
        _refused(
            people.sign(people.claims_for("bea-finance"), key=signing_key()), "does not publish"
        )
    assert len(reads) == 1


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda p: "not-a-jwt-at-all", ["neither a personal API token"]),
        (lambda p: jwt.encode({"sub": "x"}, "secret", algorithm="HS256"), ["'HS256'"]),
        (
            lambda p: jwt.encode(p.claims_for("bea-finance"), None, algorithm="none"),
            ["'none'"],
        ),
        (
            lambda p: jwt.encode(
                p.claims_for("bea-finance"), p.key.as_pem(private=True), algorithm="RS256"
            ),
            ["no signing key"],
        ),
        (lambda p: p.sign(p.claims_for("bea-finance", exp=None)), ["'exp'"]),
        (lambda p: p.sign(p.claims_for("bea-finance", aud=None)), ["'aud'"]),
        (
            lambda p: p.sign(
                p.claims_for("bea-finance", nbf=int(dt.datetime.now(dt.UTC).timestamp()) + 3600)
            ),
            ["not valid yet"],
        ),
        (lambda p: p.sign(p.claims_for("bea-finance", exp=10**20)), []),
    ],
    ids=["garbage", "hs256", "alg-none", "no-kid", "no-exp", "no-aud", "not-yet", "far-exp"],
)
def test_malformed_tokens_are_refused_with_the_reason(people, make, words):
    token = make(people)
    response = _get(token)
    if not words:  # an absurd expiry is still a signed, valid token: no 500 either way
        assert response.status_code in (200, 401)
        return
    _refused(token, *words)


def test_a_switched_off_account_is_refused(people, django_user_model):
    token = people.access_token("ben-manager")
    assert _get(token).status_code == 200
    django_user_model.objects.filter(username="ben-manager").update(is_active=False)
    _refused(token, "switched off")


def test_a_provider_that_does_not_answer_gives_a_401_saying_so(people, settings):
    token = people.access_token("ben-manager")
    settings.OIDC_ISSUER = "http://127.0.0.1:9"
    from django.core.cache import cache

    cache.clear()
    bearer.forget_keys()
    _refused(token, "does not answer")


def test_without_a_provider_a_jwt_is_refused_plainly(people, settings):
    token = people.access_token("ben-manager")
    settings.OIDC_ISSUER = ""
    _refused(token, "no identity provider is set up")

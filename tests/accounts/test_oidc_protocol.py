"""The sign-in follows the authorization code flow with PKCE, state and nonce, and what
does not fit it (a foreign state, a replayed callback, a provider's refusal, a provider
that does not answer) ends on the sign-in page with the reason, signed out."""

import base64
import hashlib

import pytest
import requests

from tests.accounts.sign_in import query, sign_in, start
from tests.oidc_provider import CLIENT_ID, path_and_query

pytestmark = pytest.mark.django_db


def _signed_in(client) -> bool:
    return client.get("/").status_code == 200


def test_the_authorization_request_carries_state_nonce_and_an_s256_challenge(oidc, client):
    params = query(start(client))
    assert params["response_type"] == "code" and params["client_id"] == CLIENT_ID
    assert params["code_challenge_method"] == "S256"
    assert len(params["state"]) >= 32 and len(params["nonce"]) >= 32
    assert "groups" in params["scope"].split()
    kept = client.session["oidc_states"][params["state"]]
    assert kept["nonce"] == params["nonce"]
    challenge = (
        base64.urlsafe_b64encode(hashlib.sha256(kept["code_verifier"].encode()).digest())
        .rstrip(b"=")
        .decode()
    )
    assert params["code_challenge"] == challenge


def test_the_provider_refuses_a_code_redeemed_without_its_verifier(oidc, client):
    """PKCE is enforced by the provider: the code alone buys nothing."""
    oidc.person("pia-pkce")
    back = oidc.authorize(start(client), "pia-pkce")
    response = requests.post(
        oidc.discovery()["token_endpoint"],
        data={
            "grant_type": "authorization_code",
            "code": query(back)["code"],
            "redirect_uri": "http://testserver/oidc/callback/",
            "client_id": CLIENT_ID,
            "client_secret": oidc.portal_settings()["OIDC_RP_CLIENT_SECRET"],
        },
        timeout=10,
    )
    assert response.status_code == 400
    assert "code_verifier" in response.text


def test_a_callback_this_browser_did_not_start_is_refused(oidc, client):
    oidc.person("sam-state")
    back = oidc.authorize(start(client), "sam-state")
    stranger = client.__class__()
    stranger.get("/accounts/login/")  # a session of its own, without the state
    start(stranger)
    response = stranger.get(path_and_query(back))
    assert response["Location"] == "/accounts/login/"
    assert (
        "did not match the sign-in this browser started"
        in stranger.get("/accounts/login/").content.decode()
    )
    assert not _signed_in(stranger)


def test_a_callback_replayed_is_refused(oidc, client):
    oidc.person("ray-replay")
    back = oidc.authorize(start(client), "ray-replay")
    assert client.get(path_and_query(back))["Location"] == "/"
    client.post("/accounts/logout/")
    response = client.get(path_and_query(back))
    assert response["Location"] == "/accounts/login/"
    assert not _signed_in(client)


def test_the_providers_refusal_is_shown(oidc, client):
    params = query(start(client))
    response = client.get(
        f"/oidc/callback/?error=access_denied&error_description=User+said+no&state={params['state']}"
    )
    assert response["Location"] == "/accounts/login/"
    page = client.get("/accounts/login/").content.decode()
    assert "the identity provider said: User said no" in page


def test_a_provider_that_does_not_answer_is_said_plainly(oidc, client, settings):
    settings.OIDC_ISSUER = "http://127.0.0.1:9"  # nothing listens there
    response = client.get("/oidc/authenticate/")
    assert response["Location"] == "/accounts/login/"
    page = client.get("/accounts/login/").content.decode()
    assert "is not available right now" in page


def test_next_is_kept_through_the_round_trip(oidc, client):
    oidc.person("nel-next")
    response = sign_in(client, oidc, "nel-next", next_url="/jobs/")
    assert response["Location"] == "/jobs/"


def test_an_outside_next_is_not_followed(oidc, client):
    oidc.person("ned-next")
    response = sign_in(client, oidc, "ned-next", next_url="https://evil.example/")
    assert response["Location"] == "/"


def test_sign_out_ends_the_session_at_the_provider_too(oidc, client):
    oidc.person("oli-out")
    sign_in(client, oidc, "oli-out")
    id_token = client.session["oidc_id_token"]
    response = client.post("/accounts/logout/")
    target = response["Location"]
    assert target.startswith(oidc.discovery()["end_session_endpoint"])
    params = query(target)
    assert params["id_token_hint"] == id_token
    assert params["post_logout_redirect_uri"] == "http://testserver/accounts/login/"
    assert not _signed_in(client)
    # The provider takes the request (it knows the hint and the return address).
    answer = requests.get(target, timeout=10, allow_redirects=False)
    assert answer.status_code in (200, 302), answer.text[:300]


def test_a_password_sign_out_stays_in_the_portal(world, client):
    client.force_login(world.user("finance"))
    assert client.post("/accounts/logout/")["Location"] == "http://testserver/accounts/login/"


def test_without_a_provider_there_is_no_button_and_no_route(db, client, settings):
    settings.OIDC_ISSUER = ""
    assert "Sign in with" not in client.get("/accounts/login/").content.decode()
    assert client.get("/oidc/authenticate/").status_code == 404
    assert client.get("/oidc/callback/?code=x&state=y").status_code == 404


def test_the_sign_in_pages_offer_the_provider(oidc, client):
    page = client.get("/accounts/login/?next=/jobs/").content.decode()
    assert 'href="/oidc/authenticate/?next=/jobs/"' in page
    assert "Sign in with Company sign-in" in page
    admin_page = client.get("/admin/login/?next=/admin/").content.decode()
    assert "Sign in with Company sign-in" in admin_page

from django.test import Client

from accounts.models import ApiToken
from tests.accounts.conftest import make_token, with_token


def test_the_revoke_button_revokes_the_token_at_once(world, client):
    owner = world.user("manager")
    new = make_token(owner, name="ci pipeline")
    client.force_login(owner)

    response = client.post(f"/accounts/tokens/{new.token.pk}/revoke/", follow=True)

    assert response.redirect_chain == [("/accounts/tokens/", 302)]
    assert "The token ci pipeline (" in response.content.decode()
    token = ApiToken.objects.get(pk=new.token.pk)
    assert token.revoked_at is not None and token.revoked_by == owner
    assert token.status == "revoked"
    assert with_token(new.secret).get("/api/v1/departments/").status_code == 401


def test_the_revoke_button_needs_the_csrf_token(world):
    owner = world.user("manager")
    new = make_token(owner)
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(owner)
    assert browser.post(f"/accounts/tokens/{new.token.pk}/revoke/").status_code == 403
    assert ApiToken.objects.get(pk=new.token.pk).revoked_at is None


def test_the_api_revokes_ones_own_token(world, api_client):
    owner = world.user("member")
    new = make_token(owner)
    api_client.force_login(owner)

    response = api_client.post(f"/api/v1/tokens/{new.token.pk}/revoke/")

    assert response.status_code == 200
    assert response.json()["status"] == "revoked"
    assert response.json()["revoked_at"] is not None
    assert with_token(new.secret).get("/api/v1/departments/").status_code == 401


def test_a_token_revokes_another_token_of_its_owner(world):
    owner = world.user("member")
    script, leaked = make_token(owner), make_token(owner, name="leaked")
    response = with_token(script.secret).post(f"/api/v1/tokens/{leaked.token.pk}/revoke/")
    assert response.status_code == 200
    assert with_token(leaked.secret).get("/api/v1/departments/").status_code == 401
    assert with_token(script.secret).get("/api/v1/departments/").status_code == 200


def test_revoking_twice_keeps_the_first_revocation(world, api_client):
    owner = world.user("member")
    new = make_token(owner)
    api_client.force_login(owner)
    first = api_client.post(f"/api/v1/tokens/{new.token.pk}/revoke/").json()["revoked_at"]
    second = api_client.post(f"/api/v1/tokens/{new.token.pk}/revoke/").json()["revoked_at"]
    assert first == second

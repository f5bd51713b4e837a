from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

QUOTA = {"department": "marketing", "kind": "gpus", "limit": "2", "enforcement": "soft"}


def test_anonymous_api_clients_are_told_how_to_authenticate(world, api_client):
    response = api_client.get("/api/v1/departments/")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'


def test_a_session_write_without_csrf_token_is_refused(world):
    browser = APIClient(enforce_csrf_checks=True)
    browser.force_login(world.user("it_admin"))
    response = browser.post("/api/v1/quotas/", QUOTA, format="json")
    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]
    assert world.marketing.quotas.count() == 1


def test_a_token_write_needs_no_csrf_token(world):
    token = Token.objects.create(user=world.user("it_admin"))
    machine = APIClient(enforce_csrf_checks=True)
    machine.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    assert machine.post("/api/v1/quotas/", QUOTA, format="json").status_code == 201


def test_an_unknown_token_is_refused(world):
    machine = APIClient()
    machine.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")
    assert machine.get("/api/v1/departments/").status_code == 401


def test_an_inactive_users_token_is_refused(world):
    user = world.user("finance")
    token = Token.objects.create(user=user)
    user.is_active = False
    user.save()
    machine = APIClient()
    machine.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    assert machine.get("/api/v1/departments/").status_code == 401

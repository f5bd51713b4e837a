from accounts.models import ApiToken
from tests.accounts.conftest import make_token, with_token

FIELDS = {
    "id",
    "name",
    "prefix",
    "read_only",
    "status",
    "created_at",
    "expires_at",
    "last_used_at",
    "last_used_from",
    "revoked_at",
}


def test_making_a_token_answers_201_with_its_secret_once(world, api_client, settings):
    api_client.force_login(world.user("manager"))

    response = api_client.post("/api/v1/tokens/", {"name": "backup"}, format="json")

    assert response.status_code == 201
    body = response.json()
    assert set(body) == FIELDS | {"token"}
    assert body["token"].startswith("gcp_") and len(body["token"]) == 47
    assert body["token"].startswith(body["prefix"])
    assert (body["name"], body["read_only"], body["status"]) == ("backup", False, "active")
    token = ApiToken.objects.get(pk=body["id"])
    assert (token.expires_at - token.created_at).days == settings.API_TOKEN_DEFAULT_DAYS
    assert with_token(body["token"]).get("/api/v1/departments/").status_code == 200


def test_neither_the_list_nor_a_token_shows_its_secret_or_hash(world, api_client):
    new = make_token(world.user("manager"))
    api_client.force_login(world.user("manager"))
    detail = f"/api/v1/tokens/{new.token.pk}/"
    for path in ("/api/v1/tokens/", detail, "/api/v1/tokens/?format=csv"):
        response = api_client.get(path)
        assert response.status_code == 200
        text = response.content.decode()
        assert new.secret not in text and new.token.key_hash not in text
    listed = api_client.get("/api/v1/tokens/").json()["results"]
    assert [set(row) for row in listed] == [FIELDS]


def test_a_token_made_read_only_by_the_api_reads_only(world, api_client):
    api_client.force_login(world.user("it_admin"))
    body = api_client.post(
        "/api/v1/tokens/", {"name": "grafana", "days": 7, "read_only": True}, format="json"
    ).json()
    assert body["read_only"] is True
    script = with_token(body["token"])
    assert script.get("/api/v1/quotas/").status_code == 200
    assert script.post("/api/v1/quotas/", {}, format="json").status_code == 403

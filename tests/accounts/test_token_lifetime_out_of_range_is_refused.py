import pytest

from accounts.models import ApiToken


@pytest.mark.parametrize("days", [0, -1, 367, 10**6])
def test_a_lifetime_outside_1_to_the_maximum_answers_400_naming_days(world, api_client, days):
    api_client.force_login(world.user("member"))
    response = api_client.post("/api/v1/tokens/", {"name": "x", "days": days}, format="json")
    assert response.status_code == 400
    assert list(response.json()) == ["days"]
    assert not ApiToken.objects.exists()


@pytest.mark.parametrize("days", [1, 366])
def test_the_lifetimes_at_the_edges_are_taken(world, api_client, days):
    api_client.force_login(world.user("member"))
    response = api_client.post("/api/v1/tokens/", {"name": "x", "days": days}, format="json")
    assert response.status_code == 201
    token = ApiToken.objects.get(pk=response.json()["id"])
    assert (token.expires_at - token.created_at).days == days


def test_the_maximum_is_read_from_the_settings_at_each_request(world, api_client, settings):
    settings.API_TOKEN_MAX_DAYS = 30
    api_client.force_login(world.user("member"))
    refused = api_client.post("/api/v1/tokens/", {"name": "x", "days": 31}, format="json")
    assert refused.status_code == 400
    assert refused.json()["days"] == ["Ensure this value is less than or equal to 30."]
    assert (
        api_client.post("/api/v1/tokens/", {"name": "x", "days": 30}, format="json").status_code
        == 201
    )


def test_the_page_refuses_the_same_lifetimes(world, client, settings):
    settings.API_TOKEN_MAX_DAYS = 30
    client.force_login(world.user("member"))
    html = client.post("/accounts/tokens/", {"name": "x", "days": "31"}).content.decode()
    assert "Ensure this value is less than or equal to 30." in html
    assert not ApiToken.objects.exists()

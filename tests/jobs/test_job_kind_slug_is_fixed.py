"""A job kind's slug cannot change: quotas name kinds by it."""

from tests.conftest import client_as


def test_a_kinds_slug_cannot_change(world, api_client):
    client = client_as(api_client, world, "it_admin")
    response = client.patch("/api/v1/job-kinds/lipsync-render/", {"slug": "wav2lip"}, format="json")
    assert response.status_code == 400
    assert "cannot change" in response.json()["slug"][0]

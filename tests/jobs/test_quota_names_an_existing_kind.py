"""A quota narrowed to a job kind must name a kind that exists (checked by the jobs app,
so that departments never imports it), in the admin and the API alike."""

from tests.conftest import client_as


def test_quota_for_an_unknown_kind_is_refused_with_the_known_ones(world, api_client):
    client = client_as(api_client, world, "it_admin")
    response = client.post(
        "/api/v1/quotas/",
        {"department": "marketing", "kind": "jobs_day", "job_kind": "lipsinc", "limit": "5"},
        format="json",
    )
    assert response.status_code == 400
    assert response.json()["job_kind"] == ["No job kind “lipsinc”. Known kinds: lipsync-render."]


def test_quota_for_an_existing_kind_is_accepted(world, api_client):
    client = client_as(api_client, world, "it_admin")
    response = client.post(
        "/api/v1/quotas/",
        {"department": "training", "kind": "jobs_day", "job_kind": "lipsync-render", "limit": "5"},
        format="json",
    )
    assert response.status_code == 201

"""A repeated idempotency key returns the first job, and only to its own department."""

from tests.conftest import client_as


def test_an_idempotency_key_never_returns_someone_elses_job(world, api_client):
    body = {"department": "marketing", "kind": "lipsync-render", "tier": "batch", "params": {}}
    first = client_as(api_client, world, "member").post(
        "/api/v1/jobs/", {**body, "idempotency_key": "demo-1"}, format="json"
    )
    assert first.status_code == 201
    other = type(api_client)()
    answer = client_as(other, world, "manager").post(
        "/api/v1/jobs/", {**body, "idempotency_key": "demo-1"}, format="json"
    )
    assert answer.status_code == 400
    assert "already used for another person's job" in answer.json()["idempotency_key"][0]
    assert "params" not in answer.json()

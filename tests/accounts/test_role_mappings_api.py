"""IT keeps the mapping of the provider's groups to roles over the API (and the admin);
finance reads it; nobody else sees it. A mapping is refused with a clear 400 when its
department does not fit its role."""

import pytest

from accounts.models import RoleMapping
from tests.conftest import client_as

pytestmark = pytest.mark.django_db

URL = "/api/v1/role-mappings/"


@pytest.mark.parametrize(
    ("role", "reads", "writes"),
    [
        ("anonymous", 401, 401),
        ("member", 404, 403),
        ("manager", 404, 403),
        ("other_manager", 404, 403),
        ("finance", 200, 403),
        ("it_admin", 200, 201),
    ],
)
def test_who_reads_and_who_writes_the_mappings(world, api_client, role, reads, writes):
    mapping = RoleMapping.objects.create(
        group="mkt-leads", role="manager", department=world.marketing
    )
    client = client_as(api_client, world, role)
    assert client.get(f"{URL}{mapping.pk}/").status_code == reads
    listed = client.get(URL)
    if reads == 200:
        assert [m["group"] for m in listed.json()["results"]] == ["mkt-leads"]
    elif role != "anonymous":
        assert listed.json()["results"] == []
    created = client.post(
        URL, {"group": "trn-staff", "role": "member", "department": "training"}, format="json"
    )
    assert created.status_code == writes
    assert RoleMapping.objects.filter(group="trn-staff").exists() == (writes == 201)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"group": "g", "role": "manager"}, "__all__"),
        ({"group": "g", "role": "finance", "department": "marketing"}, "__all__"),
        ({"group": "g", "role": "owner"}, "role"),
        ({"group": "", "role": "finance"}, "group"),
        ({"group": "g" * 256, "role": "finance"}, "group"),
        ({"group": "g", "role": "member", "department": "no-such-department"}, "department"),
        ({"group": ["a"], "role": "finance"}, "group"),
    ],
)
def test_a_mapping_that_does_not_fit_is_refused_with_the_field(world, api_client, body, field):
    client = client_as(api_client, world, "it_admin")
    response = client.post(URL, body, format="json")
    assert response.status_code == 400, response.content
    errors = response.json()
    assert field in errors or field in errors.get("errors", {}) or field == "__all__", errors
    assert not RoleMapping.objects.exists()


def test_the_same_mapping_twice_is_refused(world, api_client):
    client = client_as(api_client, world, "it_admin")
    body = {"group": "fin", "role": "finance"}
    assert client.post(URL, body, format="json").status_code == 201
    response = client.post(URL, body, format="json")
    assert response.status_code == 400
    assert "already gives this role" in response.content.decode()
    assert RoleMapping.objects.count() == 1

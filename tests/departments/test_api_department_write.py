import pytest

from departments.models import Department, Namespace
from tests.conftest import client_as

NEW = {"name": "Research", "slug": "research", "cost_centre": "CC-7000"}


@pytest.fixture
def it_admin(world, api_client):
    return client_as(api_client, world, "it_admin")


def test_it_admin_creates_a_department_with_its_namespaces(it_admin):
    response = it_admin.post(
        "/api/v1/departments/",
        {**NEW, "namespaces": ["dept-research", "dept-research-gpu"]},
        format="json",
    )
    assert response.status_code == 201
    assert response.json()["namespaces"] == ["dept-research", "dept-research-gpu"]
    assert sorted(
        Namespace.objects.filter(department__slug="research").values_list("name", flat=True)
    ) == ["dept-research", "dept-research-gpu"]


def test_a_namespace_of_another_department_is_refused_and_nothing_is_created(it_admin):
    response = it_admin.post(
        "/api/v1/departments/",
        {**NEW, "namespaces": ["dept-research", "dept-marketing"]},
        format="json",
    )
    assert response.status_code == 400
    assert response.json() == {"namespaces": ["dept-marketing already belongs to Marketing."]}
    assert not Department.objects.filter(slug="research").exists()
    assert not Namespace.objects.filter(name="dept-research").exists()


def test_an_invalid_namespace_name_is_a_field_error(it_admin):
    response = it_admin.post(
        "/api/v1/departments/", {**NEW, "namespaces": ["Research_NS"]}, format="json"
    )
    assert response.status_code == 400
    assert list(response.json()["namespaces"]) == ["0"]


def test_patching_namespaces_replaces_the_set(world, it_admin):
    response = it_admin.patch(
        "/api/v1/departments/marketing/", {"namespaces": ["dept-marketing-video"]}, format="json"
    )
    assert response.status_code == 200
    assert list(world.marketing.namespaces.values_list("name", flat=True)) == [
        "dept-marketing-video"
    ]


def test_deactivating_keeps_the_department_and_its_rules(world, it_admin):
    response = it_admin.patch("/api/v1/departments/marketing/", {"active": False}, format="json")
    assert response.status_code == 200
    world.marketing.refresh_from_db()
    assert world.marketing.active is False
    assert world.marketing.quotas.count() == 1 and world.marketing.namespaces.count() == 1


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"slug": "marketing"}, "slug"),
        ({"name": "Marketing"}, "name"),
        ({"slug": "not a slug"}, "slug"),
        ({"cost_centre": ""}, "cost_centre"),
        ({"parent": "nowhere"}, "parent"),
    ],
)
def test_bad_department_fields_are_named(world, it_admin, payload, field):
    response = it_admin.post("/api/v1/departments/", {**NEW, **payload}, format="json")
    assert response.status_code == 400
    assert field in response.json()
    assert Department.objects.count() == 2

"""Lists, filters and exports show a user only their own departments' objects."""

import csv
import io

import pytest

from tests.conftest import client_as


def _slugs(response):
    return sorted(row["slug"] for row in response.json()["results"])


def _rows(response):
    return list(csv.DictReader(io.StringIO(response.content.decode())))


@pytest.mark.parametrize(
    ("role", "departments", "my_role"),
    [
        ("member", ["marketing"], "member"),
        ("manager", ["marketing"], "manager"),
        ("other_manager", ["training"], "manager"),
        ("finance", ["marketing", "training"], None),
        ("it_admin", ["marketing", "training"], None),
    ],
)
def test_department_list_holds_only_the_users_departments(
    world, api_client, role, departments, my_role
):
    response = client_as(api_client, world, role).get("/api/v1/departments/")
    assert _slugs(response) == departments
    assert {row["my_role"] for row in response.json()["results"]} == {my_role}


@pytest.mark.parametrize(
    ("path", "key"),
    [
        ("/api/v1/quotas/", "department"),
        ("/api/v1/service-levels/", "department"),
    ],
)
def test_quota_and_sla_lists_hold_only_the_users_departments(world, api_client, path, key):
    manager = client_as(api_client, world, "manager")
    assert {row[key] for row in manager.get(path).json()["results"]} == {"marketing"}
    rows = _rows(manager.get(path + "?format=csv"))
    assert rows and {row[key] for row in rows} == {"marketing"}


def test_filtering_by_another_department_is_refused_like_an_unknown_one(world, api_client):
    manager = client_as(api_client, world, "manager")
    foreign = manager.get("/api/v1/quotas/?department=training")
    unknown = manager.get("/api/v1/quotas/?department=no-such-department")
    assert foreign.status_code == unknown.status_code == 400
    assert foreign.json()["department"] == [
        "No department “training” among the departments you can see."
    ]


def test_filtering_by_another_departments_namespace_finds_nothing(world, api_client):
    manager = client_as(api_client, world, "manager")
    assert manager.get("/api/v1/departments/?namespace=dept-training").json()["count"] == 0
    finance = client_as(type(api_client)(), world, "finance")
    assert _slugs(finance.get("/api/v1/departments/?namespace=dept-training")) == ["training"]


def test_filters_narrow_the_list(world, api_client):
    finance = client_as(api_client, world, "finance")
    by_class = finance.get("/api/v1/service-levels/?gpu_class=a100").json()["results"]
    assert [(sla["department"], sla["tier"]) for sla in by_class] == [("training", "interactive")]
    by_kind = finance.get("/api/v1/quotas/?department=marketing&kind=jobs_day").json()["results"]
    assert [(q["department"], q["job_kind"]) for q in by_kind] == [("marketing", "lipsync-render")]
    assert finance.get("/api/v1/quotas/?kind=gpus").json()["count"] == 0


def test_csv_export_has_the_serializer_columns_and_a_file_name(world, api_client):
    response = client_as(api_client, world, "finance").get("/api/v1/departments/?format=csv")
    assert response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"] == 'attachment; filename="departments.csv"'
    header = response.content.decode().splitlines()[0]
    assert header == (
        "slug,name,cost_centre,billing_contact_email,parent,namespaces,active,my_role,"
        "created_at,updated_at"
    )
    assert [(r["slug"], r["namespaces"]) for r in _rows(response)] == [
        ("marketing", "dept-marketing"),
        ("training", "dept-training"),
    ]


def test_csv_export_is_the_whole_table_not_one_page(world, api_client):
    finance = client_as(api_client, world, "finance")
    json_page = finance.get("/api/v1/departments/?page_size=1").json()
    assert len(json_page["results"]) == 1 and json_page["count"] == 2
    assert len(_rows(finance.get("/api/v1/departments/?format=csv&page_size=1"))) == 2

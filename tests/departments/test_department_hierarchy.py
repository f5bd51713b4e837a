import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from departments.models import Department, Membership
from tests.factories import DepartmentFactory, MembershipFactory

pytestmark = pytest.mark.django_db


def test_database_refuses_a_department_that_is_its_own_parent():
    department = DepartmentFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        Department.objects.filter(pk=department.pk).update(parent=department)


def test_validation_refuses_a_loop_in_the_hierarchy():
    top = DepartmentFactory(name="Operations")
    middle = DepartmentFactory(name="Support", parent=top)
    bottom = DepartmentFactory(name="Virtual agent", parent=middle)
    top.parent = bottom
    with pytest.raises(ValidationError) as refused:
        top.full_clean()
    assert refused.value.message_dict["parent"] == [
        "Virtual agent is below Operations; the hierarchy would loop."
    ]


def test_api_refuses_a_loop_and_keeps_the_hierarchy(world, api_client):
    child = DepartmentFactory(slug="video", name="Video", parent=world.marketing)
    api_client.force_login(world.user("it_admin"))
    response = api_client.patch(
        "/api/v1/departments/marketing/", {"parent": "video"}, format="json"
    )
    assert response.status_code == 400
    assert "parent" in response.json()
    world.marketing.refresh_from_db()
    assert world.marketing.parent is None
    assert child.parent == world.marketing


def test_a_parent_the_user_cannot_see_is_not_named(world, api_client):
    video = DepartmentFactory(slug="video", name="Video", parent=world.training)
    MembershipFactory(user=world.user("manager"), department=video, role=Membership.Role.MANAGER)

    api_client.force_login(world.user("manager"))
    assert api_client.get("/api/v1/departments/video/").json()["parent"] is None

    api_client.force_login(world.user("finance"))
    assert api_client.get("/api/v1/departments/video/").json()["parent"] == "training"

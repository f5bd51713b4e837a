import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from departments.models import Namespace
from departments.services import department_set_namespaces
from tests.factories import DepartmentFactory, NamespaceFactory

pytestmark = pytest.mark.django_db


def test_database_refuses_a_namespace_for_a_second_department():
    NamespaceFactory(name="dept-shared")
    with pytest.raises(IntegrityError), transaction.atomic():
        Namespace.objects.create(name="dept-shared", department=DepartmentFactory())


@pytest.mark.parametrize("name", ["Dept_Marketing", "-leading", "trailing-", "with.dot", ""])
def test_database_refuses_a_name_kubernetes_would_refuse(name):
    with pytest.raises(IntegrityError), transaction.atomic():
        Namespace.objects.create(name=name, department=DepartmentFactory())


def test_setting_namespaces_refuses_one_owned_elsewhere_and_changes_nothing():
    owner = DepartmentFactory(name="Marketing")
    NamespaceFactory(name="dept-marketing", department=owner)
    claimant = DepartmentFactory()
    NamespaceFactory(name="dept-claimant", department=claimant)

    with pytest.raises(ValidationError) as refused:
        department_set_namespaces(department=claimant, namespaces=["dept-new", "dept-marketing"])

    assert refused.value.message_dict == {
        "namespaces": ["dept-marketing already belongs to Marketing."]
    }
    assert list(claimant.namespaces.values_list("name", flat=True)) == ["dept-claimant"]
    assert Namespace.objects.get(name="dept-marketing").department == owner


def test_setting_namespaces_adds_the_new_and_removes_the_missing():
    department = DepartmentFactory()
    NamespaceFactory(name="dept-old", department=department)
    NamespaceFactory(name="dept-kept", department=department)

    department_set_namespaces(
        department=department, namespaces=["dept-kept", "dept-new", "dept-new"]
    )

    assert sorted(department.namespaces.values_list("name", flat=True)) == ["dept-kept", "dept-new"]


def test_setting_namespaces_names_each_invalid_one():
    with pytest.raises(ValidationError) as refused:
        department_set_namespaces(department=DepartmentFactory(), namespaces=["ok-ns", "Bad_NS"])
    (message,) = refused.value.message_dict["namespaces"]
    assert message.startswith("Bad_NS: A namespace name has lower-case letters")

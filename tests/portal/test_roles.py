import pytest
from django.contrib.auth.models import Group

from core.roles import FINANCE, IT_ADMIN

pytestmark = pytest.mark.django_db

MODELS = [
    "department",
    "namespace",
    "membership",
    "gpuclass",
    "quota",
    "servicelevel",
    "offpeakwindow",
    "cluster",
    "workerpool",
]


def _codenames(group_name: str, app_label: str) -> set[str]:
    group = Group.objects.get(name=group_name)
    return set(
        group.permissions.filter(content_type__app_label=app_label).values_list(
            "codename", flat=True
        )
    )


def test_migrations_create_finance_with_read_only_access_to_departments():
    assert _codenames(FINANCE, "departments") == {f"view_{m}" for m in MODELS}
    assert _codenames(FINANCE, "auth") == set()


def test_migrations_create_it_admin_who_manages_departments_and_looks_users_up():
    assert _codenames(IT_ADMIN, "departments") == {
        f"{action}_{m}" for m in MODELS for action in ("view", "add", "change", "delete")
    }
    assert _codenames(IT_ADMIN, "auth") == {"view_user", "view_group"}

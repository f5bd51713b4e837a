"""A sign-in with the identity provider (a real one, Canaille) gives the roles its groups
map to, takes away the ones of groups left, and leaves what IT set by hand alone."""

import pytest
from django.contrib.auth import get_user_model

from accounts.models import ProviderGrant, ProviderIdentity, RoleMapping
from core.roles import FINANCE, IT_ADMIN
from departments.models import Membership, MembershipOrigin
from tests import factories
from tests.accounts.sign_in import sign_in

pytestmark = pytest.mark.django_db

User = get_user_model()


@pytest.fixture
def mappings(world):
    RoleMapping.objects.create(group="gpu-finance", role=FINANCE)
    RoleMapping.objects.create(group="gpu-it", role=IT_ADMIN)
    RoleMapping.objects.create(group="mkt-leads", role="manager", department=world.marketing)
    RoleMapping.objects.create(group="mkt-staff", role="member", department=world.marketing)
    RoleMapping.objects.create(group="trn-leads", role="manager", department=world.training)


def test_a_finance_group_signs_in_as_finance_and_sees_every_department(oidc, mappings, client):
    oidc.person("fay-finance", groups=["gpu-finance", "unrelated"])
    response = sign_in(client, oidc, "fay-finance")
    assert response.status_code == 302 and response["Location"] == "/"
    user = User.objects.get(username="fay-finance")
    assert user.email == "fay-finance@example.com" and user.first_name == "Fay"
    assert set(user.groups.values_list("name", flat=True)) == {FINANCE}
    assert ProviderGrant.objects.filter(user=user, group__name=FINANCE).exists()
    assert not user.has_usable_password()
    page = client.get("/").content.decode()
    assert "All departments" in page and "dept-training" in page and "dept-marketing" in page


def test_a_manager_group_gives_one_department_and_leaving_it_takes_it_away(oidc, mappings, client):
    oidc.person("max-manager", groups=["mkt-leads"])
    sign_in(client, oidc, "max-manager")
    user = User.objects.get(username="max-manager")
    membership = Membership.objects.get(user=user)
    assert (membership.department.slug, membership.role, membership.origin) == (
        "marketing",
        "manager",
        MembershipOrigin.PROVIDER,
    )
    assert client.get("/departments/marketing/").status_code == 200
    assert client.get("/departments/training/").status_code == 404
    assert [d["slug"] for d in client.get("/api/v1/departments/").json()["results"]] == [
        "marketing"
    ]

    client.post("/accounts/logout/")
    oidc.set_groups("max-manager", [])
    sign_in(client, oidc, "max-manager")
    assert not Membership.objects.filter(user=user).exists()
    page = client.get("/").content.decode()
    assert "nothing to see yet" in page and "sent no groups for you" in page
    assert client.get("/departments/marketing/").status_code == 404
    assert client.get("/api/v1/departments/").json()["results"] == []


def test_a_move_between_groups_changes_the_role_in_place(oidc, mappings, client):
    oidc.person("mo-mover", groups=["mkt-staff"])
    sign_in(client, oidc, "mo-mover")
    user = User.objects.get(username="mo-mover")
    assert Membership.objects.get(user=user).role == "member"
    client.post("/accounts/logout/")
    oidc.set_groups("mo-mover", ["mkt-staff", "mkt-leads", "gpu-it"])
    sign_in(client, oidc, "mo-mover")
    assert Membership.objects.get(user=user).role == "manager"  # the stronger of the two
    assert set(user.groups.values_list("name", flat=True)) == {IT_ADMIN}
    client.post("/accounts/logout/")
    oidc.set_groups("mo-mover", ["mkt-staff"])
    sign_in(client, oidc, "mo-mover")
    assert Membership.objects.get(user=user).role == "member"
    assert not user.groups.exists()
    assert not ProviderGrant.objects.filter(user=user).exists()


def test_what_it_set_by_hand_survives_every_sign_in(oidc, mappings, world, client):
    """An existing account is taken over by its username; its hand-set membership and
    group stay when the provider's groups come and go, and are shown apart."""
    local = factories.UserFactory(username="hana-hand", groups=[FINANCE])
    Membership.objects.create(user=local, department=world.training, role="member")
    oidc.person("hana-hand", groups=["mkt-leads", "gpu-finance", "trn-leads"])
    sign_in(client, oidc, "hana-hand")
    assert ProviderIdentity.objects.get(subject="hana-hand").user == local
    roles = {(m.department.slug, m.role, m.origin) for m in Membership.objects.filter(user=local)}
    assert roles == {
        ("marketing", "manager", MembershipOrigin.PROVIDER),
        # IT made her a member of training: the provider's manager mapping does not touch it.
        ("training", "member", MembershipOrigin.MANUAL),
    }
    # She held finance by hand before the provider said so: no grant, so it is IT's.
    assert not ProviderGrant.objects.filter(user=local).exists()

    client.post("/accounts/logout/")
    oidc.set_groups("hana-hand", [])
    sign_in(client, oidc, "hana-hand")
    assert {(m.department.slug, m.origin) for m in Membership.objects.filter(user=local)} == {
        ("training", MembershipOrigin.MANUAL)
    }
    assert set(local.groups.values_list("name", flat=True)) == {FINANCE}


def test_the_admin_shows_where_each_role_came_from(oidc, mappings, world, client):
    oidc.person("ola-origin", groups=["mkt-leads", "gpu-finance"])
    sign_in(client, oidc, "ola-origin")
    user = User.objects.get(username="ola-origin")
    Membership.objects.create(user=user, department=world.training, role="member")
    client.post("/accounts/logout/")
    admin = factories.UserFactory(username="root", is_superuser=True, is_staff=True)
    client.force_login(admin)
    page = client.get(f"/admin/auth/user/{user.pk}/change/").content.decode()
    assert "From the identity provider" in page and "Set by hand" in page
    assert "Groups from the identity provider" in page and "mkt-leads" in page


def test_someone_no_mapping_names_signs_in_to_a_page_that_says_so(oidc, mappings, client):
    oidc.person("una-unmapped", groups=["cafeteria", "badminton-club"])
    response = sign_in(client, oidc, "una-unmapped")
    assert response.status_code == 302
    page = client.get("/").content.decode()
    assert "nothing to see yet" in page
    assert "<code>badminton-club</code>" in page and "<code>cafeteria</code>" in page
    assert "none of them is mapped to a role" in page
    assert client.get("/api/v1/departments/").json()["results"] == []
    assert client.get("/jobs/").status_code == 200
    assert "Marketing" not in client.get("/jobs/").content.decode()
    assert client.get("/billing/").status_code in (403, 404)


def test_a_superuser_account_is_never_taken_over_by_a_provider_username(oidc, mappings, client):
    root = factories.UserFactory(username="root-admin", is_superuser=True, is_staff=True)
    oidc.person("root-admin", groups=["cafeteria"])
    sign_in(client, oidc, "root-admin")
    identity = ProviderIdentity.objects.get(subject="root-admin")
    assert identity.user != root
    assert identity.user.username == "root-admin-2" and not identity.user.is_superuser


def test_a_switched_off_account_is_refused_with_the_reason(oidc, mappings, client):
    oidc.person("otto-off", groups=["gpu-finance"])
    sign_in(client, oidc, "otto-off")
    client.post("/accounts/logout/")
    User.objects.filter(username="otto-off").update(is_active=False)
    response = sign_in(client, oidc, "otto-off")
    assert response["Location"] == "/accounts/login/"
    page = client.get("/accounts/login/").content.decode()
    assert "did not complete" in page and "switched off" in page
    assert client.get("/").status_code == 302  # still signed out


def test_a_mapping_to_a_department_switched_off_gives_nothing(oidc, mappings, world, client):
    world.training.active = False
    world.training.save()
    oidc.person("tia-trainer", groups=["trn-leads"])
    sign_in(client, oidc, "tia-trainer")
    assert not Membership.objects.filter(user__username="tia-trainer").exists()


def test_the_department_page_says_who_gave_each_membership(oidc, mappings, world, client):
    oidc.person("pia-people", groups=["mkt-staff"])
    sign_in(client, oidc, "pia-people")
    client.post("/accounts/logout/")
    client.force_login(world.user("manager"))
    page = client.get("/departments/marketing/").content.decode()
    row = page[page.index("pia-people") :].split("</tr>")[0]
    assert "a group at the identity provider" in row
    row = page[page.index("<td>mara</td>") :].split("</tr>")[0]
    assert "IT, by hand" in row

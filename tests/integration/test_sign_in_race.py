"""One person's first sign-ins, many at once (tabs, scripts with the provider's token):
one account, one identity, one membership per department, whatever the interleaving."""

import threading

import pytest
from django.contrib.auth import get_user_model
from django.db import connections

from accounts.models import ProviderGrant, ProviderIdentity, RoleMapping
from accounts.services import provider_user_sign_in
from core.roles import FINANCE
from departments.models import Membership
from tests.factories import DepartmentFactory

# PostgreSQL alone: beside the other integration tests.
pytestmark = [
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True),
    pytest.mark.xdist_group("sign-in-race"),
]

SIGN_INS = 12
ISSUER = "https://login.example"


def test_concurrent_first_sign_ins_of_one_person_make_one_account(postgres):
    marketing = DepartmentFactory(slug="marketing")
    RoleMapping.objects.create(group="mkt-leads", role="manager", department=marketing)
    RoleMapping.objects.create(group="fin", role=FINANCE)
    claims = {"sub": "race-1", "email": "rae@example.com", "groups": ["mkt-leads", "fin"]}
    start = threading.Barrier(SIGN_INS)
    outcomes: list = []

    def sign_in():
        try:
            start.wait()
            outcomes.append(provider_user_sign_in(issuer=ISSUER, claims=claims).pk)
        except Exception as exc:  # reported below with the others
            outcomes.append(repr(exc))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=sign_in) for _ in range(SIGN_INS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    User = get_user_model()
    (user,) = User.objects.filter(email="rae@example.com")
    assert outcomes == [user.pk] * SIGN_INS, outcomes
    assert ProviderIdentity.objects.filter(issuer=ISSUER, subject="race-1").count() == 1
    assert list(Membership.objects.filter(user=user).values_list("role", flat=True)) == ["manager"]
    assert ProviderGrant.objects.filter(user=user).count() == 1
    assert list(user.groups.values_list("name", flat=True)) == [FINANCE]

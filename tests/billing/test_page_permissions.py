"""Who gets which billing page: each page requested as finance, it-admin, the manager of
marketing, the manager of training, a member of marketing and someone anonymous.

Members read no money: the billing pages answer them 403 (the pages exist for everyone;
nothing about a department leaks), and a statement 404 like one that does not exist.
Finalizing is finance's: others who can read the statement get 403, the rest 404.
"""

import datetime as dt

import pytest

from billing import services
from billing.models import Statement, StatementStatus
from tests.billing.conftest import hour
from tests.conftest import ROLES, client_as

LOGIN = "/accounts/login/"
MARCH = dt.date(2026, 3, 1)


def expect(anonymous, member, manager, other_manager, finance, it_admin):
    return dict(
        zip(ROLES, (anonymous, member, manager, other_manager, finance, it_admin), strict=True)
    )


def statement_url(world, department, suffix="") -> str:
    statement = Statement.objects.get(period__month=MARCH, department=department)
    return f"/billing/statements/{statement.pk}/{suffix}"


def line_jobs_url(world, department) -> str:
    statement = Statement.objects.get(period__month=MARCH, department=department)
    line = statement.lines.order_by("pk").first()
    return statement_url(world, department, f"lines/{line.pk}/jobs/")


# (name, method, url(world), expected status, or the path a 302 leads to)
PAGES = [
    ("dashboard", "get", lambda w: "/billing/", expect(LOGIN, 403, 200, 200, 200, 200)),
    (
        "own line's jobs",
        "get",
        lambda w: line_jobs_url(w, w.marketing),
        expect(LOGIN, 404, 200, 404, 200, 200),
    ),
    (
        "other line's jobs",
        "get",
        lambda w: line_jobs_url(w, w.training),
        expect(LOGIN, 404, 404, 200, 200, 200),
    ),
    (
        "dashboard of a month",
        "get",
        lambda w: "/billing/?period=2026-03",
        expect(LOGIN, 403, 200, 200, 200, 200),
    ),
    (
        "dashboard of no month",
        "get",
        lambda w: "/billing/?period=2026-13",
        expect(LOGIN, 403, 400, 400, 400, 400),
    ),
    (
        "statements list",
        "get",
        lambda w: "/billing/statements/",
        expect(LOGIN, 403, 200, 200, 200, 200),
    ),
    (
        "marketing statement",
        "get",
        lambda w: statement_url(w, w.marketing),
        expect(LOGIN, 404, 200, 404, 200, 200),
    ),
    (
        "training statement",
        "get",
        lambda w: statement_url(w, w.training),
        expect(LOGIN, 404, 404, 200, 200, 200),
    ),
    (
        "unknown statement",
        "get",
        lambda w: "/billing/statements/999999/",
        expect(LOGIN, 404, 404, 404, 404, 404),
    ),
    (
        "finalize marketing",
        "post",
        lambda w: statement_url(w, w.marketing, "finalize/"),
        expect(LOGIN, 404, 403, 404, "statement", 403),
    ),
    (
        "finalize training",
        "post",
        lambda w: statement_url(w, w.training, "finalize/"),
        expect(LOGIN, 404, 404, 403, "statement", 403),
    ),
    (
        "finalize is a POST",
        "get",
        lambda w: statement_url(w, w.marketing, "finalize/"),
        expect(LOGIN, 405, 405, 405, 405, 405),
    ),
]


def _cases(table):
    for name, method, url, expected in table:
        for role in ROLES:
            yield pytest.param(role, method, url, expected[role], id=f"{name}-{role}")


@pytest.fixture
def march(world, ledger):
    # A line on each department's statement (its jobs are listed from it).
    for department in (world.marketing, world.training):
        ledger.add(at=hour(2, 10), gpu_hours="1", department=department, gpu_class=world.a100)
    services.period_refresh(month=MARCH)


@pytest.mark.parametrize(("role", "method", "url", "expected"), list(_cases(PAGES)))
def test_billing_pages_answer_each_role_as_the_table_says(
    world, client, march, role, method, url, expected
):
    target = url(world)
    response = getattr(client_as(client, world, role), method)(target)
    if expected == LOGIN:
        assert response.status_code == 302
        assert response["Location"].split("?")[0] == LOGIN
    elif expected == "statement":
        assert response.status_code == 302
        assert response["Location"] == target.removesuffix("finalize/")
    else:
        assert response.status_code == expected


REQUESTED_VIEW_NAMES = frozenset(
    {
        "billing:dashboard",
        "billing:statements",
        "billing:statement",
        "billing:finalize",
        "billing:line_jobs",
    }
)


def test_the_table_requests_every_billing_page(world, march):
    from django.urls import get_resolver, resolve

    requested = {resolve(row[2](world).split("?")[0]).view_name for row in PAGES}
    pages = {
        f"billing:{name}"
        for name in get_resolver().namespace_dict["billing"][1].reverse_dict
        if isinstance(name, str)
    }
    assert pages == REQUESTED_VIEW_NAMES == requested


@pytest.mark.parametrize("role", ["member", "manager", "other_manager", "it_admin"])
def test_a_refused_finalize_changes_nothing(world, client, march, role):
    client_as(client, world, role).post(statement_url(world, world.marketing, "finalize/"))
    assert not Statement.objects.filter(status=StatementStatus.FINALIZED).exists()


@pytest.mark.parametrize(
    ("role", "shown"),
    [
        ("member", False),
        ("manager", True),
        ("other_manager", True),
        ("finance", True),
        ("it_admin", True),
    ],
)
def test_the_billing_link_is_in_the_navigation_for_those_who_may_read_it(
    world, client, role, shown
):
    page = client_as(client, world, role).get("/").content.decode()
    assert page.count('<a href="/billing/">Billing</a>') == (1 if shown else 0)


def test_a_manager_of_two_departments_gets_one_billing_link(world, client):
    from departments.models import Membership
    from tests.factories import MembershipFactory

    MembershipFactory(
        user=world.user("manager"), department=world.training, role=Membership.Role.MANAGER
    )
    page = client_as(client, world, "manager").get("/").content.decode()
    assert page.count('<a href="/billing/">Billing</a>') == 1

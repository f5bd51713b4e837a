import pytest
from django.db import DatabaseError

from departments.models import Membership
from tests.conftest import client_as
from tests.factories import (
    DepartmentFactory,
    MembershipFactory,
    NamespaceFactory,
    QuotaFactory,
    ServiceLevelFactory,
    UserFactory,
)


def _page(client, world, role, url="/"):
    response = client_as(client, world, role).get(url)
    assert response.status_code == 200
    return response.content.decode()


def test_a_manager_sees_their_department_with_namespaces_quotas_and_slas(world, client):
    page = _page(client, world, "manager")
    assert "Your departments" in page
    assert "Marketing" in page and "dept-marketing" in page
    assert "Jobs admitted per day" in page and "lipsync-render" in page
    assert "gpu.t4.batch" in page
    assert "Training" not in page and "dept-training" not in page


def test_finance_sees_every_department_in_one_table(world, client):
    page = _page(client, world, "finance")
    assert "All departments" in page
    assert "dept-marketing" in page and "dept-training" in page


def test_someone_without_a_department_is_told_what_to_do(db, client):
    client.force_login(UserFactory(username="newcomer"))
    page = client.get("/").content.decode()
    assert "you are not a member of any department yet. Ask IT to add you to yours." in page


def test_the_department_page_shows_people_to_its_manager_but_not_to_members(world, client):
    assert "People" in _page(client, world, "manager", "/departments/marketing/")
    client.logout()
    member_page = _page(client, world, "member", "/departments/marketing/")
    assert "People" not in member_page
    assert "Jobs admitted per day" in member_page


def test_the_department_page_names_only_visible_relatives(world, client):
    video = DepartmentFactory(slug="video", name="Video", parent=world.training)
    MembershipFactory(user=world.user("manager"), department=video, role=Membership.Role.MANAGER)
    page = _page(client, world, "manager", "/departments/video/")
    assert "Training" not in page
    client.logout()
    assert 'href="/departments/training/"' in _page(client, world, "finance", "/departments/video/")


def test_the_home_page_costs_the_same_queries_for_3_or_30_departments(
    world, client, django_assert_max_num_queries
):
    def add_department(n):
        department = DepartmentFactory()
        NamespaceFactory(department=department)
        QuotaFactory(department=department)
        ServiceLevelFactory(department=department, gpu_classes=[world.a100, world.t4])

    add_department(0)
    client.force_login(world.user("finance"))
    # The first visit after a change brings the month's drafts up to date (as the billing
    # dashboard does); what is counted is the page itself.
    client.get("/")
    with django_assert_max_num_queries(45) as small:
        client.get("/")
    small_count = len(small.captured_queries)  # the next request clears the log
    for n in range(27):
        add_department(n)
    client.get("/")
    with django_assert_max_num_queries(small_count):
        client.get("/")


def test_health_says_ok_when_the_database_answers(db, client):
    assert client.get("/healthz").json() == {"status": "ok"}


def test_health_says_unavailable_when_the_database_does_not(db, client, monkeypatch):
    class Unreachable:
        def cursor(self):
            raise DatabaseError("connection refused")

    monkeypatch.setattr("portal.views.connection", Unreachable())
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json() == {"status": "database unavailable"}


@pytest.mark.parametrize("role", ["manager", "finance"])
def test_pages_show_times_in_the_portal_time_zone(world, client, role, settings):
    settings.TIME_ZONE = "Europe/Berlin"
    assert "Times are shown in Europe/Berlin." in _page(client, world, role)


def test_health_answers_plain_http_probes_while_pages_redirect_to_https(db, client, settings):
    settings.SECURE_SSL_REDIRECT = True
    assert client.get("/healthz").status_code == 200
    assert client.get("/accounts/login/").status_code == 301

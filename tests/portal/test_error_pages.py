"""Error pages: 400, 403, 404 and 500 are the site's own pages, with its layout and the
reason, when DEBUG is off (as in production); under ``/api/`` they stay JSON."""

import pytest
from django.core.exceptions import PermissionDenied, SuspiciousOperation
from django.urls import path

from portal import urls as portal_urls
from tests.conftest import client_as


def _boom(request):
    raise RuntimeError("a bug in a view")


def _suspicious(request):
    raise SuspiciousOperation("a request that makes no sense")


def _forbidden(request):
    raise PermissionDenied("Only the night shift reads this.")


# The portal's own addresses and error handlers, plus views that fail on purpose.
urlpatterns = [
    path("boom/", _boom),
    path("api/v1/boom/", _boom),
    path("suspicious/", _suspicious),
    path("api/v1/suspicious/", _suspicious),
    path("api/v1/forbidden/", _forbidden),
    *portal_urls.urlpatterns,
]
# As Django reads them: the portal's handler where it names one, else Django's own.
handler400 = getattr(portal_urls, "handler400", "django.views.defaults.bad_request")
handler403 = getattr(portal_urls, "handler403", "django.views.defaults.permission_denied")
handler404 = getattr(portal_urls, "handler404", "django.views.defaults.page_not_found")
handler500 = getattr(portal_urls, "handler500", "django.views.defaults.server_error")


@pytest.fixture(autouse=True)
def _production(settings):
    settings.DEBUG = False


def _page(response) -> str:
    assert response["Content-Type"].startswith("text/html")
    return response.content.decode()


def test_a_member_who_opens_billing_is_told_why_within_the_site(world, client):
    response = client_as(client, world, "member").get("/billing/")
    assert response.status_code == 403
    page = _page(response)
    assert "Billing is for finance, IT and the managers of a department" in page
    assert "you are a member of Marketing" in page
    # The site's layout: its style sheet, the navigation and the way home.
    assert "portal/portal.css" in page
    assert 'href="/jobs/"' in page and 'href="/"' in page
    assert "Log out" in page  # who is signed in, and the way out


def test_a_refused_submission_says_who_submits_jobs(world, client):
    response = client_as(client, world, "finance").post("/jobs/submit/", {})
    assert response.status_code == 403
    page = _page(response)
    assert "Only members and managers of a department submit jobs." in page
    assert 'href="/billing/"' in page  # finance's navigation


def test_an_unknown_address_is_the_sites_404_page(world, client):
    response = client_as(client, world, "manager").get("/no-such-page/")
    assert response.status_code == 404
    page = _page(response)
    assert "Page not found" in page
    assert "/no-such-page/" in page
    assert "portal/portal.css" in page and 'href="/jobs/"' in page


def test_an_anonymous_visitor_gets_the_404_page_without_navigation(db, client):
    response = client.get("/no-such-page/")
    assert response.status_code == 404
    page = _page(response)
    assert "Page not found" in page and 'href="/jobs/"' not in page


@pytest.mark.urls(__name__)
def test_a_view_that_fails_answers_the_sites_500_page(world, client):
    client.raise_request_exception = False
    response = client_as(client, world, "manager").get("/boom/")
    assert response.status_code == 500
    page = _page(response)
    assert "Something went wrong" in page
    assert 'href="/"' in page  # the way home
    assert "GPU chargeback portal" in page
    assert "a bug in a view" not in page  # never the error itself


def test_the_500_page_renders_without_the_database(rf, django_db_blocker):
    from portal import views

    with django_db_blocker.block():
        response = views.server_error(rf.get("/boom/"))
    assert response.status_code == 500
    assert "Something went wrong" in response.content.decode()


@pytest.mark.urls(__name__)
def test_a_request_that_makes_no_sense_answers_the_sites_400_page(world, client):
    response = client_as(client, world, "manager").get("/suspicious/")
    assert response.status_code == 400
    page = _page(response)
    assert "Bad request" in page and "portal/portal.css" in page


@pytest.mark.urls(__name__)
@pytest.mark.parametrize(
    ("url", "status"),
    [
        ("/api/v1/boom/", 500),
        ("/api/v1/suspicious/", 400),
        ("/api/v1/forbidden/", 403),
        ("/api/v1/no-such-endpoint/", 404),
    ],
)
def test_errors_under_the_api_stay_json(world, client, url, status):
    client.raise_request_exception = False
    response = client_as(client, world, "manager").get(url)
    assert response.status_code == status
    assert response["Content-Type"] == "application/json"
    assert response.json()["detail"]


@pytest.mark.urls(__name__)
def test_a_forbidden_api_address_says_why(world, client):
    response = client_as(client, world, "manager").get("/api/v1/forbidden/")
    assert response.json() == {"detail": "Only the night shift reads this."}


def test_a_host_no_allowed_hosts_names_is_the_sites_400_page(db, client, settings):
    """Refused before sign-in is read: the styled page, not a failure to render it."""
    settings.ALLOWED_HOSTS = ["gpu-portal.example.com"]
    client.raise_request_exception = False
    response = client.get("/", HTTP_HOST="attacker.example")
    assert response.status_code == 400
    assert b"<nav" in response.content or b"<header" in response.content
